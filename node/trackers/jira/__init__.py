"""Jira Cloud and Server/Data Center: REST client, adapter, webhook parsing (and, in ``emulator``, a
fake Jira for tests and demos).

Public surface::

    from node.trackers.jira import JiraAdapter, connect_jira, parse_webhook
"""

from __future__ import annotations

from .adapter import JiraAdapter, connect_jira
from .webhooks import parse_webhook

__all__ = ["JiraAdapter", "connect_jira", "parse_webhook"]
