"""The webhook-only listener (``tracker.webhook_listen``): aiohttp's low-level server with one
handler. It must answer like the peer app's route does — JSON errors, counted, never a traceback —
for every path, method and body a stranger can send it. Real sockets, a real intake and store; the
tracker is scripted (``fakes.FakeTracker``: ``issue:<id>`` is a person's change, ``echo:<id>`` the
proxy user's)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from node.store import Database
from node.sync.intake import Intake, IntakeSettings
from node.web import webhooks
from node.web.webhooks import make_webhook_server

from .fakes import FakeTracker, RecordingEngine


class NodeStub:
    """What the listener reads from the node: its intake (None: no tracker)."""

    def __init__(self, intake: Intake | None) -> None:
        self.intake = intake


class Listener:
    def __init__(self, intake: Intake, engine: RecordingEngine, registry: CollectorRegistry, url: str):
        self.intake = intake
        self.engine = engine
        self.registry = registry
        self.url = url  # http://127.0.0.1:<port>
        assert intake.webhook_path is not None
        self.hook = url + intake.webhook_path

    def metric(self, line: str) -> bool:
        return line in generate_latest(self.registry).decode()


async def serve(node: Any) -> tuple[web.ServerRunner, str]:
    runner = web.ServerRunner(make_webhook_server(node), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def listener(db: Database) -> AsyncIterator[Listener]:
    registry = CollectorRegistry()
    engine = RecordingEngine()
    settings = IntakeSettings(poll_seconds=3600, poll_seconds_webhooks=3600, reconcile_seconds=0)
    intake = Intake(
        FakeTracker(),
        engine,
        db,
        settings,
        describe="Fake Tracker at http://fake",
        webhook_base="http://127.0.0.1",
        registry=registry,
    )
    await intake.start()
    runner, url = await serve(NodeStub(intake))
    try:
        yield Listener(intake, engine, registry, url)
    finally:
        await runner.cleanup()
        await intake.stop()


async def request(method: str, url: str, body: bytes = b"") -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url, data=body) as resp:
        text = await resp.text()
        payload = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, payload, text


async def test_deliveries_reach_the_engine_and_echoes_do_not(listener: Listener) -> None:
    status, body, _ = await request("POST", listener.hook, b"issue:7,8")
    assert (status, body) == (200, {"accepted": 2})
    status, body, _ = await request("POST", listener.hook, b"echo:9")
    assert (status, body) == (200, {"accepted": 1})
    await listener.engine.wait_calls(2)
    await listener.intake.idle()
    assert sorted(listener.engine.ids("webhook")) == ["7", "8"]
    assert listener.metric("tandem_webhook_deliveries_total 2.0")
    assert listener.metric('tandem_intake_changes_total{reason="echo_skipped"} 1.0')


async def test_a_wrong_secret_is_a_counted_404(listener: Listener) -> None:
    status, body, text = await request("POST", listener.url + "/webhooks/a-guess", b"issue:1")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "Traceback" not in text
    assert listener.metric('tandem_webhook_rejected_total{reason="unknown_path"} 1.0')
    assert listener.engine.calls == []


@pytest.mark.parametrize("path", ["/", "/webhooks/", "/webhooks", "/admin/api/v1/node", "/webhooks/x/y"])
async def test_other_paths_are_a_json_404_naming_no_secret(listener: Listener, path: str) -> None:
    status, body, text = await request("POST", listener.url + path, b"issue:1")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "Traceback" not in text
    assert listener.engine.calls == []


async def test_the_secret_path_with_a_suffix_is_not_the_endpoint(listener: Listener) -> None:
    status, _, _ = await request("POST", listener.hook + "/more", b"issue:1")
    assert status == 404
    assert listener.engine.calls == []


async def test_only_post_is_allowed(listener: Listener) -> None:
    for method in ("GET", "PUT", "DELETE"):
        status, body, _ = await request(method, listener.hook)
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert listener.engine.calls == []


async def test_a_bad_body_is_a_counted_400_naming_the_problem(listener: Listener) -> None:
    status, body, text = await request("POST", listener.hook, b"\xff\x00 not a delivery")
    assert status == 400 and body["error"]["code"] == "bad_webhook"
    assert "fake webhook" in body["error"]["message"] and "Traceback" not in text
    assert listener.metric('tandem_webhook_rejected_total{reason="invalid"} 1.0')


async def test_an_oversized_body_is_a_counted_413(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "MAX_BODY", 1024)
    status, body, _ = await request("POST", listener.hook, b"issue:" + b"1" * 4096)
    assert status == 413 and body["error"]["code"] == "too_large"
    assert listener.metric('tandem_webhook_rejected_total{reason="oversized"} 1.0')
    status, body, _ = await request("POST", listener.hook, b"issue:5")  # the limit, not the listener
    assert (status, body) == (200, {"accepted": 1})


async def test_a_failure_of_our_own_is_a_500_without_traceback_or_secret(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(segment: str) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(listener.intake, "path_matches", broken)
    with caplog.at_level(logging.ERROR, logger="node.web.webhooks"):
        status, body, text = await request("POST", listener.hook, b"issue:1")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "Traceback" not in text and "a bug" not in text
    assert caplog.records and "RuntimeError" in caplog.text
    assert all(str(listener.intake.webhook_path) not in r.getMessage() for r in caplog.records)


async def test_a_node_without_intake_says_so() -> None:
    runner, url = await serve(NodeStub(None))
    try:
        status, body, _ = await request("POST", url + "/webhooks/anything", b"issue:1")
    finally:
        await runner.cleanup()
    assert status == 404 and body["error"]["code"] == "no_intake"
