"""Behaviour of the emulator's REST surface, through HTTP, in both modes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from node.trackers.jira.emulator import JiraEmulator

from .conftest import Client, adf, make_issue

# ------------------------------------------------------------------ auth and modes


async def test_missing_or_bad_credentials_get_401_in_jira_shape(
    cc: Client, session: aiohttp.ClientSession
) -> None:
    async with session.get(cc.base + "/rest/api/2/myself") as resp:
        assert resp.status == 401
        body = await resp.json()
        assert body["errorMessages"] and body["errors"] == {}
    status, _ = await cc.as_user("admin", "wrong").get("/rest/api/2/myself")
    assert status == 401
    status, _ = await cc.get("/rest/api/2/myself", headers={"Authorization": "Basic !!!notbase64"})
    assert status == 401


async def test_email_login_api_token_and_bearer_pat(cloud: JiraEmulator, cc: Client) -> None:
    status, me = await cc.as_user("admin@example.com", "admin").get("/rest/api/3/myself")
    assert status == 200 and me["accountId"] == cloud.state.users["admin"].account_id
    status, me = await cc.get("/rest/api/2/myself", headers={"Authorization": "Bearer admin"})
    assert status == 200 and me["displayName"] == "Administrator"
    status, _ = await cc.get("/rest/api/2/myself", headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_server_info_is_public_and_names_the_deployment(
    cc: Client, sc: Client, session: aiohttp.ClientSession
) -> None:
    async with session.get(cc.base + "/rest/api/2/serverInfo") as resp:
        assert (await resp.json())["deploymentType"] == "Cloud"
    async with session.get(sc.base + "/rest/api/2/serverInfo") as resp:
        assert (await resp.json())["deploymentType"] == "Server"


async def test_server_mode_has_no_v3_and_identifies_users_by_name(server: JiraEmulator, sc: Client) -> None:
    status, body = await sc.get("/rest/api/3/myself")
    assert status == 404 and "null for uri" in body["errorMessages"][0]
    status, me = await sc.get("/rest/api/2/myself")
    assert status == 200 and me["name"] == "admin" and me["key"] == "admin" and "accountId" not in me
    server.state.add_user("jane.doe", password="pw", display_name="Jane Doe")
    status, users = await sc.get("/rest/api/2/user/search?username=jane")
    assert status == 200 and [u["name"] for u in users] == ["jane.doe"]
    status, _ = await sc.get("/rest/api/2/user/search?query=jane")
    assert status == 400
    status, user = await sc.get("/rest/api/2/user?username=jane.doe")
    assert status == 200 and user["displayName"] == "Jane Doe"


async def test_cloud_user_search_returns_account_ids_and_rejects_username(
    cloud: JiraEmulator, cc: Client
) -> None:
    jane = cloud.state.add_user("jane.doe", display_name="Jane Doe")
    status, users = await cc.get("/rest/api/3/user/search?query=Jane")
    assert status == 200 and [u["accountId"] for u in users] == [jane.account_id]
    assert "name" not in users[0]
    status, body = await cc.get("/rest/api/3/user/search?username=jane")
    assert status == 400 and "GDPR" in body["errorMessages"][0]
    status, user = await cc.get(f"/rest/api/2/user?accountId={jane.account_id}")
    assert status == 200 and user["emailAddress"] == "jane.doe@example.com"


async def test_unknown_rest_path_is_a_json_404(cc: Client) -> None:
    status, body = await cc.get("/rest/api/2/nothing/here")
    assert status == 404 and body["errorMessages"]


# ------------------------------------------------------------------ issues


async def test_create_read_with_expand_and_edit_with_update_verbs(cloud: JiraEmulator, cc: Client) -> None:
    key = await make_issue(cc, labels=["a", "b"], components=[{"name": "Core"}], description="*bold* text")
    assert key == "PROJ-1"
    status, issue = await cc.get(f"/rest/api/2/issue/{key}?expand=changelog,renderedFields,names,transitions")
    assert status == 200
    f = issue["fields"]
    assert f["summary"] == "First" and f["status"]["name"] == "To Do" and f["labels"] == ["a", "b"]
    assert f["reporter"]["accountId"] == cloud.state.users["admin"].account_id
    assert f["created"].endswith("+0000") and len(f["created"]) == len("2024-01-31T10:00:00.000+0000")
    assert issue["names"]["summary"] == "Summary" and "transitions" in issue
    assert isinstance(issue["renderedFields"]["description"], str)
    body = {
        "update": {
            "labels": [{"add": "c"}, {"remove": "a"}],
            "components": [{"add": {"name": "UI"}}],
            "summary": [{"set": "Renamed"}],
        },
        "fields": {
            "priority": {"name": "High"},
            "customfield_10051": {"value": "S2"},
            "customfield_10016": 5,
        },
    }
    status, _ = await cc.put(f"/rest/api/2/issue/{key}", body)
    assert status == 204
    status, issue = await cc.get(f"/rest/api/2/issue/{key}?expand=changelog")
    f = issue["fields"]
    assert f["labels"] == ["b", "c"] and [c["name"] for c in f["components"]] == ["Core", "UI"]
    assert f["summary"] == "Renamed" and f["priority"]["name"] == "High"
    assert f["customfield_10051"]["value"] == "S2" and f["customfield_10016"] == 5
    changed = {item["fieldId"] for h in issue["changelog"]["histories"] for item in h["items"]}
    assert {
        "labels",
        "components",
        "summary",
        "priority",
        "customfield_10051",
        "customfield_10016",
    } <= changed


async def test_fields_parameter_selects_and_excludes(cc: Client) -> None:
    key = await make_issue(cc)
    status, issue = await cc.get(f"/rest/api/2/issue/{key}?fields=summary,status")
    assert status == 200 and set(issue["fields"]) == {"summary", "status"}
    status, issue = await cc.get(f"/rest/api/2/issue/{key}?fields=*all,-comment")
    assert "comment" not in issue["fields"] and "summary" in issue["fields"]


async def test_v3_bodies_are_adf_and_v2_bodies_are_wiki(cc: Client) -> None:
    status, created = await cc.post(
        "/rest/api/3/issue",
        {
            "fields": {
                "project": {"key": "PROJ"},
                "issuetype": {"name": "Bug"},
                "summary": "x",
                "description": adf("Hello"),
            }
        },
    )
    assert status == 201
    _, v3 = await cc.get(f"/rest/api/3/issue/{created['key']}")
    assert v3["fields"]["description"]["type"] == "doc"
    _, v2 = await cc.get(f"/rest/api/2/issue/{created['key']}")
    assert isinstance(v2["fields"]["description"], str) and "Hello" in v2["fields"]["description"]
    status, err = await cc.post(
        "/rest/api/3/issue",
        {
            "fields": {
                "project": {"key": "PROJ"},
                "issuetype": {"name": "Bug"},
                "summary": "x",
                "description": "plain",
            }
        },
    )
    assert status == 400 and "description" in err["errors"]


async def test_invalid_input_gets_field_errors_not_a_crash(cc: Client) -> None:
    status, err = await cc.post(
        "/rest/api/2/issue", {"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}}}
    )
    assert status == 400 and err["errors"]["summary"] == "You must specify a summary of the issue."
    status, err = await cc.post(
        "/rest/api/2/issue",
        {"fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "Task"}, "summary": "x"}},
    )
    assert status == 400 and "project" in err["errors"]
    key = await make_issue(cc)
    status, err = await cc.put(f"/rest/api/2/issue/{key}", {"fields": {"bogus": 1, "labels": ["has space"]}})
    assert status == 400
    assert "cannot be set" in err["errors"]["bogus"] and "labels" in err["errors"]
    status, err = await cc.put(f"/rest/api/2/issue/{key}", {"fields": {"customfield_10016": "many"}})
    assert status == 400 and "customfield_10016" in err["errors"]
    status, err = await cc.put(
        f"/rest/api/2/issue/{key}", {"fields": {"customfield_10051": {"value": "nope"}}}
    )
    assert status == 400 and "customfield_10051" in err["errors"]
    status, err = await cc.call(
        "POST", "/rest/api/2/issue", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and err["errorMessages"]
    status, err = await cc.post("/rest/api/2/issue", ["a", "list"])
    assert status == 400


async def test_missing_issue_is_jiras_404(cc: Client) -> None:
    status, err = await cc.get("/rest/api/2/issue/PROJ-999")
    assert status == 404
    assert err == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }


async def test_delete_issue(cc: Client) -> None:
    key = await make_issue(cc)
    status, _ = await cc.delete(f"/rest/api/2/issue/{key}")
    assert status == 204
    status, _ = await cc.get(f"/rest/api/2/issue/{key}")
    assert status == 404


async def test_keys_and_ids_are_monotonic(cc: Client) -> None:
    keys = [await make_issue(cc, summary=f"n{n}") for n in range(3)]
    assert keys == ["PROJ-1", "PROJ-2", "PROJ-3"]
    ids = [int((await cc.get(f"/rest/api/2/issue/{k}"))[1]["id"]) for k in keys]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_user_fields_by_account_id_on_cloud_and_name_on_server(
    cloud: JiraEmulator, cc: Client, sc: Client, server: JiraEmulator
) -> None:
    jane = cloud.state.add_user("jane")
    key = await make_issue(cc, assignee={"accountId": jane.account_id})
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["assignee"]["accountId"] == jane.account_id
    status, err = await cc.put(f"/rest/api/2/issue/{key}", {"fields": {"assignee": {"name": "jane"}}})
    assert status == 400 and "GDPR" in err["errors"]["assignee"]
    server.state.add_user("bob")
    key = await make_issue(sc, assignee={"name": "bob"})
    _, issue = await sc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["assignee"]["name"] == "bob"
    status, _ = await sc.put(f"/rest/api/2/issue/{key}/assignee", {"name": None})
    assert status == 204
    _, issue = await sc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["assignee"] is None


async def test_edit_as_another_user_is_attributed_to_that_user(cloud: JiraEmulator, cc: Client) -> None:
    human = cloud.state.add_user("alice", password="alice-pw", display_name="Alice")
    key = await make_issue(cc)
    status, _ = await cc.as_user("alice", "alice-pw").put(
        f"/rest/api/2/issue/{key}", {"fields": {"summary": "by alice"}}
    )
    assert status == 204
    _, issue = await cc.get(f"/rest/api/2/issue/{key}?expand=changelog")
    last = issue["changelog"]["histories"][-1]
    assert last["author"]["accountId"] == human.account_id
    snap = cloud.state.to_snapshot(cloud.state.issue(key))  # type: ignore[arg-type]
    assert snap.updated_by is not None and snap.updated_by.display_name == "Alice"


# ------------------------------------------------------------------ metadata


async def test_createmeta_old_and_new_and_editmeta(cc: Client, sc: Client) -> None:
    status, meta = await cc.get(
        "/rest/api/2/issue/createmeta?projectKeys=PROJ&expand=projects.issuetypes.fields"
    )
    assert status == 200
    types = meta["projects"][0]["issuetypes"]
    assert {t["name"] for t in types} >= {"Task", "Bug"}
    fields = types[0]["fields"]
    assert fields["summary"]["required"] is True
    assert [o["value"] for o in fields["customfield_10051"]["allowedValues"]] == ["S1", "S2", "S3", "S4"]
    status, page = await cc.get("/rest/api/2/issue/createmeta/PROJ/issuetypes")
    assert status == 200 and page["total"] == len(page["issueTypes"])
    status, page = await sc.get("/rest/api/2/issue/createmeta/PROJ/issuetypes")
    assert status == 200 and "values" in page
    status, page = await cc.get("/rest/api/2/issue/createmeta/PROJ/issuetypes/10002")
    assert status == 200 and {f["fieldId"] for f in page["fields"]} >= {"summary", "customfield_10052"}
    key = await make_issue(cc)
    status, meta = await cc.get(f"/rest/api/2/issue/{key}/editmeta")
    assert status == 200 and "labels" in meta["fields"] and "add" in meta["fields"]["labels"]["operations"]


async def test_field_list_has_system_and_custom_fields_with_schema(cc: Client) -> None:
    status, fields = await cc.get("/rest/api/2/field")
    assert status == 200
    by_id = {f["id"]: f for f in fields}
    assert by_id["summary"]["schema"]["type"] == "string" and by_id["summary"]["custom"] is False
    sev = by_id["customfield_10051"]
    assert sev["custom"] and sev["schema"]["custom"].endswith(":select") and "Severity" in sev["clauseNames"]


async def test_projects_create_list_and_search(cc: Client) -> None:
    status, created = await cc.post(
        "/rest/api/2/project", {"key": "NEWP", "name": "New P", "projectTypeKey": "software"}
    )
    assert status == 201 and created["key"] == "NEWP" and isinstance(created["id"], int)
    status, err = await cc.post("/rest/api/2/project", {"key": "NEWP", "name": "Other"})
    assert status == 400 and "projectKey" in err["errors"]
    status, projects = await cc.get("/rest/api/2/project")
    assert {p["key"] for p in projects} == {"PROJ", "NEWP"}
    status, page = await cc.get("/rest/api/2/project/search?query=new")
    assert [p["key"] for p in page["values"]] == ["NEWP"]


# ------------------------------------------------------------------ workflow


async def test_transitions_accept_string_and_integer_ids_and_set_resolution(cc: Client) -> None:
    key = await make_issue(cc)
    status, trs = await cc.get(f"/rest/api/2/issue/{key}/transitions")
    assert {t["name"] for t in trs["transitions"]} == {"To Do", "In Progress", "Done"}
    assert (await cc.post(f"/rest/api/2/issue/{key}/transitions", {"transition": {"id": 21}}))[0] == 204
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["status"]["name"] == "In Progress" and issue["fields"]["resolution"] is None
    body = {"transition": {"id": "31"}, "fields": {"resolution": {"name": "Won't Do"}}}
    assert (await cc.post(f"/rest/api/2/issue/{key}/transitions", body))[0] == 204
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["status"]["statusCategory"]["key"] == "done"
    assert issue["fields"]["resolution"]["name"] == "Won't Do" and issue["fields"]["resolutiondate"]
    assert (await cc.post(f"/rest/api/2/issue/{key}/transitions", {"transition": {"id": "11"}}))[0] == 204
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["resolution"] is None and issue["fields"]["resolutiondate"] is None
    status, err = await cc.post(f"/rest/api/2/issue/{key}/transitions", {"transition": {"id": "999"}})
    assert status == 400 and "999" in err["errorMessages"][0]


async def test_support_workflow_needs_multiple_steps(cloud: JiraEmulator, cc: Client) -> None:
    cloud.state.assign_workflow("PROJ", "support")
    key = await make_issue(cc)
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["status"]["name"] == "Open"
    path = ["Accept", "Root Cause", "Provide Workaround", "Resolve", "Close"]
    for name in path:
        _, trs = await cc.get(f"/rest/api/2/issue/{key}/transitions")
        available = {t["name"]: t["id"] for t in trs["transitions"]}
        assert name in available, (name, available)
        # Jumping ahead is refused: "Close" is never offered before "Resolve".
        if name != "Close":
            assert "Close" not in available
        assert (
            await cc.post(f"/rest/api/2/issue/{key}/transitions", {"transition": {"id": available[name]}})
        )[0] == 204
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"]["status"]["name"] == "Closed" and issue["fields"]["resolution"]["name"] == "Done"


async def test_control_api_defines_and_assigns_a_workflow(cc: Client) -> None:
    spec = {
        "name": "review",
        "statuses": [{"name": "Draft", "category": "new"}, {"name": "Approved", "category": "done"}],
        "transitions": [{"name": "Approve", "from": ["Draft"], "to": "Approved"}],
    }
    status, wf = await cc.post("/_emulator/workflows", spec)
    assert status == 201 and wf["initial"] == "Draft"
    assert (await cc.put("/_emulator/projects/PROJ/workflow", {"workflow": "review"}))[0] == 204
    key = await make_issue(cc)
    _, trs = await cc.get(f"/rest/api/2/issue/{key}/transitions")
    assert [t["name"] for t in trs["transitions"]] == ["Approve"]
    status, err = await cc.post(
        "/_emulator/workflows", {**spec, "transitions": [{"name": "X", "to": "Nowhere"}]}
    )
    assert status == 400 and err["errors"]


async def test_transition_with_comment_update(cc: Client) -> None:
    key = await make_issue(cc)
    body = {"transition": {"id": "21"}, "update": {"comment": [{"add": {"body": "moving on"}}]}}
    assert (await cc.post(f"/rest/api/2/issue/{key}/transitions", body))[0] == 204
    _, comments = await cc.get(f"/rest/api/2/issue/{key}/comment")
    assert [c["body"] for c in comments["comments"]] == ["moving on"]


# ------------------------------------------------------------------ comments and properties


async def test_comments_with_visibility_and_internal_property(cloud: JiraEmulator, cc: Client) -> None:
    key = await make_issue(cc)
    status, c1 = await cc.post(f"/rest/api/2/issue/{key}/comment", {"body": "public"})
    assert status == 201 and c1["body"] == "public" and c1["jsdPublic"] is True
    body = {"body": "secret", "visibility": {"type": "group", "value": "jira-administrators"}}
    status, c2 = await cc.post(f"/rest/api/2/issue/{key}/comment", body)
    assert status == 201 and c2["visibility"] == {"type": "group", "value": "jira-administrators"}
    body = {
        "body": adf("internal note"),
        "properties": [{"key": "sd.public.comment", "value": {"internal": True}}],
    }
    status, c3 = await cc.post(f"/rest/api/3/issue/{key}/comment", body)
    assert status == 201 and c3["jsdPublic"] is False
    snap = cloud.state.to_snapshot(cloud.state.issue(key))  # type: ignore[arg-type]
    assert [c.internal for c in snap.comments] == [False, True, True]
    status, err = await cc.post(
        f"/rest/api/2/issue/{key}/comment", {"body": "x", "visibility": {"type": "group", "value": "nope"}}
    )
    assert status == 400 and "nope" in err["errors"]["commentLevel"]
    status, _ = await cc.post(f"/rest/api/2/issue/{key}/comment", {"body": ""})
    assert status == 400


async def test_comment_edit_delete_and_permissions(cloud: JiraEmulator, cc: Client) -> None:
    cloud.state.add_user("eve", password="eve")
    key = await make_issue(cc)
    _, c = await cc.post(f"/rest/api/2/issue/{key}/comment", {"body": "v1"})
    status, edited = await cc.put(f"/rest/api/2/issue/{key}/comment/{c['id']}", {"body": "v2"})
    assert status == 200 and edited["body"] == "v2"
    status, _ = await cc.as_user("eve", "eve").put(
        f"/rest/api/2/issue/{key}/comment/{c['id']}", {"body": "hack"}
    )
    assert status == 403
    assert (await cc.delete(f"/rest/api/2/issue/{key}/comment/{c['id']}"))[0] == 204
    status, _ = await cc.get(f"/rest/api/2/issue/{key}/comment/{c['id']}")
    assert status == 404


async def test_issue_and_comment_properties(cc: Client) -> None:
    key = await make_issue(cc)
    assert (await cc.put(f"/rest/api/2/issue/{key}/properties/tandem", {"twin": "B-1"}))[0] == 201
    assert (await cc.put(f"/rest/api/2/issue/{key}/properties/tandem", {"twin": "B-2"}))[0] == 200
    _, prop = await cc.get(f"/rest/api/2/issue/{key}/properties/tandem")
    assert prop == {"key": "tandem", "value": {"twin": "B-2"}}
    _, issue = await cc.get(f"/rest/api/2/issue/{key}?properties=tandem")
    assert issue["properties"] == {"tandem": {"twin": "B-2"}}
    assert (await cc.delete(f"/rest/api/2/issue/{key}/properties/tandem"))[0] == 204
    assert (await cc.get(f"/rest/api/2/issue/{key}/properties/tandem"))[0] == 404
    _, c = await cc.post(f"/rest/api/2/issue/{key}/comment", {"body": "x"})
    assert (await cc.put(f"/rest/api/2/comment/{c['id']}/properties/m", {"v": 1}))[0] == 201
    _, keys = await cc.get(f"/rest/api/2/comment/{c['id']}/properties")
    assert [k["key"] for k in keys["keys"]] == ["m"]
    status, _ = await cc.call("PUT", f"/rest/api/2/issue/{key}/properties/bad", data=b"{oops")
    assert status == 400


async def test_remote_links_upsert_by_global_id(cc: Client) -> None:
    key = await make_issue(cc)
    link = {"globalId": "tandem:peer:X-1", "object": {"url": "https://peer/X-1", "title": "X-1"}}
    status, first = await cc.post(f"/rest/api/2/issue/{key}/remotelink", link)
    assert status == 201
    status, again = await cc.post(
        f"/rest/api/2/issue/{key}/remotelink",
        {**link, "object": {"url": "https://peer/X-1", "title": "X-1 renamed"}},
    )
    assert status == 200 and again["id"] == first["id"]
    _, links = await cc.get(f"/rest/api/2/issue/{key}/remotelink")
    assert [lk["object"]["title"] for lk in links] == ["X-1 renamed"]
    assert (await cc.delete(f"/rest/api/2/issue/{key}/remotelink?globalId=tandem:peer:X-1"))[0] == 204
    assert (await cc.get(f"/rest/api/2/issue/{key}/remotelink"))[1] == []


async def test_changelog_endpoint_pages(cc: Client) -> None:
    key = await make_issue(cc)
    for n in range(3):
        await cc.put(f"/rest/api/2/issue/{key}", {"fields": {"summary": f"s{n}"}})
    status, page = await cc.get(f"/rest/api/2/issue/{key}/changelog?maxResults=2")
    assert status == 200 and page["total"] == 3 and len(page["values"]) == 2 and page["isLast"] is False
    assert page["values"][0]["items"][0]["toString"] == "s0"


# ------------------------------------------------------------------ attachments


async def test_attachments_need_xsrf_header_and_round_trip(
    cloud: JiraEmulator, cc: Client, sc: Client
) -> None:
    key = await make_issue(cc)
    form = aiohttp.FormData()
    form.add_field("file", b"\x00binary\xff", filename="blob.bin", content_type="application/octet-stream")
    status, body = await cc.call("POST", f"/rest/api/2/issue/{key}/attachments", data=form)
    assert status == 403 and body == b"XSRF check failed"
    form = aiohttp.FormData()
    form.add_field("file", b"\x00binary\xff", filename="blob.bin", content_type="application/octet-stream")
    status, rows = await cc.call(
        "POST", f"/rest/api/2/issue/{key}/attachments", data=form, headers={"X-Atlassian-Token": "no-check"}
    )
    assert status == 200 and rows[0]["filename"] == "blob.bin" and rows[0]["size"] == 8
    assert rows[0]["content"].endswith(f"/rest/api/3/attachment/content/{rows[0]['id']}")
    status, data = await cc.get(rows[0]["content"].removeprefix(cc.base))
    assert status == 200 and data == b"\x00binary\xff"
    assert (await cc.delete(f"/rest/api/2/attachment/{rows[0]['id']}"))[0] == 204
    assert (await cc.get(f"/rest/api/2/attachment/{rows[0]['id']}"))[0] == 404
    # Server mode serves content from /secure/attachment/{id}/{filename}.
    skey = await make_issue(sc)
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="hello.txt")
    status, rows = await sc.call(
        "POST", f"/rest/api/2/issue/{skey}/attachments", data=form, headers={"X-Atlassian-Token": "no-check"}
    )
    assert rows[0]["content"].endswith(f"/secure/attachment/{rows[0]['id']}/hello.txt")
    assert rows[0]["mimeType"] == "text/plain"
    status, data = await sc.get(rows[0]["content"].removeprefix(sc.base))
    assert status == 200 and data == b"hello"


async def test_malformed_multipart_is_a_400(cc: Client) -> None:
    key = await make_issue(cc)
    headers = {"X-Atlassian-Token": "no-check", "Content-Type": "multipart/form-data; boundary=xyz"}
    status, err = await cc.call(
        "POST", f"/rest/api/2/issue/{key}/attachments", data=b"garbage", headers=headers
    )
    assert status == 400 and err["errorMessages"]


# ------------------------------------------------------------------ faults, stats, control


async def test_rate_limit_next_n_429_with_retry_after(cc: Client, session: aiohttp.ClientSession) -> None:
    status, _ = await cc.post("/_emulator/faults", {"rate_limit": {"next_n_429": 2, "retry_after": 3}})
    assert status == 200
    for _ in range(2):
        async with session.get(cc.base + "/rest/api/2/myself", headers=cc.headers) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert (await cc.get("/rest/api/2/myself"))[0] == 200


async def test_rate_limit_window(cc: Client) -> None:
    await cc.post("/_emulator/faults", {"rate_limit": {"requests": 3, "per_seconds": 60}})
    codes = [(await cc.get("/rest/api/2/myself"))[0] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert (await cc.delete("/_emulator/faults"))[0] == 204
    assert (await cc.get("/rest/api/2/myself"))[0] == 200


async def test_error_rate_and_latency_injection(cc: Client) -> None:
    await cc.post("/_emulator/faults", {"error_rate": 1.0, "status": 502})
    status, body = await cc.get("/rest/api/2/myself")
    assert status == 502 and body["errorMessages"]
    await cc.post("/_emulator/faults", {"error_rate": 0.5, "seed": 7})
    codes = [(await cc.get("/rest/api/2/myself"))[0] for _ in range(40)]
    assert 5 < codes.count(503) < 35 and codes.count(200) == 40 - codes.count(503)
    await cc.post("/_emulator/faults", {"latency_ms": 150})
    started = time.monotonic()
    await cc.get("/rest/api/2/myself")
    assert time.monotonic() - started >= 0.15
    status, err = await cc.post("/_emulator/faults", {"error_rate": 2})
    assert status == 400 and "error_rate" in err["errorMessages"][0]
    status, err = await cc.post("/_emulator/faults", {"bogus": 1})
    assert status == 400


async def test_stats_count_routes_and_reset_restores_a_fresh_site(cloud: JiraEmulator, cc: Client) -> None:
    await make_issue(cc)
    await cc.get("/rest/api/2/issue/PROJ-1")
    await cc.get("/rest/api/2/issue/PROJ-1")
    _, stats = await cc.get("/_emulator/stats")
    assert stats["routes"]["GET /rest/api/{v}/issue/{key}"] == 2
    assert stats["routes"]["POST /rest/api/{v}/issue"] == 1 and stats["total"] == 3
    assert (await cc.post("/_emulator/reset"))[0] == 204
    assert cloud.state.issues == {} and cloud.state.projects == {}
    _, stats = await cc.get("/_emulator/stats")
    assert stats["total"] == 0
    assert (await cc.get("/rest/api/2/myself"))[0] == 200


async def test_control_api_adds_users_projects_and_fields(cc: Client) -> None:
    status, user = await cc.post(
        "/_emulator/users", {"name": "carol", "password": "pw", "displayName": "Carol"}
    )
    assert status == 201 and user["displayName"] == "Carol"
    assert (await cc.as_user("carol", "pw").get("/rest/api/2/myself"))[0] == 200
    assert (await cc.post("/_emulator/users", {"name": "carol"}))[0] == 400
    status, _ = await cc.post("/_emulator/projects", {"key": "SUP", "workflow": "support"})
    assert status == 201
    status, field = await cc.post(
        "/_emulator/fields", {"name": "Tier", "kind": "select", "options": ["Gold", "Silver"]}
    )
    assert status == 201
    key = await make_issue(cc, **{field["id"]: {"value": "Gold"}})
    _, issue = await cc.get(f"/rest/api/2/issue/{key}")
    assert issue["fields"][field["id"]]["value"] == "Gold"
    assert (await cc.post("/_emulator/fields", {"name": "X", "kind": "weird"}))[0] == 400


async def test_concurrent_creates_get_unique_keys(cc: Client) -> None:
    keys = await asyncio.gather(*(make_issue(cc, summary=f"c{n}") for n in range(30)))
    assert sorted(keys, key=lambda k: int(k.split("-")[1])) == [f"PROJ-{n}" for n in range(1, 31)]


@pytest.mark.parametrize("path", ["/rest/api/2/issue/PROJ-1/transitions", "/rest/api/2/issue/PROJ-1/comment"])
async def test_garbage_bodies_are_400(cc: Client, path: str) -> None:
    await make_issue(cc)
    for body in (None, 42, "str", [1], {"transition": "x"}, {"body": {"type": "nope"}}):
        status, err = await cc.post(path, body)
        assert status == 400, (path, body, status, err)
        assert "errorMessages" in err
