"""The replica: a neutral, versioned, tracker-independent snapshot of one entity.

A replica is what the sender's outgoing rules chose to share; the receiver keeps the previous one it
applied so its incoming rules can see what changed. Forward compatibility: unknown fields from a newer
sender are ignored (``extra="ignore"``) so an older node still reads every field it knows, and
``schema_version`` says which version wrote it.

Pure data: no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol import jsonbytes
from protocol.richtext import Doc, validate_doc

REPLICA_SCHEMA_VERSION = 1

RichText = Annotated[Doc, AfterValidator(validate_doc)]
StatusCategory = Literal["new", "indeterminate", "done"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False, populate_by_name=True)


class UserRef(_Model):
    """A person as the sender knows them. Any part may be missing; receivers map by what is present."""

    email: str | None = None
    display_name: str | None = None
    account_id: str | None = None
    username: str | None = None

    def is_empty(self) -> bool:
        return not (self.email or self.display_name or self.account_id or self.username)


class StatusRef(_Model):
    name: str
    category: StatusCategory = "new"


class EntityRef(_Model):
    """Identifies an entity on the sender's side."""

    kind: str = "issue"
    id: str
    key: str | None = None
    url: str | None = None
    project: str | None = None


class Comment(_Model):
    id: str
    author: UserRef | None = None
    body: RichText
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    internal: bool = False


class Attachment(_Model):
    """Metadata only; content is fetched separately and checked against ``sha256``."""

    id: str
    filename: str
    size: int = Field(ge=0)
    mime_type: str = "application/octet-stream"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: dt.datetime | None = None
    author: UserRef | None = None
    url: str | None = None  # where the sender's users can open it (trackers without attachments link it)


class Worklog(_Model):
    id: str
    author: UserRef | None = None
    started: dt.datetime | None = None
    time_spent_seconds: int = Field(ge=0)
    comment: RichText | None = None


class Link(_Model):
    """A link from this entity to another one (by the sender's key) or to a URL."""

    type: str
    direction: Literal["outward", "inward"] = "outward"
    target_key: str | None = None
    target_url: str | None = None
    title: str | None = None


class Replica(_Model):
    schema_version: int = REPLICA_SCHEMA_VERSION
    entity: EntityRef
    summary: str | None = None
    description: RichText | None = None
    status: StatusRef | None = None
    priority: str | None = None
    issue_type: str | None = None
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    fix_versions: list[str] = Field(default_factory=list)
    affects_versions: list[str] = Field(default_factory=list)
    due_date: dt.date | None = None
    assignee: UserRef | None = None
    reporter: UserRef | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    comments: list[Comment] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)
    worklogs: list[Worklog] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    parent: EntityRef | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    # When each field last changed on the sender's side (from its tracker history), keyed by the
    # replica field name ("summary", "status", "custom_fields.customfield_10010", ...). Lets the
    # receiver resolve a field edited on both sides deterministically (later change wins).
    field_changed_at: dict[str, dt.datetime] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict)

    def fingerprint_payload(self) -> bytes:
        """Canonical bytes for "unchanged since last sent" checks (independent of field order)."""
        data = self.model_dump(mode="json", exclude={"updated", "field_changed_at"})
        return jsonbytes.dumps(data, sort_keys=True)
