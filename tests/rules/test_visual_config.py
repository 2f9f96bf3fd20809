"""Visual documents: validation errors name the path (or the YAML line)."""

from __future__ import annotations

from typing import Any

import pytest

from node.rules import RuleError, RuleSet, compile_rules, load_visual


def error_of(source: str, direction: str = "incoming") -> RuleError:
    with pytest.raises(RuleError) as err:
        compile_rules(RuleSet(mode="visual", direction=direction, source=source))
    return err.value


@pytest.mark.parametrize(
    ("source", "path", "words"),
    [
        ("fields: {summary: {to: summary, colour: red}}\n", "fields.summary.colour", "Extra inputs"),
        ("values:\n  status: {map: {Open: To Do}, unmatched: maybe}\n", "values.status.unmatched", "'maybe'"),
        ("fields: {status: {to: labels}}\n", "fields.status.to", "same kind"),
        ("fields: {labels: {include: '[unclosed'}}\n", "fields.labels.include", "regular expression"),
        ("values: {assignee: {map: {a: b}}}\n", "values.assignee", "not a synced field"),
        ("skip_if:\n  - {field: labels}\n", "skip_if[0]", "exactly one operator"),
        ("skip_if:\n  - {field: labels, equals: a, contains: b}\n", "skip_if[0]", "exactly one operator"),
        ("comments: {header: 'By {who}'}\n", "comments.header", "{who}"),
        ("attachments: {max_size: lots}\n", "attachments.max_size", "byte string"),
        ("conflict_policy: newest\n", "conflict_policy", "later_wins"),
        ("fields: {comments: true}\n", "fields", "own section"),
        (
            "fields: {summary: false, a: {to: summary}, b: {to: summary}}\n",
            "fields.b.to",
            "already the target",
        ),
        ("users: {match: []}\n", "users.match", "at least 1"),
        ("fields: {reporter: {when: create}}\n", "fields.reporter.when", None),
    ],
)
def test_errors_name_the_path(source: str, path: str, words: str | None) -> None:
    err = error_of(source, "outgoing" if "when: create" in source else "incoming")
    assert err.path == path, str(err)
    assert str(err).startswith(path + ": ")
    if words:
        assert words in str(err)


def test_yaml_syntax_errors_name_the_line() -> None:
    err = error_of("fields:\n  summary: true\n  description: [unclosed\nvalues: {}\n")
    assert err.line is not None and err.line >= 3 and str(err).startswith(f"line {err.line}: invalid YAML")


def test_json_is_accepted_and_its_errors_name_the_line() -> None:
    rules = load_visual('{"fields": {"summary": false}, "comments": {"internal": "skip"}}')
    assert rules.fields["summary"].enabled is False
    err = error_of('{"fields": {\n "summary": false,\n}}')
    assert err.line == 3 and "invalid JSON" in str(err)


def test_yaml_booleans_as_keys_get_a_hint() -> None:
    err = error_of("fields:\n  reporter: {on: create}\n")
    assert err.path == "fields.reporter" and "quote it" in str(err)


def test_yaml_aliases_are_refused_so_documents_cannot_explode() -> None:
    bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    err = error_of(bomb)
    assert "aliases" in str(err) and err.line == 2


@pytest.mark.parametrize("source", ["- just\n- a list\n", "42\n", "just text"])
def test_a_document_must_be_a_mapping(source: str) -> None:
    assert "must be a mapping" in str(error_of(source))


def test_empty_document_is_basic() -> None:
    assert load_visual("") == load_visual("{}") == load_visual("# nothing\n")


def test_several_problems_are_all_mentioned() -> None:
    err = error_of("fields: {summary: {colour: red}}\ncomments: {internal: sometimes}\n")
    assert "and 1 more" in str(err) and "comments.internal" in str(err)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("support_outgoing", "outgoing"),
        ("support_incoming", "incoming"),
        ("engineering_outgoing", "outgoing"),
        ("engineering_incoming", "incoming"),
    ],
)
def test_worked_examples_compile(example: Any, name: str, direction: str) -> None:
    compiled = compile_rules(RuleSet(mode="visual", direction=direction, source=example(name)))
    assert compiled.plans


def test_examples_are_the_ones_in_the_docs(example: Any) -> None:
    from .conftest import EXAMPLES

    docs = (EXAMPLES.parents[2] / "docs" / "rules.md").read_text()
    for name in ("support_outgoing", "support_incoming", "engineering_outgoing", "engineering_incoming"):
        assert example(name).strip() in docs, f"docs/rules.md does not show node/rules/examples/{name}.yaml"
