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


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    out = {"401": _json({"$ref": "#/components/schemas/Error"}, "missing or wrong admin token")}
    for code in codes:
        out[str(code)] = _json({"$ref": "#/components/schemas/Error"}, "error")
    return out


NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
CONN_REF = {"$ref": "#/components/schemas/Connection"}


@cache
def openapi_document() -> dict[str, Any]:
    from node.web.admin import AcceptBody, InvitationBody, TestBody

    def body(model: Any) -> dict[str, Any]:
        return {"required": False, "content": {"application/json": {"schema": model.model_json_schema()}}}

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
                "requestBody": body(TestBody),
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
                "requestBody": body(InvitationBody),
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
                "requestBody": body(AcceptBody),
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tandem node admin API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Connection": CONNECTION},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
