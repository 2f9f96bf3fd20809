"""Jira Cloud ↔ GitHub end to end: create, edit, comment, close/reopen, labels, attachments."""

from __future__ import annotations

import datetime as dt

from node.trackers.base import IssueUpdate
from protocol.replica import UserRef
from protocol.richtext import from_plain_text, plain_text
from tests.github_sync.conftest import Pair
from tests.sync.conftest import eventually


async def test_jira_issue_appears_on_github_with_labels_for_what_github_lacks(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    key = await jira.create(
        "Checkout fails on Safari",
        description=from_plain_text("Steps: open checkout, press pay."),
        priority="High",
        issue_type="Bug",
        labels=["customer"],
        components=["Backend"],
        due_date=dt.date(2030, 5, 1),
    )
    outcome = await jira.engine.sync(key, jira.connection)
    assert outcome.sent, outcome
    gh_key = await gh_pair.twin_of(jira, key)
    issue = await gh.adapter.get_issue(gh_key)
    assert issue.summary == "Checkout fails on Safari"
    assert issue.status is not None and issue.status.name == "open"
    assert sorted(issue.labels) == sorted(
        ["customer", "status: To Do", "priority: High", "type: Bug", "component: Backend"]
    )
    body = plain_text(issue.description)
    assert "Steps: open checkout, press pay." in body and "Due date: 2030-05-01" in body
    await gh_pair.settle()
    assert await gh.sent_nothing(gh_key)
    assert await jira.sent_nothing(key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []


async def linked(pair: Pair, summary: str, **fields: object) -> tuple[str, str]:
    key = await pair.jira.create(summary, **fields)  # type: ignore[arg-type]
    await pair.jira.engine.sync(key, pair.jira.connection)
    gh_key = await pair.twin_of(pair.jira, key)
    await pair.settle()
    return key, gh_key


async def quiet(pair: Pair, key: str, gh_key: str) -> None:
    """No echo: after the step, a second local change on either side sends nothing."""
    await pair.settle()
    assert await pair.jira.sent_nothing(key), "Jira sent its own write back"
    assert await pair.github.sent_nothing(gh_key), "GitHub sent its own write back"
    await pair.settle()


async def test_edits_and_labels_cross_both_ways(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    await jira.publish("incoming", "github: {known_values: {priority: [Highest, High, Medium, Low, Lowest]}}")
    key, gh_key = await linked(
        gh_pair,
        "Login slow",
        priority="High",
        issue_type="Bug",
        labels=["customer"],
        due_date=dt.date(2030, 5, 1),
    )
    # Jira edits summary and description: title and body follow, the due-date footer stays
    await jira.human.update_issue(
        key, IssueUpdate(summary="Login very slow", description=from_plain_text("Takes **40 s** now."))
    )
    await jira.engine.local_change(key)

    async def title() -> bool:
        issue = await gh.adapter.get_issue(gh_key)
        return issue.summary == "Login very slow" and "40 s" in plain_text(issue.description)

    await eventually(title, what="the new title and body on GitHub")
    body = plain_text((await gh.adapter.get_issue(gh_key)).description)
    assert "Due date: 2030-05-01" in body
    await quiet(gh_pair, key, gh_key)

    # GitHub edits title and body (moving the due date in the footer): Jira follows
    await gh.human.update_issue(
        gh_key,
        IssueUpdate(
            summary="Login slow after upgrade",
            description=from_plain_text("Since 2.3 it takes 40 s.\n\nDue date: 2030-06-15"),
        ),
    )
    await gh.engine.local_change(gh_key)

    async def summary() -> bool:
        issue = await jira.adapter.get_issue(key)
        return issue.summary == "Login slow after upgrade"

    await eventually(summary, what="the GitHub title on Jira")
    issue = await jira.adapter.get_issue(key)
    assert "Since 2.3 it takes 40 s." in plain_text(issue.description)
    assert "Due date" not in plain_text(issue.description)
    assert issue.due_date == dt.date(2030, 6, 15)
    await quiet(gh_pair, key, gh_key)

    # GitHub relabels: a plain label, a new priority and type, and an unknown priority
    labels = (await gh.adapter.get_issue(gh_key)).labels
    new = [x for x in labels if not x.startswith(("priority: ", "type: "))]
    await gh.human.update_issue(
        gh_key,
        IssueUpdate(
            labels=[
                *new,
                "regression",
                "good first issue",
                "priority: Highest",
                "type: Task",
                "priority: urgent",
            ]
        ),
    )
    await gh.engine.local_change(gh_key)

    async def fields() -> bool:
        issue = await jira.adapter.get_issue(key)
        return issue.priority == "Highest" and issue.issue_type == "Task"

    await eventually(fields, what="priority and type from GitHub labels")
    issue = await jira.adapter.get_issue(key)
    assert sorted(issue.labels) == ["customer", "regression"]
    # Jira labels cannot contain spaces: those stay on GitHub, with a warning (never a failed apply)
    view = (await jira.engine.status(key))[0]
    assert view.last_result is not None and view.last_result.startswith("applied")
    assert "'good first issue'" in view.last_result and "'priority: urgent'" in view.last_result
    await quiet(gh_pair, key, gh_key)

    # Jira relabels and changes priority: GitHub's labels follow, replacing the old priority label
    await jira.human.update_issue(key, IssueUpdate(labels=["customer", "vip"], priority="Low"))
    await jira.engine.local_change(key)

    async def gh_labels() -> bool:
        got = set((await gh.adapter.get_issue(gh_key)).labels)
        return {"vip", "priority: Low"} <= got and "priority: Highest" not in got and "regression" not in got

    await eventually(gh_labels, what="Jira's labels on GitHub")
    got = set((await gh.adapter.get_issue(gh_key)).labels)
    assert got == {"customer", "vip", "good first issue", "status: To Do", "priority: Low", "type: Task"}
    await quiet(gh_pair, key, gh_key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []


def bodies(issue: object) -> list[str]:
    return [plain_text(c.body) for c in issue.comments]  # type: ignore[attr-defined]


async def test_comments_add_edit_delete_both_ways_internal_never_on_github(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    # Jira's outgoing rules send internal comments (still flagged): GitHub must not post them
    await jira.publish("outgoing", "comments: {internal: internal}")
    key, gh_key = await linked(gh_pair, "Search returns nothing")
    public = await jira.human.add_comment(key, from_plain_text("customer: search is empty"))
    await jira.human.add_comment(key, from_plain_text("agent note: VIP customer"), internal=True)
    await jira.engine.local_change(key)

    async def arrived() -> list[str]:
        return [b for b in bodies(await gh.adapter.get_issue(gh_key)) if "search is empty" in b]

    (text,) = await eventually(arrived, what="the Jira comment on GitHub")
    assert "Jane Agent" in text  # the header names the Jira author
    issue = await gh.adapter.get_issue(gh_key)
    assert len(issue.comments) == 1 and not any("VIP" in b for b in bodies(issue))
    view = (await jira.engine.status(key))[0]
    assert view.last_result is not None and view.last_result.startswith("applied")
    assert "internal" in view.last_result  # the warning names what was skipped
    await quiet(gh_pair, key, gh_key)

    # edit and delete on Jira
    await jira.human.update_comment(key, public.id, from_plain_text("customer: search is empty on mobile"))
    await jira.engine.local_change(key)

    async def edited() -> bool:
        return any("on mobile" in b for b in bodies(await gh.adapter.get_issue(gh_key)))

    await eventually(edited, what="the edit on GitHub")
    await quiet(gh_pair, key, gh_key)

    # GitHub → Jira: add, edit, delete
    mine = await gh.human.add_comment(gh_key, from_plain_text("maintainer: reproduced with `v2.1`"))
    await gh.engine.local_change(gh_key)

    async def on_jira() -> bool:
        return any("reproduced" in b for b in bodies(await jira.adapter.get_issue(key)))

    await eventually(on_jira, what="the GitHub comment on Jira")
    issue = await jira.adapter.get_issue(key)
    assert next(b for b in bodies(issue) if "reproduced" in b).startswith("jane (via OpenSource)")
    await quiet(gh_pair, key, gh_key)
    await gh.human.update_comment(gh_key, mine.id, from_plain_text("maintainer: reproduced with v2.2 too"))
    await gh.engine.local_change(gh_key)

    async def edited_on_jira() -> bool:
        return any("v2.2 too" in b for b in bodies(await jira.adapter.get_issue(key)))

    await eventually(edited_on_jira, what="the GitHub edit on Jira")
    await quiet(gh_pair, key, gh_key)
    await gh.human.delete_comment(gh_key, mine.id)
    await gh.engine.local_change(gh_key)

    async def gone_on_jira() -> bool:
        return not any("reproduced" in b for b in bodies(await jira.adapter.get_issue(key)))

    await eventually(gone_on_jira, what="the deletion on Jira")
    await quiet(gh_pair, key, gh_key)
    await jira.human.delete_comment(key, public.id)
    await jira.engine.local_change(key)

    async def gone_on_github() -> bool:
        return not any("search is empty" in b for b in bodies(await gh.adapter.get_issue(gh_key)))

    await eventually(gone_on_github, what="the deletion on GitHub")
    await quiet(gh_pair, key, gh_key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []


async def status_of(side_adapter: object, key: str) -> tuple[str, str]:
    issue = await side_adapter.get_issue(key)  # type: ignore[attr-defined]
    assert issue.status is not None
    return issue.status.name, issue.status.category


async def test_close_and_reopen_both_ways(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    key, gh_key = await linked(gh_pair, "Crash on export")
    # GitHub close → Jira walks to a done status; the status reached is reported back as a label
    close = next(t for t in await gh.human.transitions(gh_key) if t.id == "close")
    await gh.human.transition(gh_key, close.id)
    await gh.engine.local_change(gh_key)

    async def jira_done() -> bool:
        return (await status_of(jira.adapter, key))[1] == "done"

    await eventually(jira_done, what="Jira to reach a done status")
    assert (await status_of(jira.adapter, key))[0] == "Done"
    await gh_pair.settle()
    await jira.engine.local_change(key)  # the webhook of the node's own transition

    async def label() -> bool:
        return "status: Done" in (await gh.adapter.get_issue(gh_key)).labels

    await eventually(label, what="the status label to follow")
    assert "status: To Do" not in (await gh.adapter.get_issue(gh_key)).labels
    await quiet(gh_pair, key, gh_key)

    # GitHub reopen → Jira back to the new category
    reopen = next(t for t in await gh.human.transitions(gh_key) if t.id == "reopen")
    await gh.human.transition(gh_key, reopen.id)
    await gh.engine.local_change(gh_key)

    async def jira_open() -> bool:
        return (await status_of(jira.adapter, key))[1] == "new"

    await eventually(jira_open, what="Jira to reopen")
    await gh_pair.settle()
    await jira.engine.local_change(key)
    await quiet(gh_pair, key, gh_key)

    # Jira In Progress → GitHub stays open, relabelled; Jira Done → GitHub closed as completed
    for name in ("In Progress", "Done"):
        t = next(t for t in await jira.human.transitions(key) if t.to.name == name)
        await jira.human.transition(key, t.id)
        await jira.engine.local_change(key)

        async def relabelled(name: str = name) -> bool:
            return f"status: {name}" in (await gh.adapter.get_issue(gh_key)).labels

        await eventually(relabelled, what=f"the label for {name}")
        await quiet(gh_pair, key, gh_key)
    issue = await gh.adapter.get_issue(gh_key)
    assert issue.status is not None and issue.status.name == "closed"
    assert issue.custom_fields["state_reason"] == "completed"

    # Jira reopens, then closes as Won't Do → GitHub reopens, then closes as not planned
    todo = next(t for t in await jira.human.transitions(key) if t.to.name == "To Do")
    await jira.human.transition(key, todo.id)
    await jira.engine.local_change(key)

    async def gh_open() -> bool:
        return (await status_of(gh.adapter, gh_key))[0] == "open"

    await eventually(gh_open, what="GitHub to reopen")
    await quiet(gh_pair, key, gh_key)
    wont = next(t for t in await jira.human.transitions(key) if t.to.name == "Won't Do")
    await jira.human.transition(key, wont.id)
    await jira.engine.local_change(key)

    async def not_planned() -> bool:
        issue = await gh.adapter.get_issue(gh_key)
        return issue.custom_fields.get("state_reason") == "not_planned"

    await eventually(not_planned, what="GitHub to close as not planned")
    assert "status: Won't Do" in (await gh.adapter.get_issue(gh_key)).labels
    await quiet(gh_pair, key, gh_key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []


async def test_github_issue_escalated_by_trigger_with_users_by_login_table(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    jane_account = gh_pair.jira_account("jane.agent")
    both = "fields: {assignee: true}\n"
    await gh.publish("outgoing", both)
    await jira.publish("outgoing", both)
    # GitHub login ↔ Jira account id, one table per receiving side; unmatched people follow a policy
    await jira.publish("incoming", both + f"users: {{table: {{jane: {{account_id: {jane_account}}}}}}}\n")
    await gh.publish(
        "incoming", both + f"users: {{table: {{{jane_account}: jane}}, unmatched: {{default: triage-bot}}}}\n"
    )
    await gh.engine.add_trigger(gh.connection, "labels = escalate", note="escalations go to Jira")
    plain = await gh.create("Not escalated")
    await gh.engine.local_change(plain)
    gh_key = await gh.create(
        "Memory leak in worker",
        description=from_plain_text("RSS grows by 1 MB per request."),
        labels=["escalate", "priority: Highest", "type: Bug"],
        assignee=UserRef(username="jane"),
    )
    await gh.engine.local_change(gh_key)
    key = await gh_pair.twin_of(gh, gh_key)
    issue = await jira.adapter.get_issue(key)
    assert issue.summary == "Memory leak in worker"
    assert "RSS grows by 1 MB per request." in plain_text(issue.description)
    assert (issue.labels, issue.priority, issue.issue_type) == (["escalate"], "Highest", "Bug")
    assert issue.assignee is not None and issue.assignee.account_id == jane_account
    assert issue.status is not None and issue.status.category == "new"
    assert await gh.engine.status(plain) == [] or (await gh.engine.status(plain))[0].remote_key is None
    # Jira reports the status it chose back (a GitHub issue only says "open")
    await gh_pair.settle()
    await jira.engine.local_change(key)

    async def reported() -> bool:
        return "status: To Do" in (await gh.adapter.get_issue(gh_key)).labels

    await eventually(reported, what="Jira's status as a GitHub label")
    await quiet(gh_pair, key, gh_key)

    # Jira assigns someone GitHub does not know: the unmatched rule picks the default login
    await jira.human.update_issue(
        key, IssueUpdate(assignee=UserRef(account_id=gh_pair.jira_account("sam.shared")))
    )
    await jira.engine.local_change(key)

    async def assignee_login() -> str | None:
        a = (await gh.adapter.get_issue(gh_key)).assignee
        return a.username if a else None

    async def triage() -> bool:
        return await assignee_login() == "triage-bot"

    await eventually(triage, what="the default GitHub assignee")
    await quiet(gh_pair, key, gh_key)
    await jira.human.update_issue(key, IssueUpdate(assignee=UserRef(account_id=jane_account)))
    await jira.engine.local_change(key)

    async def jane() -> bool:
        return await assignee_login() == "jane"

    await eventually(jane, what="jane by the login table")
    await quiet(gh_pair, key, gh_key)
    # GitHub unassigns: Jira is unassigned too (cleared by the peer, not by an unmatched person)
    await gh.human.update_issue(gh_key, IssueUpdate(assignee=None))
    await gh.engine.local_change(gh_key)

    async def unassigned() -> bool:
        return (await jira.adapter.get_issue(key)).assignee is None

    await eventually(unassigned, what="Jira to be unassigned")
    await quiet(gh_pair, key, gh_key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []


async def test_jira_attachments_become_link_comments_on_github(gh_pair: Pair) -> None:
    jira, gh = gh_pair.jira, gh_pair.github
    key, gh_key = await linked(gh_pair, "Export produces empty CSV")
    content = b"line 1\nline 2\n" * 100
    att = await jira.human.add_attachment(key, "export.csv", content, mime_type="text/csv")
    await jira.engine.local_change(key)

    async def link() -> list[str]:
        return [b for b in bodies(await gh.adapter.get_issue(gh_key)) if "export.csv" in b]

    (text,) = await eventually(link, what="the attachment link on GitHub")
    assert "1.4 KB" in text and "text/csv" in text
    comment = next(
        c for c in (await gh.adapter.get_issue(gh_key)).comments if "export.csv" in plain_text(c.body)
    )
    hrefs = [
        m["attrs"]["href"]
        for block in comment.body["content"]
        for inline in block.get("content", [])
        for m in inline.get("marks", [])
        if m["type"] == "link"
    ]
    assert att.url and hrefs == [att.url]  # a link to the Jira copy
    view = (await jira.engine.status(key))[0]
    assert view.last_result == "applied"
    await quiet(gh_pair, key, gh_key)
    for side in (jira, gh):
        assert await side.engine.errors(include_resolved=True) == []
