"""The emulator's HTTP surface: Jira's REST paths (v2 and, in Cloud mode, v3), the legacy webhook
API, attachment downloads, and the ``/_emulator`` control API used by tests and benchmarks.

Request handling order: stats → fault injection (latency, 429, injected errors) → authentication →
handler. Every failure is answered with Jira's error body (``errorMessages`` + ``errors``); an
unexpected exception becomes a 500 with a generic message and is logged, never sent to the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Literal, cast

import orjson
from aiohttp import BodyPartReader, web

from node.trackers.common.emulator import EmulatorApp
from node.trackers.common.rest import encode_json

from .faults import Faults, FaultSpecError, Stats
from .ops import NOT_FOUND, Event, JiraApiError, Site, check_property_key
from .search import (
    SnapshotCache,
    compile_jql,
    make_context,
    parse_structure,
    plain_lookup,
    run_search,
)
from .state import (
    CustomField,
    EmulatorState,
    Issue,
    Option,
    RemoteLink,
    StateError,
    User,
    Webhook,
    Workflow,
    WorkflowTransition,
    jira_time,
    new_state,
    now,
)
from .views import RenderMemo, View
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = r"{v:(?:2|3|latest)}"
MAX_RESULTS = 100
MAX_UPLOAD = 50 * 1024 * 1024
CUSTOM_KINDS = ("text", "textarea", "number", "select", "multiselect", "user", "date", "url", "labels")
WEBHOOK_EVENTS = (
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
)

USER_KEY: web.RequestKey[User] = web.RequestKey("jira_user", User)


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """``web.json_response`` with the same headers, encoded by :func:`encode_json`."""
    return web.Response(
        body=encode_json(data), status=status, content_type="application/json", charset="utf-8"
    )


def encode_rows(envelope: dict[str, Any], key: str, rows: Iterable[Any]) -> bytes | None:
    """``encode_json(envelope)`` with ``envelope[key]`` (the first key, an empty list here) holding
    ``rows``, each rendered and encoded in turn: a page of issues then never exists as one tree of
    dicts, so its objects die young instead of surviving into the garbage collector's oldest
    generation, where every collection walks the whole site (half the CPU of a large page of a
    large site went there). The same bytes as encoding the whole answer; None when a row needs
    :func:`encode_json`'s slower routes (the caller then encodes the whole answer as usual)."""
    encoded = []
    for row in rows:
        try:
            encoded.append(orjson.dumps(row))
        except TypeError:
            return None
    head = encode_json(envelope)
    opening = b'{"' + key.encode() + b'":['
    if not head.startswith(opening + b"]"):
        raise ValueError(f"{key!r} must be the envelope's first key and hold an empty list")
    return opening + b",".join(encoded) + head[len(opening) :]


def page_bean(
    rows: Sequence[Any],
    start: int,
    size: int,
    render: Callable[[Any], Any] | None = None,
    *,
    self_url: str | None = None,
) -> dict[str, Any]:
    """Jira's paged list (``PageBean``): the ``size`` rows from ``start``, each ``render``-ed."""
    page = rows[start : start + size]
    out: dict[str, Any] = {} if self_url is None else {"self": self_url}
    out["maxResults"] = size
    out["startAt"] = start
    out["total"] = len(rows)
    out["isLast"] = start + size >= len(rows)
    out["values"] = page if render is None else [render(r) for r in page]
    return out


def jerror(
    status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None
) -> web.Response:
    return json_response({"errorMessages": messages or [], "errors": errors or {}}, status=status)


class JiraApp(EmulatorApp):
    """Owns the state, the site rules, faults, stats and webhook delivery for one emulator."""

    faults: Faults
    stats: Stats
    dispatcher: WebhookDispatcher

    def __init__(self, state: EmulatorState, *, admin: str, password: str) -> None:
        self.state = state
        self.admin = admin
        self.password = password
        self.site = Site(state, self._on_event)
        self.faults = Faults()
        self.stats = Stats()
        self.dispatcher = WebhookDispatcher()
        self.cache = SnapshotCache(state)
        # Renderings of users and comments kept between webhook payloads and the reads that follow
        # them (searches, comment lists), one memo per (base URL, API version) a client used.
        self.render_memos: dict[tuple[str, int], RenderMemo] = {}
        self.dirty = False
        self.base_url = ""

    # ------------------------------------------------------------------ app wiring

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_UPLOAD + 1024 * 1024)
        r = app.router
        a = f"/rest/api/{API}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", f"{a}/serverInfo", self.server_info),
            ("GET", f"{a}/myself", self.myself),
            ("GET", f"{a}/field", self.fields),
            ("GET", f"{a}/project", self.projects),
            ("POST", f"{a}/project", self.create_project),
            ("GET", f"{a}/project/search", self.project_search),
            ("GET", f"{a}/project/{{key}}", self.project),
            ("DELETE", f"{a}/project/{{key}}", self.delete_project),
            ("GET", f"{a}/project/{{key}}/statuses", self.project_statuses),
            ("GET", f"{a}/project/{{key}}/components", self.project_components),
            ("GET", f"{a}/project/{{key}}/versions", self.project_versions),
            ("GET", f"{a}/issuetype", self.issue_types),
            ("GET", f"{a}/priority", self.priorities),
            ("GET", f"{a}/status", self.statuses),
            ("GET", f"{a}/status/{{id}}", self.status),
            ("GET", f"{a}/statuscategory", self.status_categories),
            ("GET", f"{a}/resolution", self.resolutions),
            ("GET", f"{a}/permissionscheme", self.permission_schemes),
            ("GET", f"{a}/issuesecurityschemes", self.security_schemes),
            ("GET", f"{a}/projectCategory", self.project_categories),
            ("GET", f"{a}/user", self.user),
            ("GET", f"{a}/user/search", self.user_search),
            ("GET", f"{a}/user/assignable/search", self.user_search),
            ("GET", f"{a}/group/member", self.group_members),
            ("POST", f"{a}/issue", self.create_issue),
            ("POST", f"{a}/issue/bulk", self.create_issues),
            ("GET", f"{a}/issue/createmeta", self.createmeta),
            ("GET", f"{a}/issue/createmeta/{{project}}/issuetypes", self.createmeta_types),
            ("GET", f"{a}/issue/createmeta/{{project}}/issuetypes/{{type}}", self.createmeta_fields),
            ("GET", f"{a}/issue/{{key}}", self.get_issue),
            ("PUT", f"{a}/issue/{{key}}", self.edit_issue),
            ("DELETE", f"{a}/issue/{{key}}", self.delete_issue),
            ("PUT", f"{a}/issue/{{key}}/assignee", self.assign),
            ("GET", f"{a}/issue/{{key}}/editmeta", self.editmeta),
            ("GET", f"{a}/issue/{{key}}/changelog", self.changelog),
            ("GET", f"{a}/issue/{{key}}/transitions", self.transitions),
            ("POST", f"{a}/issue/{{key}}/transitions", self.do_transition),
            ("GET", f"{a}/issue/{{key}}/comment", self.comments),
            ("POST", f"{a}/issue/{{key}}/comment", self.add_comment),
            ("GET", f"{a}/issue/{{key}}/comment/{{id}}", self.comment),
            ("PUT", f"{a}/issue/{{key}}/comment/{{id}}", self.update_comment),
            ("DELETE", f"{a}/issue/{{key}}/comment/{{id}}", self.delete_comment),
            ("GET", f"{a}/issue/{{key}}/properties", self.issue_property_keys),
            ("GET", f"{a}/issue/{{key}}/properties/{{prop}}", self.issue_property),
            ("PUT", f"{a}/issue/{{key}}/properties/{{prop}}", self.set_issue_property),
            ("DELETE", f"{a}/issue/{{key}}/properties/{{prop}}", self.delete_issue_property),
            ("GET", f"{a}/comment/{{id}}/properties", self.comment_property_keys),
            ("GET", f"{a}/comment/{{id}}/properties/{{prop}}", self.comment_property),
            ("PUT", f"{a}/comment/{{id}}/properties/{{prop}}", self.set_comment_property),
            ("DELETE", f"{a}/comment/{{id}}/properties/{{prop}}", self.delete_comment_property),
            ("GET", f"{a}/issue/{{key}}/remotelink", self.remote_links),
            ("POST", f"{a}/issue/{{key}}/remotelink", self.add_remote_link),
            ("DELETE", f"{a}/issue/{{key}}/remotelink", self.delete_remote_link_by_global_id),
            ("GET", f"{a}/issue/{{key}}/remotelink/{{id}}", self.remote_link),
            ("PUT", f"{a}/issue/{{key}}/remotelink/{{id}}", self.update_remote_link),
            ("DELETE", f"{a}/issue/{{key}}/remotelink/{{id}}", self.delete_remote_link),
            ("POST", f"{a}/issue/{{key}}/attachments", self.add_attachments),
            ("GET", f"{a}/attachment/{{id}}", self.attachment),
            ("DELETE", f"{a}/attachment/{{id}}", self.delete_attachment),
            ("GET", f"{a}/attachment/content/{{id}}", self.attachment_content),
            ("GET", "/secure/attachment/{id}/{filename}", self.attachment_content),
            ("GET", f"{a}/search", self.search),
            ("POST", f"{a}/search", self.search),
            ("GET", f"{a}/search/jql", self.search_jql),
            ("POST", f"{a}/search/jql", self.search_jql),
            ("POST", f"{a}/jql/parse", self.jql_parse),
            ("GET", f"{a}/webhook", self.dynamic_webhooks),
            ("POST", f"{a}/webhook", self.register_dynamic_webhooks),
            ("DELETE", f"{a}/webhook", self.delete_dynamic_webhooks),
            ("PUT", f"{a}/webhook/refresh", self.refresh_dynamic_webhooks),
            ("GET", "/rest/webhooks/1.0/webhook", self.webhooks),
            ("POST", "/rest/webhooks/1.0/webhook", self.register_webhook),
            ("GET", "/rest/webhooks/1.0/webhook/{id}", self.webhook),
            ("PUT", "/rest/webhooks/1.0/webhook/{id}", self.update_webhook),
            ("DELETE", "/rest/webhooks/1.0/webhook/{id}", self.delete_webhook),
            # control API (no auth, no faults): see docs/emulators.md
            ("GET", "/_emulator/stats", self.ctl_stats),
            ("GET", "/_emulator/faults", self.ctl_get_faults),
            ("POST", "/_emulator/faults", self.ctl_set_faults),
            ("DELETE", "/_emulator/faults", self.ctl_clear_faults),
            ("POST", "/_emulator/reset", self.ctl_reset),
            ("POST", "/_emulator/users", self.ctl_add_user),
            ("POST", "/_emulator/projects", self.ctl_add_project),
            ("POST", "/_emulator/fields", self.ctl_add_field),
            ("GET", "/_emulator/workflows", self.ctl_workflows),
            ("POST", "/_emulator/workflows", self.ctl_add_workflow),
            ("PUT", "/_emulator/projects/{key}/workflow", self.ctl_assign_workflow),
            ("GET", "/_emulator/webhooks", self.ctl_webhooks),
        ]
        for method, path, handler in routes:
            r.add_route(method, path, handler)
        return app

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        controlled = path.startswith(("/rest/", "/secure/"))
        route = request.match_info.route.resource
        route_name = f"{request.method} {route.canonical if route is not None else '(unmatched)'}"
        if controlled:
            self.stats.count(route_name)
        try:
            response = await self._handle(request, handler, controlled)
        except web.HTTPException as exc:
            if exc.status in (404, 405) and controlled:
                response = jerror(exc.status, [f"null for uri: {request.url}"])
            else:
                raise
        except JiraApiError as err:
            response = json_response(err.body(), status=err.status)
        except Exception:
            log.exception("emulator handler failed for %s %s", request.method, request.path)
            response = jerror(500, ["Internal server error"])
        if controlled:
            self.stats.status(response.status)
            if request.method != "GET" and response.status < 400:
                self.dirty = True
        return response

    async def _handle(self, request: web.Request, handler: Handler, controlled: bool) -> web.StreamResponse:
        if not controlled:
            if request.path.startswith("/_emulator") and request.method != "GET":
                self.dirty = True
            return await handler(request)
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        retry = faults.rate_limited()
        if retry is not None:
            self.stats.rate_limited += 1
            resp = jerror(429, ["Rate limit exceeded."])
            resp.headers["Retry-After"] = str(max(1, round(retry)) if retry >= 1 else retry)
            resp.headers["X-RateLimit-Limit"] = str(faults.rate_requests or 0)
            resp.headers["X-RateLimit-Remaining"] = "0"
            return resp
        if faults.should_fail():
            self.stats.injected_errors += 1
            return jerror(faults.status, ["Injected fault (emulator)."])
        version = request.match_info.get("v")
        if version == "3" and self.state.mode == "server":
            return jerror(404, [f"null for uri: {request.url}"])
        user = self._authenticate(request)
        if user is None:
            if request.match_info.route.resource is not None and request.path.endswith("/serverInfo"):
                return await handler(request)  # serverInfo is public on real Jira
            resp = jerror(
                401, ["You are not authenticated. Authentication required to perform this operation."]
            )
            resp.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
            return resp
        request[USER_KEY] = user
        return await handler(request)

    def _authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                login, _, secret = (
                    base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.state.authenticate(login, secret)
        if scheme.lower() == "bearer" and value:
            return self.state.user_by_token(value.strip())
        return None

    # ------------------------------------------------------------------ helpers

    def view(self, request: web.Request, api: int | None = None) -> View:
        if api is None:
            api = 3 if request.match_info.get("v") == "3" else 2
        return View(self.state, f"{request.scheme}://{request.host}", api)

    def memo_view(self, base: str, api: int) -> View:
        """A view reusing earlier renderings (see :class:`RenderMemo`): only for answers serialised
        at once and never changed (a caller that adds to a rendered dict copies it first)."""
        memo = self.render_memos.get((base, api))
        if memo is None:
            if len(self.render_memos) >= 8:  # a handful of base URLs in practice
                self.render_memos.clear()
            memo = self.render_memos[(base, api)] = RenderMemo()
        return View(self.state, base, api, memo)

    def request_memo_view(self, request: web.Request) -> View:
        return self.memo_view(f"{request.scheme}://{request.host}", self.api(request))

    @staticmethod
    def api(request: web.Request) -> int:
        return 3 if request.match_info.get("v") == "3" else 2

    @staticmethod
    def actor(request: web.Request) -> User:
        return request[USER_KEY]

    @staticmethod
    async def body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise JiraApiError(
                400, [f"Unexpected character in the request body, not valid JSON: {err}"]
            ) from err

    def cloud_only(self, request: web.Request) -> None:
        if self.state.mode != "cloud":
            raise JiraApiError(404, [f"null for uri: {request.url}"])

    @staticmethod
    def int_param(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 1 << 31) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as err:
            raise JiraApiError(400, [f"The '{name}' parameter must be an integer: '{raw}'."]) from err
        return min(max(value, lo), hi)

    def issue_or_404(self, request: web.Request) -> Issue:
        return self.site.get_issue(request.match_info["key"])

    # ------------------------------------------------------------------ events -> webhooks

    def _on_event(self, event: Event) -> None:
        if event.webhook_event == "jira:issue_deleted":
            self.cache.drop(event.issue.id)
        hooks = [
            h
            for h in self.state.webhooks.values()
            if h.enabled and event.webhook_event in h.events and (h.expires is None or h.expires > now())
        ]
        if not hooks or not self.dispatcher.running:
            return
        payload: dict[str, Any] | None = None  # rendered for the first hook whose delivery is queued
        shared: bytes | None = None  # one encoding for every hook that gets the same body

        def delivery(hook: Webhook) -> tuple[str, bytes]:
            """Built only for a delivery the queue takes: a dropped one is counted, never rendered."""
            nonlocal payload, shared
            if hook.exclude_body:
                data = b""
            else:
                if payload is None:
                    payload = self.webhook_payload(self.memo_view(self.base_url, 2), event)
                if hook.dynamic:
                    data = encode_json({**payload, "matchedWebhookIds": [int(hook.id)]})
                else:
                    data = shared = shared if shared is not None else encode_json(payload)
            return self.webhook_url(hook.url, event.issue), data

        snap = None
        for hook in hooks:
            if hook.jql:
                try:
                    query = compile_jql(hook.jql)
                    snap = snap or self.state.to_snapshot(event.issue)
                    if not query.matches(snap, make_context(self.state, None)):
                        continue
                except JiraApiError:
                    continue
            self.dispatcher.put_lazy(partial(delivery, hook))

    def webhook_url(self, url: str, issue: Issue) -> str:
        project = self.state.projects.get(issue.project)
        for var, value in (
            ("${issue.key}", issue.key),
            ("${issue.id}", issue.id),
            ("${project.key}", issue.project),
            ("${project.id}", project.id if project else ""),
        ):
            url = url.replace(var, value)
        return url

    def webhook_payload(self, view: View, event: Event) -> dict[str, Any]:
        """Shaped like the recordings in vendor-data/dev/jira-webhooks (v2 shapes, wiki text)."""
        payload: dict[str, Any] = {
            "timestamp": int(event.at.timestamp() * 1000),
            "webhookEvent": event.webhook_event,
        }
        if event.webhook_event.startswith("comment_"):
            assert event.comment is not None
            payload["user"] = view.user(event.actor)  # Server sends it; Cloud recordings omit it on some
            payload["comment"] = view.comment(event.issue, event.comment)
            payload["issue"] = view.webhook_issue_short(event.issue)
            return payload
        payload["issue_event_type_name"] = event.issue_event_type
        payload["user"] = view.user(event.actor)
        payload["issue"] = view.webhook_issue(event.issue)
        if event.history is not None:
            payload["changelog"] = view.history(event.history, webhook=True)
        if event.comment is not None:
            payload["comment"] = view.comment(event.issue, event.comment)
        return payload

    # ------------------------------------------------------------------ reference data

    async def server_info(self, request: web.Request) -> web.StreamResponse:
        cloud = self.state.mode == "cloud"
        base = f"{request.scheme}://{request.host}"
        info = {
            "baseUrl": base,
            "displayUrl": base,
            "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
            "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2],
            "deploymentType": "Cloud" if cloud else "Server",
            "buildNumber": 100260 if cloud else 9120002,
            "buildDate": "2024-01-31T00:00:00.000+0000",
            "serverTime": jira_time(now()),
            "scmInfo": "tandem-emulator",
            "serverTitle": self.state.server_title,
        }
        if not cloud:
            info["serverTimeZone"] = "UTC"
        return json_response(info)

    async def myself(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.view(request).user(self.actor(request), full=True))

    async def fields(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.view(request).field_details())

    async def projects(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.project(p) for p in self.state.projects.values()])

    async def project_search(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 50, 1, MAX_RESULTS)
        query = request.query.get("query", "").lower()
        keys = set(request.query.getall("keys", []))
        rows = [
            p
            for p in self.state.projects.values()
            if (not query or query in p.key.lower() or query in p.name.lower())
            and (not keys or p.key in keys)
        ]
        return json_response(page_bean(rows, start, size, view.project, self_url=str(request.url)))

    def project_or_404(self, value: str) -> Any:
        project = self.state.project_by_id_or_key(value)
        if project is None:
            raise JiraApiError(404, [f"No project could be found with key '{value}'."])
        return project

    async def project(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.view(request).project(self.project_or_404(request.match_info["key"])))

    async def delete_project(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["key"])
        for issue in [i for i in self.state.issues.values() if i.project == project.key]:
            self.site.delete_issue(self.actor(request), issue)
        del self.state.projects[project.key]
        return web.Response(status=204)

    async def project_statuses(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["key"])
        view = self.view(request)
        workflow = self.state.workflows[project.workflow]
        statuses = [view.status(self.state.statuses[s]) for s in workflow.statuses]
        rows = []
        for tid in project.issue_types:
            itype = self.state.issue_types[tid]
            rows.append(
                {
                    "self": view.rest(f"issuetype/{tid}"),
                    "id": tid,
                    "name": itype.name,
                    "subtask": itype.subtask,
                    "statuses": statuses,
                }
            )
        return json_response(rows)

    async def project_components(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["key"])
        view = self.view(request)
        return json_response([view.component(project, c.id) for c in project.components])

    async def project_versions(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["key"])
        view = self.view(request)
        return json_response([view.version(project, v.id) for v in project.versions])

    async def create_project(self, request: web.Request) -> web.StreamResponse:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise JiraApiError(400, ["The request body must be a JSON object."])
        errors: dict[str, str] = {}
        key = body.get("key")
        name = body.get("name")
        if not isinstance(key, str) or not key:
            errors["projectKey"] = "You must specify a unique project key, at least 2 characters long."
        if not isinstance(name, str) or not name:
            errors["projectName"] = "You must specify a valid project name."
        elif any(p.name.lower() == name.lower() for p in self.state.projects.values()):
            errors["projectName"] = "A project with that name already exists."
        lead = self.actor(request)
        lead_ref = body.get("leadAccountId") if self.state.mode == "cloud" else body.get("lead")
        if lead_ref:
            found = (
                self.state.find_user(account_id=str(lead_ref))
                if self.state.mode == "cloud"
                else self.state.find_user(name=str(lead_ref))
            )
            if found is None:
                errors["projectLead"] = "The project lead you specified does not exist."
            else:
                lead = found
        if errors:
            raise JiraApiError(400, [], errors)
        assert isinstance(key, str) and isinstance(name, str)
        ptype = body.get("projectTypeKey") or "software"
        workflow = "support" if ptype == "service_desk" else "simple"
        try:
            project = self.state.add_project(
                key,
                name,
                lead=lead.key,
                workflow=workflow,
                project_type=str(ptype),
                description=str(body.get("description") or ""),
            )
        except StateError as err:
            raise JiraApiError(400, [], {"projectKey": str(err)}) from err
        view = self.view(request)
        return json_response(
            {"self": view.rest(f"project/{project.id}"), "id": int(project.id), "key": project.key},
            status=201,
        )

    async def issue_types(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.issuetype(t) for t in self.state.issue_types.values()])

    async def priorities(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.priority(p) for p in self.state.priorities.values()])

    async def statuses(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.status(s) for s in self.state.statuses.values()])

    async def status(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        for s in self.state.statuses.values():
            if s.id == ref or s.name.lower() == ref.lower():
                return json_response(self.view(request).status(s))
        raise JiraApiError(404, [f"The status with id '{ref}' does not exist"])

    async def status_categories(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.status_category(k) for k in ("undefined", "new", "done", "indeterminate")])

    async def resolutions(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        return json_response([view.resolution(r) for r in self.state.resolutions])

    async def permission_schemes(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        scheme = {
            "id": 0,
            "self": view.rest("permissionscheme/0"),
            "name": "Default Permission Scheme",
            "description": "This is the default Permission Scheme.",
        }
        return json_response({"permissionSchemes": [scheme]})

    async def security_schemes(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        scheme = {
            "self": view.rest("issuesecurityschemes/10000"),
            "id": 10000,
            "name": "Default",
            "description": "Issue security scheme of the emulator (no levels enforced).",
        }
        return json_response({"issueSecuritySchemes": [scheme]})

    async def project_categories(self, request: web.Request) -> web.StreamResponse:
        return json_response([])

    # ------------------------------------------------------------------ users

    async def user(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if self.state.mode == "cloud":
            if "username" in q or "key" in q:
                raise JiraApiError(
                    400, ["The query parameter 'username' is not supported in GDPR strict mode."]
                )
            if "accountId" not in q:
                raise JiraApiError(400, ["The query parameter 'accountId' is required."])
            user = self.state.find_user(account_id=q["accountId"])
        else:
            if "username" in q:
                user = self.state.find_user(name=q["username"])
            elif "key" in q:
                user = self.state.find_user(key=q["key"])
            else:
                raise JiraApiError(400, ["The username query parameter was not provided"])
        if user is None:
            raise JiraApiError(
                404,
                ["The user named was not found."]
                if self.state.mode == "server"
                else ["Specified user does not exist or you do not have required permissions"],
            )
        return json_response(self.view(request).user(user, full=True))

    async def user_search(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if self.state.mode == "cloud":
            if "username" in q:
                raise JiraApiError(
                    400, ["The query parameter 'username' is not supported in GDPR strict mode."]
                )
            if "accountId" in q:
                user = self.state.find_user(account_id=q["accountId"])
                found = [user] if user else []
            else:
                if "query" not in q and not request.path.endswith("/assignable/search"):
                    raise JiraApiError(
                        400, ["One of 'query' or 'accountId' query parameters must be provided."]
                    )
                found = self._match_users(q.get("query", ""))
        else:
            if "username" not in q and not request.path.endswith("/assignable/search"):
                raise JiraApiError(400, ["The username query parameter was not provided"])
            found = self._match_users(q.get("username", ""))
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 50, 1, 1000)
        view = self.view(request)
        return json_response([view.user(u) for u in found[start : start + size]])

    def _match_users(self, text: str) -> list[User]:
        text = text.lower().strip()
        out = []
        for user in self.state.users.values():
            if not user.active:
                continue
            words = [user.name, user.email, user.display_name, *user.display_name.split()]
            if not text or any(w.lower().startswith(text) for w in words):
                out.append(user)
        return out

    async def group_members(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("groupname") or request.query.get("groupName")
        if not name or name not in self.state.groups:
            raise JiraApiError(
                404, [f"Group does not exist: '{name}'"] if name else ["groupname is required"]
            )
        view = self.view(request)
        members = [u for u in self.state.users.values() if name in u.groups]
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 50, 1, 50)
        return json_response(page_bean(members, start, size, view.user, self_url=str(request.url)))

    # ------------------------------------------------------------------ issues

    async def create_issue(self, request: web.Request) -> web.StreamResponse:
        body = await self.body(request)
        issue = self.site.create_issue(self.actor(request), body, self.api(request))
        view = self.view(request)
        return json_response(
            {"id": issue.id, "key": issue.key, "self": view.rest(f"issue/{issue.id}")}, status=201
        )

    async def create_issues(self, request: web.Request) -> web.StreamResponse:
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("issueUpdates"), list):
            raise JiraApiError(400, ["issueUpdates must be a list"])
        view = self.view(request)
        created: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for n, spec in enumerate(body["issueUpdates"][:1000]):
            try:
                issue = self.site.create_issue(self.actor(request), spec, self.api(request))
            except JiraApiError as err:
                failed.append({"status": err.status, "elementErrors": err.body(), "failedElementNumber": n})
                continue
            created.append({"id": issue.id, "key": issue.key, "self": view.rest(f"issue/{issue.id}")})
        return json_response({"issues": created, "errors": failed}, status=201 if created else 400)

    @staticmethod
    def _list_param(request: web.Request, name: str) -> list[str] | None:
        values = request.query.getall(name, [])
        if not values:
            return None
        return [v for raw in values for v in raw.split(",") if v]

    async def get_issue(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        view = self.view(request)
        fields = self._list_param(request, "fields")
        expand = set(self._list_param(request, "expand") or [])
        props = self._list_param(request, "properties")
        return json_response(view.issue(issue, fields=fields, expand=expand, properties=props))

    async def edit_issue(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        body = await self.body(request)
        self.site.edit_issue(self.actor(request), issue, body if body is not None else {}, self.api(request))
        if request.query.get("returnIssue") == "true":
            return json_response(self.view(request).issue(issue))
        return web.Response(status=204)

    async def delete_issue(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        self.site.delete_issue(self.actor(request), issue)
        return web.Response(status=204)

    async def assign(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        self.site.assign(self.actor(request), issue, await self.body(request))
        return web.Response(status=204)

    async def editmeta(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        view = self.view(request)
        return json_response({"fields": view.meta_fields(self.state.projects[issue.project], create=False)})

    async def changelog(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        view = self.view(request)
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 100, 1, 100)
        return json_response(page_bean(issue.histories, start, size, view.history, self_url=str(request.url)))

    # ------------------------------------------------------------------ create metadata

    async def createmeta(self, request: web.Request) -> web.StreamResponse:
        view = self.view(request)
        keys = set(self._list_param(request, "projectKeys") or [])
        ids = set(self._list_param(request, "projectIds") or [])
        type_ids = set(self._list_param(request, "issuetypeIds") or [])
        type_names = {n.lower() for n in self._list_param(request, "issuetypeNames") or []}
        expand = set(self._list_param(request, "expand") or [])
        with_fields = "projects.issuetypes.fields" in expand
        projects = []
        for p in self.state.projects.values():
            if (keys or ids) and p.key not in keys and p.id not in ids:
                continue
            types = []
            for tid in p.issue_types:
                itype = self.state.issue_types[tid]
                if (type_ids or type_names) and tid not in type_ids and itype.name.lower() not in type_names:
                    continue
                row = {k: v for k, v in view.issuetype(itype).items()}
                row["expand"] = "fields"
                if with_fields:
                    row["fields"] = view.meta_fields(p, create=True)
                types.append(row)
            projects.append(
                {
                    "expand": "issuetypes",
                    "self": view.rest(f"project/{p.id}"),
                    "id": p.id,
                    "key": p.key,
                    "name": p.name,
                    "avatarUrls": view.project_avatars(p),
                    "issuetypes": types,
                }
            )
        return json_response({"expand": "projects", "projects": projects})

    async def createmeta_types(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["project"])
        view = self.view(request)
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 50, 1, 200)
        types = [view.issuetype(self.state.issue_types[t]) for t in project.issue_types]
        return json_response(self._meta_page(types, start, size, "issueTypes"))

    async def createmeta_fields(self, request: web.Request) -> web.StreamResponse:
        project = self.project_or_404(request.match_info["project"])
        tid = request.match_info["type"]
        if tid not in project.issue_types:
            raise JiraApiError(
                404, [f"Issue type with id '{tid}' does not exist or is not valid for project."]
            )
        view = self.view(request)
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 50, 1, 200)
        rows = [{**meta, "fieldId": fid} for fid, meta in view.meta_fields(project, create=True).items()]
        return json_response(self._meta_page(rows, start, size, "fields"))

    def _meta_page(self, rows: list[Any], start: int, size: int, cloud_key: str) -> dict[str, Any]:
        """A page of the new create metadata: Cloud names the list and omits ``isLast``; Server/DC
        answer a plain ``PageBean``."""
        if self.state.mode == "cloud":
            return {
                "maxResults": size,
                "startAt": start,
                "total": len(rows),
                cloud_key: rows[start : start + size],
            }
        return page_bean(rows, start, size)

    # ------------------------------------------------------------------ transitions

    async def transitions(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        expand = set(self._list_param(request, "expand") or [])
        view = self.view(request)
        rows = view.transitions(issue, with_fields="transitions.fields" in expand)
        wanted = request.query.get("transitionId")
        if wanted:
            rows = [t for t in rows if t["id"] == wanted]
        return json_response({"expand": "transitions", "transitions": rows})

    async def do_transition(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        self.site.do_transition(self.actor(request), issue, await self.body(request), self.api(request))
        return web.Response(status=204)

    # ------------------------------------------------------------------ comments

    async def comments(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        view = self.request_memo_view(request)
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 5000, 0, 5000)
        expand = set(self._list_param(request, "expand") or [])
        rows = list(issue.comments)
        if request.query.get("orderBy") == "-created":
            rows.reverse()
        page = rows[start : start + size]
        out = []
        for c in page:
            row = view.comment(issue, c, rendered="renderedBody" in expand)
            if "properties" in expand:
                row = {**row, "properties": [{"key": k, "value": v} for k, v in c.properties.items()]}
            out.append(row)
        return json_response({"startAt": start, "maxResults": size, "total": len(rows), "comments": out})

    async def add_comment(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        comment = self.site.add_comment(
            self.actor(request), issue, await self.body(request), self.api(request)
        )
        return json_response(self.view(request).comment(issue, comment), status=201)

    async def comment(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        comment = self.site.get_comment(issue, request.match_info["id"])
        expand = set(self._list_param(request, "expand") or [])
        return json_response(self.view(request).comment(issue, comment, rendered="renderedBody" in expand))

    async def update_comment(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        comment = self.site.get_comment(issue, request.match_info["id"])
        actor = self.actor(request)
        if comment.author != actor.key and "jira-administrators" not in actor.groups:
            raise JiraApiError(403, ["You do not have the permission to edit this comment."])
        self.site.update_comment(actor, issue, comment, await self.body(request), self.api(request))
        return json_response(self.view(request).comment(issue, comment))

    async def delete_comment(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        comment = self.site.get_comment(issue, request.match_info["id"])
        actor = self.actor(request)
        if comment.author != actor.key and "jira-administrators" not in actor.groups:
            raise JiraApiError(403, ["You do not have the permission to delete this comment."])
        self.site.delete_comment(actor, issue, comment)
        return web.Response(status=204)

    # ------------------------------------------------------------------ entity properties

    @staticmethod
    def _property_keys(view: View, base: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"keys": [{"self": view.rest(f"{base}/properties/{k}"), "key": k} for k in props]}

    async def _read_property_value(self, request: web.Request) -> Any:
        raw = await request.read()
        if len(raw) > 32768:
            raise JiraApiError(
                400, ["The property value is too long. The maximum allowed length is 32768 bytes."]
            )
        if not raw:
            raise JiraApiError(400, ["The property value must not be empty."])
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise JiraApiError(400, ["The property value must be valid JSON."]) from err

    async def issue_property_keys(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        return json_response(self._property_keys(self.view(request), f"issue/{issue.key}", issue.properties))

    async def issue_property(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        key = request.match_info["prop"]
        if key not in issue.properties:
            raise JiraApiError(404, [f"The property with key '{key}' does not exist."])
        return json_response({"key": key, "value": issue.properties[key]})

    async def set_issue_property(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        key = request.match_info["prop"]
        check_property_key(key)
        value = await self._read_property_value(request)
        existed = key in issue.properties
        issue.properties[key] = value
        return web.Response(status=200 if existed else 201)

    async def delete_issue_property(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        key = request.match_info["prop"]
        if issue.properties.pop(key, None) is None:
            raise JiraApiError(404, [f"The property with key '{key}' does not exist."])
        return web.Response(status=204)

    async def comment_property_keys(self, request: web.Request) -> web.StreamResponse:
        _, comment = self.site.find_comment(request.match_info["id"])
        return json_response(
            self._property_keys(self.view(request), f"comment/{comment.id}", comment.properties)
        )

    async def comment_property(self, request: web.Request) -> web.StreamResponse:
        _, comment = self.site.find_comment(request.match_info["id"])
        key = request.match_info["prop"]
        if key not in comment.properties:
            raise JiraApiError(404, [f"The property with key '{key}' does not exist."])
        return json_response({"key": key, "value": comment.properties[key]})

    async def set_comment_property(self, request: web.Request) -> web.StreamResponse:
        issue, comment = self.site.find_comment(request.match_info["id"])
        key = request.match_info["prop"]
        check_property_key(key)
        value = await self._read_property_value(request)
        existed = key in comment.properties
        comment.properties[key] = value
        issue.updated = now()
        return web.Response(status=200 if existed else 201)

    async def delete_comment_property(self, request: web.Request) -> web.StreamResponse:
        _, comment = self.site.find_comment(request.match_info["id"])
        key = request.match_info["prop"]
        if comment.properties.pop(key, None) is None:
            raise JiraApiError(404, [f"The property with key '{key}' does not exist."])
        return web.Response(status=204)

    # ------------------------------------------------------------------ remote links

    def _remote_link(self, view: View, issue: Issue, link: RemoteLink) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": int(link.id),
            "self": view.rest(f"issue/{issue.key}/remotelink/{link.id}"),
            "object": link.object,
        }
        if link.global_id is not None:
            out["globalId"] = link.global_id
        if link.relationship is not None:
            out["relationship"] = link.relationship
        return out

    async def remote_links(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        view = self.view(request)
        links = issue.remote_links
        gid = request.query.get("globalId")
        if gid is not None:
            found = [lk for lk in links if lk.global_id == gid]
            if not found:
                raise JiraApiError(404, ["No remote link with the given globalId exists."])
            return json_response(self._remote_link(view, issue, found[0]))
        # The spec declares a single object; real Jira returns a list (the recordings and clients agree).
        return json_response([self._remote_link(view, issue, lk) for lk in links])

    def _link_fields(self, body: Any) -> tuple[str | None, str | None, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
            raise JiraApiError(400, [], {"object": "'object' is required."})
        obj = body["object"]
        if not isinstance(obj.get("url"), str) or not obj["url"]:
            raise JiraApiError(400, [], {"url": "'url' is required."})
        if not isinstance(obj.get("title"), str) or not obj["title"]:
            raise JiraApiError(400, [], {"title": "'title' is required."})
        gid = body.get("globalId")
        rel = body.get("relationship")
        return (str(gid) if gid is not None else None, str(rel) if rel is not None else None, obj)

    async def add_remote_link(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        gid, rel, obj = self._link_fields(await self.body(request))
        view = self.view(request)
        existing = next((lk for lk in issue.remote_links if gid is not None and lk.global_id == gid), None)
        if existing is not None:
            existing.relationship, existing.object = rel, obj
            link, status = existing, 200
        else:
            link = RemoteLink(
                id=self.state.next_id("remotelink"), global_id=gid, relationship=rel, object=obj
            )
            issue.remote_links.append(link)
            status = 201
        issue.updated = now()
        return json_response(
            {"id": int(link.id), "self": view.rest(f"issue/{issue.key}/remotelink/{link.id}")}, status=status
        )

    def _link_or_404(self, issue: Issue, link_id: str) -> RemoteLink:
        link = next((lk for lk in issue.remote_links if lk.id == link_id), None)
        if link is None:
            raise JiraApiError(404, [f"No remote link with id '{link_id}' exists on this issue."])
        return link

    async def remote_link(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        link = self._link_or_404(issue, request.match_info["id"])
        return json_response(self._remote_link(self.view(request), issue, link))

    async def update_remote_link(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        link = self._link_or_404(issue, request.match_info["id"])
        gid, rel, obj = self._link_fields(await self.body(request))
        link.global_id, link.relationship, link.object = gid, rel, obj
        issue.updated = now()
        return web.Response(status=204)

    async def delete_remote_link(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        link = self._link_or_404(issue, request.match_info["id"])
        issue.remote_links.remove(link)
        return web.Response(status=204)

    async def delete_remote_link_by_global_id(self, request: web.Request) -> web.StreamResponse:
        issue = self.issue_or_404(request)
        gid = request.query.get("globalId")
        if not gid:
            raise JiraApiError(400, ["The globalId query parameter is required."])
        before = len(issue.remote_links)
        issue.remote_links = [lk for lk in issue.remote_links if lk.global_id != gid]
        if len(issue.remote_links) == before:
            raise JiraApiError(404, ["No remote link with the given globalId exists."])
        return web.Response(status=204)

    # ------------------------------------------------------------------ attachments

    async def add_attachments(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("X-Atlassian-Token", "")
        if token.lower() not in ("no-check", "nocheck"):
            return web.Response(status=403, text="XSRF check failed", content_type="text/plain")
        issue = self.issue_or_404(request)
        if not request.content_type.startswith("multipart/"):
            raise JiraApiError(
                415, ["Attachments must be uploaded as multipart/form-data with a 'file' part."]
            )
        try:
            files = await self._read_files(request)
        except (ValueError, AssertionError, RuntimeError) as err:  # malformed multipart from outside
            raise JiraApiError(400, [f"The multipart body could not be read: {err}"]) from err
        if not files:
            raise JiraApiError(400, ["No file was attached: send a multipart part named 'file'."])
        view = self.view(request)
        out = []
        for filename, data, ctype in files:
            rec = self.site.add_attachment(self.actor(request), issue, filename, data, ctype)
            out.append(view.attachment(rec))
        return json_response(out)

    @staticmethod
    async def _read_files(request: web.Request) -> list[tuple[str, bytes, str]]:
        reader = await request.multipart()
        files: list[tuple[str, bytes, str]] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            filename = part.filename or "attachment"
            data = await part.read(decode=False)
            ctype = part.headers.get("Content-Type") or ""
            if not ctype or ctype == "application/octet-stream":
                ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            files.append((filename, bytes(data), ctype))
        return files

    def _attachment_or_404(self, request: web.Request) -> Any:
        rec = self.state.attachments.get(request.match_info["id"])
        if rec is None:
            raise JiraApiError(404, [f"The attachment with id '{request.match_info['id']}' does not exist"])
        return rec

    async def attachment(self, request: web.Request) -> web.StreamResponse:
        meta = self.view(request).attachment(self._attachment_or_404(request))
        meta["id"] = int(
            meta["id"]
        )  # AttachmentMetadata.id is an integer, unlike the issue's attachment list
        return json_response(meta)

    async def delete_attachment(self, request: web.Request) -> web.StreamResponse:
        rec = self._attachment_or_404(request)
        self.site.delete_attachment(self.actor(request), rec)
        return web.Response(status=204)

    async def attachment_content(self, request: web.Request) -> web.StreamResponse:
        rec = self._attachment_or_404(request)
        if "filename" in request.match_info and request.match_info["filename"] != rec.filename:
            raise JiraApiError(404, [f"The attachment with id '{rec.id}' does not exist"])
        etag = hashlib.sha256(rec.content).hexdigest()[:32]
        return web.Response(
            body=rec.content,
            content_type=rec.mime_type,
            headers={"Content-Disposition": f'attachment; filename="{rec.filename}"', "ETag": f'"{etag}"'},
        )

    # ------------------------------------------------------------------ search

    async def _search_args(self, request: web.Request) -> dict[str, Any]:
        if request.method == "POST":
            body = await self.body(request)
            if not isinstance(body, dict):
                raise JiraApiError(400, ["The request body must be a JSON object."])
            return body
        q = request.query
        args: dict[str, Any] = {k: q[k] for k in ("jql", "startAt", "maxResults", "nextPageToken") if k in q}
        for name in ("fields", "expand", "properties"):
            lst = self._list_param(request, name)
            if lst is not None:
                args[name] = lst
        return args

    @staticmethod
    def _as_list(value: Any) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            return [v for v in value.split(",") if v]
        if isinstance(value, list):
            return [str(v) for v in value]
        raise JiraApiError(400, ["fields/expand/properties must be a list or a comma-separated string."])

    @staticmethod
    def _as_int(value: Any, name: str, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as err:
            raise JiraApiError(400, [f"The '{name}' parameter must be an integer: '{value}'."]) from err

    def _matching(self, request: web.Request, jql: Any) -> tuple[list[Issue], View]:
        """The issues ``jql`` matches and the view to render them with. A search naming its issues by
        id or key (the node reading back what it just wrote, whose comments and users were rendered
        for their webhooks) reuses those renderings; a scan of the site renders each issue once,
        where a memo would only add its bookkeeping."""
        if jql is not None and not isinstance(jql, str):
            raise JiraApiError(400, ["The 'jql' parameter must be a string."])
        plain = plain_lookup(jql) if jql else None
        issues = run_search(self.state, self.cache, jql or "", self.actor(request), plain=plain)
        return issues, (self.view(request) if plain is None else self.request_memo_view(request))

    async def search(self, request: web.Request) -> web.StreamResponse:
        args = await self._search_args(request)
        start = max(0, self._as_int(args.get("startAt"), "startAt", 0))
        size = min(max(0, self._as_int(args.get("maxResults"), "maxResults", 50)), MAX_RESULTS)
        fields = self._as_list(args.get("fields")) or ["*navigable"]
        expand = set(self._as_list(args.get("expand")) or [])
        props = self._as_list(args.get("properties"))
        issues, view = self._matching(request, args.get("jql"))
        page = issues[start : start + size]
        return json_response(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(issues),
                "issues": [view.issue(i, fields=fields, expand=expand, properties=props) for i in page],
            }
        )

    async def search_jql(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        args = await self._search_args(request)
        jql = args.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            # Cloud refuses unbounded queries on this endpoint.
            raise JiraApiError(
                400,
                ["Unbounded JQL queries are not allowed here. Add a search restriction to your query."],
            )
        size = min(max(1, self._as_int(args.get("maxResults"), "maxResults", 50)), 5000)
        token = args.get("nextPageToken")
        start = self._decode_token(token, jql) if token else 0
        fields = self._as_list(args.get("fields")) or ["id"]
        expand = set(self._as_list(args.get("expand")) or [])
        props = self._as_list(args.get("properties"))
        issues, view = self._matching(request, jql)
        page = issues[start : start + size]

        def rows() -> Iterator[dict[str, Any]]:
            for i in page:
                yield (
                    {"id": i.id}
                    if fields == ["id"]
                    else view.issue(i, fields=fields, expand=expand, properties=props)
                )

        out: dict[str, Any] = {"issues": [], "isLast": start + size >= len(issues)}
        if not out["isLast"]:
            out["nextPageToken"] = self._encode_token(start + size, jql)
        body = encode_rows(out, "issues", rows())
        if body is None:  # a row orjson alone cannot write: the whole answer the usual way
            out["issues"] = list(rows())
            return json_response(out)
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    @staticmethod
    def _encode_token(offset: int, jql: str) -> str:
        digest = hashlib.sha1(jql.encode()).hexdigest()[:12]
        return base64.urlsafe_b64encode(json.dumps([offset, digest]).encode()).decode().rstrip("=")

    @staticmethod
    def _decode_token(token: Any, jql: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4))
            offset, digest = json.loads(raw)
            if (
                digest != hashlib.sha1(jql.encode()).hexdigest()[:12]
                or not isinstance(offset, int)
                or offset < 0
            ):
                raise ValueError("token does not belong to this query")
            return offset
        except (ValueError, TypeError, binascii.Error) as err:
            raise JiraApiError(400, ["The provided next page token is invalid or expired."]) from err

    async def jql_parse(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("queries"), list):
            raise JiraApiError(400, [], {"queries": "The 'queries' list is required."})
        queries = body["queries"]
        if not all(isinstance(q, str) for q in queries):
            raise JiraApiError(400, [], {"queries": "Every query must be a string."})
        validation = request.query.get("validation", "strict")
        if validation not in ("strict", "warn", "none"):
            raise JiraApiError(400, ["validation must be one of strict, warn, none"])
        mode = cast(Literal["strict", "warn", "none"], validation)
        parsed = [parse_structure(q, self.state, mode) for q in queries]
        return json_response({"queries": parsed})

    # ------------------------------------------------------------------ webhooks (legacy 1.0)

    def _webhook_json(self, request: web.Request, hook: Webhook) -> dict[str, Any]:
        base = f"{request.scheme}://{request.host}"
        return {
            "self": f"{base}/rest/webhooks/1.0/webhook/{hook.id}",
            "name": hook.name,
            "url": hook.url,
            "events": list(hook.events),
            "filters": {"issue-related-events-section": hook.jql or ""},
            "excludeBody": hook.exclude_body,
            "enabled": hook.enabled,
            "lastUpdated": int(hook.created.timestamp() * 1000),
            "lastUpdatedUser": hook.owner,
        }

    def _webhook_fields(self, body: Any) -> tuple[str, str, list[str], str | None, bool, bool]:
        if not isinstance(body, dict):
            raise JiraApiError(400, ["The request body must be a JSON object."])
        url, name, events = body.get("url"), body.get("name") or "webhook", body.get("events")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise JiraApiError(400, [], {"url": "A valid http(s) URL is required."})
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise JiraApiError(400, [], {"events": "At least one event is required."})
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise JiraApiError(400, [], {"events": f"Unsupported event(s): {', '.join(unknown)}"})
        filters = body.get("filters") or {}
        jql = filters.get("issue-related-events-section") if isinstance(filters, dict) else None
        if jql:
            compile_jql(str(jql))
        return (
            url,
            str(name),
            list(events),
            str(jql) if jql else None,
            bool(body.get("excludeBody")),
            body.get("enabled", True) is not False,
        )

    async def webhooks(self, request: web.Request) -> web.StreamResponse:
        hooks = [h for h in self.state.webhooks.values() if not h.dynamic]
        return json_response([self._webhook_json(request, h) for h in hooks])

    async def register_webhook(self, request: web.Request) -> web.StreamResponse:
        url, name, events, jql, exclude, enabled = self._webhook_fields(await self.body(request))
        hook = Webhook(
            id=self.state.next_id("webhook", 1),
            name=name,
            url=url,
            events=events,
            jql=jql,
            exclude_body=exclude,
            enabled=enabled,
            created=now(),
            owner=self.actor(request).key,
        )
        self.state.webhooks[hook.id] = hook
        return json_response(self._webhook_json(request, hook), status=201)

    def _hook_or_404(self, request: web.Request) -> Webhook:
        hook = self.state.webhooks.get(request.match_info["id"])
        if hook is None or hook.dynamic:
            raise JiraApiError(404, [f"Webhook with id {request.match_info['id']} does not exist."])
        return hook

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._webhook_json(request, self._hook_or_404(request)))

    async def update_webhook(self, request: web.Request) -> web.StreamResponse:
        hook = self._hook_or_404(request)
        url, name, events, jql, exclude, enabled = self._webhook_fields(await self.body(request))
        hook.url, hook.name, hook.events, hook.jql, hook.exclude_body, hook.enabled = (
            url,
            name,
            events,
            jql,
            exclude,
            enabled,
        )
        return json_response(self._webhook_json(request, hook))

    async def delete_webhook(self, request: web.Request) -> web.StreamResponse:
        hook = self._hook_or_404(request)
        del self.state.webhooks[hook.id]
        return web.Response(status=204)

    # ------------------------------------------------------------------ webhooks (Cloud dynamic)

    async def dynamic_webhooks(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        hooks = [h for h in self.state.webhooks.values() if h.dynamic]
        start = self.int_param(request, "startAt", 0)
        size = self.int_param(request, "maxResults", 100, 1, 100)
        return json_response(page_bean(hooks, start, size, _dynamic_webhook_json))

    async def register_dynamic_webhooks(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        body = await self.body(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("url"), str)
            or not isinstance(body.get("webhooks"), list)
        ):
            raise JiraApiError(400, ["'url' and 'webhooks' are required."])
        results: list[dict[str, Any]] = []
        for spec in body["webhooks"]:
            try:
                if not isinstance(spec, dict):
                    raise JiraApiError(400, ["Each webhook must be an object."])
                _, _, events, _, _, _ = self._webhook_fields(
                    {"url": body["url"], "events": spec.get("events"), "name": "dynamic"}
                )
                jql = spec.get("jqlFilter")
                if not isinstance(jql, str) or not jql.strip():
                    raise JiraApiError(400, ["The JQL filter is required."])
                compile_jql(jql)
            except JiraApiError as err:
                results.append({"errors": err.messages + list(err.errors.values())})
                continue
            hook = Webhook(
                id=self.state.next_id("webhook", 1),
                name="dynamic",
                url=body["url"],
                events=events,
                jql=jql,
                dynamic=True,
                created=now(),
                expires=now() + dt.timedelta(days=30),
                owner=self.actor(request).key,
            )
            self.state.webhooks[hook.id] = hook
            results.append({"createdWebhookId": int(hook.id)})
        return json_response({"webhookRegistrationResult": results})

    def _dynamic_ids(self, body: Any) -> list[str]:
        if not isinstance(body, dict) or not isinstance(body.get("webhookIds"), list):
            raise JiraApiError(400, [], {"webhookIds": "The list of webhook ids is required."})
        return [str(i) for i in body["webhookIds"]]

    async def delete_dynamic_webhooks(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        for wid in self._dynamic_ids(await self.body(request)):
            hook = self.state.webhooks.get(wid)
            if hook is not None and hook.dynamic:
                del self.state.webhooks[wid]
        return web.Response(status=202)

    async def refresh_dynamic_webhooks(self, request: web.Request) -> web.StreamResponse:
        self.cloud_only(request)
        expires = now() + dt.timedelta(days=30)
        for wid in self._dynamic_ids(await self.body(request)):
            hook = self.state.webhooks.get(wid)
            if hook is not None and hook.dynamic:
                hook.expires = expires
        return json_response({"expirationDate": int(expires.timestamp() * 1000)})

    # ------------------------------------------------------------------ control API

    async def _ctl_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as err:
            raise JiraApiError(400, [f"control API: the body must be JSON: {err}"]) from err
        if not isinstance(body, dict):
            raise JiraApiError(400, ["control API: the body must be a JSON object"])
        return body

    async def ctl_set_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            self.faults = Faults.from_spec(await self._ctl_body(request))
        except FaultSpecError as err:
            raise JiraApiError(400, [str(err)]) from err
        return json_response(self.faults.as_dict())

    async def ctl_clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults = Faults()
        return web.Response(status=204)

    async def ctl_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.Response(status=204)

    def reset(self) -> None:
        fresh = new_state(self.state.mode, user=self.admin, password=self.password)
        for name in EmulatorState.model_fields:
            setattr(self.state, name, getattr(fresh, name))
        self.cache.clear()
        self.render_memos.clear()
        self.faults = Faults()
        self.stats = Stats()

    async def ctl_add_user(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise JiraApiError(400, [], {"name": "A username is required."})
        groups = body.get("groups")
        if groups is not None and (
            not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)
        ):
            raise JiraApiError(400, [], {"groups": "groups must be a list of names"})
        try:
            user = self.state.add_user(
                name,
                password=str(body["password"]) if body.get("password") is not None else None,
                display_name=str(body["displayName"]) if body.get("displayName") else None,
                email=str(body["email"]) if body.get("email") else None,
                groups=groups,
            )
        except StateError as err:
            raise JiraApiError(400, [str(err)]) from err
        return json_response(self.view(request, 2).user(user, full=True), status=201)

    async def ctl_add_project(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        try:
            project = self.state.add_project(
                str(body.get("key") or ""),
                str(body["name"]) if body.get("name") else None,
                lead=str(body["lead"]) if body.get("lead") else None,
                workflow=str(body.get("workflow") or "simple"),
                project_type=str(body.get("projectTypeKey") or "software"),
                components=[str(c) for c in body.get("components") or []],
                versions=[str(v) for v in body.get("versions") or []],
            )
        except StateError as err:
            raise JiraApiError(400, [str(err)]) from err
        return json_response(self.view(request, 2).project(project), status=201)

    async def ctl_add_field(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        kind = body.get("kind")
        if kind not in CUSTOM_KINDS:
            raise JiraApiError(400, [], {"kind": "kind must be one of " + ", ".join(CUSTOM_KINDS)})
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise JiraApiError(400, [], {"name": "A field name is required."})
        options = body.get("options") or []
        if not isinstance(options, list):
            raise JiraApiError(400, [], {"options": "options must be a list of strings"})
        try:
            field = self.state.add_custom_field(name, kind, options=[str(o) for o in options])
        except StateError as err:
            raise JiraApiError(400, [str(err)]) from err
        return json_response(
            {
                "id": field.id,
                "name": field.name,
                "kind": field.kind,
                "options": [o.model_dump() for o in field.options],
            },
            status=201,
        )

    async def ctl_workflows(self, request: web.Request) -> web.StreamResponse:
        return json_response({name: self._workflow_json(w) for name, w in self.state.workflows.items()})

    def _workflow_json(self, wf: Workflow) -> dict[str, Any]:
        st = self.state.statuses
        return {
            "name": wf.name,
            "initial": st[wf.initial].name,
            "statuses": [{"id": s, "name": st[s].name, "category": st[s].category} for s in wf.statuses],
            "transitions": [
                {"id": t.id, "name": t.name, "from": [st[s].name for s in t.sources], "to": st[t.to].name}
                for t in wf.transitions
            ],
        }

    async def ctl_add_workflow(self, request: web.Request) -> web.StreamResponse:
        """``{name, statuses: [{name, category}], initial?, transitions: [{name, from: [..], to, id?}]}``."""
        body = await self._ctl_body(request)
        name = body.get("name")
        statuses = body.get("statuses")
        transitions = body.get("transitions")
        if not isinstance(name, str) or not name:
            raise JiraApiError(400, [], {"name": "A workflow name is required."})
        if not isinstance(statuses, list) or not statuses or not isinstance(transitions, list):
            raise JiraApiError(400, [], {"statuses": "statuses and transitions must be lists"})
        ids: dict[str, str] = {}
        for spec in statuses:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise JiraApiError(400, [], {"statuses": "each status needs a name"})
            category = spec.get("category", "indeterminate")
            if category not in ("new", "indeterminate", "done"):
                raise JiraApiError(400, [], {"statuses": "category must be new, indeterminate or done"})
            ids[spec["name"].lower()] = self.state.add_status(spec["name"], category).id

        def sid(ref: Any) -> str:
            if not isinstance(ref, str) or ref.lower() not in ids:
                raise JiraApiError(400, [], {"transitions": f"unknown status '{ref}' (list it in statuses)"})
            return ids[ref.lower()]

        rows = []
        for n, spec in enumerate(transitions):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise JiraApiError(400, [], {"transitions": "each transition needs a name"})
            sources = spec.get("from") or []
            if not isinstance(sources, list):
                raise JiraApiError(400, [], {"transitions": "'from' must be a list of status names"})
            rows.append(
                WorkflowTransition(
                    id=str(spec.get("id") or (n + 1) * 10 + 1),
                    name=spec["name"],
                    to=sid(spec.get("to")),
                    sources=[sid(s) for s in sources],
                )
            )
        initial = sid(body.get("initial") or statuses[0]["name"])
        wf = Workflow(
            name=name, initial=initial, statuses=list(dict.fromkeys(ids.values())), transitions=rows
        )
        self.state.add_workflow(wf)
        return json_response(self._workflow_json(wf), status=201)

    async def ctl_assign_workflow(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        try:
            self.state.assign_workflow(request.match_info["key"], str(body.get("workflow")))
        except StateError as err:
            raise JiraApiError(400, [str(err)]) from err
        return web.Response(status=204)


__all__ = ["NOT_FOUND", "CustomField", "JiraApp", "Option"]


def _dynamic_webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": int(hook.id),
        "jqlFilter": hook.jql or "",
        "events": hook.events,
        "url": hook.url,
        "expirationDate": int(hook.expires.timestamp() * 1000) if hook.expires else None,
    }
