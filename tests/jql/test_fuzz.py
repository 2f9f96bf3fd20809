"""Bad input never raises anything but JqlError (and never hangs)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.jql import JqlError, compile_query, parse_for_api

from .helpers import ALICE, NOW, change, ctx, issue

VOCAB = [
    "project", "status", "assignee", "summary", "labels", "cf[10]", "issue.property[p].x", "created", "due",
    "priority", "fixVersion", "text", "=", "!=", "~", "!~", "<", ">=", "in", "not", "is", "was", "changed",
    "empty", "null", "and", "or", "&&", "|", "!", "(", ")", ",", "[", "]", "order", "by", "asc", "desc",
    "after", "before", "on", "during", "from", "to", "currentUser()", "now()", "startOfDay(-1d)",
    "membersOf(g)", "'a b'", '"x\\"y"', "-1d", "2024-01-31", "42", "-7", "Open", "ABC-1", "win*", "\\u0041",
    "\n", "'", '"', "\\", "{", "é",
]  # fmt: skip

SAMPLE = [
    issue(n=1, status="Open", labels=["a"], assignee=ALICE, changelog=[change("status", "New", "Open", NOW)]),
    issue(n=2, custom_fields={"customfield_10": [1, "x", {"value": "y"}]}, properties={"p": {"x": [1, 2]}}),
]


def _exercise(text: str) -> None:
    try:
        q = compile_query(text)
    except JqlError as e:
        assert str(e)
        assert e.line >= 1 and e.column >= 1
    else:
        c = ctx()
        for i in SAMPLE:
            q.matches(i, c)
        q.sort(SAMPLE, c)
        q.structure()
    out = parse_for_api(text)
    assert out["query"] == text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_random_text(text: str) -> None:
    _exercise(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=14))
def test_random_token_soup(words: list[str]) -> None:
    _exercise(" ".join(words))
