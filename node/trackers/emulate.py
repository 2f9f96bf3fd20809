"""``tandem emulate KIND``: run a tracker emulator in the foreground (for the demo, manual tests, CI).

Prints one readiness line on stdout once listening (``Emulating jira-cloud at http://HOST:PORT``),
then serves until SIGINT/SIGTERM, saving ``--state`` on the way out.
"""

from __future__ import annotations

import asyncio

import click

from node.trackers.common.emulator import serve_foreground

KINDS = ("jira-cloud", "jira-server", "github")
DEFAULT_PORT = 8081


async def _serve_jira(
    mode: str, host: str, port: int, state: str | None, user: str, password: str, projects: tuple[str, ...]
) -> None:
    from node.trackers.jira.emulator import JiraEmulator, StateError

    try:
        emu = JiraEmulator(
            mode="cloud" if mode == "cloud" else "server", user=user, password=password, state_file=state
        )
        for key in projects:
            if emu.state.project_by_id_or_key(key) is None:
                emu.state.add_project(key)
    except StateError as err:
        raise click.ClickException(str(err)) from err
    await serve_foreground(
        emu,
        host,
        port,
        ready=lambda base: f"Emulating jira-{mode} at {base} (user {user})",
        stopped="Emulator stopped" + (f"; state saved to {state}" if state else ""),
    )


@click.command("emulate")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port.",
)
@click.option(
    "--state", "state", type=click.Path(dir_okay=False), help="JSON file to load at start and save to."
)
@click.option("--user", default="admin", show_default=True, help="Administrator username.")
@click.option(
    "--password", default="admin", show_default=True, help="Its password (also its API token / PAT)."
)
@click.option("--project", "projects", multiple=True, help="Create this project key if missing (repeatable).")
def emulate(
    kind: str, host: str, port: int, state: str | None, user: str, password: str, projects: tuple[str, ...]
) -> None:
    """Run an emulated tracker (KIND: jira-cloud, jira-server or github) until interrupted.

    For github, --user is the login, --password its token and --project an owner/name repository."""
    if kind == "github":
        if state:
            raise click.ClickException("the github emulator keeps its state in memory only (no --state)")
        from node.trackers.github.emulator.cli import serve

        asyncio.run(serve(host, port, user=user, token=password, repos=projects))
        return
    mode = kind.split("-", 1)[1]
    asyncio.run(_serve_jira(mode, host, port, state, user, password, projects))
