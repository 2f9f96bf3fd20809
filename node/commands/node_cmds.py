"""``tandem init`` and ``tandem run``: create a node's home, run the node."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from node.commands.common import get_home, home_option
from node.config import ConfigError, parse_config
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
def init(
    home: Path | None,
    name: str,
    public_url: str | None,
    listen: str | None,
    private: bool,
    admin_listen: str | None,
) -> None:
    """Create a node's home: config.toml, identity.key, admin.token and tandem.db."""
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
    try:
        config = parse_config(data, "options")
    except ConfigError as exc:
        raise click.ClickException(
            str(exc).replace("options: peer.", "--").replace("options: admin.", "--admin-")
        ) from None
    h = get_home(home)
    try:
        identity = h.create(config)
    except (HomeError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created node {name!r} in {h.root}")
    click.echo(f"node id {identity.node_id_text}")


@click.command("run")
@home_option
def run(home: Path | None) -> None:
    """Run the node until SIGTERM or SIGINT. Logs one line when ready, with its admin and peer URLs."""
    from node.app import run_node

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
        asyncio.run(run_node(h))
    except (HomeError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the node: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
