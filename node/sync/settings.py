"""Settings of the sync engine (the intake engineer maps ``config.toml`` keys onto these).

Pure data: no I/O.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from node.rules.config import DEFAULT_HEADER


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attachment_max_bytes: int = Field(
        20 * 1024 * 1024, ge=0, description="largest attachment sent or accepted (bytes)"
    )
    blob_chunk_bytes: int = Field(
        256 * 1024, ge=1024, le=256 * 1024, description="raw bytes per Blob message (at most 256 KiB)"
    )
    comment_header: str = Field(
        DEFAULT_HEADER, description="default header of comments copied from the peer (Visual rules override)"
    )
    conflict_policy: Literal["later_wins", "remote_wins", "local_wins"] = Field(
        "later_wins", description="same field edited on both sides (Visual rules override)"
    )
    default_rules_mode: Literal["basic"] = Field("basic", description="rules in force before any publish")
    unmatched_user: Literal["default", "keep", "error"] = Field(
        "keep", description="Basic mode: what to do with a remote user who matches nobody"
    )
    default_user: str | None = Field(
        None, description="Basic mode: the local user for unmatched_user = default"
    )
    default_issue_type: str | None = Field(None, description="issue type for created issues when unmapped")
    projects: dict[str, str] = Field(
        default_factory=dict,
        description="connection name -> local project for created issues (else the connection's project)",
    )
    reconcile_batch: int = Field(100, ge=1, le=1000, description="issues per page when listing (bulk)")
    apply_concurrency: int = Field(
        256, ge=1, le=1024, description="incoming replicas applied, and bulk issues sent, at once"
    )
    retry_base_seconds: float = Field(0.5, gt=0, description="first backoff after a transient fault")
    retry_max_seconds: float = Field(60.0, gt=0, description="longest backoff between retries")
    max_transition_steps: int = Field(12, ge=1, le=50, description="workflow steps to reach a status")
