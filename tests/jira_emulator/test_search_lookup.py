"""The search fast path: a query naming its issues by key or id looks them up instead of scanning
the site, and answers exactly what the full scan answers (same issues, same order, same errors)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.trackers.base import IssueSnapshot
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.ops import JiraApiError, Site
from node.trackers.jira.emulator.search import SnapshotCache, plain_lookup, run_search
from node.trackers.jira.emulator.state import EmulatorState, Issue, new_state

from .conftest import Client


class CountingCache(SnapshotCache):
    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.looked_at: list[str] = []

    def get(self, issue: Issue) -> IssueSnapshot:
        self.looked_at.append(issue.key)
        return super().get(issue)


def build_site(mode: str = "cloud", issues: int = 30, seed: int = 7) -> EmulatorState:
    state = new_state(mode)  # type: ignore[arg-type]
    state.add_project("ABC")
    state.add_project("XY")
    site = Site(state)
    admin = state.users["admin"]
    rng = random.Random(seed)
    for n in range(issues):
        fields = {
            "project": {"key": rng.choice(["ABC", "XY"])},
            "issuetype": {"name": rng.choice(["Task", "Bug"])},
            "summary": f"issue {n}",
            "labels": rng.sample(["red", "blue", "green"], rng.randint(0, 2)),
            "priority": {"name": rng.choice(["High", "Medium", "Low"])},
        }
        issue = site.create_issue(admin, {"fields": fields}, 2)
        if rng.random() < 0.3:
            site.do_transition(admin, issue, {"transition": {"id": "21"}}, 2)
    # one deleted issue: its key and id no longer resolve
    site.delete_issue(admin, state.issue("ABC-2") or state.issue("XY-2"))  # type: ignore[arg-type]
    return state


STATE = build_site()
IDS = sorted(STATE.issues)
KEYS = sorted(STATE.keys)

# ----------------------------------------------------------------- random queries

ref = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(str.lower),
    st.sampled_from(IDS),
    st.sampled_from(["ABC-999", "XY-0", "NOPE-1", "99999", "10000", "abc-1x", "deleted"]),
    st.sampled_from(["ABC-2", "XY-2"]),  # one of them was deleted
)


def _quote(v: str) -> str:
    return v if v.isdigit() else f'"{v}"'


@st.composite
def key_term(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(["key", "id", "issuekey", "issueKey", "KEY"]))
    values = draw(st.lists(ref, min_size=1, max_size=6))
    if len(values) == 1 and draw(st.booleans()):
        return f"{field} = {_quote(values[0])}"
    return f"{field} in ({', '.join(_quote(v) for v in values)})"


other_term = st.sampled_from(
    [
        "project = ABC",
        "project = XY",
        "labels = red",
        "labels in (blue, green)",
        'status = "In Progress"',
        "priority > Medium",
        "issuetype = Bug",
        "key != ABC-1",
        "key > XY-3",
        "key not in (ABC-3, XY-4)",
        "summary ~ issue",
        "labels is EMPTY",
    ]
)


@st.composite
def where(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(
        st.sampled_from(["key", "key", "other", "and", "or", "not"] if depth < 2 else ["key", "other"])
    )
    if kind == "key":
        return draw(key_term())
    if kind == "other":
        return draw(other_term)
    if kind == "not":
        return f"NOT ({draw(where(depth + 1))})"
    parts = draw(st.lists(where(depth + 1), min_size=2, max_size=3))
    return "(" + f" {kind.upper()} ".join(parts) + ")"


order = st.sampled_from(
    [
        "",
        " ORDER BY key ASC",
        " ORDER BY updated ASC",
        " ORDER BY priority DESC, key DESC",
        " ORDER BY created",
    ]
)


def both(state: EmulatorState, jql: str) -> tuple[Any, Any]:
    user = state.users["admin"]
    out: list[Any] = []
    for lookup in (True, False):
        try:
            out.append([i.key for i in run_search(state, SnapshotCache(state), jql, user, lookup=lookup)])
        except JiraApiError as err:
            out.append(("error", err.status, err.messages))
    return out[0], out[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where(), order)
def test_lookup_answers_what_the_full_scan_answers(clause: str, ordering: str) -> None:
    fast, full = both(STATE, clause + ordering)
    assert fast == full


@st.composite
def plain_query(draw: st.DrawFn) -> str:
    """What the node's batched reads send (``id in (…) OR key in (…)``), in any case, spacing and
    quoting the plain-lookup pattern accepts."""
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["id", "key", "issuekey", "issueKey", "KEY", "Id"]))
        values = draw(st.lists(ref, min_size=1, max_size=6))
        shown = []
        for v in values:
            bare = v.isdigit() or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-[0-9]+", v) is not None
            shown.append(v if bare and draw(st.booleans()) else f'"{v}"')
        comma = draw(st.sampled_from([", ", ",", " , "]))
        if len(shown) == 1 and draw(st.booleans()):
            terms.append(f"{field}{draw(st.sampled_from([' = ', '=']))}{shown[0]}")
        else:
            terms.append(f"{field} {draw(st.sampled_from(['in', 'IN', 'In']))} ({comma.join(shown)})")
    return draw(st.sampled_from(["", " "])) + draw(st.sampled_from([" OR ", " or ", " Or\n"])).join(terms)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_query())
def test_plain_lookup_answers_what_the_engine_answers(jql: str) -> None:
    assert plain_lookup(jql) is not None  # the pattern's path, not the compiler's
    fast, full = both(STATE, jql)
    assert fast == full


@pytest.mark.parametrize(
    "jql",
    [
        "key = EMPTY",
        "key in (ABC-1) ORDER BY key",
        "key in (ABC-1) AND project = ABC",
        "id in ()",
        "key in (currentUser())",
        "key in (ABC-1, (XY-1))",
        'key = "ABC\\-1"',
        "summary in (ABC-1)",
        "key in (ABC-1) OR",
    ],
)
def test_other_queries_are_compiled(jql: str) -> None:
    assert plain_lookup(jql) is None
    fast, full = both(STATE, jql)
    assert fast == full


@pytest.mark.parametrize(
    "jql",
    [
        'key in ("ABC-1", "NOPE-7")',  # an unknown key: whatever the scan does, the lookup does
        "key = ABC-1 AND project = NOPE",  # unknown project: a 400 either way
        "key in (ABC-1, XY-1) AND nosuchfield = 3",
        "id in (10000, 10001) OR key in (abc-1)",
        "key = currentUser()",
        "key in (ABC-1) AND key in (XY-1)",
    ],
)
def test_lookup_keeps_the_scans_answers_and_errors(jql: str) -> None:
    fast, full = both(STATE, jql)
    assert fast == full


def test_a_query_naming_its_issues_reads_only_those() -> None:
    state = STATE
    cache = CountingCache(state)
    user = state.users["admin"]
    ids = IDS[:3]
    hits = run_search(state, cache, f"id in ({', '.join(ids)}) OR key in (XY-1, NOPE-1)", user)
    assert len(cache.looked_at) <= 4
    assert {i.id for i in hits} == set(ids) | {state.keys["XY-1"]}
    cache.looked_at.clear()
    run_search(state, cache, "project = ABC AND key in (ABC-1, ABC-3) ORDER BY key DESC", user)
    assert len(cache.looked_at) == 2
    cache.looked_at.clear()
    run_search(state, cache, "key in (ABC-1, ABC-3) OR labels = red", user)  # an OR with another term
    assert len(cache.looked_at) == len(state.issues)


async def test_search_by_ids_over_http_pages_as_before(cloud: JiraEmulator, cc: Client) -> None:
    state = cloud.state
    state.add_project("BIG")
    site = Site(state)
    admin = state.users["admin"]
    keys = [
        site.create_issue(
            admin, {"fields": {"project": {"key": "BIG"}, "issuetype": {"name": "Task"}, "summary": "s"}}, 2
        ).key
        for _ in range(12)
    ]
    jql = f"key in ({', '.join(keys[::2])}, BIG-999) ORDER BY key ASC"
    seen: list[str] = []
    token = None
    for _ in range(5):
        body: dict[str, Any] = {"jql": jql, "maxResults": 4, "fields": ["summary"]}
        if token:
            body["nextPageToken"] = token
        status, page = await cc.post("/rest/api/3/search/jql", body)
        assert status == 200, page
        seen += [i["key"] for i in page["issues"]]
        if page["isLast"]:
            break
        token = page["nextPageToken"]
    assert seen == sorted(keys[::2], key=lambda k: int(k.split("-")[1]))
    status, page = await cc.post("/rest/api/2/search", {"jql": jql, "startAt": 4, "maxResults": 4})
    assert status == 200 and page["total"] == 6 and [i["key"] for i in page["issues"]] == seen[4:]
