"""Builders for realistic snapshots and replicas (support on Jira Cloud, engineering on Jira Server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.rules import ScriptPool
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Attachment, Comment, StatusRef, UserRef
from protocol.richtext import from_plain_text
from tests.helpers.builders import Builder

EXAMPLES = Path(__file__).resolve().parents[2] / "node" / "rules" / "examples"

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
JANE = UserRef(
    email="jane.doe@customer.example", display_name="Jane Doe", account_id="5b10ac8d82e05b22cc7d4ef5"
)
AGENT = UserRef(
    email="sam.agent@support.example", display_name="Sam Agent", account_id="61a2b3c4d5e6f7a8b9c0d1e2"
)
ENGINEER = UserRef(email="lee.dev@eng.example", display_name="Lee Dev", username="ldev")


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def sha(ch: str) -> str:
    return ch * 64


#: An escalated customer request in support's Jira Cloud (project SUP).
support_issue = Builder(
    IssueSnapshot,
    tracker="jira-cloud",
    id="10042",
    key="SUP-42",
    url="https://support.example.atlassian.net/browse/SUP-42",
    project="SUP",
    summary="Checkout fails with HTTP 500 for EU customers",
    description=from_plain_text("Since the 1 May release, checkout fails.\n\nSteps: add item, pay."),
    status=StatusRef(name="Accept", category="indeterminate"),
    priority="High",
    issue_type="Support Request",
    labels=["escalated", "cust-acme", "triage-l2"],
    components=["Payments"],
    due_date=dt.date(2024, 5, 10),
    assignee=AGENT,
    reporter=JANE,
    custom_fields={"customfield_10010": "ACME Corp", "customfield_10011": "All EU orders blocked"},
    field_names={"customfield_10010": "Customer", "customfield_10011": "Customer impact"},
    comments=[
        Comment(id="100", author=JANE, body=from_plain_text("It is still failing."), created=at(5)),
        Comment(
            id="101",
            author=AGENT,
            body=from_plain_text("Internal: customer is on the legacy plan, be careful."),
            created=at(6),
            internal=True,
        ),
        Comment(
            id="102",
            author=AGENT,
            body=from_plain_text("We escalated this to engineering."),
            created=at(7),
        ),
    ],
    attachments=[
        Attachment(id="900", filename="har.har", size=120_000, mime_type="application/json", sha256=sha("a")),
        Attachment(id="901", filename="dump.bin", size=80_000_000, sha256=sha("b")),
    ],
    created=at(0),
    updated=at(20),
    changelog=[
        ChangeItem(field="status", from_value="Open", to_value="Accept", at=at(3)),
        ChangeItem(field="summary", from_value="Checkout broken", to_value="Checkout fails", at=at(4)),
        ChangeItem(field="labels", from_value="", to_value="escalated", at=at(8)),
        ChangeItem(field="labels", from_value="escalated", to_value="escalated cust-acme", at=at(9)),
    ],
)


#: Engineering's twin in Jira Server (project ENG).
eng_issue = Builder(
    IssueSnapshot,
    tracker="jira-server",
    id="20007",
    key="ENG-7",
    url="https://jira.eng.example/browse/ENG-7",
    project="ENG",
    summary="Checkout fails with HTTP 500 for EU customers",
    description=from_plain_text("Since the 1 May release, checkout fails.\n\nSteps: add item, pay."),
    status=StatusRef(name="To Do", category="new"),
    priority="Critical",
    issue_type="Bug",
    labels=["cust-acme"],
    components=["Payments"],
    due_date=dt.date(2024, 5, 10),
    assignee=ENGINEER,
    custom_fields={"customfield_20020": "ACME Corp", "customfield_20030": None},
    created=at(10),
    updated=at(10),
)


@pytest.fixture(scope="session")
def pool() -> Iterator[ScriptPool]:
    p = ScriptPool(size=2)
    yield p
    p.close()


@pytest.fixture
def example() -> Any:
    def load(name: str) -> str:
        return (EXAMPLES / f"{name}.yaml").read_text()

    return load
