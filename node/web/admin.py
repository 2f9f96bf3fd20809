"""The admin API: loopback by default, ``Authorization: Bearer <admin.token>`` on every ``/api/``
endpoint, JSON in and out, versioned under ``/api/v1/``. Its OpenAPI document is served at
``/api/v1/openapi.json`` (built from :mod:`node.web.openapi`; a test checks every route is in it).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from node.config import parse_duration
from node.metrics import CONTENT_TYPE
from node.web.errors import ApiError, json_errors
from node.web.keys import NODE
from node.web.openapi import openapi_document

ADMIN_MAX_BODY = 1024 * 1024
TOKEN: web.AppKey[str] = web.AppKey("admin_token", str)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        expected = request.app[TOKEN]
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <admin token>' header")
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "wrong admin token")
    return await handler(request)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvitationBody(_Body):
    name: str | None = Field(None, max_length=100)
    peer_url: str | None = Field(None, max_length=2000)
    relay: str | None = Field(None, max_length=2000)
    expires: str | int = "24h"
    project: str | None = Field(None, max_length=200)

    @field_validator("peer_url", "relay")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s):// URL")
        return v


class AcceptBody(_Body):
    code: str = Field(min_length=1, max_length=10000)
    name: str | None = Field(None, max_length=100)
    project: str | None = Field(None, max_length=200)
    wait_seconds: float | None = Field(None, ge=0, le=600)


class TestBody(_Body):
    count: int = Field(1, ge=1, le=100_000)
    wait: bool = True
    timeout_seconds: float = Field(60.0, gt=0, le=3600)
    sequential: bool = False
    payload_bytes: int = Field(0, ge=0, le=1_000_000)


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise ApiError(400, "invalid_body", f"{where}: {msg.removeprefix('Value error, ')}") from None


def _int_query(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"query parameter {key!r} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_query", f"query parameter {key!r} must be between {lo} and {hi}")
    return value


async def node_info(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE].info())


async def list_connections(request: web.Request) -> web.Response:
    manager = request.app[NODE].manager
    return web.json_response({"connections": [manager.view(rt) for rt in manager.runtimes.values()]})


async def get_connection(request: web.Request) -> web.Response:
    manager = request.app[NODE].manager
    return web.json_response(manager.view(manager.get(request.match_info["name"])))


async def activate(request: web.Request) -> web.Response:
    manager = request.app[NODE].manager
    rt = await manager.set_active(request.match_info["name"], True)
    return web.json_response(manager.view(rt))


async def deactivate(request: web.Request) -> web.Response:
    manager = request.app[NODE].manager
    rt = await manager.set_active(request.match_info["name"], False)
    return web.json_response(manager.view(rt))


async def delete_connection(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[NODE].manager.delete(name)
    return web.json_response({"deleted": name})


async def test_connection(request: web.Request) -> web.Response:
    body = await _body(request, TestBody)
    report = await request.app[NODE].manager.probe(
        request.match_info["name"],
        count=body.count,
        wait=body.wait,
        timeout=body.timeout_seconds,
        sequential=body.sequential,
        payload_bytes=body.payload_bytes,
    )
    return web.json_response(report.to_json())


async def inbox(request: web.Request) -> web.Response:
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", 100, 1, 10_000)
    items = await request.app[NODE].manager.inbox(request.match_info["name"], after, limit)
    return web.json_response({"messages": items})


async def create_invitation(request: web.Request) -> web.Response:
    body = await _body(request, InvitationBody)
    try:
        seconds = body.expires if isinstance(body.expires, int) else parse_duration(body.expires)
    except ValueError as exc:
        raise ApiError(400, "invalid_body", f"expires: {exc}") from None
    manager = request.app[NODE].manager
    code, rt = await manager.invite(
        name=body.name,
        peer_url=body.peer_url,
        relay=body.relay,
        expires_seconds=seconds,
        project=body.project,
    )
    return web.json_response({"code": code, "connection": manager.view(rt)}, status=201)


async def accept_invitation(request: web.Request) -> web.Response:
    body = await _body(request, AcceptBody)
    manager = request.app[NODE].manager
    rt = await manager.accept(body.code, name=body.name, project=body.project, wait_seconds=body.wait_seconds)
    view = manager.view(rt)
    return web.json_response(
        {
            "connection": view,
            "paired": rt.row.state == "active",
            "verification": view["verification"],
        },
        status=201 if rt.row.state == "active" else 202,
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def healthz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    status, items = node.manager.health()
    body: dict[str, object] = {"status": status, "connections": items}
    if node.intake is not None:  # unauthenticated: state and counters, not the message (names a user)
        body["tracker"] = {k: v for k, v in node.intake.health().items() if k != "message"}
        if node.intake.state != "ok":
            body["status"] = "degraded"
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[NODE].manager.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/node", node_info)
    r.add_get("/api/v1/connections", list_connections)
    r.add_get("/api/v1/connections/{name}", get_connection)
    r.add_delete("/api/v1/connections/{name}", delete_connection)
    r.add_post("/api/v1/connections/{name}/activate", activate)
    r.add_post("/api/v1/connections/{name}/deactivate", deactivate)
    r.add_post("/api/v1/connections/{name}/test", test_connection)
    r.add_get("/api/v1/connections/{name}/inbox", inbox)
    r.add_post("/api/v1/invitations", create_invitation)
    r.add_post("/api/v1/invitations/accept", accept_invitation)
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics)
    from node.web.sync_api import add_sync_routes  # imports this module, hence here

    add_sync_routes(app)


def make_admin_app(token: str) -> web.Application:
    app = web.Application(middlewares=[json_errors, require_token], client_max_size=ADMIN_MAX_BODY)
    app[TOKEN] = token
    add_routes(app)
    return app
