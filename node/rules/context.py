"""What the sync engine tells the rules about the connection and the twin (pure data)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from protocol.replica import UserRef


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutgoingContext(_Model):
    """The connection an outgoing replica is made for.

    ``received_comment_ids`` / ``received_attachment_ids`` are LOCAL ids of comments and attachments
    this node created from the peer's replicas: they are never sent back (no echo).
    """

    connection: str = ""
    node_id: str = ""
    peer_node_id: str = ""
    peer_name: str = ""
    received_comment_ids: set[str] = Field(default_factory=set)
    received_attachment_ids: set[str] = Field(default_factory=set)
    # The tracker account the node writes as: its changelog entries do not count as local edits
    # when filling ``Replica.field_changed_at``.
    proxy_user: UserRef | None = None


class IncomingContext(_Model):
    """The connection and twin a received replica is applied to.

    * ``project``: where a new local issue is created; ``default_issue_type`` when the replica's type
      maps to nothing.
    * ``comment_map`` / ``attachment_map``: the twin's maps, REMOTE id → LOCAL id, of what this node
      already created from the peer's comments and attachments.
    * ``last_applied``: local field values as they were right after this node last synced the twin
      (as returned by :meth:`node.rules.CompiledRules.local_values` on the re-read issue). A local
      value that differs from it was edited locally since: a candidate change to that field is a
      conflict. Without it, the baseline is ``previous`` mapped through the incoming rules.
    * ``node_id`` / ``peer_node_id``: break ties between equally recent changes identically on both
      sides (the smaller node id wins).
    * ``tracker``: the LOCAL tracker's kind (``TrackerAdapter.kind``: ``jira``, ``github``, ...);
      ``peer_tracker`` the sender's, when known other than by ``replica.extras["tracker"]``. They
      switch on the tracker-aware defaults (:mod:`node.rules.trackers`).
    """

    connection: str = ""
    node_id: str = ""
    peer_node_id: str = ""
    peer_name: str = ""
    project: str = ""
    default_issue_type: str | None = None
    comment_map: dict[str, str] = Field(default_factory=dict)
    attachment_map: dict[str, str] = Field(default_factory=dict)
    last_applied: dict[str, Any] | None = None
    tracker: str = ""
    peer_tracker: str = ""
