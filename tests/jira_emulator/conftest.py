"""Fixtures for the Jira emulator suite: running emulators, an HTTP client, the Cloud OpenAPI spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from node.trackers.jira.emulator import JiraEmulator


def basic(user: str = "admin", password: str = "admin") -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


class Client:
    """A tiny JSON client bound to one emulator and one user."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, user: str = "admin", password: str = "admin"
    ):
        self.session = session
        self.base = base
        self.headers = basic(user, password)

    def as_user(self, user: str, password: str) -> Client:
        return Client(self.session, self.base, user, password)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, json=body, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)


@pytest.fixture
async def cloud() -> AsyncIterator[JiraEmulator]:
    emu = JiraEmulator(mode="cloud")
    await emu.start()
    emu.state.add_project("PROJ", "Project", components=["Core", "UI"], versions=["1.0", "2.0"])
    yield emu
    await emu.stop()


@pytest.fixture
async def server() -> AsyncIterator[JiraEmulator]:
    emu = JiraEmulator(mode="server")
    await emu.start()
    emu.state.add_project("PROJ", "Project", components=["Core"], versions=["1.0"])
    yield emu
    await emu.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def cc(cloud: JiraEmulator, session: aiohttp.ClientSession) -> Client:
    assert cloud.base_url
    return Client(session, cloud.base_url)


@pytest.fixture
def sc(server: JiraEmulator, session: aiohttp.ClientSession) -> Client:
    assert server.base_url
    return Client(session, server.base_url)


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


async def make_issue(client: Client, summary: str = "First", api: int = 2, **fields: Any) -> str:
    body = {
        "fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": summary, **fields}
    }
    status, created = await client.post(f"/rest/api/{api}/issue", body)
    assert status == 201, created
    return str(created["key"])


# ------------------------------------------------------------------ OpenAPI validation

Validate = Callable[[str, str, int, Any], None]


@pytest.fixture(scope="session")
def cloud_spec(vendor_data: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((vendor_data / "dev/jira-cloud/platform-swagger-v3.json").read_text())
    # Known defect of the published spec: JqlQueryClause is "anyOf" its clause kinds but also declares
    # additionalProperties: false with no properties, which rejects every clause real Jira returns.
    spec["components"]["schemas"]["JqlQueryClause"].pop("additionalProperties", None)
    return spec


@pytest.fixture(scope="session")
def validate_response(cloud_spec: dict[str, Any]) -> Validate:
    """``validate(spec_path, method, status, body)`` against the response schema, refs resolved."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:jira-cloud", Resource.from_contents(cloud_spec, default_specification=DRAFT4)
    )

    def validate(path: str, method: str, status: int, body: Any) -> None:
        op = cloud_spec["paths"][path][method.lower()]
        content = op["responses"][str(status)].get("content", {})
        assert "application/json" in content, f"spec has no JSON body for {method} {path} {status}"
        pointer = path.replace("~", "~0").replace("/", "~1")
        where = f"{pointer}/{method.lower()}/responses/{status}/content/application~1json/schema"
        schema = {"$ref": f"urn:jira-cloud#/paths/{where}"}
        errors = sorted(OAS30Validator(schema, registry=registry).iter_errors(body), key=str)
        assert not errors, f"{method} {path}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]
        )

    return validate
