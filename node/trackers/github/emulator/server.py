"""The GitHub emulator's HTTP surface: the REST v3 paths Tandem and PyGithub use (served both at
the root, like api.github.com, and under ``/api/v3``, like GitHub Enterprise Server), repository
webhooks, and the ``/_emulator`` control API used by tests and benchmarks.

Request handling order for API paths: stats → latency → authentication (``Authorization: Bearer``
or ``token``) → primary rate limit → secondary limit → injected errors → handler → ETag / 304 →
``x-ratelimit-*`` headers. Failures are answered with GitHub's error body
(``{"message", "documentation_url", "status", "errors"?}``); an unexpected exception becomes a 500
with a generic message and is logged, never sent to the client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from node.trackers.common.emulator import EmulatorApp

from .faults import Faults, FaultSpecError, Stats
from .hooks import Delivery, HookDispatcher
from .state import Comment, GitHubState, Hook, Issue, IssueEvent, Repo, StateError, User, invalid
from .views import View

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DOCS = "https://docs.github.com/rest"
API_PREFIXES = ("", "/api/v3")
HOOK_EVENTS = frozenset(
    {"*", "issues", "issue_comment", "label", "milestone", "push", "pull_request", "ping", "repository"}
)
ISSUE_STATE_REASONS = frozenset({"completed", "not_planned", "reopened", "duplicate"})

USER_KEY: web.RequestKey[User] = web.RequestKey("github_user", User)
PREFIX_KEY: web.RequestKey[str] = web.RequestKey("github_prefix", str)


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def gh_error(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status)


def _parse_time(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"Invalid value for '{field}': {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class GitHubApp(EmulatorApp):
    """Owns the state, faults, stats and webhook delivery for one emulated GitHub."""

    faults: Faults
    stats: Stats
    dispatcher: HookDispatcher

    def __init__(self, state: GitHubState) -> None:
        self.state = state
        self.faults = Faults()
        self.stats = Stats()
        self.dispatcher = HookDispatcher()
        self.base_url = ""
        self.initial_user: tuple[str, str, str] | None = None  # (login, token, name) restored by reset

    # ------------------------------------------------------------------ wiring

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        r = "/repos/{owner}/{repo}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/user", self.get_viewer),
            ("GET", r"/user/{account_id:\d+}", self.get_user_by_id),
            ("GET", "/user/repos", self.list_viewer_repos),
            ("POST", "/user/repos", self.create_user_repo),
            ("GET", "/users/{username}", self.get_user),
            ("POST", "/orgs/{org}/repos", self.create_org_repo),
            ("GET", "/search/users", self.search_users),
            ("GET", "/rate_limit", self.rate_limit),
            ("GET", r, self.get_repo),
            ("GET", f"{r}/issues", self.list_issues),
            ("POST", f"{r}/issues", self.create_issue),
            ("GET", f"{r}/issues/comments", self.list_repo_comments),
            ("GET", f"{r}/issues/comments/{{comment_id:\\d+}}", self.get_comment),
            ("PATCH", f"{r}/issues/comments/{{comment_id:\\d+}}", self.edit_comment),
            ("DELETE", f"{r}/issues/comments/{{comment_id:\\d+}}", self.delete_comment),
            ("GET", f"{r}/issues/{{number:\\d+}}", self.get_issue),
            ("PATCH", f"{r}/issues/{{number:\\d+}}", self.edit_issue),
            ("GET", f"{r}/issues/{{number:\\d+}}/comments", self.list_comments),
            ("POST", f"{r}/issues/{{number:\\d+}}/comments", self.create_comment),
            ("GET", f"{r}/issues/{{number:\\d+}}/events", self.list_events),
            ("GET", f"{r}/issues/{{number:\\d+}}/labels", self.issue_labels),
            ("POST", f"{r}/issues/{{number:\\d+}}/labels", self.add_issue_labels),
            ("PUT", f"{r}/issues/{{number:\\d+}}/labels", self.set_issue_labels),
            ("DELETE", f"{r}/issues/{{number:\\d+}}/labels", self.clear_issue_labels),
            ("DELETE", f"{r}/issues/{{number:\\d+}}/labels/{{name}}", self.remove_issue_label),
            ("POST", f"{r}/issues/{{number:\\d+}}/assignees", self.add_assignees),
            ("DELETE", f"{r}/issues/{{number:\\d+}}/assignees", self.remove_assignees),
            ("GET", f"{r}/assignees", self.list_assignees),
            ("GET", f"{r}/labels", self.list_labels),
            ("POST", f"{r}/labels", self.create_label),
            ("GET", f"{r}/labels/{{name}}", self.get_label),
            ("DELETE", f"{r}/labels/{{name}}", self.delete_label),
            ("GET", f"{r}/milestones", self.list_milestones),
            ("POST", f"{r}/milestones", self.create_milestone),
            ("GET", f"{r}/milestones/{{number:\\d+}}", self.get_milestone),
            ("GET", f"{r}/hooks", self.list_hooks),
            ("POST", f"{r}/hooks", self.create_hook),
            ("GET", f"{r}/hooks/{{hook_id:\\d+}}", self.get_hook),
            ("DELETE", f"{r}/hooks/{{hook_id:\\d+}}", self.delete_hook),
        ]
        for prefix in API_PREFIXES:
            for method, path, handler in routes:
                app.router.add_route(method, prefix + path, _with_prefix(prefix, handler))
        control: list[tuple[str, str, Handler]] = [
            ("GET", "/_emulator/stats", self.ctl_stats),
            ("GET", "/_emulator/faults", self.ctl_get_faults),
            ("POST", "/_emulator/faults", self.ctl_set_faults),
            ("DELETE", "/_emulator/faults", self.ctl_clear_faults),
            ("POST", "/_emulator/reset", self.ctl_reset),
            ("POST", "/_emulator/users", self.ctl_add_user),
            ("POST", "/_emulator/orgs", self.ctl_add_org),
            ("POST", "/_emulator/repos/{owner}/{repo}/pulls", self.ctl_add_pull),
            ("GET", "/_emulator/webhooks", self.ctl_webhooks),
        ]
        for method, path, handler in control:
            app.router.add_route(method, path, handler)
        return app

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator"):
            try:
                return await handler(request)
            except (StateError, FaultSpecError, ApiError) as err:
                status = getattr(err, "status", 400)
                return web.json_response({"message": str(err)}, status=status if status >= 400 else 400)
        resource = request.match_info.route.resource
        self.stats.count(f"{request.method} {resource.canonical if resource is not None else '(unmatched)'}")
        try:
            response = await self._handle(request, handler)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                response = gh_error(exc.status, "Not Found" if exc.status == 404 else "Method Not Allowed")
            else:
                raise
        except ApiError as err:
            response = gh_error(err.status, err.message, err.errors)
        except StateError as err:
            response = gh_error(err.status, str(err), err.errors or None)
        except Exception:
            log.exception("emulator handler failed for %s %s", request.method, request.path)
            response = gh_error(500, "Server Error")
        self.stats.status(response.status)
        response.headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        response.headers.setdefault("X-GitHub-Api-Version-Selected", "2022-11-28")
        response.headers.setdefault(
            "X-GitHub-Request-Id", hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:20]
        )
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        user = self._authenticate(request)
        if user is None:
            has_auth = bool(request.headers.get("Authorization"))
            return gh_error(401, "Bad credentials" if has_auth else "Requires authentication")
        request[USER_KEY] = user
        bucket = faults.bucket(user.login.lower())

        def rate_headers(resp: web.StreamResponse) -> web.StreamResponse:
            resp.headers["x-ratelimit-limit"] = str(faults.limit)
            resp.headers["x-ratelimit-remaining"] = str(max(0, faults.limit - bucket.used))
            resp.headers["x-ratelimit-used"] = str(bucket.used)
            resp.headers["x-ratelimit-reset"] = str(int(bucket.reset + 0.999))
            resp.headers["x-ratelimit-resource"] = "core"
            return resp

        if bucket.used >= faults.limit:
            self.stats.rate_limited += 1
            return rate_headers(
                gh_error(
                    403,
                    f"API rate limit exceeded for user ID {user.id}. If you reach out to GitHub Support "
                    "for help, please include the request ID.",
                )
            )
        retry = faults.secondary_limited()
        if retry is not None:
            self.stats.secondary_limited += 1
            bucket.used += 1
            resp = gh_error(
                faults.secondary_status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            )
            resp.headers["retry-after"] = str(int(retry) if retry == int(retry) else retry)
            return rate_headers(resp)
        if faults.should_fail():
            self.stats.injected_errors += 1
            bucket.used += 1
            return rate_headers(gh_error(faults.status, "Injected fault (emulator)."))
        response = await handler(request)
        if request.method == "GET" and response.status == 200 and isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            etag = 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'
            response.headers["ETag"] = etag
            if _etag_matches(request.headers.get("If-None-Match"), etag):
                self.stats.not_modified += 1
                not_modified = web.Response(status=304, headers={"ETag": etag})
                return rate_headers(not_modified)  # a 304 costs no rate limit
        bucket.used += 1
        return rate_headers(response)

    def _authenticate(self, request: web.Request) -> User | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return self.state.user_by_token(value.strip())
        return None

    # ------------------------------------------------------------------ helpers

    def view(self, request: web.Request) -> View:
        origin = f"{request.scheme}://{request.host}"
        return View(self.state, origin + request.get(PREFIX_KEY, ""), origin)

    def _repo(self, request: web.Request) -> Repo:
        return self.state.repo(request.match_info["owner"], request.match_info["repo"])

    def _issue(self, request: web.Request, repo: Repo) -> Issue:
        return self.state.issue(repo, int(request.match_info["number"]))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Problems parsing JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Body should be a JSON object")
        return body

    def _page(self, request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """GitHub pagination: ``per_page`` (≤ 100, default 30), ``page`` (1-based), ``Link`` header."""
        try:
            per_page = int(request.query.get("per_page", "30"))
            page = int(request.query.get("page", "1"))
        except ValueError:
            raise ApiError(422, "per_page and page must be integers") from None
        per_page = min(max(per_page, 1), 100)
        page = max(page, 1)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def url(p: int) -> str:
            query = dict(request.query)
            query.update(page=str(p), per_page=str(per_page))
            return f"{request.scheme}://{request.host}{request.path}?{urlencode(query)}"

        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links = [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"', *links]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def _fire(self, repo: Repo, event: str, action: str, payload: Callable[[], dict[str, Any]]) -> None:
        """Queue ``event`` for every active hook of ``repo`` that wants it. The payload is built (once)
        for the first delivery queued: one that a full queue drops is counted and never rendered."""
        if not self.dispatcher.running:
            return
        body: bytes | None = None

        def delivery(hook: Hook) -> Delivery:
            nonlocal body
            if body is None:
                body = json.dumps(payload(), separators=(",", ":")).encode()
            return Delivery(hook, repo.id, event, action, body)

        for hook in repo.hooks.values():
            if hook.active and {event, "*"} & set(hook.events):
                self.dispatcher.put_lazy(partial(delivery, hook))

    def _issue_event(self, request: web.Request, repo: Repo, issue: Issue, action: str, **extra: Any) -> None:
        self._record(request, issue, action, extra)
        if issue.is_pull_request or not repo.hooks:
            return

        def payload() -> dict[str, Any]:
            v = self.view(request)
            return {
                "action": action,
                "issue": v.issue(repo, issue, webhook=True),
                **extra,
                "repository": v.repo(repo),
                "sender": v.user(request[USER_KEY]),
            }

        self._fire(repo, "issues", action, payload)

    def _record(self, request: web.Request, issue: Issue, action: str, extra: dict[str, Any]) -> None:
        """Keep what ``/issues/{n}/events`` lists for a webhook action (edits of the body leave none)."""
        data: dict[str, Any] = {}
        event = action
        if action in ("labeled", "unlabeled"):
            label = extra.get("label") or {}
            data["label"] = {"name": label.get("name"), "color": label.get("color")}
        elif action in ("assigned", "unassigned"):
            data["assignee"] = (extra.get("assignee") or {}).get("login")
        elif action in ("milestoned", "demilestoned"):
            data["milestone"] = {"title": (extra.get("milestone") or {}).get("title")}
        elif action in ("closed", "reopened"):
            data["state_reason"] = issue.state_reason
        elif action == "edited" and "title" in (extra.get("changes") or {}):
            event = "renamed"
            data["rename"] = {"from": extra["changes"]["title"]["from"], "to": issue.title}
        else:
            return
        issue.events.append(
            IssueEvent(self.state.next_id(), request[USER_KEY].login, event, self.state.clock(), data)
        )

    async def list_events(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        chunk, headers = self._page(request, issue.events)
        v = self.view(request)
        return web.json_response([v.event(repo, e) for e in chunk], headers=headers)

    def _comment_event(
        self, request: web.Request, repo: Repo, issue: Issue, comment: Comment, action: str, **extra: Any
    ) -> None:
        if not repo.hooks:
            return

        def payload() -> dict[str, Any]:
            v = self.view(request)
            return {
                "action": action,
                "issue": v.issue(repo, issue, webhook=True),
                "comment": v.comment(repo, comment),
                **extra,
                "repository": v.repo(repo),
                "sender": v.user(request[USER_KEY]),
            }

        self._fire(repo, "issue_comment", action, payload)

    # ------------------------------------------------------------------ users

    async def get_viewer(self, request: web.Request) -> web.Response:
        return web.json_response(self.view(request).full_user(request[USER_KEY], private=True))

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.state.find_user(request.match_info["username"])
        if user is None:
            raise ApiError(404, "Not Found")
        return web.json_response(self.view(request).full_user(user, private=False))

    async def get_user_by_id(self, request: web.Request) -> web.Response:
        user = self.state.user_by_id(int(request.match_info["account_id"]))
        if user is None:
            raise ApiError(404, "Not Found")
        return web.json_response(self.view(request).full_user(user, private=False))

    async def search_users(self, request: web.Request) -> web.Response:
        """A small subset of user search: free text matched against login, name and email, narrowed
        by ``in:login`` / ``in:name`` / ``in:email`` (email matches must be exact, as on GitHub)."""
        q = request.query.get("q", "").strip()
        if not q:
            raise invalid("q", resource="Search", code="missing")
        try:
            terms = shlex.split(q)
        except ValueError:
            terms = q.split()
        scopes = {t[3:] for t in terms if t.startswith("in:")} or {"login", "name", "email"}
        needle = " ".join(t for t in terms if ":" not in t or "@" in t).lower()
        found = []
        for user in self.state.users.values():
            if not needle:
                break
            hit = ("login" in scopes and needle in user.login.lower()) or (
                "name" in scopes and user.name is not None and needle in user.name.lower()
            )
            hit = hit or ("email" in scopes and user.email is not None and needle == user.email.lower())
            if hit:
                found.append(user)
        v = self.view(request)
        items = [{**(v.user(u) or {}), "name": u.name, "email": u.email, "score": 1.0} for u in found]
        return web.json_response({"total_count": len(items), "incomplete_results": False, "items": items})

    async def rate_limit(self, request: web.Request) -> web.Response:
        bucket = self.faults.bucket(request[USER_KEY].login.lower())
        core = {
            "limit": self.faults.limit,
            "remaining": max(0, self.faults.limit - bucket.used),
            "reset": int(bucket.reset),
            "used": bucket.used,
        }
        search = {"limit": 30, "remaining": 30, "reset": int(time.time()) + 60, "used": 0}
        return web.json_response({"resources": {"core": core, "search": search}, "rate": core})

    # ------------------------------------------------------------------ repositories

    async def list_viewer_repos(self, request: web.Request) -> web.Response:
        me = request[USER_KEY].login.lower()
        repos = sorted(
            (r for r in self.state.repos.values() if r.owner.lower() == me), key=lambda r: r.full_name
        )
        chunk, headers = self._page(request, repos)
        v = self.view(request)
        return web.json_response([v.repo(r, viewer=request[USER_KEY]) for r in chunk], headers=headers)

    async def _create_repo(self, request: web.Request, owner: str) -> web.Response:
        body = await self._body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("name", resource="Repository", code="missing_field")
        description = body.get("description")
        repo = self.state.create_repo(
            owner,
            name,
            private=bool(body.get("private", False)),
            description=description if isinstance(description, str) else None,
            has_issues=bool(body.get("has_issues", True)),
        )
        v = self.view(request)
        return web.json_response(
            v.repo(repo, full=True, viewer=request[USER_KEY]),
            status=201,
            headers={"Location": f"{v.api}/repos/{repo.full_name}"},
        )

    async def create_user_repo(self, request: web.Request) -> web.Response:
        return await self._create_repo(request, request[USER_KEY].login)

    async def create_org_repo(self, request: web.Request) -> web.Response:
        org = self.state.find_user(request.match_info["org"])
        if org is None or org.type != "Organization":
            raise ApiError(404, "Not Found")
        return await self._create_repo(request, org.login)

    async def get_repo(self, request: web.Request) -> web.Response:
        return web.json_response(
            self.view(request).repo(self._repo(request), full=True, viewer=request[USER_KEY])
        )

    # ------------------------------------------------------------------ issues

    async def list_issues(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        q = request.query
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise invalid("state", value=state)
        issues: Iterable[Issue] = repo.issues.values()
        if state != "all":
            issues = (i for i in issues if i.state == state)
        if q.get("labels"):
            wanted = {n.strip().lower() for n in q["labels"].split(",") if n.strip()}
            issues = (i for i in issues if wanted <= {n.lower() for n in i.labels})
        if "since" in q:
            since = _parse_time(q["since"], "since")
            issues = (i for i in issues if i.updated_at >= since)
        if "creator" in q:
            creator = q["creator"].lower()
            issues = (i for i in issues if i.user.lower() == creator)
        if "assignee" in q:
            who = q["assignee"].lower()
            if who == "none":
                issues = (i for i in issues if not i.assignees)
            elif who == "*":
                issues = (i for i in issues if i.assignees)
            else:
                issues = (i for i in issues if who in {a.lower() for a in i.assignees})
        if "milestone" in q:
            ms = q["milestone"]
            if ms == "none":
                issues = (i for i in issues if i.milestone is None)
            elif ms == "*":
                issues = (i for i in issues if i.milestone is not None)
            elif ms.isdigit():
                issues = (i for i in issues if i.milestone == int(ms))
            else:
                raise invalid("milestone", value=ms)
        sort = q.get("sort", "created")
        direction = q.get("direction", "desc")
        if sort not in ("created", "updated", "comments"):
            raise invalid("sort", value=sort)
        if direction not in ("asc", "desc"):
            raise invalid("direction", value=direction)
        keys: dict[str, Callable[[Issue], Any]] = {
            "created": lambda i: (i.created_at, i.number),
            "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comment_ids), i.number),
        }
        ordered = sorted(issues, key=keys[sort], reverse=direction == "desc")
        chunk, headers = self._page(request, ordered)
        v = self.view(request)
        return web.json_response([v.issue(repo, i) for i in chunk], headers=headers)

    def _assignees(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise invalid("assignees")
        out: list[str] = []
        for login in value:
            user = self.state.find_user(login)
            if user is None or user.type != "User":
                raise invalid("assignees", value=login)
            if user.login not in out:
                out.append(user.login)
        if len(out) > 10:
            raise invalid("assignees", code="too_many")
        return out

    def _labels(self, repo: Repo, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid("labels")
        out: list[str] = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise invalid("labels")
            label = self.state.label(repo, name, create=True)  # GitHub creates unknown labels
            if label.name not in out:
                out.append(label.name)
        return out

    def _milestone(self, repo: Repo, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value not in repo.milestones:
            raise invalid("milestone", value=value)
        return value

    async def create_issue(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await self._body(request)
        title = body.get("title")
        if isinstance(title, int) and not isinstance(title, bool):
            title = str(title)
        if not isinstance(title, str) or not title.strip():
            raise invalid("title", code="missing_field")
        text = body.get("body")
        if text is not None and not isinstance(text, str):
            raise invalid("body")
        assignees_raw = body.get("assignees")
        if assignees_raw is None and isinstance(body.get("assignee"), str):
            assignees_raw = [body["assignee"]]
        assignees = self._assignees(assignees_raw)
        milestone = self._milestone(repo, body.get("milestone"))
        labels = self._labels(repo, body.get("labels"))
        issue = self.state.create_issue(repo, request[USER_KEY].login, title)
        issue.body = text
        issue.assignees = assignees
        issue.milestone = milestone
        issue.labels = labels
        self._issue_event(request, repo, issue, "opened")
        v = self.view(request)
        data = v.issue(repo, issue)
        return web.json_response(data, status=201, headers={"Location": data["url"]})

    async def get_issue(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        return web.json_response(self.view(request).issue(repo, self._issue(request, repo)))

    async def edit_issue(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        body = await self._body(request)
        user = request[USER_KEY]
        events: list[tuple[str, dict[str, Any]]] = []
        changes: dict[str, Any] = {}
        # validate everything before changing anything
        new_title: str | None = None
        if "title" in body:
            title = body["title"]
            if isinstance(title, int) and not isinstance(title, bool):
                title = str(title)
            if not isinstance(title, str) or not title.strip():
                raise invalid("title", code="missing_field")
            new_title = title
        if "body" in body and body["body"] is not None and not isinstance(body["body"], str):
            raise invalid("body")
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            raise invalid("state", value=state)
        reason = body.get("state_reason")
        if reason is not None and reason not in ISSUE_STATE_REASONS:
            raise invalid("state_reason", value=reason)
        new_assignees: list[str] | None = None
        if "assignees" in body:
            new_assignees = self._assignees(body["assignees"])
        elif "assignee" in body:
            new_assignees = self._assignees([body["assignee"]] if body["assignee"] else [])
        new_milestone = self._milestone(repo, body["milestone"]) if "milestone" in body else issue.milestone
        new_labels = self._labels(repo, body["labels"]) if "labels" in body else None

        if new_title is not None and new_title != issue.title:
            changes["title"] = {"from": issue.title}
            issue.title = new_title
        if "body" in body and body["body"] != issue.body:
            changes["body"] = {"from": issue.body or ""}
            issue.body = body["body"]
        if changes:
            events.append(("edited", {"changes": changes}))
        if new_labels is not None:
            before = {n.lower(): n for n in issue.labels}
            after = {n.lower(): n for n in new_labels}
            v = self.view(request)
            for low in after:
                if low not in before:
                    events.append(("labeled", {"label": v.label(repo, repo.labels[low])}))
            for low in before:
                if low not in after and low in repo.labels:
                    events.append(("unlabeled", {"label": v.label(repo, repo.labels[low])}))
            issue.labels = new_labels
        if new_assignees is not None:
            v = self.view(request)
            for login in new_assignees:
                if login not in issue.assignees:
                    events.append(("assigned", {"assignee": v.user(login)}))
            for login in issue.assignees:
                if login not in new_assignees:
                    events.append(("unassigned", {"assignee": v.user(login)}))
            issue.assignees = new_assignees
        if new_milestone != issue.milestone:
            v = self.view(request)
            if issue.milestone is not None:
                old = v.milestone(repo, repo.milestones.get(issue.milestone))
                events.append(("demilestoned", {"milestone": old}))
            issue.milestone = new_milestone
            if new_milestone is not None:
                events.append(
                    ("milestoned", {"milestone": v.milestone(repo, repo.milestones[new_milestone])})
                )
        now = self.state.clock()
        if state == "closed" and issue.state != "closed":
            issue.state = "closed"
            issue.state_reason = (
                reason if reason in ("completed", "not_planned", "duplicate") else "completed"
            )
            issue.closed_at = now
            issue.closed_by = user.login
            events.append(("closed", {}))
        elif state == "open" and issue.state != "open":
            issue.state = "open"
            issue.state_reason = "reopened"
            issue.closed_at = None
            events.append(("reopened", {}))
        elif reason is not None and issue.state == "closed" and reason != issue.state_reason:
            issue.state_reason = reason
            events.append(("edited", {"changes": {}}))
        if events:
            issue.updated_at = now
        for action, extra in events:
            self._issue_event(request, repo, issue, action, **extra)
        return web.json_response(self.view(request).issue(repo, issue))

    # ------------------------------------------------------------------ comments

    async def list_comments(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        comments = [self.state.comments[c] for c in issue.comment_ids if c in self.state.comments]
        if "since" in request.query:
            since = _parse_time(request.query["since"], "since")
            comments = [c for c in comments if c.updated_at >= since]
        chunk, headers = self._page(request, comments)
        v = self.view(request)
        return web.json_response([v.comment(repo, c) for c in chunk], headers=headers)

    async def list_repo_comments(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        comments = [c for c in self.state.comments.values() if c.repo == repo.key]
        if "since" in request.query:
            since = _parse_time(request.query["since"], "since")
            comments = [c for c in comments if c.updated_at >= since]
        sort = request.query.get("sort", "created")
        key: Callable[[Comment], Any] = (
            (lambda c: (c.updated_at, c.id)) if sort == "updated" else (lambda c: (c.created_at, c.id))
        )
        comments.sort(key=key, reverse=request.query.get("direction", "asc") == "desc")
        chunk, headers = self._page(request, comments)
        v = self.view(request)
        return web.json_response([v.comment(repo, c) for c in chunk], headers=headers)

    async def create_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        body = await self._body(request)
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise invalid("body", resource="IssueComment", code="missing_field")
        if issue.locked:
            raise ApiError(403, "Unable to create comment because issue is locked.")
        comment = self.state.add_comment(repo, issue, request[USER_KEY].login, text)
        self._comment_event(request, repo, issue, comment, "created")
        data = self.view(request).comment(repo, comment)
        return web.json_response(data, status=201, headers={"Location": data["url"]})

    def _comment(self, request: web.Request, repo: Repo) -> tuple[Comment, Issue]:
        comment = self.state.comment(repo, int(request.match_info["comment_id"]))
        return comment, self.state.issue(repo, comment.number)

    async def get_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        comment, _ = self._comment(request, repo)
        return web.json_response(self.view(request).comment(repo, comment))

    async def edit_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        comment, issue = self._comment(request, repo)
        body = await self._body(request)
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise invalid("body", resource="IssueComment", code="missing_field")
        if text != comment.body:
            old = comment.body
            comment.body = text
            comment.updated_at = self.state.clock()
            issue.updated_at = comment.updated_at
            self._comment_event(request, repo, issue, comment, "edited", changes={"body": {"from": old}})
        return web.json_response(self.view(request).comment(repo, comment))

    async def delete_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        comment, issue = self._comment(request, repo)
        self.state.delete_comment(repo, comment)
        self._comment_event(request, repo, issue, comment, "deleted")
        return web.Response(status=204)

    # ------------------------------------------------------------------ labels

    async def list_labels(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        chunk, headers = self._page(request, sorted(repo.labels.values(), key=lambda lb: lb.name.lower()))
        v = self.view(request)
        return web.json_response([v.label(repo, lb) for lb in chunk], headers=headers)

    async def create_label(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await self._body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("name", resource="Label", code="missing_field")
        color = body.get("color", "ededed")
        description = body.get("description")
        label = self.state.add_label(
            repo,
            name,
            str(color).lstrip("#"),
            description if isinstance(description, str) else None,
        )
        return web.json_response(self.view(request).label(repo, label), status=201)

    async def get_label(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        label = self.state.label(repo, request.match_info["name"])
        return web.json_response(self.view(request).label(repo, label))

    async def delete_label(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        label = self.state.label(repo, request.match_info["name"])
        del repo.labels[label.name.lower()]
        for issue in repo.issues.values():
            issue.labels = [n for n in issue.labels if n.lower() != label.name.lower()]
        return web.Response(status=204)

    async def issue_labels(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        v = self.view(request)
        labels = [repo.labels[n.lower()] for n in issue.labels if n.lower() in repo.labels]
        chunk, headers = self._page(request, labels)
        return web.json_response([v.label(repo, lb) for lb in chunk], headers=headers)

    async def _label_names(self, request: web.Request) -> list[Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Problems parsing JSON") from None
        if isinstance(body, list):  # the older body shape: a bare array of names
            return body
        if isinstance(body, dict) and isinstance(body.get("labels"), list):
            return list(body["labels"])
        raise invalid("labels")

    async def _change_labels(
        self, request: web.Request, new_names: Callable[[Issue, list[str]], list[str]]
    ) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        names = self._labels(repo, await self._label_names(request)) if request.method != "DELETE" else []
        before = {n.lower() for n in issue.labels}
        issue.labels = new_names(issue, names)
        after = {n.lower() for n in issue.labels}
        v = self.view(request)
        changed = False
        for low in sorted(after - before):
            changed = True
            self._issue_event(request, repo, issue, "labeled", label=v.label(repo, repo.labels[low]))
        for low in sorted(before - after):
            changed = True
            if low in repo.labels:
                self._issue_event(request, repo, issue, "unlabeled", label=v.label(repo, repo.labels[low]))
        if changed:
            issue.updated_at = self.state.clock()
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response([v.label(repo, repo.labels[n.lower()]) for n in issue.labels])

    async def add_issue_labels(self, request: web.Request) -> web.Response:
        return await self._change_labels(
            request,
            lambda issue, names: (
                issue.labels + [n for n in names if n.lower() not in {x.lower() for x in issue.labels}]
            ),
        )

    async def set_issue_labels(self, request: web.Request) -> web.Response:
        return await self._change_labels(request, lambda issue, names: names)

    async def clear_issue_labels(self, request: web.Request) -> web.Response:
        return await self._change_labels(request, lambda issue, names: [])

    async def remove_issue_label(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        name = request.match_info["name"].lower()
        if name not in {n.lower() for n in issue.labels}:
            raise ApiError(404, "Label does not exist")
        issue.labels = [n for n in issue.labels if n.lower() != name]
        issue.updated_at = self.state.clock()
        v = self.view(request)
        if name in repo.labels:
            self._issue_event(request, repo, issue, "unlabeled", label=v.label(repo, repo.labels[name]))
        return web.json_response([v.label(repo, repo.labels[n.lower()]) for n in issue.labels])

    # ------------------------------------------------------------------ assignees

    async def list_assignees(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        users = sorted(
            (u for u in self.state.users.values() if u.type == "User"), key=lambda u: u.login.lower()
        )
        chunk, headers = self._page(request, users)
        v = self.view(request)
        _ = repo
        return web.json_response([v.user(u) for u in chunk], headers=headers)

    async def _change_assignees(self, request: web.Request, add: bool) -> web.Response:
        repo = self._repo(request)
        issue = self._issue(request, repo)
        body = await self._body(request)
        names = self._assignees(body.get("assignees") or [])
        v = self.view(request)
        changed = False
        for login in names:
            if add and login not in issue.assignees:
                issue.assignees.append(login)
                changed = True
                self._issue_event(request, repo, issue, "assigned", assignee=v.user(login))
            elif not add and login in issue.assignees:
                issue.assignees.remove(login)
                changed = True
                self._issue_event(request, repo, issue, "unassigned", assignee=v.user(login))
        if changed:
            issue.updated_at = self.state.clock()
        return web.json_response(v.issue(repo, issue), status=201 if add else 200)

    async def add_assignees(self, request: web.Request) -> web.Response:
        return await self._change_assignees(request, add=True)

    async def remove_assignees(self, request: web.Request) -> web.Response:
        return await self._change_assignees(request, add=False)

    # ------------------------------------------------------------------ milestones

    async def list_milestones(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        state = request.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise invalid("state", resource="Milestone", value=state)
        items = [m for m in repo.milestones.values() if state == "all" or m.state == state]
        items.sort(key=lambda m: m.number)
        chunk, headers = self._page(request, items)
        v = self.view(request)
        return web.json_response([v.milestone(repo, m) for m in chunk], headers=headers)

    async def create_milestone(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await self._body(request)
        title = body.get("title")
        if not isinstance(title, str):
            raise invalid("title", resource="Milestone", code="missing_field")
        due = body.get("due_on")
        description = body.get("description")
        milestone = self.state.add_milestone(
            repo,
            title,
            request[USER_KEY].login,
            description=description if isinstance(description, str) else None,
            state=str(body.get("state", "open")),
            due_on=_parse_time(due, "due_on") if isinstance(due, str) else None,
        )
        return web.json_response(self.view(request).milestone(repo, milestone), status=201)

    async def get_milestone(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        milestone = repo.milestones.get(int(request.match_info["number"]))
        if milestone is None:
            raise ApiError(404, "Not Found")
        return web.json_response(self.view(request).milestone(repo, milestone))

    # ------------------------------------------------------------------ webhooks

    async def list_hooks(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        chunk, headers = self._page(request, list(repo.hooks.values()))
        v = self.view(request)
        return web.json_response([v.hook(repo, h) for h in chunk], headers=headers)

    async def create_hook(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await self._body(request)
        config = body.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("url"), str):
            raise invalid("url", resource="Hook", code="custom")
        url = config["url"]
        if not url.startswith(("http://", "https://")):
            raise invalid("url", resource="Hook", code="custom", value=url)
        events = body.get("events", ["push"])
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise invalid("events", resource="Hook")
        unknown = [e for e in events if e not in HOOK_EVENTS]
        if unknown:
            raise invalid("events", resource="Hook", value=unknown[0])
        if any(h.url == url for h in repo.hooks.values()):
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}],
            )
        secret = config.get("secret")
        content_type = config.get("content_type", "form")
        if content_type not in ("json", "form"):
            raise invalid("content_type", resource="Hook", value=content_type)
        now = self.state.clock()
        hook = Hook(
            id=self.state.next_id(),
            url=url,
            content_type=str(content_type),
            secret=secret if isinstance(secret, str) and secret else None,
            insecure_ssl=str(config.get("insecure_ssl", "0")),
            events=list(dict.fromkeys(events)),
            active=bool(body.get("active", True)),
            created_at=now,
            updated_at=now,
        )
        repo.hooks[hook.id] = hook
        v = self.view(request)
        data = v.hook(repo, hook)
        if hook.active and self.dispatcher.running:
            ping = {
                "zen": "Keep it logically awesome.",
                "hook_id": hook.id,
                "hook": data,
                "repository": v.repo(repo),
                "sender": v.user(request[USER_KEY]),
            }
            body_bytes = json.dumps(ping, separators=(",", ":")).encode()
            self.dispatcher.enqueue(Delivery(hook, repo.id, "ping", None, body_bytes))
        return web.json_response(data, status=201, headers={"Location": data["url"]})

    async def get_hook(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        hook = repo.hooks.get(int(request.match_info["hook_id"]))
        if hook is None:
            raise ApiError(404, "Not Found")
        return web.json_response(self.view(request).hook(repo, hook))

    async def delete_hook(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo.hooks.pop(int(request.match_info["hook_id"]), None) is None:
            raise ApiError(404, "Not Found")
        return web.Response(status=204)

    # ------------------------------------------------------------------ control API

    async def ctl_set_faults(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise FaultSpecError("the fault spec must be JSON") from None
        faults = Faults.from_spec(spec)
        faults.buckets = self.faults.buckets  # keep what each token used so far
        self.faults = faults
        return web.json_response(self.faults.as_dict())

    async def ctl_clear_faults(self, request: web.Request) -> web.Response:
        self.faults = Faults()
        return web.json_response(self.faults.as_dict())

    async def ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    def reset(self) -> None:
        self.state = GitHubState(clock=self.state.clock)
        if self.initial_user is not None:
            login, token, name = self.initial_user
            self.state.add_user(login, token=token, name=name)
        self.faults = Faults()
        self.stats = Stats()

    async def _ctl_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise StateError("the body must be a JSON object", status=400) from None
        if not isinstance(body, dict):
            raise StateError("the body must be a JSON object", status=400)
        return body

    async def ctl_add_user(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        login = body.get("login")
        if not isinstance(login, str):
            raise StateError("'login' is required", status=400)
        user = self.state.add_user(
            login,
            name=body.get("name") if isinstance(body.get("name"), str) else None,
            email=body.get("email") if isinstance(body.get("email"), str) else None,
        )
        token = self.state.add_token(
            user.login, body.get("token") if isinstance(body.get("token"), str) else None
        )
        return web.json_response({"login": user.login, "id": user.id, "token": token}, status=201)

    async def ctl_add_org(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        login = body.get("login")
        if not isinstance(login, str):
            raise StateError("'login' is required", status=400)
        org = self.state.add_user(login, type="Organization")
        return web.json_response({"login": org.login, "id": org.id}, status=201)

    async def ctl_add_pull(self, request: web.Request) -> web.Response:
        """A pull request as the issues API sees it (tests check that adapters skip these)."""
        repo = self._repo(request)
        body = await self._ctl_body(request)
        user = body.get("user", repo.owner)
        pull = self.state.create_issue(
            repo, str(user), str(body.get("title", "A pull request")), pull_request=True
        )
        pull.body = body.get("body") if isinstance(body.get("body"), str) else None
        return web.json_response({"number": pull.number, "id": pull.id}, status=201)


def _with_prefix(prefix: str, handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        request[PREFIX_KEY] = prefix
        return await handler(request)

    return wrapped


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    strong = etag.removeprefix("W/")
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or c.removeprefix("W/") == strong:
            return True
    return False
