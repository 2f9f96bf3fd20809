"""``tandem init`` and ``tandem run``: create a node's home, run the node."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from node.commands.common import get_home, home_option
from node.config import DEFAULT_TOKEN_ENV, TRACKER_KINDS, ConfigError, parse_config
from node.home import HomeError
from node.store import StoreError


@click.command("init")
@home_option
@click.option("--name", required=True, help="The node's display name, shown to peers (e.g. 'Support').")
@click.option("--public-url", default=None, help="Public node: the URL peers dial (http(s)://host[:port]).")
@click.option(
    "--listen", default=None, help="Public node: HOST:PORT of the peer listener (default 0.0.0.0:8443)."
)
@click.option("--private", "private", is_flag=True, help="Private node: listen for no peers, dial out.")
@click.option("--admin-listen", default=None, help="HOST:PORT of the admin API (default 127.0.0.1:8780).")
@click.option(
    "--tracker",
    "tracker",
    type=click.Choice(TRACKER_KINDS),
    default=None,
    help="The tracker beside this node.",
)
@click.option("--tracker-url", default=None, help="The tracker's base URL (e.g. https://acme.atlassian.net).")
@click.option("--tracker-user", default=None, help="The proxy user (Jira Cloud: email; Server: username).")
@click.option(
    "--tracker-token",
    default=None,
    help=f"API token, stored in config.toml (mode 0600). Omit it to read ${DEFAULT_TOKEN_ENV} at start.",
)
@click.option(
    "--tracker-auth",
    type=click.Choice(["basic", "bearer"]),
    default=None,
    help="basic (user + token; Jira default) or bearer (personal access token; GitHub default).",
)
@click.option(
    "--tracker-project",
    "tracker_projects",
    multiple=True,
    help="Project polled (Jira key, GitHub owner/repo); repeat for several. Default: all (Jira).",
)
def init(
    home: Path | None,
    name: str,
    public_url: str | None,
    listen: str | None,
    private: bool,
    admin_listen: str | None,
    tracker: str | None,
    tracker_url: str | None,
    tracker_user: str | None,
    tracker_token: str | None,
    tracker_auth: str | None,
    tracker_projects: tuple[str, ...],
) -> None:
    """Create a node's home: config.toml, identity.key, admin.token and tandem.db."""
    given = [
        flag
        for flag, value in (
            ("--tracker-url", tracker_url),
            ("--tracker-user", tracker_user),
            ("--tracker-token", tracker_token),
            ("--tracker-auth", tracker_auth),
            ("--tracker-project", tracker_projects),
        )
        if value
    ]
    if tracker is None and given:
        raise click.UsageError(f"{given[0]} needs --tracker KIND")
    if private and (public_url or listen):
        raise click.UsageError("--private cannot be combined with --public-url or --listen")
    public = not private and (public_url is not None or listen is not None)
    if not private and not public:
        raise click.UsageError("choose --public-url URL --listen HOST:PORT (public node) or --private")
    data: dict[str, dict[str, object]] = {
        "node": {"name": name},
        "peer": {"mode": "public" if public else "private"},
    }
    if public_url:
        data["peer"]["public_url"] = public_url
    if listen:
        data["peer"]["listen"] = listen
    if admin_listen:
        data["admin"] = {"listen": admin_listen}
    if tracker is not None:
        section: dict[str, object] = {"kind": tracker}
        for key, value in (("url", tracker_url), ("user", tracker_user), ("auth", tracker_auth)):
            if value:
                section[key] = value
        if tracker_projects:
            section["projects"] = list(tracker_projects)
        data["tracker"] = section
    try:
        config = parse_config(data, "options")
    except ConfigError as exc:
        raise click.ClickException(
            str(exc)
            .replace("options: peer.", "--")
            .replace("options: admin.", "--admin-")
            .replace("options: tracker: ", "--tracker-")
            .replace("options: tracker.", "--tracker-")
        ) from None
    h = get_home(home)
    try:
        identity = h.create(config)
        if tracker_token:
            assert config.tracker is not None
            config.tracker.token = tracker_token
            _write_private(h.config_path, config.to_toml())
    except (HomeError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created node {name!r} in {h.root}")
    click.echo(f"node id {identity.node_id_text}")
    if config.tracker is not None and not tracker_token:
        click.echo(
            f"tracker token: set ${config.tracker.token_env} in the node's environment before `tandem run`"
        )


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by the owner only from the first byte (it holds the
    tracker token)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@click.command("run")
@home_option
def run(home: Path | None) -> None:
    """Run the node until SIGTERM or SIGINT. Logs one line when ready, with its admin and peer URLs."""
    from node.app import run_node
    from node.tasks import run as run_loop
    from node.tasks import tune_gc

    h = get_home(home)
    try:
        config = h.load_config()
        h.load_identity()
    except HomeError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=config.log.level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        tune_gc()
        run_loop(run_node(h))
    except (HomeError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the node: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
