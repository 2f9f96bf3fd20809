"""Tracker adapters (Jira, GitHub) behind one seam (:mod:`node.trackers.base`).

This module imports nothing: :mod:`node.config` reads the default below without loading an HTTP client.
"""

from __future__ import annotations

DEFAULT_CONNECTIONS = 32
"""Kept-alive connections to the tracker in each of an adapter's two pools (the lean client's and the
aiohttp session's): the default of ``tracker.connections`` and of the adapters' and clients'
``connection_limit``, so a script building an adapter directly gets what a node gets."""
