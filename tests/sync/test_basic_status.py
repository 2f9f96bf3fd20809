"""Basic rules between two different workflows: statuses meet by category, never an error."""

from __future__ import annotations

from tests.sync.conftest import Pair, eventually
from tests.sync.test_content import linked


async def test_basic_rules_map_unknown_statuses_by_category_without_errors(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Checkout page is blank")
    # support's "Open" does not exist in engineering's workflow: its "To Do" is the same category
    assert (await eng.adapter.get_issue(eng_key)).status.name == "To Do"  # type: ignore[union-attr]
    start = next(t for t in await eng.human.transitions(eng_key) if t.to.name == "In Progress")
    await eng.human.transition(eng_key, start.id)
    await eng.engine.local_change(eng_key)

    async def support_category() -> str | None:
        status = (await sup.adapter.get_issue(key)).status
        return status.category if status and status.category != "new" else None

    assert await eventually(support_category, what="support to leave To Do") == "indeterminate"
    done = next(t for t in await eng.human.transitions(eng_key) if t.to.name == "Done")
    await eng.human.transition(eng_key, done.id)
    await eng.engine.local_change(eng_key)

    async def support_done() -> str | None:
        status = (await sup.adapter.get_issue(key)).status
        return status.name if status and status.category == "done" else None

    await eventually(support_done, what="support to reach a done status")
    for side in (sup, eng):
        assert await side.engine.errors(include_resolved=True) == []
    for view in await sup.engine.status(key) + await eng.engine.status(eng_key):
        assert view.last_result == "applied" or view.last_result is None
