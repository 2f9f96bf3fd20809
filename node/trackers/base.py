"""The one small seam between the sync engine and a tracker.

Every tracker package (``node.trackers.jira``, ``node.trackers.github``, …) provides a
:class:`TrackerAdapter` subclass, a webhook parser and an emulator. The engine only ever sees the
neutral types defined here and in :mod:`protocol.replica`; tracker-native shapes stay inside the
tracker package (``IssueSnapshot.raw`` is for diagnostics and tracker-specific rules only).

Errors, by whose fault they are (the retry policy reads off the tree)::

    TrackerError
    ├── TrackerTransient      429, 5xx, timeouts, connection resets: retry with backoff
    │                         (``retry_after`` seconds when the tracker said so)
    ├── TrackerAuthError      401/403: our credentials or permissions; never retried automatically
    ├── TrackerNotFound       404: the entity (or project) does not exist
    ├── TrackerRejected       other 4xx: the tracker refused the input (``errors`` names the fields)
    └── WebhookError          a webhook body or signature we cannot accept (bad input, counted)
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.replica import Attachment, Comment, EntityRef, Link, StatusRef, UserRef, Worklog
from protocol.richtext import Doc

# ---------------------------------------------------------------------------------------------------
# Errors


class TrackerError(Exception):
    """Base of tracker faults. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TrackerTransient(TrackerError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TrackerAuthError(TrackerError):
    pass


class TrackerNotFound(TrackerError):
    pass


class TrackerRejected(TrackerError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.errors: dict[str, str] = dict(errors or {})


class WebhookError(TrackerError):
    pass


# ---------------------------------------------------------------------------------------------------
# Neutral local views


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeItem(_Model):
    """One field change from the tracker's history (drives JQL WAS / CHANGED and echo detection)."""

    field: str  # neutral name where one exists ("status", "assignee", "priority", ...), else tracker's
    from_value: str | None = None  # display value ("Open", "Jane Doe")
    to_value: str | None = None
    from_id: str | None = None  # tracker id ("1", accountId/username)
    to_id: str | None = None
    author: UserRef | None = None
    at: dt.datetime


class IssueSnapshot(_Model):
    """The current state of one local issue, in neutral terms.

    ``custom_fields`` is keyed by the tracker's field id (``customfield_10010``); ``field_names``
    maps ids to display names so JQL can use either. ``properties`` holds entity properties (Jira
    issue properties, or an adapter's equivalent) including Tandem's own twin marker.
    """

    tracker: str
    id: str
    key: str
    url: str | None = None
    project: str
    summary: str = ""
    description: Doc | None = None
    status: StatusRef | None = None
    resolution: str | None = None
    priority: str | None = None
    issue_type: str | None = None
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    fix_versions: list[str] = Field(default_factory=list)
    affects_versions: list[str] = Field(default_factory=list)
    due_date: dt.date | None = None
    assignee: UserRef | None = None
    reporter: UserRef | None = None
    creator: UserRef | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    field_names: dict[str, str] = Field(default_factory=dict)
    comments: list[Comment] = Field(default_factory=list)
    comment_markers: dict[str, str] = Field(default_factory=dict)  # comment id -> Tandem marker
    attachments: list[Attachment] = Field(default_factory=list)
    worklogs: list[Worklog] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    parent: EntityRef | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    watchers: list[UserRef] = Field(default_factory=list)
    votes: int = 0
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    resolved: dt.datetime | None = None
    updated_by: UserRef | None = None
    changelog: list[ChangeItem] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    def ref(self) -> EntityRef:
        return EntityRef(id=self.id, key=self.key, url=self.url, project=self.project)


class IssueUpdate(_Model):
    """Fields to set on create or update. Only fields explicitly set are touched
    (``model_fields_set``); setting a field to ``None`` clears it."""

    summary: str | None = None
    description: Doc | None = None
    priority: str | None = None
    issue_type: str | None = None
    labels: list[str] | None = None
    components: list[str] | None = None
    fix_versions: list[str] | None = None
    affects_versions: list[str] | None = None
    due_date: dt.date | None = None
    assignee: UserRef | None = None
    reporter: UserRef | None = None
    custom_fields: dict[str, Any] | None = None  # only the listed ids are touched
    parent_key: str | None = None

    def touched(self) -> set[str]:
        return set(self.model_fields_set)


class Transition(_Model):
    id: str
    name: str
    to: StatusRef


class TrackerAccount(_Model):
    """Who the node acts as on its tracker (the proxy user) and what it is talking to."""

    user: UserRef
    tracker: str
    base_url: str
    server_title: str | None = None
    version: str | None = None


EventKind = Literal[
    "issue_created",
    "issue_updated",
    "issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
    "attachment_created",
    "attachment_deleted",
]


class TrackerEvent(_Model):
    """One change reported by a webhook (or synthesised by polling)."""

    kind: EventKind
    issue_id: str
    issue_key: str | None = None
    project: str | None = None
    actor: UserRef | None = None
    at: dt.datetime | None = None
    comment_id: str | None = None
    changed_fields: list[str] = Field(default_factory=list)
    changelog: list[ChangeItem] = Field(default_factory=list)


class SearchPage(_Model):
    issues: list[IssueSnapshot]
    next_page_token: str | None = None
    total: int | None = None


# ---------------------------------------------------------------------------------------------------
# The seam


class TrackerAdapter(abc.ABC):
    """Async access to one tracker as the proxy user. Implementations pool connections, retry
    :class:`TrackerTransient` faults with backoff honouring ``Retry-After`` (bounded attempts), and
    raise the other :class:`TrackerError` kinds at once."""

    kind: ClassVar[str]
    # The secret the tracker signs webhook deliveries with (set by register_webhook, or restored by
    # the node at start); parse_webhook verifies signatures with it where the tracker signs.
    webhook_secret: str | None = None

    @abc.abstractmethod
    async def check(self) -> TrackerAccount:
        """Verify credentials and reachability; raises TrackerAuthError with a clear message."""

    @abc.abstractmethod
    async def get_issue(self, key_or_id: str) -> IssueSnapshot: ...

    @abc.abstractmethod
    async def search(self, query: str, *, page_token: str | None = None, page_size: int = 50) -> SearchPage:
        """Run a native query (JQL for Jira). ``page_token`` is opaque, from the previous page."""

    @abc.abstractmethod
    def changed_since(
        self,
        since: dt.datetime,
        *,
        projects: list[str] | None = None,
        known: Callable[[str, dt.datetime], bool] | None = None,
    ) -> AsyncIterator[IssueSnapshot]:
        """Every issue updated at or after ``since`` (polling fallback), oldest first. Implementations
        overlap page and clock-granularity boundaries so nothing is missed; callers deduplicate.

        ``known(issue_id, updated)`` is asked for every issue listed (``updated`` in the tracker's
        clock); an issue it answers True for is neither read in full nor yielded (intake: a webhook
        already reported a change at least that recent), so a poll beside working webhooks costs a
        listing, not a read of everything that changed."""

    @abc.abstractmethod
    async def create_issue(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        """Create an issue; ``marker`` is stored where :meth:`find_issue_by_marker` finds it."""

    async def create_issue_ref(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        """Create an issue where the caller reads it back later anyway (the sync engine does, at the
        end of its apply). Adapters that can skip the read after the create override this; the
        snapshot they return may lack values the tracker computes (status, dates)."""
        return await self.create_issue(project, update, marker=marker)

    async def create_issues_ref(
        self, project: str, items: Sequence[tuple[IssueUpdate, str | None]]
    ) -> list[IssueSnapshot | TrackerError]:
        """Create several issues in ``project`` (each ``(update, marker)``), as cheaply as the
        tracker allows (Jira: ``POST issue/bulk``). One outcome per item, in order: the created
        issue (as :meth:`create_issue_ref` returns it) or the :class:`TrackerError` that refused that
        item. A transient fault of the whole request raises :class:`TrackerTransient` (nothing, or
        part, may have been created: callers find those by marker). Default: one create at a time."""
        out: list[IssueSnapshot | TrackerError] = []
        for update, marker in items:
            try:
                out.append(await self.create_issue_ref(project, update, marker=marker))
            except TrackerTransient:
                raise
            except TrackerError as exc:
                out.append(exc)
        return out

    async def get_issues(self, ids: Sequence[str]) -> dict[str, IssueSnapshot]:
        """Read several issues (by id or key) as complete as :meth:`get_issue`, as cheaply as the
        tracker allows; the result is keyed by the id or key asked for; issues that do not exist
        are left out. Default: :meth:`get_issue` for each, a few at a time."""
        out: dict[str, IssueSnapshot] = {}
        limit = asyncio.Semaphore(8)

        async def one(ref: str) -> None:
            async with limit:
                try:
                    out[ref] = await self.get_issue(ref)
                except TrackerNotFound:
                    pass

        await asyncio.gather(*(one(r) for r in dict.fromkeys(ids)))
        return out

    async def search_keys(
        self, query: str, *, page_token: str | None = None, page_size: int = 50
    ) -> tuple[list[str], str | None]:
        """Only the keys of :meth:`search` (bulk jobs list first, read each issue when they sync
        it). Adapters that can list keys more cheaply override this."""
        page = await self.search(query, page_token=page_token, page_size=page_size)
        return [issue.key for issue in page.issues], page.next_page_token

    @abc.abstractmethod
    async def find_issue_by_marker(self, project: str, marker: str) -> IssueSnapshot | None: ...

    @abc.abstractmethod
    async def update_issue(self, key: str, update: IssueUpdate) -> None: ...

    @abc.abstractmethod
    async def delete_issue(self, key: str) -> None: ...

    @abc.abstractmethod
    async def transitions(self, key: str) -> list[Transition]: ...

    @abc.abstractmethod
    async def transition(self, key: str, transition_id: str) -> None: ...

    @abc.abstractmethod
    async def add_comment(
        self, key: str, body: Doc, *, internal: bool = False, marker: str | None = None
    ) -> Comment: ...

    @abc.abstractmethod
    async def update_comment(
        self, key: str, comment_id: str, body: Doc, *, internal: bool | None = None
    ) -> Comment: ...

    @abc.abstractmethod
    async def delete_comment(self, key: str, comment_id: str) -> None: ...

    @abc.abstractmethod
    async def add_attachment(
        self, key: str, filename: str, content: bytes, *, mime_type: str = "application/octet-stream"
    ) -> Attachment: ...

    @abc.abstractmethod
    async def get_attachment_content(self, attachment_id: str) -> bytes: ...

    @abc.abstractmethod
    async def find_user(self, ref: UserRef) -> UserRef | None:
        """Resolve a user reference to a local user by email, account id or username."""

    @abc.abstractmethod
    async def register_webhook(self, url: str, *, secret: str | None = None) -> str:
        """Register a webhook delivering issue and comment events to ``url``; returns its id."""

    @abc.abstractmethod
    async def unregister_webhook(self, webhook_id: str) -> None: ...

    @abc.abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackerEvent]:
        """Parse one webhook delivery; raises WebhookError for anything not acceptable."""

    @abc.abstractmethod
    async def close(self) -> None: ...
