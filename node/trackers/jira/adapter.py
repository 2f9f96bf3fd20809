"""The Jira adapter: :class:`~node.trackers.base.TrackerAdapter` for Jira Cloud and Server/DC.

Decisions worth knowing (details in ``docs/trackers/jira.md``):

* **Attachment hashes.** Jira does not publish a content hash, but replicas need ``sha256``. An
  attachment's content never changes under its id, so the adapter hashes each attachment once (by
  streaming it, on the first snapshot that lists it, or on upload/download) and keeps the result in
  ``attachment_hashes`` — a mapping the node may back with its store so restarts do not re-download.
  Snapshots therefore always carry complete attachment metadata.
* **Twin markers** live in the issue property / comment property ``tandem.marker``
  (``{"marker": "..."}``), written in the same create request as the issue or comment, so an issue
  never exists without its marker. Issue properties are not JQL-searchable on stock Jira, so
  :meth:`JiraAdapter.find_issue_by_marker` scans the issues the proxy user created in the project
  recently (newest first, bounded) asking for that property.
* **Internal comments**: written as JSM's ``sd.public.comment = {"internal": true}`` (and, when
  ``internal_visibility`` is configured, a visibility restriction too); read as internal when either
  is present or ``jsdPublic`` is false.
* **Comments the node just wrote** are not read again for their properties: the adapter remembers
  what it wrote (:class:`WrittenComments`, a short, bounded memo) and a batched read trusts it
  while Jira shows the comment and the issue unchanged since.
* **Polling** (:meth:`JiraAdapter.changed_since`): JQL dates have minute granularity and are read in
  the proxy user's time zone, so the query starts ``poll_margin`` earlier, floored to the minute, in
  that zone; pages overlap; results are de-duplicated by ``(id, updated)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    TrackerTransient,
    Transition,
)
from node.trackers.http import RetryPolicy, error_for_status
from protocol.replica import Attachment, Comment, UserRef
from protocol.richtext import Doc, from_plain_text

from . import mapping
from .client import AuthKind, BulkRejected, Deployment, JiraClient, jira_error_detail
from .markup import to_native
from .webhooks import SUBSCRIBED_EVENTS
from .webhooks import parse_webhook as _parse_webhook

log = logging.getLogger(__name__)

_PAGE = 100  # comments / changelog page size (Jira's maximum for both)
_ISSUE_FIELDS = "*all"
_BULK_CREATE = 50  # issueUpdates per POST issue/bulk (Jira's maximum)
_READ_BATCH = 50  # ids per get_issues search (Cloud reconciles at most 50 ids per search)


@dataclass(frozen=True, slots=True)
class _Written:
    updated: str  # the comment's ``updated`` as Jira answered the write
    properties: tuple[tuple[str, Any], ...]  # (key, value) the write set
    at: float  # clock reading when it was written


class WrittenComments:
    """The properties the adapter itself wrote on comments, by comment id, so that a batched read
    right after (the sync engine's final read of an apply) need not ask Jira for them again: the
    issue search cannot return comment properties, so on Server each issue with comments would
    cost one ``GET issue/{id}/comment``.

    What an entry means: "at ``at`` this comment's properties were exactly ``properties``, and its
    ``updated`` was ``updated``". A read uses it only while all of these hold:

    * the entry is younger than ``window`` seconds (short: it only has to outlive one apply);
    * Jira lists the comment with the same ``updated`` (an edit, ours or a person's, bumps it);
    * the issue's ``updated`` is not later than the newest remembered comment on it, i.e.
      nothing at all happened on the issue after our last comment write that Jira timestamps;
    * the site is known to keep create-time comment properties (checked once against a real read;
      see :meth:`JiraAdapter._complete`);
    * no webhook delivery about the comment by anyone but the proxy user arrived meanwhile
      (:meth:`JiraAdapter.parse_webhook` drops the entry).

    Where Jira shows JSM's flag inline (Cloud's ``jsdPublic``), that live value is used and the
    memo gives only the marker, which nobody but the node writes.

    Why that is safe: what can still be missed is a property change by someone else (JSM toggling
    internal/public on Server) that bumps neither the comment's nor the issue's ``updated`` and
    sends no webhook, within the window. Such a change is invisible to polling too (its
    ``updated >= cursor`` query and the engine's ``known(id, updated)`` check would skip the
    issue), so the memo loses nothing a read would have caught for it; any read after the window,
    or after any timestamped change, reads the properties from Jira. Bounded by ``size`` (oldest
    entries go first) and by the window; ``clock`` is injectable for tests."""

    def __init__(
        self, *, size: int = 10_000, window: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = max(0, size)
        self.window = window
        self.clock = clock
        self._entries: OrderedDict[str, _Written] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, comment_id: str, updated: Any, properties: Sequence[Mapping[str, Any]]) -> None:
        """Note what a write just set (``properties`` as sent: ``[{"key", "value"}]``)."""
        if not isinstance(updated, str) or not updated:
            return
        props = tuple((str(p["key"]), p.get("value")) for p in properties)
        self._entries.pop(comment_id, None)
        self._entries[comment_id] = _Written(updated, props, self.clock())
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, comment_id: str) -> None:
        self._entries.pop(comment_id, None)

    def get(self, comment_id: str, updated: Any) -> tuple[tuple[str, Any], ...] | None:
        """The properties written on ``comment_id`` if still trusted with the comment now showing
        ``updated`` (else None)."""
        entry = self._entries.get(comment_id)
        if entry is None:
            return None
        if self.clock() - entry.at >= self.window:
            del self._entries[comment_id]
            return None
        return entry.properties if entry.updated == updated else None

    def take(self, comment_id: str) -> tuple[tuple[str, Any], ...] | None:
        """Remove ``comment_id``'s entry and return its properties if still inside the window (the
        adapter's own edit: whatever ``updated`` the comment shows now, the edit changes it)."""
        entry = self._entries.pop(comment_id, None)
        if entry is None or self.clock() - entry.at >= self.window:
            return None
        return entry.properties


class JiraAdapter(TrackerAdapter):
    kind: ClassVar[str] = "jira"

    def __init__(
        self,
        base_url: str,
        *,
        deployment: Deployment,
        user: str | None,
        token: str,
        auth: AuthKind = "basic",
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_retry_after: float = 120.0,
        connection_limit: int = DEFAULT_CONNECTIONS,
        timeout: float = 60.0,
        concurrency: int = 4,
        webhook_secret: str | None = None,
        internal_visibility: Mapping[str, str] | None = None,
        default_issue_type: str = "Task",
        marker_window_days: int = 30,
        marker_scan_limit: int = 1000,
        poll_margin: dt.timedelta = dt.timedelta(minutes=2),
        poll_page_size: int = 50,
        attachment_hashes: MutableMapping[str, str] | None = None,
        written_comments: WrittenComments | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.client = JiraClient(
            base_url,
            deployment=deployment,
            user=user,
            token=token,
            auth=auth,
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
        self.deployment: Deployment = deployment
        self.webhook_secret = webhook_secret
        self.internal_visibility = dict(internal_visibility) if internal_visibility else None
        self.default_issue_type = default_issue_type
        self.marker_window_days = marker_window_days
        self.marker_scan_limit = marker_scan_limit
        self.poll_margin = poll_margin
        self.poll_page_size = max(10, poll_page_size)
        self.attachment_hashes: MutableMapping[str, str] = (
            attachment_hashes if attachment_hashes is not None else {}
        )
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._fields: dict[str, dict[str, Any]] | None = None
        self._myself: dict[str, Any] | None = None
        self._create_properties: bool | None = None  # does this site keep create-time properties?
        self.written_comments = written_comments if written_comments is not None else WrittenComments()
        self._comment_properties_kept: bool | None = None  # ... and create-time comment properties?

    def __repr__(self) -> str:
        return f"JiraAdapter({self.base_url!r}, deployment={self.deployment!r}, user={self.client.user!r})"

    @property
    def text_format(self) -> Literal["adf", "wiki"]:
        return "adf" if self.deployment == "cloud" else "wiki"

    async def close(self) -> None:
        await self.client.close()

    # -------------------------------------------------------------------------------------------
    # Account and metadata

    async def check(self) -> TrackerAccount:
        me = await self._me(refresh=True)
        info: dict[str, Any] = {}
        try:
            info = await self.client.request("GET", "serverInfo") or {}
        except TrackerNotFound:
            pass
        user = mapping.user_ref(me) or UserRef(username=self.client.user)
        return TrackerAccount(
            user=user,
            tracker="jira",
            base_url=self.base_url,
            server_title=info.get("serverTitle"),
            version=info.get("version"),
        )

    async def _me(self, *, refresh: bool = False) -> dict[str, Any]:
        if self._myself is None or refresh:
            me = await self.client.request("GET", "myself")
            if not isinstance(me, dict):
                raise TrackerError(f"Jira at {self.base_url}: /myself returned no user")
            self._myself = me
        return self._myself

    async def _time_zone(self) -> dt.tzinfo:
        name = (await self._me()).get("timeZone")
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("Jira user time zone %r unknown; assuming UTC", name)
        return dt.UTC

    async def fields(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """Field metadata from ``/field`` by id (cached; ``refresh`` after an admin adds fields)."""
        if self._fields is None or refresh:
            rows = await self.client.request("GET", "field") or []
            self._fields = {str(f["id"]): f for f in rows if isinstance(f, dict) and "id" in f}
        return self._fields

    # -------------------------------------------------------------------------------------------
    # Reading

    async def get_issue(self, key_or_id: str) -> IssueSnapshot:
        raw = await self.client.request(
            "GET",
            f"issue/{_seg(key_or_id)}",
            params={"expand": "names,changelog", "fields": _ISSUE_FIELDS, "properties": "*all"},
        )
        if not isinstance(raw, dict):
            raise TrackerError(f"Jira returned no issue for {key_or_id}")
        return await self._complete(raw)

    async def _complete(
        self,
        raw: dict[str, Any],
        names: Mapping[str, str] | None = None,
        *,
        me: Mapping[str, Any] | None = None,
    ) -> IssueSnapshot:
        """Fetch what the issue JSON left out (changelog pages, comment properties, attachment
        hashes) and map it. With ``me`` (the proxy user: a batched read), comments are read again
        with their properties only when those can change the snapshot and are not known from the
        adapter's own recent writes (see :meth:`_embedded_comments`); without, whenever there are
        comments."""
        issue_id = str(raw.get("id"))
        fields = raw.get("fields") or {}
        histories = await self._histories(issue_id, raw.get("changelog"))
        comment_block = fields.get("comment") or {}
        embedded = comment_block.get("comments") or []
        total = comment_block.get("total", len(embedded))
        comments: list[dict[str, Any]] | None = None
        if total or embedded:
            truncated = not isinstance(total, int) or total > len(embedded)
            known: list[dict[str, Any]] | None = None
            if me is not None and not truncated:
                known = self._embedded_comments(embedded, me, fields.get("updated"))
            if known is None:
                comments = await self._comments(issue_id)
            elif known is not embedded:  # some properties came from the memo
                if self._comment_properties_kept:
                    comments = known
                else:  # not yet checked that this site keeps them: read, and compare once
                    comments = await self._comments(issue_id)
                    self._check_comment_properties(known, comments)
        hashes = await self._attachment_hashes(fields.get("attachment") or [])
        return mapping.issue_snapshot(
            raw,
            base_url=self.base_url,
            names=names,
            histories=histories,
            comments=comments,
            attachment_hashes=hashes,
        )

    def _embedded_comments(
        self, embedded: list[Any], me: Mapping[str, Any], issue_updated: Any
    ) -> list[dict[str, Any]] | None:
        """The embedded comments (which Jira lists without their properties) complete enough to map
        as a full read would, or ``None`` when their properties must be read. Properties feed two
        things: the Tandem marker, which only the node writes, as the proxy user; and JSM's
        internal flag, which Cloud also shows inline as ``jsdPublic`` (Server does not). So a
        comment needs its properties on Server always, and on Cloud when it is the proxy user's or
        lacks ``jsdPublic``; those are taken from :attr:`written_comments` where it still trusts
        them (see :class:`WrittenComments`). Returns ``embedded`` itself when no comment needed
        them, else new comment dicts (the raw issue is left as Jira sent it)."""
        cloud = self.deployment == "cloud"
        mine = me.get("accountId")
        out: list[dict[str, Any]] = []
        newest: dt.datetime | None = None  # the latest ``updated`` of a comment completed from the memo
        for c in embedded:
            if not isinstance(c, dict):
                return None
            if cloud and "jsdPublic" in c and mine:
                author = c.get("author")
                if isinstance(author, dict) and author.get("accountId") != mine:
                    out.append(c)  # a person's comment: Cloud shows all it maps to inline
                    continue
            if self._comment_properties_kept is False:  # this site drops them: the memo is no use
                return None
            updated = c.get("updated")
            written = self.written_comments.get(str(c.get("id")), updated)
            at = mapping.parse_time(updated)
            if written is None or at is None:
                return None
            # Where Jira shows ``jsdPublic`` (Cloud) it is JSM's live flag: the memo gives the marker only.
            live = "jsdPublic" in c
            props = [
                {"key": k, "value": v} for k, v in written if not (live and k == mapping.SD_PUBLIC_COMMENT)
            ]
            out.append({**c, "properties": props})
            if newest is None or at > newest:
                newest = at
        if newest is None:
            return embedded
        # Anything Jira timestamps on the issue after our last comment write (a person's property
        # change included, where Jira bumps the issue for it) means: read them.
        issue_at = mapping.parse_time(issue_updated)
        if issue_at is None or issue_at > newest:
            return None
        return out

    def _check_comment_properties(self, known: list[dict[str, Any]], read: list[dict[str, Any]]) -> None:
        """Compare, once, what the memo would have given with what Jira returned: a site that drops
        create-time comment properties (or adds its own) would make the memo wrong."""
        actual = {str(c.get("id")): c for c in read if isinstance(c, dict)}
        for c in known:
            got = actual.get(str(c.get("id")))
            if "properties" not in c or got is None:
                continue
            props, got_props = (
                mapping.entity_properties(c["properties"]),
                mapping.entity_properties(got.get("properties")),
            )
            same = mapping.marker_of(props) == mapping.marker_of(got_props) and mapping.comment_internal(
                c, props
            ) == mapping.comment_internal(got, got_props)
            if not same:
                if self._comment_properties_kept is not False:
                    log.warning(
                        "Jira did not keep the create-time properties of comment %s as written; "
                        "reading comment properties back every time",
                        c.get("id"),
                    )
                self._comment_properties_kept = False
                return
        if self._comment_properties_kept is None:
            self._comment_properties_kept = True

    async def _histories(self, issue_id: str, embedded: Any) -> list[dict[str, Any]] | None:
        if not isinstance(embedded, dict):
            return None
        histories = list(embedded.get("histories") or [])
        total = embedded.get("total")
        if not isinstance(total, int) or total <= len(histories) or self.deployment != "cloud":
            return histories
        # Cloud embeds at most 100 entries; the paginated endpoint has them all, oldest first.
        out: list[dict[str, Any]] = []
        start = 0
        for _ in range(10_000):
            page = await self.client.request(
                "GET", f"issue/{issue_id}/changelog", params={"startAt": start, "maxResults": _PAGE}
            )
            values = (page or {}).get("values") or []
            out.extend(values)
            start += len(values)
            if not values or page.get("isLast", True) or start >= int(page.get("total") or 0):
                break
        return out

    async def _comments(self, issue_id: str) -> list[dict[str, Any]]:
        """All comments with their properties (markers, JSM internal flag)."""
        out: list[dict[str, Any]] = []
        start = 0
        for _ in range(10_000):
            page = await self.client.request(
                "GET",
                f"issue/{issue_id}/comment",
                params={"startAt": start, "maxResults": _PAGE, "expand": "properties", "orderBy": "created"},
            )
            values = (page or {}).get("comments") or []
            out.extend(values)
            start += len(values)
            if not values or start >= int((page or {}).get("total") or 0):
                break
        return out

    async def _attachment_hashes(self, attachments: list[Any]) -> dict[str, str]:
        ids = [str(a["id"]) for a in attachments if isinstance(a, dict) and "id" in a]
        missing = [i for i in ids if i not in self.attachment_hashes]

        async def one(attachment_id: str) -> None:
            async with self._limit:
                try:
                    digest, _size = await self.client.sha256(await self._content_path(attachment_id))
                except TrackerNotFound:
                    return  # deleted meanwhile; the next snapshot will not list it
                self.attachment_hashes[attachment_id] = digest

        await asyncio.gather(*(one(i) for i in missing))
        return {i: self.attachment_hashes[i] for i in ids if i in self.attachment_hashes}

    async def _content_path(self, attachment_id: str) -> str:
        if self.deployment == "cloud":
            return f"attachment/content/{_seg(attachment_id)}"
        meta = await self.client.request("GET", f"attachment/{_seg(attachment_id)}")
        content = (meta or {}).get("content")
        if not isinstance(content, str) or not content:
            raise TrackerError(f"Jira attachment {attachment_id} has no content URL")
        if self.client.same_origin(content):
            return content
        # Jira builds ``content`` from its configured base URL, which may differ from how we reach
        # it (proxy, emulator): keep the path, use our origin, never send credentials elsewhere.
        parts = urlsplit(content)
        base_path = urlsplit(self.base_url).path.rstrip("/")
        path = parts.path if parts.path.startswith(base_path) else base_path + parts.path
        return f"{self.base_url[: len(self.base_url) - len(base_path)]}{path}"

    async def search(self, query: str, *, page_token: str | None = None, page_size: int = 50) -> SearchPage:
        """One page of complete snapshots (equal to :meth:`get_issue`'s), from the page's own
        embedded fields, changelog and comments: per issue, only what the page cannot show is read
        (comment properties where they matter, changelog beyond what was embedded, new attachments)."""
        raw_issues, names, next_token, total = await self._search_raw(
            query,
            page_token=page_token,
            page_size=page_size,
            fields=_ISSUE_FIELDS,
            expand=True,
            properties="*all",
        )
        return SearchPage(
            issues=await self._complete_many(raw_issues, names), next_page_token=next_token, total=total
        )

    async def get_issues(self, ids: Sequence[str]) -> dict[str, IssueSnapshot]:
        """Complete snapshots (equal to :meth:`get_issue`'s) of many issues: one search per
        :data:`_READ_BATCH` ids or keys (``id in (…) OR key in (…)``, with the changelog and all
        issue properties; on Cloud with ``reconcileIssues``, so what was just written is seen), then
        per issue only what the search cannot show (see :meth:`search`). Ids or keys the search
        did not return (a moved issue's old key, a deleted one) are read one by one; a query Jira
        refuses (a key it does not know) falls back to one read per issue."""
        wanted = list(dict.fromkeys(str(i) for i in ids if str(i)))
        out: dict[str, IssueSnapshot] = {}
        for start in range(0, len(wanted), _READ_BATCH):
            chunk = wanted[start : start + _READ_BATCH]
            try:
                rows, names = await self._search_ids(chunk)
            except TrackerRejected as exc:
                log.info("Jira refused a search by id (%s); reading %d issues one by one", exc, len(chunk))
                out.update(await super().get_issues(chunk))
                continue
            by_id: dict[str, IssueSnapshot] = {}
            by_key: dict[str, IssueSnapshot] = {}
            for snap in await self._complete_many(rows, names):
                by_id[snap.id] = snap
                by_key[snap.key.upper()] = snap
            missed: list[str] = []
            for ref in chunk:
                found = by_id.get(ref) or by_key.get(ref.upper())
                if found is None:
                    missed.append(ref)
                else:
                    out[ref] = found
            if missed:
                out.update(await super().get_issues(missed))
        return out

    async def _search_ids(self, refs: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Every issue of ``refs`` (ids or keys) JQL finds, all pages, with what get_issue asks for."""
        ids = [r for r in refs if r.isdigit()]
        keys = [r for r in refs if not r.isdigit()]
        clauses = []
        if ids:
            clauses.append(f"id in ({', '.join(ids)})")
        if keys:
            clauses.append(f"key in ({', '.join(_jql_str(k) for k in keys)})")
        jql = " OR ".join(clauses)
        base: dict[str, Any] = {
            "jql": jql,
            "maxResults": len(refs),
            "fields": [_ISSUE_FIELDS],
            "properties": ["*all"],
        }
        if self.deployment == "cloud":
            base["expand"] = "names,changelog"
            base["reconcileIssues"] = [int(i) for i in ids[:_READ_BATCH]]
        else:
            base["expand"] = ["names", "changelog"]
        rows: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        token: str | None = None
        for _ in range(len(refs) + 1):  # every page but the last holds one issue at least
            if self.deployment == "cloud":
                body = {**base, "nextPageToken": token} if token else base
                page = await self.client.request("POST", "search/jql", json_body=body) or {}
                more = not page.get("isLast", True) and bool(page.get("nextPageToken"))
                token = str(page.get("nextPageToken")) if more else None
            else:
                page = (
                    await self.client.request("POST", "search", json_body={**base, "startAt": len(rows)})
                    or {}
                )
                total = page.get("total")
                more = isinstance(total, int) and len(rows) + len(page.get("issues") or []) < total
            issues = [i for i in page.get("issues") or [] if isinstance(i, dict)]
            rows.extend(issues)
            raw_names = page.get("names")
            if isinstance(raw_names, dict):
                names.update({str(k): str(v) for k, v in raw_names.items()})
            if not more or not issues:
                break
        return rows, names

    async def _complete_many(
        self, rows: list[dict[str, Any]], names: Mapping[str, str]
    ) -> list[IssueSnapshot]:
        """Search rows → snapshots equal to get_issue's (which also carries ``names`` in ``raw``)."""
        me = await self._me()
        for row in rows:
            if names and "names" not in row:
                row["names"] = dict(names)
        return list(await asyncio.gather(*(self._complete(r, names, me=me) for r in rows)))

    async def search_keys(
        self, query: str, *, page_token: str | None = None, page_size: int = 50
    ) -> tuple[list[str], str | None]:
        """Like :meth:`search` but only the keys (no comments, changelog or hashes fetched): for
        listing a bulk job, which reads each issue when it syncs it."""
        raw_issues, _names, next_token, _total = await self._search_raw(
            query, page_token=page_token, page_size=page_size, fields="created", expand=False, properties=""
        )
        return [str(i["key"]) for i in raw_issues if isinstance(i, dict) and i.get("key")], next_token

    async def _search_raw(
        self,
        jql: str,
        *,
        page_token: str | None,
        page_size: int,
        fields: str,
        expand: bool,
        properties: str = mapping.MARKER_PROPERTY,
        overlap: int = 0,
    ) -> tuple[list[dict[str, Any]], dict[str, str], str | None, int | None]:
        page_size = max(1, min(page_size, 100))
        params: dict[str, str | int] = {"jql": jql, "maxResults": page_size, "fields": fields}
        if expand:
            params["expand"] = "names,changelog"
        if properties:
            params["properties"] = properties
        if self.deployment == "cloud":
            if page_token:
                params["nextPageToken"] = page_token
            body = await self.client.request("GET", "search/jql", params=params) or {}
            issues = list(body.get("issues") or [])
            token = body.get("nextPageToken")
            last = body.get("isLast", token is None)
            next_token = None if last or not token else str(token)
            total = body.get("total") if isinstance(body.get("total"), int) else None
        else:
            start = _start_at(page_token)
            params["startAt"] = start
            body = await self.client.request("GET", "search", params=params) or {}
            issues = list(body.get("issues") or [])
            total = body.get("total") if isinstance(body.get("total"), int) else None
            end = start + len(issues)
            more = bool(issues) and (end < total if total is not None else len(issues) >= page_size)
            step = max(1, len(issues) - overlap) if len(issues) > overlap else len(issues)
            next_token = str(start + step) if more else None
        raw_names = body.get("names")
        names = {str(k): str(v) for k, v in raw_names.items()} if isinstance(raw_names, dict) else {}
        return issues, names, next_token, total

    async def changed_since(
        self,
        since: dt.datetime,
        *,
        projects: list[str] | None = None,
        known: Callable[[str, dt.datetime], bool] | None = None,
    ) -> AsyncIterator[IssueSnapshot]:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        zone = await self._time_zone()
        cursor = (since - self.poll_margin).astimezone(zone).replace(second=0, microsecond=0)
        scope = ""
        if projects:
            scope = "project in (" + ", ".join(_jql_str(p) for p in projects) + ") AND "
        # Paging one query by offset is not safe while people work: an issue updated mid-scan
        # jumps to the end and shifts the rest one place left, so the one at the page boundary
        # would be skipped. So after every page the query restarts from the minute of the newest
        # issue seen (keyset paging; everything older was already read). Only inside one minute
        # with more issues than a page does it page by offset, overlapping pages by ``overlap``
        # issues on Server (Cloud's opaque tokens cannot overlap; see docs/trackers/jira.md).
        overlap = max(2, self.poll_page_size // 5)
        seen: set[tuple[str, str]] = set()
        token: str | None = None
        for _ in range(100_000):
            jql = f'{scope}updated >= "{cursor:%Y/%m/%d %H:%M}" ORDER BY updated ASC'
            # With ``known``, list ids and times only and read in full (get_issues) just the
            # issues it does not know: beside working webhooks a poll reads next to nothing.
            raw_issues, names, token, _total = await self._search_raw(
                jql,
                page_token=token,
                page_size=self.poll_page_size,
                fields="updated" if known is not None else _ISSUE_FIELDS,
                expand=known is None,
                properties="" if known is not None else "*all",
                overlap=overlap,
            )
            fresh = []
            for raw in raw_issues:
                updated = str((raw.get("fields") or {}).get("updated"))
                mark = (str(raw.get("id")), updated)
                if mark not in seen:
                    seen.add(mark)
                    fresh.append(raw)
            if known is None:
                for snapshot in await self._complete_many(fresh, names):
                    yield snapshot
            else:
                unknown: list[str] = []
                for raw in fresh:
                    when = mapping.parse_time((raw.get("fields") or {}).get("updated"))
                    if when is None or not known(str(raw.get("id")), when):
                        unknown.append(str(raw.get("id")))
                read = await self.get_issues(unknown) if unknown else {}
                for issue_id in unknown:  # in the listing's order: oldest first
                    if issue_id in read:
                        yield read[issue_id]
            if token is None:
                return
            newest = mapping.parse_time((raw_issues[-1].get("fields") or {}).get("updated"))
            if newest is not None:
                minute = newest.astimezone(zone).replace(second=0, microsecond=0)
                if minute > cursor:
                    cursor, token = minute, None

    # -------------------------------------------------------------------------------------------
    # Writing issues

    async def create_issue(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        created = await self._post_issue(project, update, marker)
        snapshot = await self.get_issue(created["id"])
        if marker and mapping.marker_of(snapshot.properties) != marker:
            self._ignores_create_properties(snapshot.key)
            await self._put_marker(snapshot.id, marker)
            snapshot.properties[mapping.MARKER_PROPERTY] = mapping.marker_value(marker)
        elif marker:
            self._create_properties = True
        return snapshot

    async def create_issue_ref(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        """Create an issue without reading it back (the sync engine reads it once, at the end of
        its apply). The snapshot holds what the request and Jira's answer (id, key) tell: no status
        (``None``), dates, or values Jira computes. The marker is certain to be on the issue: whether
        this site keeps create-time properties is checked once (one property read), and where it
        does not the marker is written separately each time."""
        created = await self._post_issue(project, update, marker)
        issue_id, key = created["id"], str(created.get("key") or created["id"])
        if marker:
            await self._ensure_markers([(issue_id, key, marker)])
        return self._ref_snapshot(project, update, issue_id, key, marker)

    async def create_issues_ref(
        self, project: str, items: Sequence[tuple[IssueUpdate, str | None]]
    ) -> list[IssueSnapshot | TrackerError]:
        """``POST issue/bulk`` by :data:`_BULK_CREATE` (Jira's maximum), each element with its
        marker as a create-time property (checked and, where the site drops them, written
        separately, as :meth:`create_issue_ref` does). An element Jira refuses gets the error
        :meth:`create_issue_ref` would have raised for it, naming the fields; an item whose fields
        cannot even be translated (unknown custom field, no such user) is refused before sending."""
        out: list[IssueSnapshot | TrackerError | None] = [None] * len(items)
        bodies: list[tuple[int, dict[str, Any]]] = []
        for n, (update, marker) in enumerate(items):
            try:
                bodies.append((n, await self._issue_body(project, update, marker)))
            except TrackerTransient:
                raise
            except TrackerError as exc:
                out[n] = exc
        for start in range(0, len(bodies), _BULK_CREATE):
            chunk = bodies[start : start + _BULK_CREATE]
            try:
                answer = await self.client.request(
                    "POST", "issue/bulk", json_body={"issueUpdates": [body for _, body in chunk]}
                )
            except BulkRejected as exc:  # every element refused: Jira answers 400 with the same shape
                answer = exc.result
            outcome = _bulk_outcome(
                answer, len(chunk), self.client.describe("POST", self.client.url("issue/bulk"))
            )
            made: list[tuple[str, str, str]] = []
            for (n, _body), row in zip(chunk, outcome, strict=True):
                if isinstance(row, TrackerError):
                    out[n] = row
                    continue
                issue_id, key = row
                update, marker = items[n]
                out[n] = self._ref_snapshot(project, update, issue_id, key, marker)
                if marker:
                    made.append((issue_id, key, marker))
            await self._ensure_markers(made)
        final = [r for r in out if r is not None]
        assert len(final) == len(items)  # every item got its outcome above
        return final

    async def _ensure_markers(self, made: Sequence[tuple[str, str, str]]) -> None:
        """Make sure each ``(id, key, marker)`` just created carries its marker: the first time,
        check that this site kept the create-time property; where it does not, write them."""
        if not made:
            return
        if self._create_properties is None:
            issue_id, key, marker = made[0]
            try:
                kept = await self.client.request(
                    "GET", f"issue/{_seg(issue_id)}/properties/{mapping.MARKER_PROPERTY}"
                )
            except TrackerNotFound:
                kept = None
            if isinstance(kept, dict) and kept.get("value") == mapping.marker_value(marker):
                self._create_properties = True
            else:
                self._ignores_create_properties(key)
        if self._create_properties:
            return

        async def put(issue_id: str, marker: str) -> None:
            async with self._limit:
                await self._put_marker(issue_id, marker)

        await asyncio.gather(*(put(issue_id, marker) for issue_id, _key, marker in made))

    def _ref_snapshot(
        self, project: str, update: IssueUpdate, issue_id: str, key: str, marker: str | None
    ) -> IssueSnapshot:
        properties: dict[str, Any] = {}
        if marker:
            properties[mapping.MARKER_PROPERTY] = mapping.marker_value(marker)
        return IssueSnapshot(
            tracker=self.kind,
            id=issue_id,
            key=key,
            url=f"{self.base_url}/browse/{key}",
            project=project,
            summary=update.summary or "",
            description=update.description,
            priority=update.priority,
            issue_type=update.issue_type or self.default_issue_type,
            labels=list(update.labels or []),
            properties=properties,
        )

    async def _issue_body(self, project: str, update: IssueUpdate, marker: str | None) -> dict[str, Any]:
        fields = await self._fields_body(update)
        fields["project"] = {"key": project}
        fields.setdefault("issuetype", {"name": self.default_issue_type})
        body: dict[str, Any] = {"fields": fields}
        if marker:
            body["properties"] = [{"key": mapping.MARKER_PROPERTY, "value": mapping.marker_value(marker)}]
        return body

    async def _post_issue(self, project: str, update: IssueUpdate, marker: str | None) -> dict[str, str]:
        body = await self._issue_body(project, update, marker)
        created = await self.client.request("POST", "issue", json_body=body)
        if not isinstance(created, dict) or not created.get("id"):
            raise TrackerError(f"Jira did not return the created issue in project {project}")
        return {k: str(v) for k, v in created.items() if k in ("id", "key", "self")}

    def _ignores_create_properties(self, key: str) -> None:
        # Some Jira versions ignore create-time properties: the marker is then written separately
        # (a crash in between leaves an unmarked twin, which find_issue_by_marker cannot see)
        if self._create_properties is not False:
            log.warning("Jira ignored the create-time marker on %s; writing markers separately", key)
        self._create_properties = False

    async def _put_marker(self, issue_id: str, marker: str) -> None:
        await self.client.request(
            "PUT",
            f"issue/{_seg(issue_id)}/properties/{mapping.MARKER_PROPERTY}",
            json_body=mapping.marker_value(marker),
        )

    async def find_issue_by_marker(self, project: str, marker: str) -> IssueSnapshot | None:
        jql = (
            f"project = {_jql_str(project)} AND creator = currentUser() AND "
            f"created >= -{int(self.marker_window_days)}d ORDER BY created DESC"
        )
        token: str | None = None
        scanned = 0
        while scanned < self.marker_scan_limit:
            issues, _names, token, _total = await self._search_raw(
                jql,
                page_token=token,
                page_size=min(100, self.marker_scan_limit - scanned),
                fields="created",
                expand=False,
            )
            for raw in issues:
                props = mapping.entity_properties(raw.get("properties"))
                if mapping.marker_of(props) == marker:
                    return await self.get_issue(str(raw["id"]))
            scanned += len(issues)
            if token is None or not issues:
                break
        return None

    async def update_issue(self, key: str, update: IssueUpdate) -> None:
        fields = await self._fields_body(update)
        if not fields:
            return
        await self.client.request("PUT", f"issue/{_seg(key)}", json_body={"fields": fields})

    async def delete_issue(self, key: str) -> None:
        await self.client.request("DELETE", f"issue/{_seg(key)}")

    async def _fields_body(self, update: IssueUpdate) -> dict[str, Any]:
        touched = update.touched()
        out: dict[str, Any] = {}
        if "summary" in touched:
            out["summary"] = update.summary or ""
        if "description" in touched:
            out["description"] = to_native(update.description, self.text_format)
        if "priority" in touched:
            out["priority"] = {"name": update.priority} if update.priority else None
        if "issue_type" in touched and update.issue_type:
            out["issuetype"] = {"name": update.issue_type}
        if "labels" in touched:
            out["labels"] = list(update.labels or [])
        if "components" in touched:
            out["components"] = [{"name": n} for n in update.components or []]
        if "fix_versions" in touched:
            out["fixVersions"] = [{"name": n} for n in update.fix_versions or []]
        if "affects_versions" in touched:
            out["versions"] = [{"name": n} for n in update.affects_versions or []]
        if "due_date" in touched:
            out["duedate"] = update.due_date.isoformat() if update.due_date else None
        if "assignee" in touched:
            out["assignee"] = await self._user_value(update.assignee, "assignee")
        if "reporter" in touched:
            out["reporter"] = await self._user_value(update.reporter, "reporter")
        if "parent_key" in touched and update.parent_key:
            out["parent"] = {"key": update.parent_key}
        if "custom_fields" in touched and update.custom_fields:
            meta = await self.fields()
            for fid, value in update.custom_fields.items():
                if fid not in meta:
                    meta = await self.fields(refresh=True)
                if fid not in meta:
                    raise TrackerRejected(
                        f"Jira has no field {fid!r}", errors={fid: "unknown field (not in /field)"}
                    )
                out[fid] = await self._custom_value(fid, meta[fid].get("schema") or {}, value)
        return out

    async def _user_value(self, ref: UserRef | None, field: str) -> dict[str, str] | None:
        if ref is None or ref.is_empty():
            return None
        if self.deployment == "cloud" and ref.account_id:
            return {"accountId": ref.account_id}
        if self.deployment == "server" and ref.username:
            return {"name": ref.username}
        found = await self.find_user(ref)
        if found is None:
            who = ref.email or ref.display_name or ref.username or ref.account_id
            raise TrackerRejected(f"no Jira user matches {who!r} for {field}", errors={field: "no such user"})
        if self.deployment == "cloud" and found.account_id:
            return {"accountId": found.account_id}
        return {"name": found.username or ""}

    async def _custom_value(self, fid: str, schema: Mapping[str, Any], value: Any) -> Any:
        """A neutral value → the JSON Jira wants for this field's schema."""
        if value is None:
            return None
        kind = schema.get("type")
        custom = str(schema.get("custom") or "")
        if kind == "array":
            items = schema.get("items")
            values = value if isinstance(value, list) else [value]
            return [await self._custom_value(fid, {"type": items}, v) for v in values]
        if kind == "option":
            return {"value": _option_text(value)}
        if kind == "option-with-child":
            text = _option_text(value)
            parent, sep, child = text.partition(" - ")
            return {"value": parent, "child": {"value": child}} if sep else {"value": parent}
        if kind == "user":
            ref = UserRef.model_validate(value) if isinstance(value, dict) else _user_from_text(value)
            return await self._user_value(ref, fid)
        if kind in ("version", "component", "group"):
            return {"name": _option_text(value)}
        if kind == "number":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise TrackerRejected(
                    f"{fid} needs a number, got {value!r}", errors={fid: "not a number"}
                ) from None
        if kind == "date":
            return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
        if kind == "datetime":
            return value.isoformat() if isinstance(value, dt.datetime) else str(value)
        if custom.endswith(":textarea") or (kind == "string" and _is_doc(value)):
            doc: Doc = value if _is_doc(value) else from_plain_text(str(value))
            return to_native(doc, self.text_format)
        if kind == "string":
            return str(value)
        return value

    # -------------------------------------------------------------------------------------------
    # Workflow

    async def transitions(self, key: str) -> list[Transition]:
        body = await self.client.request("GET", f"issue/{_seg(key)}/transitions") or {}
        out: list[Transition] = []
        for t in body.get("transitions") or []:
            target = mapping.status_ref(t.get("to"))
            if target is not None and t.get("id") is not None:
                out.append(Transition(id=str(t["id"]), name=str(t.get("name") or target.name), to=target))
        return out

    async def transition(self, key: str, transition_id: str) -> None:
        await self.client.request(
            "POST", f"issue/{_seg(key)}/transitions", json_body={"transition": {"id": str(transition_id)}}
        )

    # -------------------------------------------------------------------------------------------
    # Comments

    async def add_comment(
        self, key: str, body: Doc, *, internal: bool = False, marker: str | None = None
    ) -> Comment:
        payload: dict[str, Any] = {"body": to_native(body, self.text_format)}
        properties = []
        if internal:
            properties.append({"key": mapping.SD_PUBLIC_COMMENT, "value": {"internal": True}})
            if self.internal_visibility:
                payload["visibility"] = self.internal_visibility
        if marker:
            properties.append({"key": mapping.MARKER_PROPERTY, "value": mapping.marker_value(marker)})
        if properties:
            payload["properties"] = properties
        raw = await self.client.request("POST", f"issue/{_seg(key)}/comment", json_body=payload)
        if not isinstance(raw, dict) or "id" not in raw:
            raise TrackerError(f"Jira did not return the comment added to {key}")
        self.written_comments.remember(str(raw["id"]), raw.get("updated"), properties)
        comment, _ = mapping.comment_of(raw, sent=body)
        comment.internal = internal or comment.internal  # the answer does not show the property
        return comment

    async def update_comment(
        self, key: str, comment_id: str, body: Doc, *, internal: bool | None = None
    ) -> Comment:
        payload: dict[str, Any] = {"body": to_native(body, self.text_format)}
        if internal and self.internal_visibility:
            payload["visibility"] = self.internal_visibility
        # What the memo knows of this comment holds until both writes are through (a failure in
        # between leaves it unknown: read from Jira next time).
        written = self.written_comments.take(str(comment_id))
        raw = await self.client.request(
            "PUT", f"issue/{_seg(key)}/comment/{_seg(comment_id)}", json_body=payload
        )
        if internal is not None:
            await self.client.request(
                "PUT",
                f"comment/{_seg(comment_id)}/properties/{mapping.SD_PUBLIC_COMMENT}",
                json_body={"internal": internal},
            )
        if not isinstance(raw, dict) or "id" not in raw:
            raise TrackerError(f"Jira did not return comment {comment_id} of {key}")
        if written is not None:
            props = dict(written)
            if internal is not None:
                props[mapping.SD_PUBLIC_COMMENT] = {"internal": internal}
            self.written_comments.remember(
                str(comment_id), raw.get("updated"), [{"key": k, "value": v} for k, v in props.items()]
            )
        comment, _ = mapping.comment_of(raw)
        if internal is not None:
            comment = comment.model_copy(update={"internal": internal or bool(raw.get("visibility"))})
        return comment

    async def delete_comment(self, key: str, comment_id: str) -> None:
        self.written_comments.forget(str(comment_id))
        await self.client.request("DELETE", f"issue/{_seg(key)}/comment/{_seg(comment_id)}")

    # -------------------------------------------------------------------------------------------
    # Attachments

    async def add_attachment(
        self, key: str, filename: str, content: bytes, *, mime_type: str = "application/octet-stream"
    ) -> Attachment:
        rows = await self.client.request(
            "POST",
            f"issue/{_seg(key)}/attachments",
            upload=(filename, content, mime_type),
            headers={"X-Atlassian-Token": "no-check"},
        )
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise TrackerError(f"Jira did not return the attachment added to {key}")
        digest = hashlib.sha256(content).hexdigest()
        self.attachment_hashes[str(rows[0]["id"])] = digest
        return mapping.attachment_of(rows[0], digest)

    async def get_attachment_content(self, attachment_id: str) -> bytes:
        data = await self.client.download(await self._content_path(attachment_id))
        self.attachment_hashes[str(attachment_id)] = hashlib.sha256(data).hexdigest()
        return data

    # -------------------------------------------------------------------------------------------
    # Users

    async def find_user(self, ref: UserRef) -> UserRef | None:
        if ref.account_id and self.deployment == "cloud":
            try:
                return mapping.user_ref(
                    await self.client.request("GET", "user", params={"accountId": ref.account_id})
                )
            except TrackerNotFound:
                pass
        if ref.username and self.deployment == "server":
            try:
                return mapping.user_ref(
                    await self.client.request("GET", "user", params={"username": ref.username})
                )
            except TrackerNotFound:
                pass
        param = "query" if self.deployment == "cloud" else "username"
        if ref.email:
            rows = await self._user_search(param, ref.email)
            exact = [u for u in rows if (u.email or "").lower() == ref.email.lower()]
            if len(exact) == 1:
                return exact[0]
            if not exact and len(rows) == 1 and rows[0].email is None:
                return rows[0]  # Cloud hides emails but matches on them
        if ref.display_name:
            rows = await self._user_search(param, ref.display_name)
            exact = [u for u in rows if (u.display_name or "").casefold() == ref.display_name.casefold()]
            if len(exact) == 1:
                return exact[0]
        return None

    async def _user_search(self, param: str, text: str) -> list[UserRef]:
        rows = await self.client.request("GET", "user/search", params={param: text, "maxResults": 20}) or []
        return [r for r in (mapping.user_ref(u) for u in rows if isinstance(u, dict)) if r is not None]

    # -------------------------------------------------------------------------------------------
    # Webhooks

    async def register_webhook(self, url: str, *, secret: str | None = None) -> str:
        body: dict[str, Any] = {
            "name": "Tandem",
            "url": url,
            "events": list(SUBSCRIBED_EVENTS),
            "excludeBody": False,
        }
        if secret:
            body["secret"] = secret
            self.webhook_secret = secret
        created = await self.client.request("POST", "/rest/webhooks/1.0/webhook", json_body=body)
        if not isinstance(created, dict):
            raise TrackerError("Jira did not return the registered webhook")
        self_url = str(created.get("self") or "")
        webhook_id = created.get("id") or self_url.rstrip("/").rsplit("/", 1)[-1]
        if not webhook_id:
            raise TrackerError("Jira did not say which id the new webhook has")
        return str(webhook_id)

    async def unregister_webhook(self, webhook_id: str) -> None:
        await self.client.request("DELETE", f"/rest/webhooks/1.0/webhook/{_seg(webhook_id)}")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackerEvent]:
        events = _parse_webhook(headers, body, secret=self.webhook_secret)
        if len(self.written_comments):
            # Someone else touched a comment we remember: whatever it was (an edit, JSM's internal
            # flag), the next read asks Jira. Our own writes' echoes leave the memo alone.
            for event in events:
                if event.comment_id and not self._is_proxy_user(event.actor):
                    self.written_comments.forget(event.comment_id)
        return events

    def _is_proxy_user(self, who: UserRef | None) -> bool:
        me = self._myself
        if who is None or me is None:
            return False
        if self.deployment == "cloud":
            return bool(who.account_id) and who.account_id == me.get("accountId")
        return bool(who.username) and who.username == me.get("name")


# -----------------------------------------------------------------------------------------------
# Factory


async def connect_jira(
    base_url: str,
    *,
    user: str | None,
    token: str,
    auth: AuthKind = "basic",
    **options: Any,
) -> JiraAdapter:
    """Build an adapter after asking ``/rest/api/2/serverInfo`` which deployment this is
    (``deploymentType``: ``Cloud`` → REST v3 + ADF; ``Server``/``DataCenter`` → REST v2 + wiki)."""
    probe = JiraClient(base_url, deployment="server", user=user, token=token, auth=auth)
    try:
        info = await probe.request("GET", "/rest/api/2/serverInfo") or {}
    finally:
        await probe.close()
    kind = str(info.get("deploymentType") or "").lower()
    deployment: Deployment = "cloud" if kind == "cloud" else "server"
    return JiraAdapter(base_url, deployment=deployment, user=user, token=token, auth=auth, **options)


# -----------------------------------------------------------------------------------------------
# Helpers


def _seg(value: str) -> str:
    """One URL path segment (issue keys and ids are safe, but never trust input)."""
    return quote(str(value), safe="")


def _jql_str(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _start_at(token: str | None) -> int:
    if not token:
        return 0
    try:
        start = int(token)
    except ValueError:
        raise TrackerRejected(f"not a page token from this adapter: {token!r}") from None
    if start < 0:
        raise TrackerRejected(f"not a page token from this adapter: {token!r}")
    return start


def _bulk_outcome(answer: Any, count: int, describe: str) -> list[tuple[str, str] | TrackerError]:
    """One outcome per element of a ``POST issue/bulk`` of ``count`` elements: ``(id, key)`` or the
    error Jira gave it. Created issues are listed in element order, failed ones left out; an answer
    that does not add up cannot be attributed and counts as a fault of the whole request (the
    caller finds what was created by marker)."""
    if not isinstance(answer, dict):
        raise TrackerTransient(f"{describe}: Jira returned no bulk result")
    failed: dict[int, TrackerError] = {}
    for row in answer.get("errors") or []:
        n = row.get("failedElementNumber") if isinstance(row, dict) else None
        if not isinstance(n, int) or not 0 <= n < count:
            continue
        status = row.get("status") if isinstance(row.get("status"), int) else 400
        messages, errors = jira_error_detail(row.get("elementErrors"))
        detail = "; ".join(messages + [f"{k}: {v}" for k, v in errors.items()])
        message = f"{describe} → {status} (element {n})" + (f": {detail}" if detail else "")
        failed[n] = error_for_status(status, message, errors=errors)
    issues = [i for i in answer.get("issues") or [] if isinstance(i, dict) and i.get("id")]
    if len(issues) != count - len(failed):
        raise TrackerTransient(
            f"{describe}: Jira listed {len(issues)} created issues for {count - len(failed)} elements it took"
        )
    created = iter(issues)
    out: list[tuple[str, str] | TrackerError] = []
    for n in range(count):
        if n in failed:
            out.append(failed[n])
        else:
            issue = next(created)
            out.append((str(issue["id"]), str(issue.get("key") or issue["id"])))
    return out


def _is_doc(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and isinstance(value.get("content"), list)


def _option_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("value") or value.get("name") or "")
    return str(value)


def _user_from_text(value: Any) -> UserRef:
    text = str(value)
    if "@" in text:
        return UserRef(email=text)
    return UserRef(account_id=text, username=text)
