"""GitHub Issues (api.github.com and GitHub Enterprise Server): REST client, adapter, webhook parsing
(and, in ``emulator``, a fake GitHub for tests and demos).

Public surface::

    from node.trackers.github import GitHubAdapter, parse_webhook
"""

from __future__ import annotations

from .adapter import GitHubAdapter
from .webhooks import parse_webhook

__all__ = ["GitHubAdapter", "parse_webhook"]
