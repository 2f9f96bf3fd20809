"""The sync surface of the admin API: triggers, manual and bulk sync, unlink, status, rules, errors
and conflicts, under ``/api/v1/``.

Every handler only calls :class:`node.sync.service.SyncService` (the node's ``engine``) and answers
its views as JSON. A node without a tracker has no engine: every route here answers 409
``no_tracker``. A :class:`~node.sync.service.SyncError` becomes its own ``status`` and ``code``; a
rule error also carries ``line`` / ``path`` in the error object. Bodies are validated with the
models below (the OpenAPI document is built from the same models).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, cast

from aiohttp import web
from pydantic import BaseModel, Field

from node.rules.errors import RuleError
from node.rules.ruleset import RuleSet, compile_rules
from node.sync.service import Direction, RuleMode, RuleProblem, RuleVersionView, SyncError, SyncService
from node.trackers.base import TrackerAuthError, TrackerError, TrackerNotFound, TrackerTransient
from node.web.admin import _Body, _body
from node.web.errors import ApiError, error_response
from node.web.keys import NODE

NO_TRACKER = "this node has no tracker configured (tandem init --tracker …)"
MAX_KEY = 255
MAX_QUERY = 10_000
MAX_SOURCE = 512 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- bodies -----------------------------------------------------------------------------------------


class TriggerBody(_Body):
    connection: str = Field(min_length=1, max_length=100)
    query: str = Field(min_length=1, max_length=MAX_QUERY, description="JQL, evaluated on each changed issue")
    note: str = Field("", max_length=2000)


class TriggerPatch(_Body):
    active: bool


class SyncBody(_Body):
    key: str = Field(min_length=1, max_length=MAX_KEY, description="local issue key or id")
    connection: str = Field(min_length=1, max_length=100)


class BulkBody(_Body):
    connection: str = Field(min_length=1, max_length=100)
    query: str = Field(min_length=1, max_length=MAX_QUERY, description="JQL: every matching issue is synced")


class DraftBody(_Body):
    mode: RuleMode
    source: str = Field(max_length=MAX_SOURCE, description="Visual: YAML/JSON; Script: Python; Basic: ''")


class RulesTestBody(_Body):
    key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_KEY,
        description="a local issue (incoming: its twin's last received replica, or the issue the "
        "given replica is tested against)",
    )
    replica: dict[str, Any] | None = Field(
        None, description="incoming only: a replica to test (nothing is applied)"
    )
    published: bool = Field(False, description="run the published rules instead of the draft")


# -- helpers ----------------------------------------------------------------------------------------


def _engine(request: web.Request) -> SyncService:
    engine = getattr(request.app[NODE], "engine", None)
    if engine is None:
        raise ApiError(409, "no_tracker", NO_TRACKER)
    return cast(SyncService, engine)


def _rule_error(message: str, line: int | None, path: str | None) -> web.Response:
    if line is not None and f"line {line}" not in message:
        message = f"line {line}: {message}"
    elif line is None and path and path not in message:
        message = f"{path}: {message}"
    return web.json_response(
        {"error": {"code": "rule_error", "message": message, "line": line, "path": path}}, status=422
    )


def _sync_errors(handler: Handler) -> Handler:
    """Answer the engine's (and, defensively, the tracker's) errors as JSON with their status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RuleProblem as exc:
            return _rule_error(str(exc), exc.line, exc.path)
        except RuleError as exc:
            return _rule_error(str(exc), exc.line, exc.path)
        except SyncError as exc:
            return error_response(exc.status, exc.code, str(exc) or exc.code.replace("_", " "))
        except TrackerNotFound as exc:
            return error_response(404, "not_found", f"the tracker says: {exc}")
        except TrackerAuthError as exc:
            return error_response(502, "tracker_auth", f"the tracker refused the node's credentials: {exc}")
        except TrackerTransient as exc:
            return error_response(503, "tracker_unavailable", f"the tracker is unavailable: {exc}")
        except TrackerError as exc:
            return error_response(502, "tracker_error", f"the tracker refused: {exc}")

    return wrapped


def _int_path(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_path", f"{name} must be an integer, not {raw[:40]!r}") from None
    if not 1 <= value <= 2**62:
        raise ApiError(400, "invalid_path", f"{name} must be a positive integer")
    return value


def _rules_path(request: web.Request) -> tuple[str, Direction]:
    """The connection name and the direction of a ``…/connections/{name}/rules/{direction}`` route."""
    return request.match_info["name"], _direction(request)


def _direction(request: web.Request) -> Direction:
    raw = request.match_info["direction"]
    if raw not in ("outgoing", "incoming"):
        raise ApiError(400, "invalid_path", f"direction must be 'outgoing' or 'incoming', not {raw[:40]!r}")
    return cast(Direction, raw)


def _bool_query(request: web.Request, key: str) -> bool:
    raw = request.query.get(key)
    if raw is None:
        return False
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, "invalid_query", f"query parameter {key!r} must be true or false")


def _str_query(request: web.Request, key: str) -> str | None:
    raw = request.query.get(key)
    if raw is not None and not 1 <= len(raw) <= 100:
        raise ApiError(400, "invalid_query", f"query parameter {key!r} must be 1 to 100 characters")
    return raw


def _dump(view: BaseModel) -> dict[str, Any]:
    return view.model_dump(mode="json")


def _json(view: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(_dump(view), status=status)


def _json_list(name: str, views: Iterable[BaseModel], /, **fields: Any) -> web.Response:
    """``{**fields, name: [view, …]}``: a listing of views (after any ``fields`` that introduce it)."""
    return web.json_response({**fields, name: [_dump(v) for v in views]})


# -- triggers ---------------------------------------------------------------------------------------


@_sync_errors
async def list_triggers(request: web.Request) -> web.Response:
    engine = _engine(request)
    connection = _str_query(request, "connection")
    return _json_list("triggers", await engine.list_triggers(connection))


@_sync_errors
async def add_trigger(request: web.Request) -> web.Response:
    engine = _engine(request)
    body = await _body(request, TriggerBody)
    return _json(await engine.add_trigger(body.connection, body.query, body.note), 201)


@_sync_errors
async def patch_trigger(request: web.Request) -> web.Response:
    engine = _engine(request)
    trigger_id = _int_path(request, "id")
    body = await _body(request, TriggerPatch)
    return _json(await engine.set_trigger_active(trigger_id, body.active))


@_sync_errors
async def remove_trigger(request: web.Request) -> web.Response:
    engine = _engine(request)
    trigger_id = _int_path(request, "id")
    await engine.remove_trigger(trigger_id)
    return web.json_response({"deleted": trigger_id})


# -- starting and stopping sync ---------------------------------------------------------------------


@_sync_errors
async def sync(request: web.Request) -> web.Response:
    engine = _engine(request)
    body = await _body(request, SyncBody)
    return _json(await engine.sync(body.key, body.connection))


@_sync_errors
async def start_bulk(request: web.Request) -> web.Response:
    engine = _engine(request)
    body = await _body(request, BulkBody)
    return _json(await engine.start_bulk(body.connection, body.query), 202)


@_sync_errors
async def list_bulk(request: web.Request) -> web.Response:
    engine = _engine(request)
    return _json_list("jobs", await engine.list_bulk_jobs())


@_sync_errors
async def get_bulk(request: web.Request) -> web.Response:
    engine = _engine(request)
    job_id = _int_path(request, "id")
    return _json(await engine.bulk_job(job_id))


@_sync_errors
async def unlink(request: web.Request) -> web.Response:
    engine = _engine(request)
    body = await _body(request, SyncBody)
    return _json(await engine.unlink(body.key, body.connection))


@_sync_errors
async def status(request: web.Request) -> web.Response:
    engine = _engine(request)
    key = request.match_info["key"]
    if not 1 <= len(key) <= MAX_KEY:
        raise ApiError(400, "invalid_path", f"key must be 1 to {MAX_KEY} characters")
    return _json_list("twins", await engine.status(key), key=key)


# -- rules ------------------------------------------------------------------------------------------


def rules_summary(versions: list[RuleVersionView]) -> dict[str, Any]:
    """The published and draft versions out of a rule set's history (newest last)."""

    def latest(state: Literal["draft", "published"]) -> dict[str, Any] | None:
        found = [v for v in versions if v.state == state]
        return _dump(max(found, key=lambda v: v.version)) if found else None

    return {
        "published": latest("published"),
        "draft": latest("draft"),
        "versions": [_dump(v) for v in sorted(versions, key=lambda v: v.version)],
    }


@_sync_errors
async def get_rules(request: web.Request) -> web.Response:
    engine = _engine(request)
    name, direction = _rules_path(request)
    versions = await engine.rules(name, direction)
    return web.json_response({"connection": name, "direction": direction, **rules_summary(versions)})


@_sync_errors
async def put_draft(request: web.Request) -> web.Response:
    engine = _engine(request)
    name, direction = _rules_path(request)
    body = await _body(request, DraftBody)
    # Refuse a draft that does not compile, naming its line: the admin keeps their file, and a
    # draft in the store is always one that could be test-run and published.
    draft = RuleSet(mode=body.mode, direction=direction, source=body.source, state="draft")
    await asyncio.to_thread(compile_rules, draft)
    return _json(await engine.save_draft(name, direction, body.mode, body.source))


@_sync_errors
async def test_rules(request: web.Request) -> web.Response:
    engine = _engine(request)
    name, direction = _rules_path(request)
    body = await _body(request, RulesTestBody)
    if body.key is None and body.replica is None:
        wanted = "key" if direction == "outgoing" else "key (the twin's last received replica) or replica"
        raise ApiError(400, "invalid_body", f"body: give {wanted}")
    if direction == "outgoing" and body.replica is not None:
        raise ApiError(400, "invalid_body", "replica: outgoing rules run on a local issue; give key")
    view = await engine.test_rules(
        name, direction, key=body.key, replica=body.replica, draft=not body.published
    )
    return _json(view)


@_sync_errors
async def publish(request: web.Request) -> web.Response:
    engine = _engine(request)
    name, direction = _rules_path(request)
    return _json(await engine.publish(name, direction))


@_sync_errors
async def rollback(request: web.Request) -> web.Response:
    engine = _engine(request)
    name, direction = _rules_path(request)
    return _json(await engine.rollback(name, direction))


# -- errors and conflicts ---------------------------------------------------------------------------


@_sync_errors
async def list_errors(request: web.Request) -> web.Response:
    engine = _engine(request)
    include_resolved = _bool_query(request, "all")
    return _json_list("errors", await engine.errors(include_resolved=include_resolved))


@_sync_errors
async def retry_error(request: web.Request) -> web.Response:
    engine = _engine(request)
    error_id = _int_path(request, "id")
    return _json(await engine.retry(error_id))


@_sync_errors
async def resolve_error(request: web.Request) -> web.Response:
    engine = _engine(request)
    error_id = _int_path(request, "id")
    return _json(await engine.resolve(error_id))


@_sync_errors
async def list_conflicts(request: web.Request) -> web.Response:
    engine = _engine(request)
    connection = _str_query(request, "connection")
    return _json_list("conflicts", await engine.conflicts(connection))


RULES = "/api/v1/connections/{name}/rules/{direction}"


def add_sync_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/triggers", list_triggers)
    r.add_post("/api/v1/triggers", add_trigger)
    r.add_patch("/api/v1/triggers/{id}", patch_trigger)
    r.add_delete("/api/v1/triggers/{id}", remove_trigger)
    r.add_post("/api/v1/sync", sync)
    r.add_get("/api/v1/bulk", list_bulk)
    r.add_post("/api/v1/bulk", start_bulk)
    r.add_get("/api/v1/bulk/{id}", get_bulk)
    r.add_post("/api/v1/unlink", unlink)
    r.add_get("/api/v1/status/{key}", status)
    r.add_get(RULES, get_rules)
    r.add_put(RULES + "/draft", put_draft)
    r.add_post(RULES + "/test", test_rules)
    r.add_post(RULES + "/publish", publish)
    r.add_post(RULES + "/rollback", rollback)
    r.add_get("/api/v1/errors", list_errors)
    r.add_post("/api/v1/errors/{id}/retry", retry_error)
    r.add_post("/api/v1/errors/{id}/resolve", resolve_error)
    r.add_get("/api/v1/conflicts", list_conflicts)
