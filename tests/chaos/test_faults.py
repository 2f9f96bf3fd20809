"""Tracker faults, missed webhooks, echo loops and a partition between the nodes, with real processes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.chaos.conftest import POLL_SECONDS, WEBHOOK_POLL_SECONDS, Chaos, report
from tests.e2e.harness import wait_for


def linked(
    chaos: Chaos, n: int, *, comments: int = 0, tag: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """``n`` escalated support issues, synced; returns (key → sha256, key → ENG twin key)."""
    shas = chaos.prepare(n, comments=comments, tag=tag)
    chaos.escalate(list(shas))
    chaos.wait_converged(shas, comments=comments)
    twins = {key: str(chaos.support.twin_of(key)["remote_key"]) for key in shas}  # type: ignore[index]
    return shas, twins


def test_tracker_429_and_503_retry_by_themselves(chaos: Chaos) -> None:
    sup, eng = chaos.support, chaos.eng
    shas = chaos.prepare(9, comments=1)
    keys = list(shas)
    # 429 with Retry-After on engineering's Jira while the first third flows
    eng.emu.faults(rate_limit={"next_n_429": 12, "retry_after": 1})
    chaos.escalate(keys[:3])
    wait_for(lambda: eng.emu.stats()["rateLimited"] >= 12, 30, "the 429s to be served")
    # then 503s at a 40% error rate while the second third flows (the HTTP client's retries absorb them)
    eng.emu.faults(error_rate=0.4, status=503, seed=5)
    chaos.escalate(keys[3:6])
    wait_for(lambda: eng.emu.stats()["injectedErrors"] >= 10, 30, "503s to be served")
    # then an outage longer than the client's retries: the engine records a retrying error
    eng.emu.faults(error_rate=1.0, status=503)
    chaos.escalate(keys[6:])
    outage = time.monotonic()

    def retrying() -> list[dict[str, Any]]:
        return [e for e in eng.cli_json("errors") if e["state"] == "retrying"]

    during = wait_for(retrying, 60, "a retrying error on the engineering side", 0.5)
    assert all(e["kind"] == "tracker" and not e["paused"] for e in during), during
    eng.emu.clear_faults()
    outage = time.monotonic() - outage
    took = chaos.wait_converged(shas, comments=1)
    chaos.assert_exact(shas, comments=1)
    errors = eng.cli_json("errors", "--all")
    assert errors and all(e["state"] == "resolved" for e in errors), errors  # retried, never permanent
    sup_errors = sup.cli_json("errors", "--all")
    assert all(e["state"] == "resolved" for e in sup_errors), sup_errors
    for key in keys:
        twins = sup.cli_json("status", key)["twins"]
        assert len(twins) == 1 and twins[0]["last_result"] == "applied", twins
    stats = eng.emu.stats()
    report(
        "tracker faults",
        issues=len(keys),
        served_429=stats["rateLimited"],
        served_503=stats["injectedErrors"],
        outage_s=round(outage, 1),
        errors_during=[(e["kind"], e["state"], e["count"]) for e in during],
        errors_after=[(e["kind"], e["state"], e["count"]) for e in errors],
        converged_after_clear_s=round(took, 1),
    )


def test_missed_webhooks_are_caught_by_polling(chaos: Chaos) -> None:
    sup, eng = chaos.support, chaos.eng
    _, twins = linked(chaos, 3)
    hooks = sup.emu.request("GET", "/rest/webhooks/1.0/webhook")
    assert hooks, "support's node registered no webhook"
    delivered_before = sup.emu.stats()["webhooks"]["delivered"]
    for hook in hooks:  # someone deletes the node's webhook on the tracker: deliveries stop
        sup.emu.request("DELETE", f"/rest/webhooks/1.0/webhook/{hook['self'].rsplit('/', 1)[-1]}")
    started = time.monotonic()
    for key in twins:
        sup.emu.edit(key, {"summary": f"edited without webhook {key}"}, user=sup.person)

    def arrived(prefix: str) -> bool:
        return all(eng.emu.issue(t)["fields"]["summary"] == f"{prefix} {k}" for k, t in twins.items())

    wait_for(lambda: arrived("edited without webhook"), 10 * WEBHOOK_POLL_SECONDS, "polled edits", 0.1)
    by_poll = time.monotonic() - started
    assert sup.emu.stats()["webhooks"]["delivered"] == delivered_before  # no webhook carried them

    # the node is down while the edit happens: its poll cursor brings it over after the restart
    sup.node.stop()
    key = next(iter(twins))
    sup.emu.edit(key, {"summary": f"edited while down {key}"}, user=sup.person)
    started = time.monotonic()
    sup.restart()
    wait_for(lambda: eng.emu.issue(twins[key])["fields"]["summary"] == f"edited while down {key}", 30, "edit")
    report(
        "missed webhooks",
        poll_seconds_with_webhooks=WEBHOOK_POLL_SECONDS,
        edits=len(twins),
        arrived_by_poll_s=round(by_poll, 1),
        arrived_after_restart_s=round(time.monotonic() - started, 1),
    )


def settle(chaos: Chaos, window: float) -> tuple[int, int]:
    """Wait until neither emulator sees a write for ``window`` seconds (bounded); returns the counts."""
    deadline = time.monotonic() + 60
    last = (chaos.support.emu.writes(), chaos.eng.emu.writes())
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < window:
        assert time.monotonic() < deadline, "the emulators never went quiet"
        time.sleep(0.1)
        now = (chaos.support.emu.writes(), chaos.eng.emu.writes())
        if now != last:
            last, quiet_since = now, time.monotonic()
    return last


def test_no_echo_loop_when_both_sides_edit(chaos: Chaos) -> None:
    sup, eng = chaos.support, chaos.eng
    _, twins = linked(chaos, 1, comments=1)
    key, twin = next(iter(twins.items()))
    writes_at_link = (sup.emu.writes(), eng.emu.writes())
    # a person on each side edits a different field of the same issue, at the same time
    sup.emu.edit(key, {"summary": "Export fails for big accounts"}, user=sup.person)
    eng.emu.edit(twin, {"priority": {"name": "High"}}, user=eng.person)

    def both(site_key: tuple[Any, str]) -> bool:
        fields = site_key[0].issue(site_key[1])["fields"]
        return bool(
            fields["summary"] == "Export fails for big accounts" and fields["priority"]["name"] == "High"
        )

    wait_for(lambda: both((sup.emu, key)) and both((eng.emu, twin)), 30, "both edits on both sides", 0.1)
    window = 3 * max(POLL_SECONDS, WEBHOOK_POLL_SECONDS)
    settled = settle(chaos, POLL_SECONDS * 2)
    observed_from = time.monotonic()
    wait_for(lambda: time.monotonic() - observed_from > window, window + 5, "the observation window", 0.2)
    after = (sup.emu.writes(), eng.emu.writes())
    assert after == settled, f"writes went on after convergence: {settled} → {after}"
    assert both((sup.emu, key)) and both((eng.emu, twin))  # nobody swapped a value back
    for site in (sup, eng):
        assert site.queues() == {"outbox_unacked": 0, "inbox_unprocessed": 0}
    report(
        "echo loops",
        writes_for_the_two_edits={
            "support": settled[0] - writes_at_link[0] - 1,
            "engineering": settled[1] - writes_at_link[1] - 1,
        },
        flat_for_s=round(window, 1),
        writes_during_window=(after[0] - settled[0], after[1] - settled[1]),
    )


@pytest.mark.parametrize(
    ("steps", "new_issues"), [(5, 4), pytest.param(25, 20, marks=pytest.mark.slow, id="25-20-slow")]
)
def test_partition_outbox_grows_then_converges_in_order(chaos: Chaos, steps: int, new_issues: int) -> None:
    sup, eng = chaos.support, chaos.eng
    _, twins = linked(chaos, 1)
    key, twin = next(iter(twins.items()))
    eng.node.kill9()  # the link is gone and stays gone
    depths = [sup.queues()["outbox_unacked"]]
    for step in range(steps):
        sup.emu.edit(key, {"summary": f"step {step}"}, user=sup.person)
        sup.emu.comment(key, f"note {step}", user=sup.person)
        wait_for(lambda d=depths[-1]: sup.queues()["outbox_unacked"] > d, 30, "the outbox to grow", 0.05)
        depths.append(sup.queues()["outbox_unacked"])
    new = chaos.prepare(new_issues, comments=1, tag="during partition ")
    chaos.escalate(list(new))
    wait_for(lambda: sup.queues()["outbox_unacked"] >= depths[-1] + len(new), 30, "the new issues queued")
    depths.append(sup.queues()["outbox_unacked"])
    assert eng.emu.count() == 1  # nothing went over meanwhile
    started = time.monotonic()
    eng.restart()
    took = chaos.wait_converged(new, comments=1)
    last = f"step {steps - 1}"
    wait_for(lambda: eng.emu.issue(twin)["fields"]["summary"] == last, 30, "the last edit", 0.1)
    bodies = [c["body"] for c in eng.emu.issue(twin)["fields"]["comment"]["comments"]]
    assert [b.rsplit("\n", 1)[-1] for b in bodies] == [f"note {i}" for i in range(steps)], bodies
    assert eng.emu.count() == 1 + len(new)
    wait_for(lambda: sup.queues()["outbox_unacked"] == 0, 30, "the outbox to drain")
    report(
        "partition",
        outbox_depths=depths,
        issues_after=eng.emu.count(),
        converged_after_restart_s=round(time.monotonic() - started, 1),
        wait_s=round(took, 1),
    )
