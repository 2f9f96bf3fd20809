"""Tracker kind → adapter: what ``[tracker] kind`` in ``config.toml`` means.

``jira-cloud`` and ``jira-server`` build a :class:`~node.trackers.jira.JiraAdapter` for that
deployment (no probe: the kind says which); ``github`` builds a
:class:`~node.trackers.github.GitHubAdapter` for ``tracker.projects`` (``owner/repo``).

The token comes from ``tracker.token`` or, when that is absent, from the environment variable named
by ``tracker.token_env`` (so it need not sit on disk). It is never logged, never put into a
message and never part of a ``repr``. Building an adapter makes no network call; the node checks
the credentials with :meth:`~node.trackers.base.TrackerAdapter.check` once it runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.config import TRACKER_KINDS, ConfigError, TrackerSection
from node.trackers.base import TrackerAdapter, TrackerError


@dataclass(frozen=True)
class KindInfo:
    label: str  # for people: "Jira Cloud"
    signs_webhooks: bool  # whether webhook_signing = "auto" asks the tracker to sign deliveries


KINDS: dict[str, KindInfo] = {
    # Jira's legacy admin webhooks (/rest/webhooks/1.0) only sign on recent Cloud and DC 10+; the
    # unguessable path segment is what authenticates them everywhere (set webhook_signing = "on"
    # where the site signs).
    "jira-cloud": KindInfo("Jira Cloud", signs_webhooks=False),
    "jira-server": KindInfo("Jira Server", signs_webhooks=False),
    "github": KindInfo("GitHub", signs_webhooks=True),
}
assert set(KINDS) == set(TRACKER_KINDS)


def describe(section: TrackerSection) -> str:
    """``Jira Cloud at https://…`` — how log lines and health name the tracker."""
    return f"{KINDS[section.kind].label} at {section.base_url}"


def signs_webhooks(section: TrackerSection) -> bool:
    if section.webhook_signing == "auto":
        return KINDS[section.kind].signs_webhooks
    return section.webhook_signing == "on"


def resolve_token(section: TrackerSection, environ: Mapping[str, str] | None = None) -> str:
    """The tracker token: ``tracker.token``, else ``$<tracker.token_env>``; a clear error if neither."""
    if section.token:
        return section.token
    env = os.environ if environ is None else environ
    token = env.get(section.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"config.toml: tracker: no token for {describe(section)}: set the environment variable "
            f"{section.token_env} (tracker.token_env) or tracker.token"
        )
    return token


class TrackerHandle:
    """An adapter and how to name it; closing it closes the adapter's connections."""

    def __init__(self, adapter: TrackerAdapter, describe: str) -> None:
        self.adapter = adapter
        self.describe = describe

    async def close(self) -> None:
        await self.adapter.close()


async def open_tracker(
    section: TrackerSection,
    *,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> TrackerHandle:
    """Build the adapter for ``section`` (``options`` pass through to the adapter, e.g. retry
    settings in tests). Raises :class:`ConfigError` when the token is missing or a setting is not
    usable by the adapter. No network call. ``tracker.verify_tls = false`` turns certificate checks off
    for every call the adapter makes (a site with a self-signed certificate)."""
    token = resolve_token(section, environ)
    try:
        adapter = _build(section, token, options)
    except (ValueError, TrackerError) as exc:  # the adapters' own checks (bad URL, repo, user)
        raise ConfigError(f"config.toml: tracker: {exc}") from None
    return TrackerHandle(adapter, describe(section))


def _build(section: TrackerSection, token: str, options: dict[str, Any]) -> TrackerAdapter:
    if section.kind == "github":
        from node.trackers.github import GitHubAdapter

        return GitHubAdapter(
            section.base_url,
            token=token,
            repos=list(section.projects),
            timeout=section.timeout_seconds,
            verify_tls=section.verify_tls,
            connection_limit=section.connections,
            **options,
        )
    from node.trackers.jira import JiraAdapter

    return JiraAdapter(
        section.base_url,
        deployment="cloud" if section.kind == "jira-cloud" else "server",
        user=section.user,
        token=token,
        auth=section.effective_auth,
        timeout=section.timeout_seconds,
        verify_tls=section.verify_tls,
        connection_limit=section.connections,
        **options,
    )
