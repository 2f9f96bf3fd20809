"""Pages encoded row by row (``encode_rows``) are byte for byte the page encoded whole, and the
search/jql endpoint that uses it answers exactly what the page's rows render to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.trackers.common.rest import encode_json
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.server import encode_rows

from .conftest import Client, adf, make_issue

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=8), values, max_size=5), max_size=6),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "issues"), values, max_size=3),
)
def test_row_by_row_is_the_whole_encoding(rows: list[dict[str, Any]], rest: dict[str, Any]) -> None:
    envelope = {"issues": [], **rest}
    assert encode_rows(envelope, "issues", iter(rows)) == encode_json({"issues": rows, **rest})


@pytest.mark.parametrize(
    "row",
    [{"big": 2**70}, {1: "non-string key"}],  # encode_json's slower routes: the caller encodes the page
)
def test_rows_orjson_alone_cannot_write_are_left_to_the_caller(row: dict[Any, Any]) -> None:
    assert encode_rows({"issues": []}, "issues", iter([{"id": "1"}, row])) is None


def test_the_rows_key_must_come_first_and_be_empty() -> None:
    with pytest.raises(ValueError):
        encode_rows({"isLast": True, "issues": []}, "issues", iter([{"id": "1"}]))
    with pytest.raises(ValueError):
        encode_rows({"issues": [1]}, "issues", iter([{"id": "1"}]))


async def test_search_jql_pages_are_their_rows(cloud: JiraEmulator, cc: Client) -> None:
    keys = [await make_issue(cc, f"issue {n}", labels=["x"], description="*bold* text") for n in range(5)]
    for key in keys[:2]:
        status, made = await cc.post(f"/rest/api/3/issue/{key}/comment", {"body": adf(f"on {key}")})
        assert status == 201, made
    body = {
        "jql": "project = PROJ ORDER BY key ASC",
        "maxResults": 3,
        "fields": ["*all"],
        "expand": "names,changelog",
    }
    async with cc.session.post(f"{cc.base}/rest/api/3/search/jql", json=body, headers=cc.headers) as resp:
        assert resp.status == 200 and resp.content_type == "application/json" and resp.charset == "utf-8"
        raw = await resp.read()
    page = json.loads(raw)
    assert [i["key"] for i in page["issues"]] == keys[:3] and page["isLast"] is False
    assert raw == encode_json(page)  # what encoding the page whole gives
    status, second = await cc.post("/rest/api/3/search/jql", {**body, "nextPageToken": page["nextPageToken"]})
    assert status == 200 and [i["key"] for i in second["issues"]] == keys[3:] and second["isLast"] is True
    status, ids = await cc.post("/rest/api/3/search/jql", {"jql": "project = PROJ ORDER BY key ASC"})
    assert status == 200 and ids["issues"] == [{"id": cloud.state.keys[k]} for k in keys[:5]]
