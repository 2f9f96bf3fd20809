from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import ConfigError, load_config, parse_config, parse_duration
from node.home import Home, HomeError


def test_defaults_and_round_trip(tmp_path: Path) -> None:
    config = parse_config({"node": {"name": "Support"}})
    assert config.peer.mode == "private" and config.admin.listen == "127.0.0.1:8780"
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "node: required key is missing"),
        ({"node": {"name": "x"}, "peer": {"listen": "nohost"}}, "peer.listen: expected HOST:PORT"),
        ({"node": {"name": "x"}, "peer": {"listen": "h:99999"}}, "peer.listen: port 99999 is out of range"),
        (
            {"node": {"name": "x"}, "peer": {"mode": "open"}},
            "peer.mode: Input should be 'public' or 'private'",
        ),
        (
            {"node": {"name": "x"}, "peer": {"public_url": "ftp://x"}},
            "peer.public_url: expected an http(s)://",
        ),
        ({"node": {"name": "x"}, "admin": {"lisen": "a:1"}}, "admin.lisen: unknown key"),
        ({"node": {"name": "x"}, "colour": {}}, "colour: unknown key"),
        ({"node": {"name": "x"}, "peer": {"max_message_bytes": 10}}, "peer.max_message_bytes"),
        (
            {"node": {"name": "x"}, "links": {"backoff_base_seconds": 9, "backoff_max_seconds": 1}},
            "backoff_base_seconds must not exceed backoff_max_seconds",
        ),
        ({"node": {"name": "x"}, "store": {"synchronous": "OFF"}}, "store.synchronous"),
    ],
)
def test_each_bad_key_is_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)
    assert str(err.value).startswith("config.toml: ")


def test_toml_syntax_error_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[node\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("30m", "24h", "7d", "90", "45s", "2w")] == [
        1800,
        86400,
        604800,
        90,
        45,
        1209600,
    ]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("tomorrow")


def test_init_creates_a_private_home_with_owner_only_secrets(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = CliRunner().invoke(main, ["--home", str(home), "init", "--name", "Support", "--private"])
    assert result.exit_code == 0, result.output
    assert "node id" in result.output
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    for secret in ("identity.key", "admin.token", "tandem.db"):
        assert stat.S_IMODE(os.stat(home / secret).st_mode) == 0o600
    assert len((home / "identity.key").read_bytes()) == 64
    assert (home / "tandem.db").exists()
    h = Home(home)
    assert h.load_config().peer.mode == "private"
    assert h.load_identity().node_id_text in result.output


def test_init_per_command_home_and_env(tmp_path: Path) -> None:
    runner = CliRunner()
    r1 = runner.invoke(main, ["init", "--home", str(tmp_path / "a"), "--name", "A", "--private"])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(main, ["init", "--name", "B", "--private"], env={"TANDEM_HOME": str(tmp_path / "b")})
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "a" / "config.toml").exists() and (tmp_path / "b" / "config.toml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "A"], "choose --public-url URL --listen HOST:PORT"),
        (["--name", "A", "--private", "--listen", "1.2.3.4:5"], "--private cannot be combined"),
        (["--name", "A", "--listen", "nope"], "listen: expected HOST:PORT"),
        (["--name", "A", "--public-url", "gopher://x"], "public_url: expected an http(s)://"),
        (["--name", "A", "--private", "--admin-listen", "x"], "--admin-listen: expected HOST:PORT"),
    ],
)
def test_init_bad_options_give_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "init", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "h" / "config.toml").exists()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--home", str(tmp_path / "h"), "init", "--name", "A", "--private"]
    assert runner.invoke(main, args).exit_code == 0
    key = (tmp_path / "h" / "identity.key").read_bytes()
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
    assert (tmp_path / "h" / "identity.key").read_bytes() == key


def test_secrets_readable_by_others_are_refused(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.create(parse_config({"node": {"name": "A"}}))
    home.admin_token()
    os.chmod(home.key_path, 0o644)
    with pytest.raises(HomeError, match=r"identity\.key is readable by others"):
        home.load_identity()
    os.chmod(home.token_path, 0o640)
    with pytest.raises(HomeError, match=r"admin\.token is readable by others"):
        home.admin_token()


def test_commands_without_a_running_node_say_so(tmp_path: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(main, ["--home", str(tmp_path / "h"), "init", "--name", "A", "--private"]).exit_code
        == 0
    )
    for args in (["connections"], ["invite", "--peer-url", "http://x:1"], ["connection", "activate", "x"]):
        result = runner.invoke(main, ["--home", str(tmp_path / "h"), *args])
        assert result.exit_code == 1
        assert "is not running" in result.output and "Traceback" not in result.output
    missing = runner.invoke(main, ["--home", str(tmp_path / "nothing"), "connections"])
    assert missing.exit_code == 1 and "no Tandem node in" in missing.output
    bad = runner.invoke(main, ["--home", str(tmp_path / "h"), "invite", "--expires", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_run_without_home_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "none"), "run"])
    assert result.exit_code == 1 and "run `tandem init`" in result.output
