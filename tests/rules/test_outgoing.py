"""Outgoing rules: what leaves the node, Basic and Visual."""

from __future__ import annotations

from typing import Any

import pytest

from node.rules import CompiledRules, OutgoingContext, RuleError, RuleSet, compile_rules
from protocol.replica import Comment
from protocol.richtext import from_plain_text

from .conftest import AGENT, at, support_issue


def basic_out() -> CompiledRules:
    return compile_rules(RuleSet(mode="basic", direction="outgoing"))


def visual_out(source: str) -> CompiledRules:
    return compile_rules(RuleSet(mode="visual", direction="outgoing", source=source))


def test_basic_shares_default_fields_and_only_public_comments() -> None:
    rules = compile_rules(RuleSet(mode="basic", direction="outgoing"))
    replica = rules.outgoing(support_issue())
    assert replica is not None
    assert replica.entity.key == "SUP-42"
    assert replica.summary == "Checkout fails with HTTP 500 for EU customers"
    assert replica.status is not None and (replica.status.name, replica.status.category) == (
        "Accept",
        "indeterminate",
    )
    assert replica.priority == "High" and replica.issue_type == "Support Request"
    assert replica.labels == ["escalated", "cust-acme", "triage-l2"]
    assert replica.components == ["Payments"] and str(replica.due_date) == "2024-05-10"
    assert [c.id for c in replica.comments] == ["100", "102"]
    assert all(not c.internal for c in replica.comments)
    # Not in Basic: people and custom fields.
    assert replica.assignee is None and replica.reporter is None and replica.custom_fields == {}
    assert [a.id for a in replica.attachments] == ["900", "901"]


def test_internal_comments_never_leave_with_visual_defaults_either() -> None:
    rules = visual_out("fields: {reporter: true}\n")
    replica = rules.outgoing(support_issue())
    assert replica is not None
    assert "101" not in {c.id for c in replica.comments}
    assert "Internal" not in str(replica.model_dump())


def test_internal_comments_leave_only_when_rules_say_so() -> None:
    shared = visual_out("comments: {internal: internal}\n").outgoing(support_issue())
    assert shared is not None
    flagged = {c.id: c.internal for c in shared.comments}
    assert flagged == {"100": False, "101": True, "102": False}
    public = visual_out("comments: {internal: public}\n").outgoing(support_issue())
    assert public is not None and all(not c.internal for c in public.comments)


def test_comments_received_from_the_peer_are_not_echoed_back() -> None:
    issue = support_issue(
        comments=[
            *support_issue().comments,
            Comment(
                id="103", author=AGENT, body=from_plain_text("Lee Dev (via Eng) wrote: fixed"), created=at(30)
            ),
            Comment(id="104", author=AGENT, body=from_plain_text("copy via marker"), created=at(31)),
        ],
        comment_markers={"104": "tandem:conn-eng:c-77"},
    )
    ctx = OutgoingContext(
        connection="conn-eng", received_comment_ids={"103"}, received_attachment_ids={"900"}
    )
    replica = compile_rules(RuleSet(mode="basic", direction="outgoing")).outgoing(issue, ctx)
    assert replica is not None
    assert [c.id for c in replica.comments] == ["100", "102"]
    assert [a.id for a in replica.attachments] == ["901"]


def test_field_changed_at_comes_from_the_changelog_with_created_as_fallback() -> None:
    replica = compile_rules(RuleSet(mode="basic", direction="outgoing")).outgoing(support_issue())
    assert replica is not None
    fca = replica.field_changed_at
    assert fca["status"] == at(3)
    assert fca["summary"] == at(4)
    assert fca["labels"] == at(9)  # the latest of two changes
    assert fca["priority"] == at(0)  # never changed: created


def test_visual_mapping_renames_disables_and_filters_fields(example: Any) -> None:
    rules = visual_out(example("support_outgoing"))
    replica = rules.outgoing(support_issue())
    assert replica is not None
    assert replica.custom_fields == {"customer": "ACME Corp", "customer_impact": "All EU orders blocked"}
    assert replica.labels == ["escalated", "cust-acme"]  # triage-l2 stays home
    assert replica.reporter is not None and replica.reporter.email == "jane.doe@customer.example"
    assert replica.field_changed_at["custom_fields.customer"] == at(0)
    # The 80 MB dump is over the 20MB limit: not sent, with a warning.
    result = rules.outgoing_result(support_issue())
    assert result.replica is not None and [a.id for a in result.replica.attachments] == ["900"]
    assert any("dump.bin" in w for w in result.warnings)


def test_visual_only_if_and_skip_if_filter_issues_out(example: Any) -> None:
    rules = visual_out(example("support_outgoing"))
    not_escalated = rules.outgoing_result(support_issue(labels=["cust-acme"]))
    assert not_escalated.replica is None and "only_if[0]" in (not_escalated.skipped or "")
    personal = support_issue(custom_fields={**support_issue().custom_fields, "customfield_10012": "yes"})
    result = rules.outgoing_result(personal)
    assert result.replica is None and "skip_if[0]" in (result.skipped or "")


def test_outgoing_value_map_and_defaults_none() -> None:
    rules = visual_out(
        """
defaults: none
fields: {status: true, priority: true}
values:
  status: {map: {Accept: Accepted}}
  priority: {map: {High: P1}, unmatched: error}
"""
    )
    replica = rules.outgoing(support_issue())
    assert replica is not None
    assert replica.status is not None and (replica.status.name, replica.status.category) == (
        "Accepted",
        "indeterminate",
    )
    assert replica.priority == "P1"
    assert replica.summary is None and replica.labels == [] and replica.description is None
    with pytest.raises(RuleError) as err:
        rules.outgoing(support_issue(priority="Low"))
    assert err.value.path == "values.priority" and "'Low'" in str(err.value)


def test_comments_and_attachments_can_be_switched_off() -> None:
    replica = visual_out("comments: {enabled: false}\nattachments: {enabled: false}\n").outgoing(
        support_issue()
    )
    assert replica is not None and replica.comments == [] and replica.attachments == []


def test_a_custom_field_mapped_onto_a_standard_field_is_checked_at_run_time() -> None:
    rules = visual_out("fields: {customfield_10099: {to: due_date}, due_date: false}\n")
    issue = support_issue(custom_fields={"customfield_10099": "not a date"})
    with pytest.raises(RuleError) as err:
        rules.outgoing(issue)
    assert err.value.path == "fields.customfield_10099"


def test_the_nodes_own_writes_do_not_count_as_changes_in_field_changed_at() -> None:
    from node.trackers.base import ChangeItem
    from protocol.replica import UserRef

    proxy = UserRef(account_id="proxy-1", display_name="Tandem")
    issue = support_issue(
        changelog=[
            ChangeItem(field="summary", to_value="by a person", at=at(4), author=AGENT),
            ChangeItem(field="summary", to_value="copied from the peer", at=at(50), author=proxy),
        ]
    )
    rules = compile_rules(RuleSet(mode="basic", direction="outgoing"))
    with_proxy = rules.outgoing(issue, OutgoingContext(proxy_user=proxy))
    without = rules.outgoing(issue)
    assert with_proxy is not None and without is not None
    assert with_proxy.field_changed_at["summary"] == at(4)
    assert without.field_changed_at["summary"] == at(50)
