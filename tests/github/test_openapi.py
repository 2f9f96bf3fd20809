"""Every endpoint the emulator implements answers with bodies that validate against GitHub's OpenAPI
description (vendor-data), and every webhook it delivers validates against the description's
``x-webhooks`` schema for that event and action."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.helpers.http import serve

from .conftest import HUMAN_TOKEN, Site

URN = "urn:github-openapi"


class Spec:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(URN, resource)
        self.checked: set[tuple[str, str, int]] = set()

    def validate(self, pointer: list[str], instance: Any) -> None:
        ref = URN + "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
        validator = OAS30Validator({"$ref": ref}, registry=self.registry)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])

    def response(self, method: str, template: str, status: int, body: Any) -> None:
        pointer = ["paths", template, method.lower(), "responses", str(status)]
        response = self.spec["paths"][template][method.lower()]["responses"][str(status)]
        if "$ref" in response:  # shared responses: components/responses/not_found, ...
            pointer = response["$ref"].removeprefix("#/").split("/")
            response = self.spec["components"]["responses"][pointer[-1]]
        content = response.get("content")
        if content is None:
            assert body is None or body == "", f"{method} {template} {status} must have no body"
        else:
            self.validate([*pointer, "content", "application/json", "schema"], body)
        self.checked.add((method, template, status))


@pytest.fixture(scope="session")
def spec(github_openapi: dict[str, Any]) -> Spec:
    return Spec(github_openapi)


async def call(
    http: aiohttp.ClientSession,
    spec: Spec,
    method: str,
    template: str,
    status: int,
    *,
    params: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    **path: Any,
) -> Any:
    url = template
    for name, value in path.items():
        url = url.replace("{" + name + "}", quote(str(value), safe=""))
    async with http.request(method, url, params=params, json=body, headers=headers) as resp:
        raw = await resp.read()
        assert resp.status == status, (method, url, resp.status, raw[:500])
        data = json.loads(raw) if raw else None
    spec.response(method, template, status, data)
    return data


R = {"owner": "bot", "repo": "tracker"}


async def test_every_endpoint_matches_the_openapi_description(
    site: Site, http: aiohttp.ClientSession, spec: Spec
) -> None:
    await call(http, spec, "GET", "/user", 200)
    jane = await call(http, spec, "GET", "/users/{username}", 200, username="jane")
    await call(http, spec, "GET", "/user/{account_id}", 200, account_id=jane["id"])
    await call(http, spec, "GET", "/users/{username}", 404, username="nobody-here")
    await call(http, spec, "POST", "/user/repos", 201, body={"name": "second", "description": "d"})
    await call(http, spec, "GET", "/user/repos", 200)
    site.emu.state.add_user("acme", type="Organization")
    await call(http, spec, "POST", "/orgs/{org}/repos", 201, body={"name": "shared"}, org="acme")
    await call(http, spec, "GET", "/repos/{owner}/{repo}", 200, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}", 404, owner="bot", repo="missing")
    await call(http, spec, "GET", "/search/users", 200, params={"q": "jane@example.com in:email"})
    await call(http, spec, "GET", "/rate_limit", 200)

    ms = await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/milestones",
        201,
        body={"title": "v1", "due_on": "2030-01-01T00:00:00Z"},
        **R,
    )
    await call(http, spec, "GET", "/repos/{owner}/{repo}/milestones", 200, **R)
    await call(
        http,
        spec,
        "GET",
        "/repos/{owner}/{repo}/milestones/{milestone_number}",
        200,
        milestone_number=ms["number"],
        **R,
    )
    await call(
        http, spec, "POST", "/repos/{owner}/{repo}/labels", 201, body={"name": "prio", "color": "ff0000"}, **R
    )
    await call(http, spec, "GET", "/repos/{owner}/{repo}/labels", 200, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/labels/{name}", 200, name="prio", **R)

    issue = await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/issues",
        201,
        body={
            "title": "T",
            "body": "B",
            "labels": ["bug", "new-one"],
            "assignees": ["jane"],
            "milestone": ms["number"],
        },
        **R,
    )
    n = {"issue_number": issue["number"], **R}
    await call(http, spec, "POST", "/repos/{owner}/{repo}/issues", 422, body={"body": "no title"}, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues", 200, params={"state": "all"}, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/{issue_number}", 200, **n)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/{issue_number}", 404, issue_number=999, **R)
    await call(
        http,
        spec,
        "PATCH",
        "/repos/{owner}/{repo}/issues/{issue_number}",
        200,
        body={"title": "T2", "state": "closed", "state_reason": "not_planned", "milestone": None},
        **n,
    )
    await call(
        http, spec, "PATCH", "/repos/{owner}/{repo}/issues/{issue_number}", 422, body={"state": "bogus"}, **n
    )
    await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        200,
        body={"labels": ["prio"]},
        **n,
    )
    await call(
        http,
        spec,
        "PUT",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        200,
        body={"labels": ["bug"]},
        **n,
    )
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/{issue_number}/labels", 200, **n)
    await call(
        http,
        spec,
        "DELETE",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
        200,
        name="bug",
        **n,
    )
    await call(http, spec, "DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels", 204, **n)
    await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/assignees",
        201,
        body={"assignees": ["bot"]},
        **n,
    )
    await call(
        http,
        spec,
        "DELETE",
        "/repos/{owner}/{repo}/issues/{issue_number}/assignees",
        200,
        body={"assignees": ["bot"]},
        **n,
    )
    await call(http, spec, "GET", "/repos/{owner}/{repo}/assignees", 200, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/{issue_number}/events", 200, **n)

    comment = await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        201,
        body={"body": "c"},
        **n,
    )
    c = {"comment_id": comment["id"], **R}
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", 200, **n)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/comments", 200, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 200, **c)
    await call(
        http,
        spec,
        "PATCH",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        200,
        body={"body": "c2"},
        **c,
    )
    await call(http, spec, "PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 422, body={}, **c)
    await call(http, spec, "DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 204, **c)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 404, **c)

    hook = await call(
        http,
        spec,
        "POST",
        "/repos/{owner}/{repo}/hooks",
        201,
        body={
            "config": {"url": "http://127.0.0.1:9/x", "content_type": "json", "secret": "s"},
            "events": ["issues"],
        },
        **R,
    )
    await call(http, spec, "GET", "/repos/{owner}/{repo}/hooks", 200, **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/hooks/{hook_id}", 200, hook_id=hook["id"], **R)
    await call(http, spec, "DELETE", "/repos/{owner}/{repo}/hooks/{hook_id}", 204, hook_id=hook["id"], **R)
    await call(http, spec, "GET", "/repos/{owner}/{repo}/hooks/{hook_id}", 404, hook_id=hook["id"], **R)
    await call(http, spec, "DELETE", "/repos/{owner}/{repo}/labels/{name}", 204, name="prio", **R)

    assert len(spec.checked) >= 45


async def test_webhook_payloads_match_the_openapi_description(
    site: Site, http: aiohttp.ClientSession, spec: Spec
) -> None:
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put((request.headers["X-GitHub-Event"], await request.json()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner, base = await serve(app)
    try:
        await call(
            http,
            spec,
            "POST",
            "/repos/{owner}/{repo}/hooks",
            201,
            body={
                "config": {"url": f"{base}/hook", "content_type": "json"},
                "events": ["issues", "issue_comment"],
            },
            **R,
        )
        ms = await call(
            http, spec, "POST", "/repos/{owner}/{repo}/milestones", 201, body={"title": "v1"}, **R
        )
        issue = await call(http, spec, "POST", "/repos/{owner}/{repo}/issues", 201, body={"title": "T"}, **R)
        n = {"issue_number": issue["number"], **R}
        human = {"Authorization": f"Bearer {HUMAN_TOKEN}"}
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            200,
            body={"title": "T2", "body": "x"},
            headers=human,
            **n,
        )
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            200,
            body={"labels": ["bug"], "assignees": ["jane"], "milestone": ms["number"]},
            **n,
        )
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            200,
            body={"labels": [], "assignees": [], "milestone": None},
            **n,
        )
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            200,
            body={"state": "closed"},
            **n,
        )
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            200,
            body={"state": "open"},
            **n,
        )
        comment = await call(
            http,
            spec,
            "POST",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            201,
            body={"body": "c"},
            **n,
        )
        c = {"comment_id": comment["id"], **R}
        await call(
            http,
            spec,
            "PATCH",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            200,
            body={"body": "c2"},
            **c,
        )
        await call(http, spec, "DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 204, **c)
        await site.emu.drain_webhooks()
        seen: set[str] = set()
        while not received.empty():
            event, payload = received.get_nowait()
            if event == "ping":
                continue
            name = f"{event.replace('_', '-')}-{payload['action']}"
            pointer = ["x-webhooks", name, "post", "requestBody", "content", "application/json", "schema"]
            schema: Any = spec.spec
            for part in pointer:
                schema = schema[part]
            assert schema, f"{name}: the description has an empty schema, which would accept anything"
            spec.validate(pointer, payload)
            seen.add(name)
        assert seen >= {
            "issues-opened",
            "issues-edited",
            "issues-labeled",
            "issues-unlabeled",
            "issues-assigned",
            "issues-unassigned",
            "issues-milestoned",
            "issues-demilestoned",
            "issues-closed",
            "issues-reopened",
            "issue-comment-created",
            "issue-comment-edited",
            "issue-comment-deleted",
        }, seen
    finally:
        await runner.cleanup()


def test_the_validator_rejects_a_wrong_shape(spec: Spec) -> None:
    """The check above can fail: a real-looking issue without ``number`` and with a bad ``state``."""
    bad = {"id": 1, "title": "x", "state": 5}
    with pytest.raises(AssertionError, match=r"required property|is not of type"):
        spec.validate(["components", "schemas", "issue"], bad)
