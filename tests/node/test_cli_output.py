"""Text from the other organisation cannot drive the admin's terminal."""

from __future__ import annotations

import click
from click.testing import CliRunner

from node.commands.common import printable, say


def test_control_characters_are_shown_not_interpreted() -> None:
    hostile = "Acme\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b[2J\x9b31m"
    shown = printable(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown.startswith("Acme\\x1b]8;;http://evil.example\\x07click")
    assert printable("tabs\tand\nnewlines stay") == "tabs\tand\nnewlines stay"


def test_say_is_what_the_commands_print_with() -> None:
    @click.command()
    def peer_name() -> None:
        say("peer         " + "Evil\x1b[31mCorp")

    out = CliRunner().invoke(peer_name).output
    assert out == "peer         Evil\\x1b[31mCorp\n"
