"""The GitHub Issues adapter: :class:`~node.trackers.base.TrackerAdapter` for api.github.com and
GitHub Enterprise Server (REST v3).

Decisions worth knowing (details in ``docs/trackers/github.md``):

* **Keys and ids.** An issue is ``owner/repo#N``; that string is both ``IssueSnapshot.key`` and
  ``id``, because GitHub's REST API cannot fetch an issue by its global id (it is kept in
  ``custom_fields["github_id"]``). ``project`` is ``owner/repo``.
* **Status** is ``open`` (category new) or ``closed`` (done); ``resolution`` is the close reason
  (``completed`` / ``not_planned`` / ``duplicate``). Transitions are ``close``,
  ``close_not_planned`` and ``reopen``.
* **Fields GitHub has**: title, body (Markdown ↔ neutral doc), labels, assignees (the first is
  ``assignee``; all are in ``custom_fields["assignees"]``), milestone (↔ ``fix_versions[0]``;
  created when missing). Fields GitHub lacks (priority, type, components, affects versions, due
  date, reporter, parent) are ignored on write: rules map them to labels where wanted.
* **Twin markers** are a hidden HTML comment on the body's / comment's last line (see
  :mod:`.mapping`), written in the same request that creates the issue or comment; edits keep it.
  :meth:`GitHubAdapter.find_issue_by_marker` scans the repository's issues created by the token's
  user, newest first, bounded by ``marker_scan_limit``.
* **No attachments, no internal comments, no deletion**: GitHub's REST API has no attachment
  upload, no private comments and no issue deletion, so those calls raise
  :class:`~node.trackers.base.TrackerRejected` saying so (rules turn attachments into links).
* **Polling** lists ``/repos/{r}/issues?state=all&since=…&sort=updated&direction=asc`` per repository
  with conditional requests (an unchanged page is a free 304), starting ``poll_margin`` early;
  pull requests, which the issues API also returns, are skipped everywhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shlex
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from node.trackers import DEFAULT_CONNECTIONS
from node.trackers.base import (
    IssueSnapshot,
    IssueUpdate,
    SearchPage,
    TrackerAccount,
    TrackerAdapter,
    TrackerError,
    TrackerEvent,
    TrackerNotFound,
    TrackerRejected,
    Transition,
)
from node.trackers.http import RetryPolicy
from protocol.replica import Attachment, Comment, UserRef
from protocol.richtext import Doc

from . import mapping
from .client import GitHubClient
from .webhooks import SUBSCRIBED_EVENTS
from .webhooks import parse_webhook as _parse_webhook

log = logging.getLogger(__name__)

_PAGE = 100
_TRANSITIONS = {
    "close": ("Close as completed", "closed", "completed"),
    "close_not_planned": ("Close as not planned", "closed", "not_planned"),
    "reopen": ("Reopen", "open", None),
}
_SEARCH_QUALIFIERS = frozenset(
    {"repo", "is", "state", "label", "since", "creator", "assignee", "milestone", "sort", "order"}
)
NO_ATTACHMENTS = (
    "GitHub has no attachment API: attachments cannot be uploaded to or read from GitHub issues "
    "(map them to links in the description or a comment)"
)


class GitHubAdapter(TrackerAdapter):
    kind: ClassVar[str] = "github"

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        repos: list[str] | None = None,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_retry_after: float = 120.0,
        connection_limit: int = DEFAULT_CONNECTIONS,
        timeout: float = 60.0,
        concurrency: int = 4,
        webhook_secret: str | None = None,
        marker_scan_limit: int = 500,
        poll_margin: dt.timedelta = dt.timedelta(seconds=5),
        poll_page_size: int = 100,
        create_missing_milestones: bool = True,
        verify_tls: bool = True,
    ) -> None:
        self.client = GitHubClient(
            base_url,
            token=token,
            policy=RetryPolicy(
                max_attempts=max_attempts,
                base_delay=base_delay,
                max_delay=max_delay,
                max_retry_after=max_retry_after,
            ),
            connection_limit=connection_limit,
            timeout=timeout,
            verify_tls=verify_tls,
        )
        self.base_url = self.client.base_url
        self.repos = [_check_repo(r) for r in repos or []]
        self.webhook_secret = webhook_secret
        self.marker_scan_limit = marker_scan_limit
        self.poll_margin = poll_margin
        self.poll_page_size = min(100, max(10, poll_page_size))
        self.create_missing_milestones = create_missing_milestones
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._me: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"GitHubAdapter({self.base_url!r}, repos={self.repos!r})"

    async def close(self) -> None:
        await self.client.close()

    # -------------------------------------------------------------------------------------------
    # Account

    async def check(self) -> TrackerAccount:
        me = await self._viewer(refresh=True)
        user = mapping.user_ref(me)
        if user is None:
            raise TrackerError(f"GitHub at {self.base_url}: /user returned no login")
        return TrackerAccount(
            user=user,
            tracker="github",
            base_url=self.base_url,
            server_title="GitHub",
            version=None,
        )

    async def _viewer(self, *, refresh: bool = False) -> dict[str, Any]:
        if self._me is None or refresh:
            me = await self.client.request("GET", "user")
            if not isinstance(me, dict) or not me.get("login"):
                raise TrackerError(f"GitHub at {self.base_url}: /user returned no user")
            self._me = me
        return self._me

    # -------------------------------------------------------------------------------------------
    # Reading

    async def get_issue(self, key_or_id: str) -> IssueSnapshot:
        owner, repo, number = _parse(key_or_id)
        raw = await self.client.request("GET", _issue_path(owner, repo, number))
        if not isinstance(raw, dict):
            raise TrackerError(f"GitHub returned no issue for {key_or_id}")
        if mapping.is_pull_request(raw):
            raise TrackerNotFound(f"{owner}/{repo}#{number} is a pull request, not an issue")
        return await self._complete(raw)

    async def _complete(self, raw: dict[str, Any]) -> IssueSnapshot:
        """Fetch what the issue JSON leaves out (comments, issue events for the changelog) and map.
        Both are conditional requests: unchanged lists cost a free 304."""
        full_name = mapping.full_name_of(raw)
        owner, repo = full_name.split("/", 1)
        base = _issue_path(owner, repo, int(raw["number"]))
        comments: list[dict[str, Any]] = []
        async with self._limit:
            if int(raw.get("comments") or 0) > 0:
                comments = await self.client.paginate(f"{base}/comments", params={"per_page": _PAGE})
            events = await self.client.paginate(f"{base}/events", params={"per_page": _PAGE})
        return mapping.issue_snapshot(
            raw,
            comments=[c for c in comments if isinstance(c, dict)],
            events=[e for e in events if isinstance(e, dict)],
            full_name=full_name,
        )

    async def search(self, query: str, *, page_token: str | None = None, page_size: int = 50) -> SearchPage:
        """``query`` uses GitHub's search qualifiers, run against the issues list endpoint (not the
        rate-limited, eventually consistent search API): ``repo:owner/name`` (required; or the one
        configured repository), ``is:open|closed|issue``, ``state:open|closed|all``, ``label:x``
        (repeatable, all must match), ``since:ISO-8601``, ``creator:login``, ``assignee:login|none|*``,
        ``milestone:N|none|*``, ``sort:created|updated|comments``, ``order:asc|desc``."""
        repo, params = self._search_params(query)
        page = _page_number(page_token)
        params.update(per_page=max(1, min(page_size, 100)), page=page)
        result = await self.client.page("GET", f"repos/{repo}/issues", params=params)
        raw_issues = [i for i in result.body or [] if isinstance(i, dict) and not mapping.is_pull_request(i)]
        snapshots = await asyncio.gather(*(self._complete(i) for i in raw_issues))
        return SearchPage(issues=list(snapshots), next_page_token=str(page + 1) if result.next_url else None)

    def _search_params(self, query: str) -> tuple[str, dict[str, str | int]]:
        try:
            terms = shlex.split(query)
        except ValueError as exc:
            raise TrackerRejected(f"GitHub query {query!r}: {exc}") from None
        repo: str | None = None
        params: dict[str, str | int] = {"state": "open"}
        labels: list[str] = []
        for term in terms:
            name, sep, value = term.partition(":")
            if not sep or name not in _SEARCH_QUALIFIERS or not value:
                raise TrackerRejected(
                    f"GitHub query {query!r}: {term!r} is not a supported qualifier "
                    f"({', '.join(sorted(_SEARCH_QUALIFIERS))}); free-text search is not supported",
                    errors={"query": term},
                )
            if name == "repo":
                repo = _check_repo(value)
            elif name == "is" and value in ("open", "closed"):
                params["state"] = value
            elif name == "is" and value == "issue":
                pass
            elif name == "state" and value in ("open", "closed", "all"):
                params["state"] = value
            elif name == "label":
                labels.append(value)
            elif name == "since":
                when = mapping.parse_time(value)
                if when is None:
                    raise TrackerRejected(f"GitHub query: since:{value} is not an ISO 8601 time")
                params["since"] = _iso(when)
            elif name in ("creator", "assignee", "milestone"):
                params[name] = value
            elif name == "sort" and value in ("created", "updated", "comments"):
                params["sort"] = value
            elif name == "order" and value in ("asc", "desc"):
                params["direction"] = value
            else:
                raise TrackerRejected(f"GitHub query {query!r}: unsupported value in {term!r}")
        if labels:
            params["labels"] = ",".join(labels)
        if repo is None:
            if len(self.repos) != 1:
                raise TrackerRejected(f"GitHub query {query!r} needs repo:owner/name")
            repo = self.repos[0]
        return repo, params

    async def changed_since(
        self,
        since: dt.datetime,
        *,
        projects: list[str] | None = None,
        known: Callable[[str, dt.datetime], bool] | None = None,
    ) -> AsyncIterator[IssueSnapshot]:
        repos = [_check_repo(p) for p in projects] if projects else list(self.repos)
        if not repos:
            raise TrackerRejected("GitHub polling needs the repositories to watch (projects or repos=)")
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        start = (since - self.poll_margin).astimezone(dt.UTC).replace(microsecond=0)
        raw: list[dict[str, Any]] = []
        for repo in repos:
            items = await self.client.paginate(
                f"repos/{repo}/issues",
                params={
                    "state": "all",
                    "since": _iso(start),
                    "sort": "updated",
                    "direction": "asc",
                    "per_page": self.poll_page_size,
                },
            )
            raw.extend(i for i in items if isinstance(i, dict) and not mapping.is_pull_request(i))
        seen: set[tuple[str, str]] = set()
        unique: list[dict[str, Any]] = []
        for item in sorted(raw, key=lambda i: (str(i.get("updated_at") or ""), int(i.get("id") or 0))):
            mark = (str(item.get("url")), str(item.get("updated_at")))
            if mark not in seen:
                seen.add(mark)
                unique.append(item)
        for item in unique:
            if known is not None:
                updated = mapping.parse_time(item.get("updated_at"))
                key = mapping.make_key(mapping.full_name_of(item), int(item["number"]))
                if updated is not None and known(key, updated):
                    continue  # the listing already says it: no comments/events read
            yield await self._complete(item)

    # -------------------------------------------------------------------------------------------
    # Writing issues

    async def create_issue(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        repo = _check_repo(project)
        if not (update.summary or "").strip():
            raise TrackerRejected("GitHub issues need a title", errors={"summary": "required"})
        payload = await self._payload(repo, update, current_body=None)
        payload["body"] = mapping.doc_markdown(update.description, marker)
        raw = await self.client.request("POST", f"repos/{repo}/issues", json_body=payload)
        if not isinstance(raw, dict) or "number" not in raw:
            raise TrackerError(f"GitHub did not return the issue created in {repo}")
        return mapping.issue_snapshot(raw, comments=[], events=[], full_name=repo)

    async def find_issue_by_marker(self, project: str, marker: str) -> IssueSnapshot | None:
        repo = _check_repo(project)
        me = await self._viewer()
        url: str | None = self.client.url(
            f"repos/{repo}/issues",
            {
                "creator": str(me["login"]),
                "state": "all",
                "sort": "created",
                "direction": "desc",
                "per_page": _PAGE,
            },
        )
        scanned = 0
        while url is not None and scanned < self.marker_scan_limit:
            page = await self.client.page("GET", url)
            items = [i for i in page.body or [] if isinstance(i, dict)]
            for raw in items:
                if mapping.is_pull_request(raw):
                    continue
                if mapping.split_marker(raw.get("body"))[1] == marker:
                    return await self._complete(raw)
            scanned += len(items)
            url = page.next_url if items else None
        return None

    async def update_issue(self, key: str, update: IssueUpdate) -> None:
        owner, name, number = _parse(key)
        path = _issue_path(owner, name, number)
        if "summary" in update.touched() and not (update.summary or "").strip():
            raise TrackerRejected("GitHub issues need a title", errors={"summary": "required"})
        current: str | None = None
        if "description" in update.touched():
            raw = await self.client.request("GET", path)
            current = raw.get("body") if isinstance(raw, dict) else None
        payload = await self._payload(f"{owner}/{name}", update, current_body=current)
        if not payload:
            return
        await self.client.request("PATCH", path, json_body=payload)

    async def _payload(self, repo: str, update: IssueUpdate, *, current_body: str | None) -> dict[str, Any]:
        touched = update.touched()
        out: dict[str, Any] = {}
        if "summary" in touched and update.summary is not None:
            out["title"] = update.summary
        if "description" in touched:
            out["body"] = mapping.doc_markdown(update.description, mapping.split_marker(current_body)[1])
        if "labels" in touched:
            out["labels"] = list(dict.fromkeys(update.labels or []))
        assignees: list[str] | None = None
        if "assignee" in touched:
            assignees = [await self._login(update.assignee)] if update.assignee else []
        if "custom_fields" in touched and update.custom_fields and "assignees" in update.custom_fields:
            value = update.custom_fields["assignees"]
            logins = value if isinstance(value, list) else [value] if value else []
            assignees = [await self._login(_user_from(v)) for v in logins]
        if assignees is not None:
            out["assignees"] = [a for a in dict.fromkeys(assignees) if a]
        if "fix_versions" in touched:
            titles = update.fix_versions or []
            out["milestone"] = await self._milestone_number(repo, titles[0]) if titles else None
        ignored = touched & {
            "priority",
            "issue_type",
            "components",
            "affects_versions",
            "due_date",
            "reporter",
            "parent_key",
        }
        if ignored:
            log.debug("GitHub has no %s; ignored for %s", ", ".join(sorted(ignored)), repo)
        return out

    async def _login(self, ref: UserRef | None) -> str:
        if ref is None or ref.is_empty():
            return ""
        found = await self.find_user(ref)
        if found is None or not found.username:
            who = ref.username or ref.email or ref.display_name or ref.account_id
            raise TrackerRejected(f"no GitHub user matches {who!r}", errors={"assignee": "no such user"})
        return found.username

    async def _milestone_number(self, repo: str, title: str) -> int:
        milestones = await self.client.paginate(
            f"repos/{repo}/milestones", params={"state": "all", "per_page": _PAGE}
        )
        for m in milestones:
            if isinstance(m, dict) and m.get("title") == title:
                return int(m["number"])
        if not self.create_missing_milestones:
            raise TrackerRejected(
                f"{repo} has no milestone {title!r}", errors={"fix_versions": "no such milestone"}
            )
        created = await self.client.request("POST", f"repos/{repo}/milestones", json_body={"title": title})
        if not isinstance(created, dict) or "number" not in created:
            raise TrackerError(f"GitHub did not return the milestone created in {repo}")
        return int(created["number"])

    async def delete_issue(self, key: str) -> None:
        _parse(key)
        raise TrackerRejected(
            f"GitHub's REST API cannot delete issues ({key}); close it as not planned instead"
        )

    # -------------------------------------------------------------------------------------------
    # Workflow

    async def transitions(self, key: str) -> list[Transition]:
        raw = await self.client.request("GET", _issue_path(*_parse(key)))
        closed = isinstance(raw, dict) and raw.get("state") == "closed"
        ids = ["reopen"] if closed else ["close", "close_not_planned"]
        return [_transition(i) for i in ids]

    async def transition(self, key: str, transition_id: str) -> None:
        path = _issue_path(*_parse(key))
        if transition_id not in _TRANSITIONS:
            raise TrackerRejected(
                f"unknown GitHub transition {transition_id!r} (close, close_not_planned, reopen)",
                errors={"transition": transition_id},
            )
        _label, state, reason = _TRANSITIONS[transition_id]
        body: dict[str, Any] = {"state": state}
        if reason:
            body["state_reason"] = reason
        await self.client.request("PATCH", path, json_body=body)

    # -------------------------------------------------------------------------------------------
    # Comments

    async def add_comment(
        self, key: str, body: Doc, *, internal: bool = False, marker: str | None = None
    ) -> Comment:
        path = _issue_path(*_parse(key))
        if internal:
            raise TrackerRejected(
                "GitHub has no internal (private) comments", errors={"internal": "unsupported"}
            )
        raw = await self.client.request(
            "POST",
            f"{path}/comments",
            json_body={"body": mapping.doc_markdown(body, marker) or " "},
        )
        if not isinstance(raw, dict) or "id" not in raw:
            raise TrackerError(f"GitHub did not return the comment added to {key}")
        return mapping.comment_of(raw)[0]

    async def update_comment(
        self, key: str, comment_id: str, body: Doc, *, internal: bool | None = None
    ) -> Comment:
        path = _comment_path(key, comment_id)
        if internal:
            raise TrackerRejected(
                "GitHub has no internal (private) comments", errors={"internal": "unsupported"}
            )
        current = await self.client.request("GET", path)
        marker = mapping.split_marker(current.get("body") if isinstance(current, dict) else None)[1]
        raw = await self.client.request(
            "PATCH", path, json_body={"body": mapping.doc_markdown(body, marker) or " "}
        )
        if not isinstance(raw, dict) or "id" not in raw:
            raise TrackerError(f"GitHub did not return comment {comment_id} of {key}")
        return mapping.comment_of(raw)[0]

    async def delete_comment(self, key: str, comment_id: str) -> None:
        await self.client.request("DELETE", _comment_path(key, comment_id))

    # -------------------------------------------------------------------------------------------
    # Attachments

    async def add_attachment(
        self, key: str, filename: str, content: bytes, *, mime_type: str = "application/octet-stream"
    ) -> Attachment:
        raise TrackerRejected(NO_ATTACHMENTS, errors={"attachment": filename})

    async def get_attachment_content(self, attachment_id: str) -> bytes:
        raise TrackerRejected(NO_ATTACHMENTS, errors={"attachment": attachment_id})

    # -------------------------------------------------------------------------------------------
    # Users

    async def find_user(self, ref: UserRef) -> UserRef | None:
        if ref.username:
            try:
                return mapping.user_ref(await self.client.request("GET", f"users/{_seg(ref.username)}"))
            except TrackerNotFound:
                pass
        if ref.account_id and ref.account_id.isdigit():
            try:
                return mapping.user_ref(await self.client.request("GET", f"user/{int(ref.account_id)}"))
            except TrackerNotFound:
                pass
        if ref.email:
            body = await self.client.request(
                "GET", "search/users", params={"q": f"{ref.email} in:email", "per_page": 5}
            )
            items = [u for u in (body or {}).get("items") or [] if isinstance(u, dict)]
            if len(items) == 1:
                return mapping.user_ref(items[0])
        if ref.display_name:
            body = await self.client.request(
                "GET", "search/users", params={"q": f'"{ref.display_name}" in:name', "per_page": 20}
            )
            wanted = ref.display_name.casefold()
            items = [
                u
                for u in (body or {}).get("items") or []
                if isinstance(u, dict) and str(u.get("name") or u.get("login") or "").casefold() == wanted
            ]
            if len(items) == 1:
                return mapping.user_ref(items[0])
        return None

    # -------------------------------------------------------------------------------------------
    # Webhooks

    async def register_webhook(self, url: str, *, secret: str | None = None) -> str:
        """One repository webhook per configured repository; the id is ``owner/repo:ID,…``."""
        if not self.repos:
            raise TrackerRejected("GitHub webhooks are per repository: configure repos= first")
        config: dict[str, Any] = {"url": url, "content_type": "json", "insecure_ssl": "0"}
        if secret:
            config["secret"] = secret
            self.webhook_secret = secret
        ids: list[str] = []
        for repo in self.repos:
            created = await self.client.request(
                "POST",
                f"repos/{repo}/hooks",
                json_body={
                    "name": "web",
                    "active": True,
                    "events": list(SUBSCRIBED_EVENTS),
                    "config": config,
                },
            )
            if not isinstance(created, dict) or created.get("id") is None:
                raise TrackerError(f"GitHub did not return the webhook registered on {repo}")
            ids.append(f"{repo}:{created['id']}")
        return ",".join(ids)

    async def unregister_webhook(self, webhook_id: str) -> None:
        for part in webhook_id.split(","):
            repo, sep, hook_id = part.strip().rpartition(":")
            if not sep or not hook_id.isdigit():
                raise TrackerRejected(f"not a webhook id from this adapter: {webhook_id!r}")
            try:
                await self.client.request("DELETE", f"repos/{_check_repo(repo)}/hooks/{hook_id}")
            except TrackerNotFound:
                pass

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackerEvent]:
        return _parse_webhook(headers, body, secret=self.webhook_secret)


# -----------------------------------------------------------------------------------------------
# Helpers


def _check_repo(value: str) -> str:
    owner, sep, name = value.strip().partition("/")
    if not sep or not owner or not name or "/" in name or owner in (".", "..") or name in (".", ".."):
        raise TrackerRejected(f"not a GitHub repository (owner/name): {value!r}", errors={"project": value})
    return f"{_seg(owner)}/{_seg(name)}"


def _parse(key: str) -> tuple[str, str, int]:
    parsed = mapping.parse_key(key)
    if parsed is None:
        raise TrackerNotFound(f"not a GitHub issue key (owner/repo#N): {key!r}")
    return parsed


def _issue_path(owner: str, name: str, number: int) -> str:
    return f"repos/{_seg(owner)}/{_seg(name)}/issues/{number}"


def _comment_path(key: str, comment_id: str) -> str:
    """A comment's path: it hangs off the repository, not the issue (``key`` names the repository)."""
    owner, name, _number = _parse(key)
    return f"repos/{_seg(owner)}/{_seg(name)}/issues/comments/{_seg(comment_id)}"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_number(token: str | None) -> int:
    if not token:
        return 1
    if not token.isdigit() or int(token) < 1:
        raise TrackerRejected(f"not a page token from this adapter: {token!r}")
    return int(token)


def _transition(transition_id: str) -> Transition:
    label, state, _reason = _TRANSITIONS[transition_id]
    return Transition(id=transition_id, name=label, to=mapping.CLOSED if state == "closed" else mapping.OPEN)


def _user_from(value: Any) -> UserRef:
    if isinstance(value, dict):
        return UserRef.model_validate(value)
    text = str(value)
    return UserRef(email=text) if "@" in text else UserRef(username=text)
