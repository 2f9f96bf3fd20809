"""A Jira Cloud / Server emulator that real Jira clients work against (see docs/emulators.md).

Public surface::

    from node.trackers.jira.emulator import JiraEmulator
    emu = JiraEmulator(mode="cloud", user="admin", password="admin", state_file=None)
    base_url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("jane", password="secret")       # log in as jane to act as a human
    emu.state.add_project("PROJ", workflow="support")
    await emu.stop()
"""

from __future__ import annotations

from .emulator import JiraEmulator
from .ops import JiraApiError
from .state import EmulatorState, StateError, Workflow, WorkflowTransition, new_state

__all__ = [
    "EmulatorState",
    "JiraApiError",
    "JiraEmulator",
    "StateError",
    "Workflow",
    "WorkflowTransition",
    "new_state",
]
