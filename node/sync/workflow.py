"""Walking a local workflow to a target status, one transition at a time.

At each step: take a transition that leads straight to the target; else follow the shortest path of
LEARNED edges (every transition list the adapter returns is recorded in ``workflow_edges``, per
project and issue type); else explore the transition whose target status was not visited yet and
whose status category is closest to the target's. Bounded by ``max_steps``; an unreachable target
raises :class:`Unreachable` naming where the walk got stuck.

A target that names no status but a transition (Visual maps written as "Accept" instead of
"Accepted") is taken as that transition's target status. A target this workflow does not have at
all (the peer's own status name, as Basic rules send it) is approximated by its status category:
the walk moves toward that category and stops as soon as the issue stands in it.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Awaitable, Callable

from node.store import Database
from node.trackers.base import TrackerAdapter, Transition

_CATEGORY = {"new": 0, "indeterminate": 1, "done": 2}


class Unreachable(Exception):
    pass


Edge = tuple[str, str, str, str, str]  # from_status, transition_id, name, to_status, to_category


def _fold(text: str) -> str:
    return text.casefold().strip()


async def _learn(db: Database, project: str, issue_type: str, current: str, ts: list[Transition]) -> None:
    if not ts:
        return
    rows = [(project, issue_type, current, t.id, t.name, t.to.name, t.to.category, time.time()) for t in ts]

    def write(c: sqlite3.Connection) -> None:
        c.executemany("INSERT OR REPLACE INTO workflow_edges VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    await db.write(write)


async def _edges(db: Database, project: str, issue_type: str) -> list[Edge]:
    def read(c: sqlite3.Connection) -> list[Edge]:
        cur = c.execute(
            "SELECT from_status, transition_id, name, to_status, to_category FROM workflow_edges "
            "WHERE project = ? AND issue_type = ?",
            (project, issue_type),
        )
        return [tuple(map(str, r)) for r in cur.fetchall()]  # type: ignore[misc]

    return await db.read(read)


def _path(edges: list[Edge], start: str, target: str) -> list[Edge] | None:
    """Shortest path of learned edges from ``start`` to ``target`` (BFS)."""
    graph: dict[str, list[Edge]] = collections.defaultdict(list)
    for e in edges:
        graph[_fold(e[0])].append(e)
    seen = {_fold(start)}
    queue: collections.deque[tuple[str, list[Edge]]] = collections.deque([(_fold(start), [])])
    while queue:
        node, path = queue.popleft()
        for e in graph.get(node, []):
            nxt = _fold(e[3])
            if nxt in seen:
                continue
            if nxt == _fold(target):
                return [*path, e]
            seen.add(nxt)
            queue.append((nxt, [*path, e]))
    return None


async def walk_to(
    db: Database,
    adapter: TrackerAdapter,
    *,
    key: str,
    project: str,
    issue_type: str,
    current: str,
    current_category: str = "new",
    target: str,
    target_category: str | None = None,
    max_steps: int = 12,
    on_step: Callable[[Transition], Awaitable[None]] | None = None,
) -> list[str]:
    """Transition ``key`` from ``current`` to ``target``; returns the transition names taken."""
    taken: list[str] = []
    visited = {_fold(current)}
    edges = await _edges(db, project, issue_type)
    # A target named like a transition ("Accept") means that transition's target status.
    known_status = {_fold(e[0]) for e in edges} | {_fold(e[3]) for e in edges}
    if _fold(target) not in known_status:
        for e in edges:
            if _fold(e[2]) == _fold(target):
                target = e[3]
                break
    for _ in range(max_steps):
        if _fold(current) == _fold(target):
            return taken
        available = await adapter.transitions(key)
        await _learn(db, project, issue_type, current, available)
        if _fold(target) not in {_fold(t.to.name) for t in available} and not any(
            _fold(e[3]) == _fold(target) for e in edges
        ):
            by_name = [t for t in available if _fold(t.name) == _fold(target)]
            if by_name:
                target = by_name[0].to.name
        edges = await _edges(db, project, issue_type)
        for e in edges:
            if _fold(e[3]) == _fold(target):
                target_category = target_category or e[4]
        known = {_fold(e[0]) for e in edges} | {_fold(e[3]) for e in edges}
        if _fold(target) not in known and target_category == current_category:
            # A status this workflow does not have (the peer's own name, with Basic rules): the
            # issue already stands in the same category, which is the closest this side can come.
            return taken
        choice = next((t for t in available if _fold(t.to.name) == _fold(target)), None)
        if choice is None:
            path = _path(edges, current, target)
            if path is not None:
                first = path[0]
                choice = next(
                    (t for t in available if t.id == first[1] and _fold(t.to.name) == _fold(first[3])), None
                )
        if choice is None and target_category in _CATEGORY:
            # Explore, but never away from the target's category: an unknown status must not drag
            # the issue through its workflow.
            goal = _CATEGORY[target_category]
            here = abs(_CATEGORY.get(current_category, 1) - goal)

            def distance(t: Transition, goal: int = goal) -> int:
                return abs(_CATEGORY.get(t.to.category, 1) - goal)

            fresh = [t for t in available if _fold(t.to.name) not in visited and distance(t) <= here]
            if fresh:
                choice = min(fresh, key=distance)
        if choice is None:
            raise Unreachable(
                f"cannot reach status {target!r} from {current!r}: no transition leads further "
                f"(took {' → '.join(taken) or 'none'})"
            )
        await adapter.transition(key, choice.id)
        if on_step is not None:
            await on_step(choice)
        taken.append(choice.name)
        current, current_category = choice.to.name, choice.to.category
        visited.add(_fold(current))
    if _fold(current) == _fold(target):
        return taken
    raise Unreachable(
        f"cannot reach status {target!r} within {max_steps} transitions (took {' → '.join(taken)})"
    )
