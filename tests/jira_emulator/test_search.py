"""Search (v2 startAt paging, Cloud nextPageToken paging), /jql/parse and JQL errors."""

from __future__ import annotations

from urllib.parse import quote

from node.trackers.jira.emulator import JiraEmulator

from .conftest import Client, make_issue


async def test_v2_search_pages_with_start_at_and_total(cc: Client) -> None:
    for n in range(7):
        await make_issue(cc, summary=f"issue {n}", labels=["even"] if n % 2 == 0 else [])
    jql = quote("project = PROJ AND labels = even ORDER BY key ASC")
    status, page = await cc.get(f"/rest/api/2/search?jql={jql}&maxResults=3&fields=summary")
    assert status == 200 and page["total"] == 4 and page["startAt"] == 0
    assert [i["key"] for i in page["issues"]] == ["PROJ-1", "PROJ-3", "PROJ-5"]
    assert set(page["issues"][0]["fields"]) == {"summary"}
    status, page = await cc.post(
        "/rest/api/2/search",
        {"jql": "project = PROJ AND labels = even ORDER BY key ASC", "startAt": 3, "maxResults": 3},
    )
    assert [i["key"] for i in page["issues"]] == ["PROJ-7"]


async def test_server_search_works_and_search_jql_is_cloud_only(sc: Client) -> None:
    await make_issue(sc)
    status, page = await sc.get("/rest/api/2/search?jql=project%20%3D%20PROJ")
    assert status == 200 and page["total"] == 1
    status, _ = await sc.get("/rest/api/2/search/jql?jql=project%20%3D%20PROJ")
    assert status == 404


async def test_cloud_search_jql_pages_with_next_page_token(cc: Client) -> None:
    for n in range(5):
        await make_issue(cc, summary=f"issue {n}")
    jql = "project = PROJ ORDER BY key ASC"
    seen: list[str] = []
    token = None
    for _ in range(10):  # bounded
        body = {"jql": jql, "maxResults": 2, "fields": ["summary"]}
        if token:
            body["nextPageToken"] = token
        status, page = await cc.post("/rest/api/3/search/jql", body)
        assert status == 200
        seen += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            break
    assert seen == [f"PROJ-{n}" for n in range(1, 6)]
    status, page = await cc.get(f"/rest/api/3/search/jql?jql={quote(jql)}")
    assert page["issues"][0] == {"id": page["issues"][0]["id"]}  # Cloud returns ids only by default
    status, err = await cc.post("/rest/api/3/search/jql", {"jql": jql, "nextPageToken": "garbage"})
    assert status == 400 and err["errorMessages"]
    status, err = await cc.post("/rest/api/3/search/jql", {"jql": ""})
    assert status == 400


async def test_bad_jql_is_a_400_with_jiras_message(cc: Client) -> None:
    status, err = await cc.get("/rest/api/2/search?jql=" + quote("project = = PROJ"))
    assert status == 400 and err["errorMessages"] and isinstance(err["errorMessages"][0], str)


async def test_unknown_fields_and_values_are_refused_like_jira(cc: Client) -> None:
    status, err = await cc.get("/rest/api/2/search?jql=" + quote("project = NOPE"))
    assert status == 400 and "NOPE" in err["errorMessages"][0]
    status, err = await cc.get("/rest/api/2/search?jql=" + quote("bogusfield = 1"))
    assert status == 400 and "bogusfield" in err["errorMessages"][0]
    status, page = await cc.get("/rest/api/2/search?jql=" + quote('"Story Points" > 3 AND status = "To Do"'))
    assert status == 200 and page["total"] == 0


async def test_jql_parse_returns_structure_or_errors(cc: Client) -> None:
    status, body = await cc.post("/rest/api/3/jql/parse", {"queries": ["project = PROJ", "project = = X"]})
    assert status == 200
    ok, bad = body["queries"]
    assert ok["query"] == "project = PROJ" and "structure" in ok and "errors" not in ok
    assert bad["errors"]
    status, _ = await cc.post("/rest/api/3/jql/parse", {"queries": "not a list"})
    assert status == 400
    status, body = await cc.post("/rest/api/3/jql/parse?validation=strict", {"queries": ["status = Nowhere"]})
    refused = body["queries"][0]
    assert status == 200 and (refused.get("errors") or refused.get("warnings")) and "structure" not in refused
    status, body = await cc.post("/rest/api/3/jql/parse?validation=none", {"queries": ["status = Nowhere"]})
    assert status == 200 and "structure" in body["queries"][0]


async def test_search_sees_edits_and_custom_fields(cloud: JiraEmulator, cc: Client) -> None:
    key = await make_issue(cc)
    await cc.put(f"/rest/api/2/issue/{key}", {"fields": {"summary": "needle in haystack"}})
    status, page = await cc.get("/rest/api/2/search?jql=" + quote('summary ~ "needle"'))
    assert status == 200 and [i["key"] for i in page["issues"]] == [key]
