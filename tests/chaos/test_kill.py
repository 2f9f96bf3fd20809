"""kill -9 of either node while replicas are applied or sent: convergence without duplicates."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import Chaos, report
from tests.e2e.harness import wait_for


def kill_midway(chaos: Chaos, victim: str, shas: dict[str, str], fractions: list[float]) -> list[str]:
    """Escalate every issue, then kill -9 ``victim`` each time ENG holds ``fraction`` of them
    (restarting it in between). Returns what was observed at each kill."""
    site = chaos.eng if victim == "eng" else chaos.support
    chaos.escalate(list(shas))
    seen: list[str] = []
    for fraction in fractions:
        goal = max(1, int(len(shas) * fraction))
        wait_for(lambda g=goal: chaos.eng.emu.count() >= g, 60, f"{goal} ENG issues", interval=0.02)
        count = chaos.eng.emu.count()
        site.node.kill9()
        seen.append(f"{count}/{len(shas)}")
        site.restart()
    return seen


@pytest.mark.parametrize("victim", ["eng", "support"])
def test_kill9_mid_flow_converges_without_duplicates(chaos: Chaos, victim: str) -> None:
    shas = chaos.prepare(12)
    kills = kill_midway(chaos, victim, shas, [0.3])
    took = chaos.wait_converged(shas)
    chaos.assert_exact(shas)
    report(f"kill -9 {victim}", issues=len(shas), killed_at=kills, converged_after_restart_s=round(took, 1))


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["eng", "support"])
def test_kill9_many_rounds_converges_without_duplicates(chaos: Chaos, victim: str) -> None:
    shas = chaos.prepare(30)
    kills = kill_midway(chaos, victim, shas, [0.1, 0.3, 0.5, 0.7, 0.9])
    took = chaos.wait_converged(shas, timeout=120)
    chaos.assert_exact(shas)
    report(f"kill -9 {victim} x{len(kills)}", issues=len(shas), killed_at=kills, converged_s=round(took, 1))
