"""The admin API through HTTP: auth, JSON errors for bad input, OpenAPI coverage."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from node.web.openapi import openapi_document
from tests.helpers.admin_api import Api
from tests.node.conftest import MakeNode


@pytest.fixture
async def api(make_node: MakeNode) -> Any:
    node = await make_node("A")
    async with aiohttp.ClientSession() as session:
        yield Api(node, session)


async def test_every_api_endpoint_needs_the_token(api: Api) -> None:
    paths = [
        ("GET", "/api/v1/node"),
        ("GET", "/api/v1/connections"),
        ("POST", "/api/v1/invitations"),
        ("GET", "/api/v1/openapi.json"),
        ("DELETE", "/api/v1/connections/x"),
        ("GET", "/api/v1/nonexistent"),
    ]
    for method, path in paths:
        for token in (None, "wrong-token", "x" * 43):
            status, body = await api.call(method, path, token=token)
            assert status == 401, (method, path, token)
            assert body["error"]["code"] == "unauthorized"
    status, body = await api.call("GET", "/api/v1/node")
    assert status == 200 and body["name"] == "A" and body["mode"] == "public"


async def test_basic_auth_scheme_is_not_a_bearer_token(api: Api) -> None:
    async with api.session.get(
        api.url + "/api/v1/node", headers={"Authorization": f"Basic {api.token}"}
    ) as r:
        assert r.status == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "status", "code"),
    [
        ("POST", "/api/v1/invitations", None, b"{not json", 400, "invalid_json"),
        ("POST", "/api/v1/invitations", None, b"[1, 2]", 400, "invalid_body"),
        ("POST", "/api/v1/invitations", {"expires": "soon"}, None, 400, "invalid_body"),
        ("POST", "/api/v1/invitations", {"expires": 5}, None, 400, "invalid_expiry"),
        ("POST", "/api/v1/invitations", {"colour": "red"}, None, 400, "invalid_body"),
        ("POST", "/api/v1/invitations", {"peer_url": "nope"}, None, 400, "invalid_body"),
        (
            "POST",
            "/api/v1/invitations",
            {"peer_url": "http://a:1", "relay": "http://b:2"},
            None,
            400,
            "conflicting_options",
        ),
        ("POST", "/api/v1/invitations", {"name": "a/b"}, None, 400, "invalid_name"),
        ("POST", "/api/v1/invitations/accept", {}, None, 400, "invalid_body"),
        ("POST", "/api/v1/invitations/accept", {"code": "garbage"}, None, 400, "not_an_invitation"),
        ("POST", "/api/v1/invitations/accept", {"code": "TANDEM1AAAA"}, None, 400, "invitation_corrupted"),
        ("POST", "/api/v1/invitations/accept", {"code": "TANDEM7AAAA"}, None, 400, "invitation_version"),
        ("POST", "/api/v1/invitations/accept", {"code": 12}, None, 400, "invalid_body"),
        ("GET", "/api/v1/connections/nobody", None, None, 404, "not_found"),
        ("POST", "/api/v1/connections/nobody/activate", None, None, 404, "not_found"),
        ("POST", "/api/v1/connections/nobody/test", {"count": 1}, None, 404, "not_found"),
        ("POST", "/api/v1/connections/nobody/test", {"count": 0}, None, 400, "invalid_body"),
        ("GET", "/api/v1/connections/nobody/inbox?after=x", None, None, 400, "invalid_query"),
        ("GET", "/api/v1/connections/nobody/inbox?limit=0", None, None, 400, "invalid_query"),
        ("DELETE", "/api/v1/connections/nobody", None, None, 404, "not_found"),
        ("GET", "/api/v1/nothing-here", None, None, 404, "not_found"),
        ("PUT", "/api/v1/connections", None, None, 405, "method_not_allowed"),
        ("POST", "/api/v1/invitations", None, b"x" * (2 * 1024 * 1024), 413, "too_large"),
    ],
)
async def test_bad_input_gets_a_4xx_json_error(
    api: Api, method: str, path: str, body: Any, raw: bytes | None, status: int, code: str
) -> None:
    got_status, got = await api.call(method, path, body, raw=raw)
    assert got_status == status, got
    assert got["error"]["code"] == code
    assert isinstance(got["error"]["message"], str) and got["error"]["message"]
    assert "Traceback" not in got["error"]["message"]


async def test_invitation_lifecycle_through_the_api(api: Api) -> None:
    status, created = await api.call("POST", "/api/v1/invitations", {"name": "eng", "expires": "30m"})
    assert status == 201 and created["code"].startswith("TANDEM1")
    assert created["connection"]["state"] == "pending" and created["connection"]["reach"] == "public"
    status, dup = await api.call("POST", "/api/v1/invitations", {"name": "eng"})
    assert status == 409 and dup["error"]["code"] == "name_taken"
    status, own = await api.call("POST", "/api/v1/invitations/accept", {"code": created["code"]})
    assert status == 400 and own["error"]["code"] == "own_invitation"
    status, err = await api.call("POST", "/api/v1/connections/eng/test", {"count": 1})
    assert status == 409 and err["error"]["code"] == "bad_state"
    status, err = await api.call("POST", "/api/v1/connections/eng/activate")
    assert status == 409
    status, _ = await api.call("DELETE", "/api/v1/connections/eng")
    assert status == 200
    status, listing = await api.call("GET", "/api/v1/connections")
    assert listing["connections"] == []


async def test_openapi_describes_every_route(api: Api) -> None:
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and doc == openapi_document()
    assert doc["openapi"].startswith("3.")
    from node.web.admin import make_admin_app

    app = make_admin_app("t")
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD":
            routes.add((route.method.lower(), path))
    assert routes
    for method, path in routes:
        assert path in doc["paths"], path
        assert method in doc["paths"][path], (method, path)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert documented == routes
    for path, ops in doc["paths"].items():
        for name in re.findall(r"{(\w+)}", path):
            params = ops.get("parameters", [])
            assert any(p["name"] == name and p["in"] == "path" for p in params), path


async def test_healthz_and_metrics_on_the_admin_listener(api: Api) -> None:
    async with api.session.get(api.url + "/healthz") as r:
        assert r.status == 200 and (await r.json()) == {"status": "ok", "connections": []}
    async with api.session.get(api.url + "/metrics") as r:
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/plain"
        assert 'tandem_peer_rejected_total{reason="garbage"} 0.0' in text
