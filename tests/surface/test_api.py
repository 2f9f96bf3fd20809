"""The sync surface of the admin API over HTTP: auth, no tracker, bad input, error mapping, and every
answer matching the OpenAPI document. The engine behind it is the in-memory FakeEngine."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from node.web.openapi import openapi_document, sync_paths
from tests.surface.conftest import Api
from tests.surface.fake import FakeEngine

RULES = "/api/v1/connections/eng/rules/outgoing"
# (method, path template, concrete path, a valid body)
ROUTES: list[tuple[str, str, str, Any]] = [
    ("get", "/api/v1/triggers", "/api/v1/triggers", None),
    ("post", "/api/v1/triggers", "/api/v1/triggers", {"connection": "eng", "query": "project = SUP"}),
    ("patch", "/api/v1/triggers/{id}", "/api/v1/triggers/1", {"active": False}),
    ("delete", "/api/v1/triggers/{id}", "/api/v1/triggers/1", None),
    ("post", "/api/v1/sync", "/api/v1/sync", {"key": "SUP-1", "connection": "eng"}),
    ("get", "/api/v1/bulk", "/api/v1/bulk", None),
    ("post", "/api/v1/bulk", "/api/v1/bulk", {"connection": "eng", "query": "project = SUP"}),
    ("get", "/api/v1/bulk/{id}", "/api/v1/bulk/1", None),
    ("post", "/api/v1/unlink", "/api/v1/unlink", {"key": "SUP-1", "connection": "eng"}),
    ("get", "/api/v1/status/{key}", "/api/v1/status/SUP-1", None),
    ("get", "/api/v1/connections/{name}/rules/{direction}", RULES, None),
    (
        "put",
        "/api/v1/connections/{name}/rules/{direction}/draft",
        RULES + "/draft",
        {"mode": "basic", "source": ""},
    ),
    ("post", "/api/v1/connections/{name}/rules/{direction}/test", RULES + "/test", {"key": "SUP-1"}),
    ("post", "/api/v1/connections/{name}/rules/{direction}/publish", RULES + "/publish", None),
    ("post", "/api/v1/connections/{name}/rules/{direction}/rollback", RULES + "/rollback", None),
    ("get", "/api/v1/errors", "/api/v1/errors", None),
    ("post", "/api/v1/errors/{id}/retry", "/api/v1/errors/1/retry", None),
    ("post", "/api/v1/errors/{id}/resolve", "/api/v1/errors/1/resolve", None),
    ("get", "/api/v1/conflicts", "/api/v1/conflicts", None),
]


def check_schema(method: str, template: str, status: int, body: Any) -> None:
    """``body`` is what the OpenAPI document promises for this operation and status."""
    doc = openapi_document()
    op = doc["paths"][template][method]
    assert str(status) in op["responses"], (method, template, status)
    schema = dict(op["responses"][str(status)]["content"]["application/json"]["schema"])
    schema["components"] = doc["components"]
    jsonschema.Draft202012Validator(schema).validate(body)


def test_the_route_table_is_the_whole_sync_surface() -> None:
    paths, _ = sync_paths()
    documented = {(m, p) for p, ops in paths.items() for m in ops if m != "parameters"}
    assert documented == {(m, t) for m, t, _, _ in ROUTES}


async def test_every_sync_route_needs_the_token(api: Api, fake: FakeEngine) -> None:
    for method, _, path, body in ROUTES:
        for token in (None, "wrong-token"):
            status, answer = await api.call(method.upper(), path, body, token=token)
            assert status == 401 and answer["error"]["code"] == "unauthorized", (method, path, token)
    assert fake.triggers == {} and fake.calls == []


async def test_without_a_tracker_every_sync_route_is_409_no_tracker(api: Api) -> None:
    for method, template, path, body in ROUTES:
        status, answer = await api.call(method.upper(), path, body)
        assert status == 409, (method, path, answer)
        assert answer["error"]["code"] == "no_tracker"
        assert "tandem init --tracker" in answer["error"]["message"]
        check_schema(method, template, 409, answer)


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "code", "words"),
    [
        ("POST", "/api/v1/triggers", {}, None, "invalid_body", "connection: Field required"),
        ("POST", "/api/v1/triggers", {"connection": "eng", "query": ""}, None, "invalid_body", "query:"),
        (
            "POST",
            "/api/v1/triggers",
            {"connection": "eng", "query": "a = b", "colour": "red"},
            None,
            "invalid_body",
            "colour: unknown field",
        ),
        ("POST", "/api/v1/triggers", None, b"{", "invalid_json", "not valid JSON"),
        ("POST", "/api/v1/triggers", None, b"[1, 2]", "invalid_body", "JSON object"),
        ("PATCH", "/api/v1/triggers/abc", {"active": True}, None, "invalid_path", "id must be an integer"),
        ("PATCH", "/api/v1/triggers/1", {"active": "maybe"}, None, "invalid_body", "active:"),
        ("PATCH", "/api/v1/triggers/1", {}, None, "invalid_body", "active: Field required"),
        ("GET", "/api/v1/bulk/0", None, None, "invalid_path", "id must be a positive integer"),
        ("POST", "/api/v1/bulk", {"connection": "eng"}, None, "invalid_body", "query: Field required"),
        ("POST", "/api/v1/sync", {"key": "K" * 300, "connection": "eng"}, None, "invalid_body", "key:"),
        ("POST", "/api/v1/unlink", {"key": 7, "connection": "eng"}, None, "invalid_body", "key:"),
        ("GET", "/api/v1/connections/eng/rules/sideways", None, None, "invalid_path", "direction"),
        ("PUT", RULES + "/draft", {"mode": "fancy", "source": ""}, None, "invalid_body", "mode:"),
        ("PUT", RULES + "/draft", {"mode": "script"}, None, "invalid_body", "source: Field required"),
        ("POST", RULES + "/test", {}, None, "invalid_body", "give key"),
        ("POST", RULES + "/test", {"replica": {}}, None, "invalid_body", "replica: outgoing rules"),
        (
            "POST",
            "/api/v1/connections/eng/rules/incoming/test",
            {"replica": [1]},
            None,
            "invalid_body",
            "replica:",
        ),
        ("GET", "/api/v1/errors?all=maybe", None, None, "invalid_query", "'all' must be true or false"),
        ("GET", "/api/v1/triggers?connection=", None, None, "invalid_query", "'connection'"),
        ("POST", "/api/v1/errors/x/retry", None, None, "invalid_path", "id must be an integer"),
    ],
)
async def test_bad_input_is_a_400_naming_the_problem(
    api: Api, fake: FakeEngine, method: str, path: str, body: Any, raw: bytes | None, code: str, words: str
) -> None:
    status, answer = await api.call(method, path, body, raw=raw)
    assert status == 400, answer
    assert answer["error"]["code"] == code
    assert words in answer["error"]["message"], answer
    assert fake.triggers == {} and fake.calls == []


async def test_engine_errors_keep_their_status_and_code(api: Api, fake: FakeEngine) -> None:
    status, answer = await api.call("POST", "/api/v1/sync", {"key": "SUP-1", "connection": "nope"})
    assert (status, answer["error"]["code"]) == (404, "not_found")
    assert "nope" in answer["error"]["message"]
    check_schema("post", "/api/v1/sync", 404, answer)
    status, answer = await api.call("POST", "/api/v1/triggers", {"connection": "eng", "query": "garbage"})
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    assert "JQL" in answer["error"]["message"]
    status, answer = await api.call("PATCH", "/api/v1/triggers/99", {"active": True})
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await api.call("GET", "/api/v1/bulk/5")
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await api.call("POST", "/api/v1/errors/9/resolve")
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_a_rule_error_names_its_line(api: Api, fake: FakeEngine) -> None:
    source = "replica['summary'] = issue.summary\nif True\n    pass\n"
    status, answer = await api.call("PUT", RULES + "/draft", {"mode": "script", "source": source})
    assert status == 422, answer
    err = answer["error"]
    assert err["code"] == "rule_error" and err["line"] == 2
    assert err["message"].startswith("line 2: SyntaxError")
    check_schema("put", "/api/v1/connections/{name}/rules/{direction}/draft", 422, answer)
    status, answer = await api.call(
        "PUT", RULES + "/draft", {"mode": "visual", "source": "values: {status: 3}"}
    )
    assert status == 422 and answer["error"]["path"] and answer["error"]["line"] is None
    assert answer["error"]["message"].startswith(answer["error"]["path"])


async def test_a_bug_is_a_generic_500_without_details(api: Api, fake: FakeEngine) -> None:
    status, answer = await api.call("POST", "/api/v1/sync", {"key": "BOOM-1", "connection": "eng"})
    assert status == 500
    assert answer == {
        "error": {"code": "internal_error", "message": "internal error (details are in the node's log)"}
    }


async def test_triggers_over_http(api: Api, fake: FakeEngine) -> None:
    status, t1 = await api.call(
        "POST", "/api/v1/triggers", {"connection": "eng", "query": "project = SUP", "note": "all"}
    )
    assert status == 201 and t1["active"] is True and t1["note"] == "all"
    check_schema("post", "/api/v1/triggers", 201, t1)
    fake.connections.add("ops")
    await api.call("POST", "/api/v1/triggers", {"connection": "ops", "query": "labels = ops"})
    status, listing = await api.call("GET", "/api/v1/triggers?connection=eng")
    assert status == 200 and [t["id"] for t in listing["triggers"]] == [t1["id"]]
    check_schema("get", "/api/v1/triggers", 200, listing)
    status, off = await api.call("PATCH", f"/api/v1/triggers/{t1['id']}", {"active": False})
    assert status == 200 and off["active"] is False
    status, gone = await api.call("DELETE", f"/api/v1/triggers/{t1['id']}")
    assert status == 200 and gone == {"deleted": t1["id"]}
    status, listing = await api.call("GET", "/api/v1/triggers")
    assert [t["connection"] for t in listing["triggers"]] == ["ops"]


async def test_every_answer_matches_the_openapi_document(api: Api, fake: FakeEngine) -> None:
    fake.add_error()
    answers: list[tuple[str, str, int, Any]] = []

    async def call(method: str, template: str, path: str, body: Any = None) -> Any:
        status, answer = await api.call(method.upper(), path, body)
        assert status < 300, (path, answer)
        answers.append((method, template, status, answer))
        return answer

    by_template = {(m, t): (p, b) for m, t, p, b in ROUTES}
    for method, template in [
        ("post", "/api/v1/triggers"),
        ("get", "/api/v1/triggers"),
        ("patch", "/api/v1/triggers/{id}"),
        ("delete", "/api/v1/triggers/{id}"),
        ("post", "/api/v1/sync"),
        ("get", "/api/v1/status/{key}"),
        ("post", "/api/v1/unlink"),
        ("post", "/api/v1/bulk"),
        ("get", "/api/v1/bulk"),
        ("get", "/api/v1/bulk/{id}"),
        ("put", "/api/v1/connections/{name}/rules/{direction}/draft"),
        ("post", "/api/v1/connections/{name}/rules/{direction}/test"),
        ("post", "/api/v1/connections/{name}/rules/{direction}/publish"),
        ("get", "/api/v1/connections/{name}/rules/{direction}"),
        ("get", "/api/v1/errors"),
        ("post", "/api/v1/errors/{id}/retry"),
        ("post", "/api/v1/errors/{id}/resolve"),
        ("get", "/api/v1/conflicts"),
    ]:
        path, body = by_template[(method, template)]
        await call(method, template, path, body)
    for method, template, status, answer in answers:
        check_schema(method, template, status, answer)
    rules = answers[13][3]
    assert rules["published"]["version"] == rules["versions"][-1]["version"] and rules["draft"] is None
