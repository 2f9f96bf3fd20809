"""The ``tandem`` command line.

Each command group lives beside the code it drives and is registered here, so this file stays a
table of contents. Commands other than ``init``/``run``/``relay``/``emulate`` talk to the running node
through its admin API.
"""

from __future__ import annotations

import importlib

import click

# (module, attribute) of every command; imported lazily so `tandem --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "emulate": ("node.trackers.emulate", "emulate"),
    "relay": ("node.transport.relay", "relay_command"),
    "init": ("node.commands.node_cmds", "init"),
    "run": ("node.commands.node_cmds", "run"),
    "invite": ("node.commands.admin_cmds", "invite"),
    "accept": ("node.commands.admin_cmds", "accept"),
    "connections": ("node.commands.admin_cmds", "connections"),
    "connection": ("node.commands.admin_cmds", "connection"),
    "trigger": ("node.commands.sync_cmds", "trigger"),
    "sync": ("node.commands.sync_cmds", "sync"),
    "bulk": ("node.commands.sync_cmds", "bulk"),
    "unlink": ("node.commands.sync_cmds", "unlink"),
    "status": ("node.commands.sync_cmds", "status"),
    "rules": ("node.commands.sync_cmds", "rules"),
    "errors": ("node.commands.sync_cmds", "errors"),
    "retry": ("node.commands.sync_cmds", "retry"),
    "resolve": ("node.commands.sync_cmds", "resolve"),
    "conflicts": ("node.commands.sync_cmds", "conflicts"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tandem-sync", prog_name="tandem")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Node home directory for every command (else $TANDEM_HOME, else ./.tandem).",
)
def main(home: str | None) -> None:
    """Tandem keeps issues in sync between the trackers of different organisations."""


if __name__ == "__main__":
    main()
