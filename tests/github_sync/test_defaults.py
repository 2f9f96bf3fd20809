"""Tracker-aware incoming defaults (pure): a Jira replica on a GitHub node, a GitHub replica on a
Jira node, and the Visual ``github`` section that configures them."""

from __future__ import annotations

import datetime as dt

import pytest

from node.rules import ChangeSet, IncomingContext, OutgoingContext, RuleError, RuleSet, compile_rules
from node.trackers.base import IssueSnapshot
from protocol.replica import Attachment, Comment, EntityRef, Replica, StatusRef, UserRef
from protocol.richtext import from_plain_text, plain_text
from tests.helpers.builders import Builder

T0 = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
GH = IncomingContext(tracker="github", project="bot/tracker", connection="c1")
JIRA = IncomingContext(tracker="jira", project="SUP", connection="c1")


jira_replica = Builder(
    Replica,
    entity=EntityRef(id="10001", key="SUP-1", project="SUP"),
    summary="Checkout fails",
    description=from_plain_text("Steps to reproduce."),
    status=StatusRef(name="In Progress", category="indeterminate"),
    priority="High",
    issue_type="Bug",
    labels=["customer"],
    components=["Backend", "API"],
    due_date=dt.date(2030, 5, 1),
    extras={"tracker": "jira"},
    field_changed_at={"labels": T0, "status": T0, "priority": T0},
)


github_replica = Builder(
    Replica,
    entity=EntityRef(id="bot/tracker#7", key="bot/tracker#7", project="bot/tracker"),
    summary="Memory leak",
    description=from_plain_text("Grows.\n\nDue date: 2030-06-15"),
    status=StatusRef(name="open", category="new"),
    labels=["escalate", "priority: High", "type: Bug", "component: Backend", "status: In Progress"],
    extras={"tracker": "github"},
)


github_issue = Builder(
    IssueSnapshot,
    tracker="github",
    id="bot/tracker#7",
    key="bot/tracker#7",
    project="bot/tracker",
    summary="Checkout fails",
    description=from_plain_text("Steps to reproduce.\n\nDue date: 2030-05-01"),
    status=StatusRef(name="open", category="new"),
    labels=["customer", "status: In Progress", "priority: High", "type: Bug"],
)


jira_issue = Builder(
    IssueSnapshot,
    tracker="jira",
    id="10001",
    key="SUP-1",
    project="SUP",
    summary="Memory leak",
    description=from_plain_text("Grows."),
    status=StatusRef(name="In Progress", category="indeterminate"),
    priority="High",
    issue_type="Bug",
    labels=["escalate"],
    components=["Backend"],
    due_date=dt.date(2030, 6, 15),
)


def incoming(
    replica: Replica,
    previous: Replica | None = None,
    local: IssueSnapshot | None = None,
    ctx: IncomingContext = GH,
    source: str = "",
) -> ChangeSet:
    rules = compile_rules(RuleSet(mode="visual" if source else "basic", direction="incoming", source=source))
    return rules.incoming(replica, previous, local, ctx)


# -------------------------------------------------------------------------------------------------
# Local GitHub, peer Jira


def test_new_jira_issue_on_github_carries_labels_for_what_github_lacks() -> None:
    att = Attachment(
        id="900",
        filename="trace.log",
        size=2048,
        mime_type="text/plain",
        sha256="a" * 64,
        url="https://jira.example/secure/attachment/900/trace.log",
    )
    replica = jira_replica(
        attachments=[att],
        comments=[
            Comment(id="1", body=from_plain_text("public words")),
            Comment(id="2", body=from_plain_text("internal words"), internal=True),
        ],
    )
    cs = incoming(replica)
    assert cs.action == "create"
    fields = cs.fields.model_dump(exclude_unset=True)
    assert fields["labels"] == [
        "customer",
        "status: In Progress",
        "priority: High",
        "type: Bug",
        "component: Backend",
        "component: API",
    ]
    assert not {"priority", "issue_type", "components", "due_date"} & set(fields)
    assert plain_text(cs.fields.description).endswith("Due date: 2030-05-01")
    assert cs.attachments_add == []  # GitHub has no attachment API: never a failed apply
    added = {c.remote_id: plain_text(c.body) for c in cs.comments_add}
    assert set(added) == {"1", "attachment:900"}  # the internal comment is never posted
    assert "trace.log (2.0 KB, text/plain)" in added["attachment:900"]
    link = cs.comments_add[1].body["content"][-1]["content"][1]["marks"][0]
    assert link == {"type": "link", "attrs": {"href": att.url}}
    assert not any(c.internal for c in cs.comments_add)
    assert any("internal" in w for w in cs.warnings)


def test_internal_comments_are_posted_publicly_only_when_the_rules_say_so() -> None:
    replica = jira_replica(comments=[Comment(id="2", body=from_plain_text("internal words"), internal=True)])
    cs = incoming(replica, source="comments: {internal: public}")
    assert [(c.remote_id, c.internal) for c in cs.comments_add] == [("2", False)]


def test_done_closes_and_wont_do_closes_as_not_planned() -> None:
    local = github_issue()
    done = incoming(jira_replica(status=StatusRef(name="Done", category="done")), jira_replica(), local)
    assert (done.status, done.transition) == ("closed", None)
    wont = incoming(jira_replica(status=StatusRef(name="Won't Do", category="done")), jira_replica(), local)
    assert (wont.status, wont.transition) == ("closed", "close_not_planned")
    by_resolution = incoming(
        jira_replica(
            status=StatusRef(name="Resolved", category="done"),
            extras={"tracker": "jira", "resolution": "Duplicate"},
        ),
        jira_replica(),
        local,
    )
    assert by_resolution.transition == "close_not_planned"
    # Reopened on Jira: GitHub reopens
    closed = github_issue(
        status=StatusRef(name="closed", category="done"), labels=["customer", "status: Done"]
    )
    reopened = incoming(jira_replica(), jira_replica(status=StatusRef(name="Done", category="done")), closed)
    assert reopened.status == "open"
    assert "status: In Progress" in (reopened.fields.labels or []) and "status: Done" not in (
        reopened.fields.labels or []
    )


def test_a_status_map_onto_open_or_closed_decides_the_state() -> None:
    source = "values: {status: {map: {In Review: closed}, unmatched: keep}}"
    cs = incoming(jira_replica(status=StatusRef(name="In Review", category="indeterminate")), source=source)
    assert cs.status == "closed"
    assert "status: In Review" in (cs.fields.labels or [])


def test_status_change_replaces_the_status_label_and_keeps_github_only_labels() -> None:
    previous = jira_replica(status=StatusRef(name="To Do", category="new"))
    before = [
        "customer",
        "status: To Do",
        "priority: High",
        "type: Bug",
        "component: Backend",
        "component: API",
    ]
    cs = incoming(jira_replica(), previous, github_issue(labels=[*before, "good first issue"]))
    assert cs.status is None  # still open
    assert cs.fields.labels is not None
    assert "status: In Progress" in cs.fields.labels and "status: To Do" not in cs.fields.labels
    assert "good first issue" in cs.fields.labels  # Jira cannot hold it: the peer never removed it
    now = github_issue(labels=[*cs.fields.labels])
    unchanged = incoming(jira_replica(), jira_replica(), now)
    assert unchanged.is_empty(), unchanged


def test_label_prefixes_are_configurable_and_can_be_switched_off() -> None:
    source = 'github: {label_prefixes: {priority: "P-", type: null, component: "area/"}}'
    cs = incoming(jira_replica(), source=source)
    assert cs.fields.labels == ["customer", "status: In Progress", "P-High", "area/Backend", "area/API"]


def test_due_date_can_be_dropped_with_a_warning() -> None:
    cs = incoming(jira_replica(), source="github: {due_date: drop}")
    assert "Due date" not in plain_text(cs.fields.description)
    assert any("2030-05-01" in w for w in cs.warnings)


def test_a_switched_off_github_section_leaves_the_replica_alone() -> None:
    cs = incoming(jira_replica(), source="github: {enabled: false}")
    assert cs.fields.priority == "High" and cs.fields.labels == ["customer"]


def test_github_to_github_is_not_reshaped() -> None:
    cs = incoming(github_replica())
    assert "status: In Progress" in (cs.fields.labels or []) and cs.status == "open"


# -------------------------------------------------------------------------------------------------
# Local Jira, peer GitHub


def test_github_labels_become_jira_fields_again() -> None:
    replica = github_replica(labels=[*github_replica().labels, "component: Nope", "good first issue"])
    cs = incoming(replica, ctx=JIRA, source="github: {known_values: {components: [Backend, Frontend]}}")
    fields = cs.fields.model_dump(exclude_unset=True)
    assert fields["priority"] == "High" and fields["issue_type"] == "Bug"
    assert fields["components"] == ["Backend"]
    assert fields["labels"] == ["escalate"]
    assert fields["due_date"] == dt.date(2030, 6, 15)
    assert plain_text(cs.fields.description) == "Grows."  # the footer is not body text on Jira
    assert cs.status == "In Progress"  # the label names a status; no report back needed
    assert not cs.report_back
    assert any("'good first issue'" in w and "'component: Nope'" in w for w in cs.warnings)


def test_unknown_values_stay_labels() -> None:
    replica = github_replica(labels=["priority: urgent", "needs-triage"])
    cs = incoming(replica, ctx=JIRA, source="github: {known_values: {priority: [High, Low]}}")
    assert "priority" not in cs.fields.model_dump(exclude_unset=True)
    assert cs.fields.labels == ["needs-triage"]  # "priority: urgent" has a space: GitHub keeps it


def test_github_close_and_reopen_drive_the_jira_workflow_by_category() -> None:
    local = jira_issue()
    previous = github_replica()
    closed = github_replica(status=StatusRef(name="closed", category="done"))
    cs = incoming(closed, previous, local, ctx=JIRA)
    assert cs.status == "closed" and cs.report_back
    # reopened, with the label this node wrote meanwhile: the state decides
    reopened = github_replica(labels=["escalate", "status: Done"])
    after_close = JIRA.model_copy(update={"last_applied": {"status": "Done"}})
    done = jira_issue(status=StatusRef(name="Done", category="done"))
    cs = incoming(reopened, closed, done, ctx=after_close)
    assert cs.status == "open" and cs.report_back
    # a label change alone moves to that status
    relabelled = github_replica(labels=["status: To Do"])
    cs = incoming(relabelled, previous, local, ctx=JIRA)
    assert cs.status == "To Do" and not cs.report_back
    # nothing changed: nothing to do
    assert incoming(github_replica(), github_replica(), local, ctx=JIRA).status is None


def test_cross_tracker_people_match_by_email_unless_configured() -> None:
    ref = UserRef(username="jane", account_id="1001", display_name="Jane")
    cs = incoming(github_replica(assignee=ref), ctx=JIRA, source="fields: {assignee: true}")
    assert cs.users[0].match_by == ["email"] and cs.users[0].lookup_ref() is None
    cs = incoming(
        github_replica(assignee=ref), ctx=JIRA, source="fields: {assignee: true}\nusers: {match: [username]}"
    )
    assert cs.users[0].match_by == ["username"]
    table = "fields: {assignee: true}\nusers: {table: {jane: {account_id: 5b10abc}}, unmatched: error}"
    cs = incoming(github_replica(assignee=ref), ctx=JIRA, source=table)
    assert cs.users[0].mapped == UserRef(account_id="5b10abc")
    same_kind = github_replica(assignee=ref, extras={"tracker": "jira-server"})
    cs = incoming(same_kind, ctx=IncomingContext(tracker="jira"), source="fields: {assignee: true}")
    assert cs.users[0].match_by == ["email", "account_id", "username"]


# -------------------------------------------------------------------------------------------------
# Outgoing extras and the document


def test_outgoing_replicas_name_their_tracker_and_resolution() -> None:
    rules = compile_rules(RuleSet(mode="basic", direction="outgoing"))
    closed = jira_issue(status=StatusRef(name="Won't Do", category="done"), resolution="Won't Do")
    replica = rules.outgoing(closed, OutgoingContext(connection="c1"))
    assert replica is not None and replica.extras == {"tracker": "jira", "resolution": "Won't Do"}


@pytest.mark.parametrize(
    ("source", "path", "words"),
    [
        ('github: {label_prefixes: {priority: "p", type: "prio"}}', "github.label_prefixes", "overlaps"),
        ('github: {label_prefixes: {status: "  "}}', "github.label_prefixes", "cannot be empty"),
        ('github: {label_prefixes: {type: "t: ", issue_type: "t2: "}}', "github.label_prefixes", "not both"),
        ("github: {known_values: {assignee: [x]}}", "github.known_values", "known values are for"),
        ("github: {due_date: sometimes}", "github.due_date", "footer"),
        ('github: {not_planned: "("}', "github.not_planned", "regular expression"),
    ],
)
def test_bad_github_sections_name_the_path(source: str, path: str, words: str) -> None:
    with pytest.raises(RuleError) as err:
        compile_rules(RuleSet(mode="visual", direction="incoming", source=source))
    assert err.value.path is not None and err.value.path.startswith(path), err.value.path
    assert words in str(err.value)


def test_the_github_section_is_incoming_only() -> None:
    with pytest.raises(RuleError) as err:
        compile_rules(RuleSet(mode="visual", direction="outgoing", source="github: {due_date: drop}"))
    assert err.value.path == "github"


def test_the_documented_jira_github_examples_compile() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    section = docs[docs.index("## Jira ↔ GitHub") : docs.index("## Script rules")]
    blocks = section.split("```yaml\n")[1:]
    assert len(blocks) == 2
    for block in blocks:
        rules = compile_rules(RuleSet(mode="visual", direction="incoming", source=block.split("```")[0]))
        assert rules.visual.users.table
