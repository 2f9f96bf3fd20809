"""A GitHub (REST v3) emulator that PyGithub and Tandem's adapter work against (see docs/emulators.md).

Public surface::

    from node.trackers.github.emulator import GitHubEmulator
    emu = GitHubEmulator(user="octocat", token="ghp_octocat")
    base_url = await emu.start(host="127.0.0.1", port=0)    # API at base_url and base_url + "/api/v3"
    emu.state.add_user("jane", token="ghp_jane")             # act as a human with that token
    emu.state.create_repo("octocat", "hello")
    await emu.drain_webhooks()
    await emu.stop()
"""

from __future__ import annotations

from .emulator import GitHubEmulator
from .server import GitHubApp
from .state import GitHubState, StateError

__all__ = ["GitHubApp", "GitHubEmulator", "GitHubState", "StateError"]
