"""The public surface the emulator and the sync triggers code against, and /jql/parse output
checked against the Jira Cloud swagger's ParsedJqlQuery schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import node.jql as jql
from node.jql import EvalContext, JqlError, JqlSchema, Query, compile_query, encode, parse, parse_for_api

from .helpers import ctx, issue


def test_public_names() -> None:
    for name in ("compile_query", "parse", "JqlError", "EvalContext", "Query", "JqlSchema", "parse_for_api"):
        assert name in jql.__all__
    q = compile_query("project = ABC")
    assert isinstance(q, Query)
    assert compile_query("project = ABC") is q  # compiled once, cached
    assert q.matches(issue(project="ABC"), EvalContext(now=ctx().now))
    err = JqlError("m", 2, 3)
    assert (str(err), err.line, err.column) == ("m", 2, 3)


def _swagger_schema(vendor_data: Path, name: str) -> dict[str, Any]:
    doc = json.loads((vendor_data / "dev/jira-cloud/platform-swagger-v3.json").read_text())
    schemas = copy.deepcopy(doc["components"]["schemas"])
    for s in schemas.values():
        # OpenAPI "additionalProperties: false" next to anyOf means "no other members than the
        # alternatives'"; JSON Schema would forbid every member. Keep the alternatives' checks.
        if "anyOf" in s:
            s.pop("additionalProperties", None)
    return {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}


def test_parse_for_api_reproduces_the_swagger_example(vendor_data: Path) -> None:
    doc = json.loads((vendor_data / "dev/jira-cloud/platform-swagger-v3.json").read_text())
    post = doc["paths"]["/rest/api/3/jql/parse"]["post"]
    queries = post["requestBody"]["content"]["application/json"]["example"]["queries"]
    example = json.loads(post["responses"]["200"]["content"]["application/json"]["example"])
    schema = JqlSchema(values={"project": ["ABC"]}, custom_fields={"lastCommentedBy": "customfield_1"})
    ours = {"queries": [parse_for_api(q, schema) for q in queries]}
    jsonschema.validate(ours, _swagger_schema(vendor_data, "ParsedJqlQueries"))
    by_query = {r["query"]: r for r in ours["queries"]}
    for theirs in example["queries"]:
        mine = by_query.get(theirs["query"])
        if mine is None:  # the example's first query differs from the request's (-5d vs startOfMonth)
            continue
        if "errors" in theirs:
            assert mine["errors"] == theirs["errors"]
        if "warnings" in theirs:
            assert mine["warnings"] == theirs["warnings"]
    spaces = by_query['issue.property["spaces here"].value in ("Service requests", Incidents)']
    assert (
        spaces["structure"]
        == next(q for q in example["queries"] if q["query"] == spaces["query"])["structure"]
    )
    first = by_query[queries[0]]["structure"]
    assert first["orderBy"] == {
        "fields": [{"direction": "desc", "field": {"encodedName": "updated", "name": "updated"}}]
    }
    changed = first["where"]["clauses"][2]
    assert changed == {
        "field": {"encodedName": "status", "name": "status"},
        "operator": "changed",
        "predicates": [
            {
                "operand": {
                    "arguments": ["-1M"],
                    "encodedOperand": "startOfMonth(-1M)",
                    "function": "startOfMonth",
                },
                "operator": "after",
            }
        ],
    }


@pytest.mark.parametrize(
    "query",
    [
        "project = ABC AND (status was in (Open, EMPTY) after -1d OR NOT labels is empty) ORDER BY created",
        "assignee changed by membersOf('a b') during ('2024-01-01', now())",
        'summary ~ "\\"exact\\"" and cf[10010] > 3 and "Story Points" in (1, 2)',
        "order by key desc",
        "",
    ],
)
def test_structures_validate_against_the_swagger(vendor_data: Path, query: str) -> None:
    out = parse_for_api(query)
    assert "errors" not in out
    jsonschema.validate(out, _swagger_schema(vendor_data, "ParsedJqlQuery"))


def test_parse_for_api_modes() -> None:
    schema = JqlSchema(values={"status": ["Open"]})
    assert "structure" not in parse_for_api("status = Nope", schema)
    assert parse_for_api("status = Nope", schema)["warnings"] == [
        "The value 'Nope' does not exist for the field 'status'."
    ]
    assert "structure" in parse_for_api("status = Nope", schema, "warn")
    none = parse_for_api("summary = x", schema, "none")
    assert "errors" not in none and "structure" in none
    assert parse_for_api("summary = x", schema, "warn")["errors"] == [
        "The operator '=' is not supported by the 'summary' field."
    ]
    assert parse_for_api("a = (", schema, "none")["errors"][0].startswith(
        "Error in JQL Query: Expecting either"
    )


@pytest.mark.parametrize(
    "value",
    [
        "simple",
        "two words",
        "AND",
        "select",
        "a=b",
        'quo"te',
        "back\\slash",
        "",
        "tab\there",
        "naïve",
        "-5d",
        "x.y",
    ],
)
def test_encode_round_trips_through_the_parser(value: str) -> None:
    ast = parse(f"summary ~ {encode(value)}")
    assert ast.where is not None
    assert ast.where.operand.text == value  # type: ignore[union-attr]


def test_structure_of_not_and_was() -> None:
    s = compile_query("not status was Open by bob").structure()
    assert s == {
        "where": {
            "operator": "not",
            "clauses": [
                {
                    "field": {"name": "status", "encodedName": "status"},
                    "operator": "was",
                    "operand": {"value": "Open", "encodedValue": "Open"},
                    "predicates": [{"operator": "by", "operand": {"value": "bob", "encodedValue": "bob"}}],
                }
            ],
        }
    }


@pytest.mark.parametrize("bad", [None, 42, ["a"], {"q": 1}, b"project = A"])
def test_non_string_input_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(JqlError, match="must be a string"):
        parse(bad)
    with pytest.raises(JqlError, match="must be a string"):
        compile_query(bad)
    assert parse_for_api(bad)["errors"] == ["Error in the JQL Query: The JQL query must be a string."]
