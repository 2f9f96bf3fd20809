"""``tandem relay`` as a real process: ready line, relay.json, serving, SIGTERM, kill -9 and restart."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from node.cli import main
from node.transport.relay_client import RelayClient

from .conftest import Inbox, channel, fast_backoff, identity, seal

ALICE = identity("alice")
BOB = identity("bob")
READY = "tandem relay ready: "


def _command() -> list[str]:
    script = shutil.which("tandem", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "from node.cli import main; main()"]


@asynccontextmanager
async def relay_process(
    home: Path, listen: str = "127.0.0.1:0"
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        *_command(),
        "relay",
        "--listen",
        listen,
        "--home",
        str(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        if not line.startswith(READY):
            assert proc.stderr is not None
            raise AssertionError(
                f"no ready line; got {line!r}; stderr: {(await proc.stderr.read()).decode()}"
            )
        yield proc, line[len(READY) :].strip()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _read_info(home: Path) -> dict[str, object]:
    info = json.loads((home / "relay.json").read_text())
    assert isinstance(info, dict)
    return info


async def test_relay_process_serves_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "relay home"
    async with relay_process(home) as (proc, url):
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/relay/v1/ws")
        info = await asyncio.to_thread(_read_info, home)
        assert info["url"] == url and f":{info['port']}/" in url

        async with aiohttp.ClientSession() as http:
            async with http.get(
                url.replace("ws://", "http://").replace("/relay/v1/ws", "/healthz")
            ) as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
        inbox = Inbox()
        alice = RelayClient(url, ALICE, Inbox(), backoff=fast_backoff())
        bob = RelayClient(url, BOB, inbox, backoff=fast_backoff())
        try:
            await alice.start()
            await bob.start()
            await alice.wait_connected(5)
            await alice.send(seal(channel(ALICE, BOB), 1, "through a real process"))
            (got,) = await inbox.wait_for(1)
            assert channel(BOB, ALICE).open(got)[1] == b"through a real process"
        finally:
            await alice.close()
            await bob.close()

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
        assert not await asyncio.to_thread((home / "relay.json").exists)


async def test_kill_9_loses_no_stored_envelope(tmp_path: Path) -> None:
    home = tmp_path / "relay"
    keys = channel(ALICE, BOB)
    async with relay_process(home) as (proc, url):
        alice = RelayClient(url, ALICE, Inbox(), backoff=fast_backoff())
        try:
            await alice.start()
            await alice.wait_connected(5)
            await asyncio.gather(*(alice.send(seal(keys, seq, f"m{seq}")) for seq in range(1, 101)))
        finally:
            await alice.close()
        os.kill(proc.pid, signal.SIGKILL)  # "stored" must already mean on disk
        await proc.wait()
    port = url.rsplit(":", 1)[1].split("/")[0]
    async with relay_process(home, f"127.0.0.1:{port}") as (_, url_again):
        assert url_again == url
        inbox = Inbox()
        bob = RelayClient(url_again, BOB, inbox, backoff=fast_backoff())
        try:
            await bob.start()
            got = await inbox.wait_for(100)
        finally:
            await bob.close()
        assert [channel(BOB, ALICE).open(env)[0].sequence for env in got] == list(range(1, 101))


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--listen", "localhost"], "expected HOST:PORT"),
        (["--listen", "127.0.0.1:http"], "port must be a number"),
        (["--listen", "127.0.0.1:70000"], "between 0 and 65535"),
        (["--listen", "127.0.0.1:0", "--max-message-bytes", "0"], "--max-message-bytes"),
    ],
)
def test_bad_options_are_named(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(main, ["relay", *args])
    assert result.exit_code == 2
    assert complaint in result.output
    assert "Traceback" not in result.output


def test_unusable_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["relay", "--listen", "127.0.0.1:0", "--home", str(blocker / "home")])
    assert result.exit_code == 1
    assert "cannot create the relay home" in result.output
