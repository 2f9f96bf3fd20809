"""A small async REST client for Jira Cloud (REST v3) and Jira Server / Data Center (REST v2).

It owns the HTTP concerns only (session, exchange and JSON decoding are the shared
:class:`~node.trackers.common.rest.RestClient`): authentication (basic with
user + API token/password, or a bearer personal access token), Jira's error bodies turned into the
:class:`~node.trackers.base.TrackerError` tree, and the shared retry policy from
:mod:`node.trackers.http`. It knows nothing about issues; :mod:`node.trackers.jira.adapter` does.

Never logs or echoes the token: error messages name the user, the method and the path only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeGuard
from urllib.parse import urljoin

import aiohttp
import orjson

from node.trackers import DEFAULT_CONNECTIONS
from node.trackers.base import (
    TrackerAuthError,
    TrackerError,
    TrackerRejected,
)
from node.trackers.common.rest import MAX_ERROR_BODY, USER_AGENT, Answer, RestClient, error_text
from node.trackers.http import (
    CLIENT_ERRORS,
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    transient_from_client_error,
    with_retries,
)

log = logging.getLogger(__name__)

Deployment = Literal["cloud", "server"]
AuthKind = Literal["basic", "bearer"]


class JiraClient(RestClient):
    """Authenticated, retried JSON requests against one Jira site.

    ``path`` arguments starting with ``/rest/`` are used as is; others are relative to the REST API
    root of the deployment (``/rest/api/3`` on Cloud, ``/rest/api/2`` on Server/DC)."""

    product: ClassVar[str] = "Jira"

    def __init__(
        self,
        base_url: str,
        *,
        deployment: Deployment,
        user: str | None,
        token: str,
        auth: AuthKind = "basic",
        policy: RetryPolicy | None = None,
        connection_limit: int = DEFAULT_CONNECTIONS,
        timeout: float = 60.0,
        verify_tls: bool = True,
    ) -> None:
        if deployment not in ("cloud", "server"):
            raise ValueError("deployment must be 'cloud' or 'server'")
        if auth not in ("basic", "bearer"):
            raise ValueError("auth must be 'basic' or 'bearer'")
        if auth == "basic" and not user:
            raise ValueError("basic authentication needs a user (email on Cloud, username on Server)")
        if auth == "basic":
            assert user is not None
            auth_header = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode("ascii")
        else:
            auth_header = f"Bearer {token}"
        super().__init__(
            base_url,
            auth_header=auth_header,
            policy=policy,
            connection_limit=connection_limit,
            timeout=timeout,
            verify_tls=verify_tls,
        )
        self.deployment: Deployment = deployment
        self.user = user
        self.auth_kind: AuthKind = auth
        self.api = "/rest/api/3" if deployment == "cloud" else "/rest/api/2"
        self._json_headers: Mapping[str, str] = MappingProxyType(
            {"Authorization": self._auth_header, "Accept": "application/json", "User-Agent": USER_AGENT}
        )

    def __repr__(self) -> str:  # never show the token
        return f"JiraClient({self.base_url!r}, deployment={self.deployment!r}, user={self.user!r})"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/rest/") and not path.startswith("/secure/"):
            path = f"{self.api}/{path.lstrip('/')}"
        return self.base_url + path

    def _headers(self, extra: Mapping[str, str] | None, accept: str) -> Mapping[str, str]:
        if not extra and accept == "application/json":
            return self._json_headers  # the common case: one shared, never-mutated mapping
        headers = {"Authorization": self._auth_header, "Accept": accept, "User-Agent": USER_AGENT}
        if extra:
            headers.update(extra)
        return headers

    # -------------------------------------------------------------------------------------------
    # Requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        upload: tuple[str, bytes, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One JSON request with retries; returns the decoded body (``None`` for an empty one).
        ``upload`` is ``(filename, content, mime type)`` sent as the multipart field ``file``."""
        url = self.url(path)
        describe = self.describe(method, url)

        async def once() -> Any:
            form: aiohttp.FormData | None = None
            if upload is not None:  # a FormData is single-use: build it per attempt
                # raw UTF-8 file names, as browsers and urllib3 send them (quoted ones would be
                # stored percent-encoded); control characters cannot travel in a header
                form = aiohttp.FormData(quote_fields=False)
                form.add_field("file", upload[1], filename=_safe_filename(upload[0]), content_type=upload[2])
            answer = await self.exchange(
                method,
                url,
                describe,
                params=params,
                json_body=json_body,
                data=form,
                headers=self._headers(headers, "application/json"),
            )
            if answer.status in (301, 302, 303, 307, 308):
                raise TrackerRejected(
                    f"{describe}: unexpected redirect to {answer.headers.get('Location', '?')}"
                    " (is the base URL right?)",
                    status=answer.status,
                )
            return self.decode_json(answer, describe)

        return await with_retries(once, self.policy, describe=describe)

    async def download(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """GET binary content (attachments), following redirects; credentials are sent to this
        site only, never to another host a redirect points at."""
        sink = _Sink(keep=True)
        await self._stream(path, sink, max_bytes=max_bytes)
        return b"".join(sink.chunks)

    async def sha256(self, path: str) -> tuple[str, int]:
        """Stream content and return (sha256 hex, size) without holding it in memory."""
        sink = _Sink(keep=False)
        await self._stream(path, sink)
        return sink.digest.hexdigest(), sink.size

    async def _stream(self, path: str, sink: _Sink, *, max_bytes: int | None = None) -> None:
        start = self.url(path)
        describe = self.describe("GET", start)

        async def once() -> None:
            sink.reset()  # a retried attempt starts from the first byte again
            url = start
            for _hop in range(5):
                headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
                if self.same_origin(url):
                    headers["Authorization"] = self._auth_header
                try:
                    async with self.session.get(url, headers=headers, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                            url = urljoin(url, resp.headers["Location"])
                            continue
                        if resp.status >= 400:
                            raw = await resp.content.read(MAX_ERROR_BODY)
                            raise self._error(Answer(resp.status, resp.headers, raw), describe)
                        async for chunk in resp.content.iter_chunked(64 * 1024):
                            sink.feed(chunk)
                            if max_bytes is not None and sink.size > max_bytes:
                                raise TrackerRejected(f"{describe}: content larger than {max_bytes} bytes")
                        return
                except CLIENT_ERRORS as exc:
                    raise transient_from_client_error(exc, describe) from exc
            raise TrackerRejected(f"{describe}: too many redirects")

        await with_retries(once, self.policy, describe=describe)

    # -------------------------------------------------------------------------------------------
    # Errors

    def _error(self, resp: Answer, describe: str) -> TrackerError:
        status = resp.status
        body, messages, errors = _error_body(resp.body)
        detail = "; ".join(messages + [f"{k}: {v}" for k, v in errors.items()])
        who = f"user {self.user!r}" if self.user else "the bearer token"
        captcha = resp.headers.get("X-Seraph-LoginReason", "").startswith("AUTHENTICATION_DENIED")
        if status == 401:
            msg = f"Jira rejected the credentials for {who} at {self.base_url} ({describe} → 401)"
            if captcha:
                msg += "; Jira requires a CAPTCHA login in the browser first (too many failed logins)"
            return TrackerAuthError(msg, status=status)
        if status == 403:
            if captcha:
                msg = (
                    f"Jira at {self.base_url} denied login for {who}: a CAPTCHA is required "
                    "(too many failed logins); log in once in the browser"
                )
            else:
                msg = f"Jira {who} lacks permission for {describe} at {self.base_url} (403)"
            if detail:
                msg += f": {detail}"
            return TrackerAuthError(msg, status=status)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        msg = f"{describe} → {status}" + (f": {detail}" if detail else "")
        if status == 400 and b'"failedElementNumber"' in resp.body and _is_bulk_result(body):
            return BulkRejected(msg, status=status, result=body)
        return error_for_status(status, msg, retry_after=retry_after, errors=errors)


def _safe_filename(name: str) -> str:
    cleaned = "".join("_" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in name).strip()
    return cleaned or "attachment"


def _error_body(raw: bytes) -> tuple[Any, list[str], dict[str, str]]:
    """An error body decoded once (``None`` when it is not JSON, its text then the one message) with
    Jira's ``{"errorMessages": [...], "errors": {field: message}}`` (or ``{"message": ...}``) in it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = error_text(raw)
        return None, ([text] if text else []), {}
    messages, errors = jira_error_detail(body)
    return body, messages, errors


def jira_error_detail(body: Any) -> tuple[list[str], dict[str, str]]:
    """The messages and per-field errors of one decoded Jira error body (also a bulk element's
    ``elementErrors``)."""
    if not isinstance(body, dict):
        return [], {}
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    if isinstance(body.get("message"), str):
        messages.append(body["message"])
    errors_raw = body.get("errors")
    errors = {str(k): str(v) for k, v in errors_raw.items()} if isinstance(errors_raw, dict) else {}
    return messages, errors


class BulkRejected(TrackerRejected):
    """A bulk request (``POST issue/bulk``) whose every element Jira refused: a 400 whose body is
    the bulk result (``{"issues": [], "errors": [{"failedElementNumber", ...}]}``), in ``result``."""

    def __init__(self, message: str, *, status: int, result: dict[str, Any]) -> None:
        super().__init__(message, status=status)
        self.result = result


def _is_bulk_result(body: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(body, dict) and isinstance(body.get("errors"), list)


class _Sink:
    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.reset()

    def reset(self) -> None:
        self.chunks: list[bytes] = []
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.digest.update(chunk)
        if self.keep:
            self.chunks.append(chunk)
