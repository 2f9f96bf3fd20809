"""Every REST endpoint the emulator serves in Cloud mode answers with a body valid against the
response schema of the real Jira Cloud OpenAPI spec (vendor-data/dev/jira-cloud).

Known, deliberate differences (the recordings and real clients win over the spec):
- ``GET /issue/{key}/remotelink`` returns a list (the spec declares a single RemoteIssueLink).
- ``/rest/webhooks/1.0/webhook`` is not in the platform spec (it is the legacy admin API).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from node.trackers.jira.emulator import JiraEmulator

from .conftest import Client, Validate, adf


async def test_cloud_responses_match_the_openapi_spec(
    cloud: JiraEmulator, cc: Client, validate_response: Validate
) -> None:
    admin_id = cloud.state.users["admin"].account_id
    failures: list[str] = []
    checked: set[tuple[str, str]] = set()

    async def check(method: str, url: str, spec_path: str, status: int = 200, **kw: Any) -> Any:
        got, body = await cc.call(method, url, **kw)
        if got != status:
            failures.append(f"{method} {url}: status {got} != {status}: {body}")
            return body
        try:
            validate_response(spec_path, method, status, body)
        except AssertionError as err:
            failures.append(str(err))
        checked.add((method, spec_path))
        return body

    a = "/rest/api/3"
    issue_fields = {
        "project": {"key": "PROJ"},
        "issuetype": {"id": "10002"},
        "summary": "Spec check",
        "description": adf("hello"),
        "labels": ["one"],
        "components": [{"name": "Core"}],
        "fixVersions": [{"name": "1.0"}],
        "duedate": "2024-02-01",
        "assignee": {"accountId": admin_id},
        "customfield_10016": 3,
        "customfield_10050": "ACME",
        "customfield_10051": {"value": "S1"},
        "customfield_10052": [{"value": "Linux"}],
        "customfield_10053": {"accountId": admin_id},
        "customfield_10054": adf("root cause"),
        "customfield_10055": "2024-03-01",
    }
    await check("GET", f"{a}/serverInfo", f"{a}/serverInfo")
    await check("GET", f"{a}/myself", f"{a}/myself")
    await check("GET", f"{a}/field", f"{a}/field")
    await check("GET", f"{a}/project", f"{a}/project")
    await check("GET", f"{a}/project/search?query=pro", f"{a}/project/search")
    await check("GET", f"{a}/project/PROJ", f"{a}/project/{{projectIdOrKey}}")
    await check(
        "POST",
        f"{a}/project",
        f"{a}/project",
        201,
        json={"key": "NEW", "name": "New", "projectTypeKey": "software"},
    )
    await check("GET", f"{a}/issuetype", f"{a}/issuetype")
    await check("GET", f"{a}/priority", f"{a}/priority")
    await check("GET", f"{a}/status", f"{a}/status")
    await check("GET", f"{a}/statuscategory", f"{a}/statuscategory")
    await check("GET", f"{a}/resolution", f"{a}/resolution")
    await check("GET", f"{a}/permissionscheme", f"{a}/permissionscheme")
    await check("GET", f"{a}/issuesecurityschemes", f"{a}/issuesecurityschemes")
    await check("GET", f"{a}/projectCategory", f"{a}/projectCategory")
    await check("GET", f"{a}/user?accountId={admin_id}", f"{a}/user")
    await check("GET", f"{a}/user/search?query=adm", f"{a}/user/search")
    await check("GET", f"{a}/user/assignable/search?project=PROJ&query=a", f"{a}/user/assignable/search")
    await check("GET", f"{a}/group/member?groupname=jira-users", f"{a}/group/member")
    await check("POST", f"{a}/issue", f"{a}/issue", 201, json={"fields": issue_fields})
    await check(
        "POST",
        f"{a}/issue/bulk",
        f"{a}/issue/bulk",
        201,
        json={"issueUpdates": [{"fields": {**issue_fields, "summary": "Bulk"}}]},
    )
    await check(
        "POST",
        f"{a}/issue/PROJ-1/comment",
        f"{a}/issue/{{issueIdOrKey}}/comment",
        201,
        json={"body": adf("a comment"), "visibility": {"type": "group", "value": "jira-users"}},
    )
    await check(
        "PUT",
        f"{a}/issue/PROJ-1/comment/10000",
        f"{a}/issue/{{issueIdOrKey}}/comment/{{id}}",
        json={"body": adf("edited")},
    )
    st, _ = await cc.post(f"{a}/issue/PROJ-1/transitions", {"transition": {"id": "21"}})
    assert st == 204
    st, _ = await cc.put(f"{a}/issue/PROJ-1/properties/tandem.twin", {"marker": "abc"})
    assert st == 201
    await check(
        "GET",
        f"{a}/issue/PROJ-1?expand=changelog,renderedFields,names,schema,transitions,editmeta&properties=*all",
        f"{a}/issue/{{issueIdOrKey}}",
    )
    await check("GET", f"{a}/issue/PROJ-1?fields=summary,status", f"{a}/issue/{{issueIdOrKey}}")
    await check("GET", f"{a}/issue/PROJ-1/comment?expand=renderedBody", f"{a}/issue/{{issueIdOrKey}}/comment")
    await check("GET", f"{a}/issue/PROJ-1/comment/10000", f"{a}/issue/{{issueIdOrKey}}/comment/{{id}}")
    await check(
        "GET",
        f"{a}/issue/PROJ-1/transitions?expand=transitions.fields",
        f"{a}/issue/{{issueIdOrKey}}/transitions",
    )
    await check("GET", f"{a}/issue/PROJ-1/changelog", f"{a}/issue/{{issueIdOrKey}}/changelog")
    await check("GET", f"{a}/issue/PROJ-1/editmeta", f"{a}/issue/{{issueIdOrKey}}/editmeta")
    await check(
        "GET",
        f"{a}/issue/createmeta?projectKeys=PROJ&expand=projects.issuetypes.fields",
        f"{a}/issue/createmeta",
    )
    await check(
        "GET", f"{a}/issue/createmeta/PROJ/issuetypes", f"{a}/issue/createmeta/{{projectIdOrKey}}/issuetypes"
    )
    await check(
        "GET",
        f"{a}/issue/createmeta/PROJ/issuetypes/10002",
        f"{a}/issue/createmeta/{{projectIdOrKey}}/issuetypes/{{issueTypeId}}",
    )
    await check("GET", f"{a}/issue/PROJ-1/properties", f"{a}/issue/{{issueIdOrKey}}/properties")
    await check(
        "GET",
        f"{a}/issue/PROJ-1/properties/tandem.twin",
        f"{a}/issue/{{issueIdOrKey}}/properties/{{propertyKey}}",
    )
    st, _ = await cc.put(f"{a}/comment/10000/properties/sd.public.comment", {"internal": True})
    assert st == 201
    await check("GET", f"{a}/comment/10000/properties", f"{a}/comment/{{commentId}}/properties")
    await check(
        "GET",
        f"{a}/comment/10000/properties/sd.public.comment",
        f"{a}/comment/{{commentId}}/properties/{{propertyKey}}",
    )
    await check(
        "POST",
        f"{a}/issue/PROJ-1/remotelink",
        f"{a}/issue/{{issueIdOrKey}}/remotelink",
        201,
        json={"globalId": "peer:1", "object": {"url": "https://peer.example/browse/X-1", "title": "X-1"}},
    )
    await check(
        "GET", f"{a}/issue/PROJ-1/remotelink/10000", f"{a}/issue/{{issueIdOrKey}}/remotelink/{{linkId}}"
    )
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="hello.txt", content_type="text/plain")
    await check(
        "POST",
        f"{a}/issue/PROJ-1/attachments",
        f"{a}/issue/{{issueIdOrKey}}/attachments",
        data=form,
        headers={"X-Atlassian-Token": "no-check"},
    )
    await check("GET", f"{a}/attachment/10000", f"{a}/attachment/{{id}}")
    await check(
        "POST",
        f"{a}/webhook",
        f"{a}/webhook",
        json={
            "url": "http://127.0.0.1:9/hook",
            "webhooks": [{"events": ["jira:issue_created"], "jqlFilter": "project = PROJ"}],
        },
    )
    await check("GET", f"{a}/webhook", f"{a}/webhook")
    await check("PUT", f"{a}/webhook/refresh", f"{a}/webhook/refresh", json={"webhookIds": [1]})
    assert not failures, "\n".join(failures)
    assert len(checked) >= 43


async def test_search_jql_and_parse_match_the_spec(
    cloud: JiraEmulator, cc: Client, validate_response: Validate
) -> None:
    for n in range(3):
        st, _ = await cc.post(
            "/rest/api/3/issue",
            {"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": f"n{n}"}},
        )
        assert st == 201
    st, body = await cc.get("/rest/api/3/search?jql=&maxResults=2")
    assert st == 200
    validate_response("/rest/api/3/search", "GET", 200, body)
    st, body = await cc.post(
        "/rest/api/3/search", {"jql": "project = PROJ", "maxResults": 2, "fields": ["summary"]}
    )
    assert st == 200
    validate_response("/rest/api/3/search", "POST", 200, body)
    st, body = await cc.get("/rest/api/3/search/jql?jql=project%20%3D%20PROJ&maxResults=2&fields=summary")
    assert st == 200
    validate_response("/rest/api/3/search/jql", "GET", 200, body)
    st, body = await cc.post(
        "/rest/api/3/jql/parse", {"queries": ["project = PROJ ORDER BY created DESC", "a = = b"]}
    )
    assert st == 200
    validate_response("/rest/api/3/jql/parse", "POST", 200, body)
