"""The admin API's OpenAPI 3.1 document. Request bodies come from the same pydantic models the
handlers validate with, so the document cannot drift from what is enforced."""

from __future__ import annotations

from functools import cache
from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
CONNECTION = {
    "type": "object",
    "description": "A connection as this node sees it.",
    "properties": {
        "name": {"type": "string"},
        "id": {"type": "string", "description": "connection id (base32)"},
        "state": {"enum": ["pending", "active", "deactivated", "error", "deleted"]},
        "error": {"type": ["string", "null"]},
        "role": {"enum": ["inviter", "acceptor"]},
        "reach": {"enum": ["public", "private-dials-out", "relay"]},
        "url": {"type": ["string", "null"]},
        "project": {"type": ["string", "null"]},
        "peer": {"type": "object"},
        "link": {"type": "object"},
        "last_contact": {"type": ["string", "null"], "format": "date-time"},
        "queues": {
            "type": "object",
            "properties": {"outbox_unacked": {"type": "integer"}, "inbox_unprocessed": {"type": "integer"}},
        },
        "sequence": {"type": "object"},
        "verification": {"type": ["string", "null"]},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(model: Any, required: bool = True) -> dict[str, Any]:
    """A request body validated by the pydantic ``model``."""
    return {"required": required, "content": {"application/json": {"schema": model.model_json_schema()}}}


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    out = {"401": _json(_ref("Error"), "missing or wrong admin token")}
    for code in codes:
        out[str(code)] = _json(_ref("Error"), "error")
    return out


NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
CONN_REF = _ref("Connection")


@cache
def openapi_document() -> dict[str, Any]:
    from node.web.admin import AcceptBody, InvitationBody, TestBody

    paths: dict[str, Any] = {
        "/api/v1/node": {
            "get": {
                "summary": "This node: name, node id, mode, URLs, version",
                "responses": {"200": _json({"type": "object"}), **_errors()},
            }
        },
        "/api/v1/connections": {
            "get": {
                "summary": "List connections",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"connections": {"type": "array", "items": CONN_REF}},
                        }
                    ),
                    **_errors(),
                },
            }
        },
        "/api/v1/connections/{name}": {
            "parameters": [NAME],
            "get": {"summary": "One connection", "responses": {"200": _json(CONN_REF), **_errors(404)}},
            "delete": {
                "summary": "Delete a connection (sends Bye if the link is up; forgets its keys)",
                "responses": {"200": _json({"type": "object"}), **_errors(404, 409)},
            },
        },
        "/api/v1/connections/{name}/activate": {
            "parameters": [NAME],
            "post": {
                "summary": "Activate a deactivated (or failed) connection",
                "responses": {"200": _json(CONN_REF), **_errors(404, 409)},
            },
        },
        "/api/v1/connections/{name}/deactivate": {
            "parameters": [NAME],
            "post": {
                "summary": "Deactivate: close the link; messages keep queueing",
                "responses": {"200": _json(CONN_REF), **_errors(404, 409)},
            },
        },
        "/api/v1/connections/{name}/test": {
            "parameters": [NAME],
            "post": {
                "summary": "Send probe messages and report round trips and throughput",
                "requestBody": _body(TestBody, required=False),
                "responses": {"200": _json({"type": "object"}), **_errors(400, 404, 409)},
            },
        },
        "/api/v1/connections/{name}/inbox": {
            "parameters": [
                NAME,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
            ],
            "get": {
                "summary": "Delivered messages of a connection, in sequence order",
                "responses": {"200": _json({"type": "object"}), **_errors(400, 404)},
            },
        },
        "/api/v1/invitations": {
            "post": {
                "summary": "Create an invitation code",
                "requestBody": _body(InvitationBody, required=False),
                "responses": {
                    "201": _json(
                        {"type": "object", "properties": {"code": {"type": "string"}, "connection": CONN_REF}}
                    ),
                    **_errors(400, 409),
                },
            }
        },
        "/api/v1/invitations/accept": {
            "post": {
                "summary": "Accept an invitation code",
                "requestBody": _body(AcceptBody, required=False),
                "responses": {
                    "201": _json({"type": "object"}, "paired"),
                    "202": _json({"type": "object"}, "accepted; waiting for the inviter"),
                    **_errors(400, 409, 504),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"}), **_errors()}}
        },
        "/healthz": {
            "get": {
                "summary": "Health (no token needed): ok or degraded, with per-connection link state",
                "security": [],
                "responses": {"200": _json({"type": "object"})},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (no token needed)",
                "security": [],
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    }
    sync, sync_schemas = sync_paths()
    paths.update(sync)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tandem node admin API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Connection": CONNECTION, **sync_schemas},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


# -- the sync surface (node/web/sync_api.py) --------------------------------------------------------

RULE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"const": "rule_error"},
                "message": {"type": "string", "description": "names the script line or the rule path"},
                "line": {"type": ["integer", "null"]},
                "path": {"type": ["string", "null"]},
            },
        }
    },
}


def sync_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """Paths and component schemas of the sync routes; 409 ``no_tracker`` on every one of them."""
    from pydantic import BaseModel

    from node.sync import service as s
    from node.web import sync_api as api

    def listing(key: str, name: str) -> dict[str, Any]:
        return {"type": "object", "properties": {key: {"type": "array", "items": _ref(name)}}}

    def op(
        summary: str, ok: dict[str, Any], *codes: int, status: int = 200, rules: bool = False, **extra: Any
    ) -> dict[str, Any]:
        responses = {str(status): ok, **_errors(409, *codes)}
        if rules:
            responses["422"] = _json(_ref("RuleError"), "the rules do not compile or the test run failed")
        return {"summary": summary, "responses": responses, **extra}

    views: dict[str, type[BaseModel]] = {
        "Trigger": s.TriggerView,
        "SyncOutcome": s.SyncOutcome,
        "BulkJob": s.BulkJobView,
        "Twin": s.TwinView,
        "SyncErrorItem": s.ErrorView,
        "Conflict": s.ConflictView,
        "RuleVersion": s.RuleVersionView,
        "TestRun": s.TestRunView,
    }
    schemas: dict[str, Any] = {n: m.model_json_schema(mode="serialization") for n, m in views.items()}
    schemas["RuleError"] = RULE_ERROR
    int_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    direction = {
        "name": "direction",
        "in": "path",
        "required": True,
        "schema": {"enum": ["outgoing", "incoming"]},
    }
    rules_params = [NAME, direction]
    connection_q = {"name": "connection", "in": "query", "schema": {"type": "string"}}
    rule_set = {
        "type": "object",
        "properties": {
            "connection": {"type": "string"},
            "direction": {"enum": ["outgoing", "incoming"]},
            "published": {"anyOf": [_ref("RuleVersion"), {"type": "null"}]},
            "draft": {"anyOf": [_ref("RuleVersion"), {"type": "null"}]},
            "versions": {"type": "array", "items": _ref("RuleVersion")},
        },
    }
    paths: dict[str, Any] = {
        "/api/v1/triggers": {
            "get": op(
                "Triggers (JQL per connection), optionally of one connection",
                _json(listing("triggers", "Trigger")),
                400,
                parameters=[connection_q],
            ),
            "post": op(
                "Add a trigger",
                _json(_ref("Trigger")),
                400,
                404,
                status=201,
                requestBody=_body(api.TriggerBody),
            ),
        },
        "/api/v1/triggers/{id}": {
            "parameters": [int_id],
            "patch": op(
                "Enable or disable a trigger",
                _json(_ref("Trigger")),
                400,
                404,
                requestBody=_body(api.TriggerPatch),
            ),
            "delete": op("Remove a trigger", _json({"type": "object"}), 400, 404),
        },
        "/api/v1/sync": {
            "post": op(
                "Sync one local issue over a connection now",
                _json(_ref("SyncOutcome")),
                400,
                404,
                rules=True,
                requestBody=_body(api.SyncBody),
            )
        },
        "/api/v1/bulk": {
            "get": op("Bulk jobs, newest first", _json(listing("jobs", "BulkJob"))),
            "post": op(
                "Start a bulk job: sync every issue matching a JQL query (resumes after a restart)",
                _json(_ref("BulkJob")),
                400,
                404,
                status=202,
                requestBody=_body(api.BulkBody),
            ),
        },
        "/api/v1/bulk/{id}": {
            "parameters": [int_id],
            "get": op("One bulk job and its progress", _json(_ref("BulkJob")), 400, 404),
        },
        "/api/v1/unlink": {
            "post": op(
                "Stop syncing one issue over a connection (both issues stay)",
                _json(_ref("Twin")),
                400,
                404,
                requestBody=_body(api.SyncBody),
            )
        },
        "/api/v1/status/{key}": {
            "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": op(
                "Per connection: the twin on the other side, last sent/received, last result, replicas",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "key": {"type": "string"},
                            "twins": {"type": "array", "items": _ref("Twin")},
                        },
                    }
                ),
                400,
                404,
            ),
        },
        "/api/v1/connections/{name}/rules/{direction}": {
            "parameters": rules_params,
            "get": op("The rule set: published, draft and every version", _json(rule_set), 400, 404),
        },
        "/api/v1/connections/{name}/rules/{direction}/draft": {
            "parameters": rules_params,
            "put": op(
                "Save the draft (compiled first)",
                _json(_ref("RuleVersion")),
                400,
                404,
                rules=True,
                requestBody=_body(api.DraftBody),
            ),
        },
        "/api/v1/connections/{name}/rules/{direction}/test": {
            "parameters": rules_params,
            "post": op(
                "Test-run the draft (or the published rules): the replica or change set; nothing is applied",
                _json(_ref("TestRun")),
                400,
                404,
                rules=True,
                requestBody=_body(api.RulesTestBody, required=False),
            ),
        },
        "/api/v1/connections/{name}/rules/{direction}/publish": {
            "parameters": rules_params,
            "post": op("Publish the draft", _json(_ref("RuleVersion")), 400, 404, rules=True),
        },
        "/api/v1/connections/{name}/rules/{direction}/rollback": {
            "parameters": rules_params,
            "post": op("Publish the previous published version again", _json(_ref("RuleVersion")), 400, 404),
        },
        "/api/v1/errors": {
            "get": op(
                "Sync errors (open and retrying; all=true adds resolved ones)",
                _json(listing("errors", "SyncErrorItem")),
                400,
                parameters=[{"name": "all", "in": "query", "schema": {"type": "boolean"}}],
            )
        },
        "/api/v1/errors/{id}/retry": {
            "parameters": [int_id],
            "post": op("Retry what an error paused", _json(_ref("SyncErrorItem")), 400, 404),
        },
        "/api/v1/errors/{id}/resolve": {
            "parameters": [int_id],
            "post": op("Mark an error resolved (un-pauses it)", _json(_ref("SyncErrorItem")), 400, 404),
        },
        "/api/v1/conflicts": {
            "get": op(
                "Same-field conflicts and which side won, optionally of one connection",
                _json(listing("conflicts", "Conflict")),
                400,
                parameters=[connection_q],
            )
        },
    }
    return paths, schemas
