"""Entity properties given in ``POST /issue`` (``IssueUpdateDetails.properties``) are stored, as
real Jira Cloud and Server/DC do; a malformed list is a 400 naming the problem."""

from __future__ import annotations

import pytest

from tests.jira_emulator.conftest import Client


async def test_create_time_properties_are_stored_on_cloud(cc: Client) -> None:
    await _stores_create_time_properties(cc)


async def test_create_time_properties_are_stored_on_server(sc: Client) -> None:
    await _stores_create_time_properties(sc)


async def _stores_create_time_properties(client: Client) -> None:
    body = {
        "fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": "marked"},
        "properties": [{"key": "tandem.marker", "value": {"marker": "tandem:c:42"}}],
    }
    status, created = await client.post("/rest/api/2/issue", body)
    assert status == 201, created
    _, prop = await client.get(f"/rest/api/2/issue/{created['key']}/properties/tandem.marker")
    assert prop["value"] == {"marker": "tandem:c:42"}
    _, issue = await client.get(f"/rest/api/2/issue/{created['id']}?properties=*all")
    assert issue["properties"] == {"tandem.marker": {"marker": "tandem:c:42"}}


@pytest.mark.parametrize("bad", [{"key": "x"}, [{"value": 1}], ["text"]])
async def test_malformed_create_properties_are_refused(cc: Client, bad: object) -> None:
    body = {
        "fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": "bad"},
        "properties": bad,
    }
    status, answer = await cc.post("/rest/api/2/issue", body)
    assert status == 400
    assert "propert" in str(answer)
    _, found = await cc.get("/rest/api/2/search", params={"jql": "project = PROJ"})
    assert found["total"] == 0  # nothing was created
