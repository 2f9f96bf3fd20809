"""The change set: what incoming rules decided to do to the local tracker (pure data).

The sync engine applies a :class:`ChangeSet` through the tracker adapter; nothing here performs I/O.
Only what must change is listed: ``fields`` holds the touched fields only (``IssueUpdate`` tracks
them in ``model_fields_set``, and serialisation keeps exactly those), ``status`` is the target local
status NAME (the engine walks the workflow, several transitions if needed), user fields are listed
apart in ``users`` because resolving a remote person to a local one needs the tracker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from node.rules.errors import RuleError
from node.trackers.base import IssueUpdate
from protocol.replica import Attachment, RichText, UserRef

Action = Literal["create", "update", "ignore"]
Winner = Literal["local", "remote"]
UserMatchKey = Literal["email", "account_id", "username"]
UnmatchedUser = Literal["default", "keep", "error"]
_ALL_KEYS: tuple[UserMatchKey, ...] = ("email", "account_id", "username")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentAdd(_Model):
    remote_id: str
    body: RichText  # header line (naming the remote author) + the remote body
    internal: bool = False
    author: UserRef | None = None
    created: dt.datetime | None = None


class CommentEdit(_Model):
    remote_id: str
    local_id: str
    body: RichText
    internal: bool | None = None


class CommentDelete(_Model):
    remote_id: str
    local_id: str


class AttachmentAdd(_Model):
    """The engine fetches the content from the peer and checks it against ``remote.sha256``."""

    remote: Attachment


class AttachmentDelete(_Model):
    remote_id: str
    local_id: str


class UserResolution(_Model):
    """The outcome of resolving a :class:`UserChange`: set ``user`` (None = clear), or keep."""

    action: Literal["set", "keep"]
    user: UserRef | None = None
    note: str = ""


class UserChange(_Model):
    """Set a user field (``assignee``, ``reporter``) to the local person matching ``remote``.

    ``mapped`` is the explicit table's answer when it had one. Resolution order: ``remote`` None →
    clear the field (the peer unassigned it); table → that user; else look the remote user up by
    ``match_by`` keys; unmatched → ``unmatched`` policy (``default`` user, ``keep`` the local value,
    or ``error``). Never silently unassigned.
    """

    field: str
    remote: UserRef | None
    mapped: UserRef | None = None
    match_by: list[UserMatchKey] = Field(default_factory=lambda: list(_ALL_KEYS))
    unmatched: UnmatchedUser = "keep"
    default: UserRef | None = None

    def lookup_ref(self) -> UserRef | None:
        """The remote reference restricted to the keys we match by (what to ask the tracker for)."""
        if self.remote is None:
            return None
        ref = UserRef(**{k: getattr(self.remote, k) for k in self.match_by})
        return None if ref.is_empty() else ref

    async def resolve(self, find_user: Callable[[UserRef], Awaitable[UserRef | None]]) -> UserResolution:
        """Resolve with the tracker's user search (``TrackerAdapter.find_user``). Raises RuleError
        under the ``error`` policy when nobody matches."""
        if self.remote is None:
            return UserResolution(action="set", user=None, note="cleared by the peer")
        if self.mapped is not None:
            return UserResolution(action="set", user=self.mapped, note="user table")
        ref = self.lookup_ref()
        found = await find_user(ref) if ref is not None else None
        if found is not None:
            return UserResolution(action="set", user=found, note="matched")
        who = self.remote.display_name or self.remote.email or self.remote.account_id or "unknown user"
        if self.unmatched == "default":
            if self.default is None:
                raise RuleError(f"{self.field}: no local user matches {who!r} and no default user is set")
            return UserResolution(action="set", user=self.default, note=f"default user for {who!r}")
        if self.unmatched == "keep":
            return UserResolution(action="keep", note=f"no local user matches {who!r}; left unchanged")
        raise RuleError(f"{self.field}: no local user matches {who!r}", path=f"users.{self.field}")


class Conflict(_Model):
    """A field changed on both sides since the last sync, and how it was resolved."""

    field: str  # local field name
    local_value: Any = None
    remote_value: Any = None
    local_changed_at: dt.datetime | None = None
    remote_changed_at: dt.datetime | None = None
    winner: Winner
    reason: str


class ChangeSet(_Model):
    action: Action
    reason: str = ""
    project: str | None = None  # on create
    fields: IssueUpdate = Field(default_factory=lambda: IssueUpdate())
    status: str | None = None
    # A transition (id or name) to take to reach ``status`` when the issue offers it, before walking
    # the workflow (GitHub: ``close_not_planned``).
    transition: str | None = None
    # The local result of this change cannot be known by the peer (an open/closed state walked to
    # a status of this workflow): the engine sends the next replica even if only its own write
    # changed the issue, so the peer learns the status reached.
    report_back: bool = False
    users: list[UserChange] = Field(default_factory=list)
    comments_add: list[CommentAdd] = Field(default_factory=list)
    comments_edit: list[CommentEdit] = Field(default_factory=list)
    comments_delete: list[CommentDelete] = Field(default_factory=list)
    attachments_add: list[AttachmentAdd] = Field(default_factory=list)
    attachments_delete: list[AttachmentDelete] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        if value is None:
            return IssueUpdate()
        return value

    @field_serializer("fields")
    def _dump_fields(self, value: IssueUpdate, _info: Any) -> dict[str, Any]:
        # Only touched fields: "absent" (untouched) and None (clear it) must stay distinct.
        return value.model_dump(mode="json", exclude_unset=True)

    def is_empty(self) -> bool:
        """True when applying it would change nothing on the tracker."""
        return not (
            self.fields.touched()
            or self.status is not None
            or self.users
            or self.comments_add
            or self.comments_edit
            or self.comments_delete
            or self.attachments_add
            or self.attachments_delete
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
