"""`tandem init --tracker …`: what lands in config.toml, with which permissions."""

from __future__ import annotations

import asyncio
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import ConfigError, load_config
from node.trackers.registry import open_tracker, resolve_token

BASE = ["init", "--name", "Support", "--private"]


def init(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*BASE, "--home", str(home), *args])
    return result.exit_code, result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tracker_flags_with_a_token_write_the_section_and_a_private_file(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out = init(
        home,
        "--tracker", "jira-cloud",
        "--tracker-url", "https://acme.atlassian.net/",
        "--tracker-user", "proxy@acme.example",
        "--tracker-token", "s3cr3t-token",
        "--tracker-project", "SUP",
        "--tracker-project", "OPS",
    )  # fmt: skip
    assert code == 0, out
    assert "s3cr3t-token" not in out
    path = home / "config.toml"
    assert mode(path) == 0o600
    tracker = tomllib.loads(path.read_text())["tracker"]
    assert tracker["kind"] == "jira-cloud"
    assert tracker["url"] == "https://acme.atlassian.net"
    assert tracker["user"] == "proxy@acme.example"
    assert tracker["token"] == "s3cr3t-token"
    assert tracker["projects"] == ["SUP", "OPS"]
    assert tracker["poll_seconds"] == 3.0 and tracker["webhooks"] == "auto"
    config = load_config(path)  # and it reads back
    assert config.tracker is not None and config.tracker.effective_auth == "basic"
    assert "s3cr3t-token" not in repr(config)


def test_without_a_token_the_token_comes_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out = init(
        home,
        "--tracker", "jira-server",
        "--tracker-url", "http://jira.internal:8080",
        "--tracker-user", "tandem",
    )  # fmt: skip
    assert code == 0, out
    assert "$TANDEM_TRACKER_TOKEN" in out
    config = load_config(home / "config.toml")
    assert config.tracker is not None
    assert config.tracker.token is None and config.tracker.token_env == "TANDEM_TRACKER_TOKEN"
    assert resolve_token(config.tracker, {"TANDEM_TRACKER_TOKEN": "from-env"}) == "from-env"
    with pytest.raises(ConfigError, match="set the environment variable TANDEM_TRACKER_TOKEN"):
        resolve_token(config.tracker, {})


def test_github_defaults_to_bearer_and_api_github_com(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out = init(
        home, "--tracker", "github", "--tracker-project", "acme/widgets", "--tracker-token", "ghp_x"
    )
    assert code == 0, out
    config = load_config(home / "config.toml")
    assert config.tracker is not None
    assert config.tracker.effective_auth == "bearer" and config.tracker.base_url == "https://api.github.com"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tracker-url", "https://x"], "--tracker-url needs --tracker KIND"),
        (
            ["--tracker", "jira-cloud", "--tracker-user", "u"],
            "--tracker-url: a Jira tracker needs its base URL",
        ),
        (["--tracker", "jira-server", "--tracker-url", "http://j"], "--tracker-user: basic authentication"),
        (
            ["--tracker", "jira-cloud", "--tracker-url", "ftp://j", "--tracker-user", "u"],
            "expected an http(s)://",
        ),
        (["--tracker", "zendesk"], "Invalid value for '--tracker'"),
    ],
)
def test_bad_tracker_flags_are_clear_errors_and_create_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "h"
    code, out = init(home, *args)
    assert code != 0
    assert message in out
    assert "Traceback" not in out
    assert not (home / "config.toml").exists()


async def test_the_registry_builds_the_adapter_for_each_kind(tmp_path: Path) -> None:
    for kind, expected in (("jira-cloud", "cloud"), ("jira-server", "server")):
        home = tmp_path / kind
        init(
            home,
            "--tracker",
            kind,
            "--tracker-url",
            "http://j:1",
            "--tracker-user",
            "u",
            "--tracker-token",
            "t",
        )
        section = load_config(home / "config.toml").tracker
        assert section is not None
        handle = await open_tracker(section)
        try:
            assert getattr(handle.adapter, "deployment", None) == expected
            assert "tok-9f3a" not in repr(handle.adapter)
        finally:
            await handle.close()
    home = tmp_path / "gh"
    init(home, "--tracker", "github", "--tracker-project", "not-a-repo", "--tracker-token", "t")
    section = load_config(home / "config.toml").tracker
    assert section is not None
    with pytest.raises(ConfigError, match="not a GitHub repository"):
        await open_tracker(section)


async def test_a_bad_port_in_the_tracker_url_is_a_config_error_at_start(tmp_path: Path) -> None:
    home = tmp_path / "h"
    init(home, "--tracker", "jira-server", "--tracker-url", "http://jira.internal:99999",
         "--tracker-user", "u", "--tracker-token", "t")  # fmt: skip
    section = load_config(home / "config.toml").tracker
    assert section is not None
    with pytest.raises(ConfigError, match=r"^config\.toml: tracker: not a valid port in the Jira URL"):
        await open_tracker(section)


async def test_tracker_connections_bounds_the_parallel_calls_to_the_tracker(tmp_path: Path) -> None:
    """``tracker.connections`` is the most connections (so calls in flight) the node opens."""
    from aiohttp import web

    state = {"now": 0, "most": 0, "peers": set()}
    release = asyncio.Event()

    async def info(request: web.Request) -> web.Response:
        state["peers"].add(request.transport.get_extra_info("peername") if request.transport else None)
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        if state["now"] >= 2:
            release.set()
        try:
            await asyncio.wait_for(release.wait(), 5)
        finally:
            state["now"] -= 1
        return web.json_response({"version": "9.12.2", "deploymentType": "Server"})

    app = web.Application()
    app.router.add_get("/rest/api/2/serverInfo", info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        home = tmp_path / "h"
        init(home, "--tracker", "jira-server", "--tracker-url", f"http://127.0.0.1:{port}",
             "--tracker-user", "u", "--tracker-token", "t")  # fmt: skip
        config = home / "config.toml"
        config.write_text(config.read_text().replace("\nconnections = 32\n", "\nconnections = 2\n"))
        section = load_config(config).tracker
        assert section is not None and section.connections == 2
        handle = await open_tracker(section)
        try:
            client = handle.adapter.client  # type: ignore[attr-defined]
            await asyncio.wait_for(
                asyncio.gather(*(client.request("GET", "serverInfo") for _ in range(6))), 20
            )
        finally:
            await handle.close()
    finally:
        await runner.cleanup()
    assert state["most"] == 2  # two at once (the limit reached), never more
    assert len(state["peers"]) == 2


def test_tracker_connections_out_of_range_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "h"
    init(home, "--tracker", "jira-server", "--tracker-url", "http://j:1", "--tracker-user", "u",
         "--tracker-token", "t")  # fmt: skip
    config = home / "config.toml"
    config.write_text(config.read_text().replace("\nconnections = 32\n", "\nconnections = 0\n"))
    with pytest.raises(ConfigError, match="connections"):
        load_config(config)
