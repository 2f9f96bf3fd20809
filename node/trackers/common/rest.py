"""The REST client base every tracker client builds on: the credentials header, same-origin checks,
one bounded request/response exchange with connection faults named as
:class:`~node.trackers.base.TrackerTransient`, and JSON decoding. Retries are the shared policy of
:mod:`node.trackers.http`.

Two transports: plain calls (no body or a JSON body, redirects not followed: every Jira call but
uploads and downloads, GitHub's writes) go through the lean keep-alive pool of
:mod:`node.trackers.common.http1` (about a third of aiohttp's CPU per request); multipart uploads and
redirect-following calls (downloads, GitHub's reads) go through one pooled
:class:`aiohttp.ClientSession`. Each pool keeps at most ``connection_limit`` connections; both verify
TLS certificates unless built with ``verify_tls=False``.

A subclass adds its tracker's URL rules, headers and error bodies (:meth:`RestClient._error`).
Never logs or echoes the credentials: ``repr`` and messages name the site only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import orjson

from node.trackers.base import TrackerError, TrackerRejected, TrackerTransient
from node.trackers.common.http1 import Http1Client, HttpClientError, InvalidRequest
from node.trackers.http import CLIENT_ERRORS, RetryPolicy, new_session, transient_from_client_error

USER_AGENT = "tandem-sync (+https://github.com/tandem-sync)"
MAX_ERROR_BODY = 64 * 1024  # an error page is read this far at most


@dataclass(frozen=True)
class Answer:
    """A response read in full (an error body only up to :data:`MAX_ERROR_BODY`)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    next_url: str | None = None  # ``Link: <...>; rel="next"`` (read on the aiohttp path only: paged GETs)


def encode_json(value: Any) -> bytes:
    """JSON bytes for a request body (and the emulators' responses and webhook bodies): orjson, several
    times faster than ``json`` on big bodies; keys that are not strings go through orjson's slower
    ``OPT_NON_STR_KEYS``, and what orjson refuses (integers beyond 64 bits) through the stdlib."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value).encode()


def error_text(raw: bytes) -> str:
    """A non-JSON error body as a short hint; HTML error pages are noise and give ``""``."""
    text = raw.decode("utf-8", "replace").strip()
    return "" if not text or text.startswith("<") else text[:300]


class RestClient:
    """Authenticated JSON requests against one site (``base_url``, http or https)."""

    product: ClassVar[str] = "tracker"  # names the tracker in error messages

    def __init__(
        self,
        base_url: str,
        *,
        auth_header: str,
        policy: RetryPolicy | None,
        connection_limit: int,
        timeout: float,
        verify_tls: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        try:
            parts.port  # noqa: B018 -- parsed now so that a bad port is a start-up error, not a failed call
        except ValueError as exc:  # the message names the port only, never the rest of the URL
            raise ValueError(f"not a valid port in the {self.product} URL: {exc}") from None
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._origin = (parts.scheme, parts.netloc)
        self._auth_header = auth_header
        self._session: aiohttp.ClientSession | None = None
        self._connection_limit = connection_limit
        self._timeout = timeout
        self.verify_tls = verify_tls
        self._http: Http1Client | None = None

    def __repr__(self) -> str:  # never show the credentials
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_session(
                limit=self._connection_limit, total_timeout=self._timeout, verify_tls=self.verify_tls
            )
        return self._session

    @property
    def http(self) -> Http1Client:
        """The keep-alive pool for plain calls (built on first use)."""
        if self._http is None:
            self._http = Http1Client(
                limit=self._connection_limit, timeout=self._timeout, verify=self.verify_tls
            )
        return self._http

    async def close(self) -> None:
        try:
            if self._http is not None:
                await self._http.close()
        finally:
            if self._session is not None and not self._session.closed:
                await self._session.close()

    def same_origin(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:  # not a URL at all (an unterminated IPv6 literal)
            return False
        return (parts.scheme, parts.netloc) == self._origin

    def describe(self, method: str, url: str) -> str:
        try:
            path = urlsplit(url).path
        except ValueError:
            path = "(not a valid URL)"
        return f"{self.product} {method} {path}"

    async def exchange(
        self,
        method: str,
        url: str,
        describe: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        data: aiohttp.FormData | None = None,
        allow_redirects: bool = False,
    ) -> Answer:
        """One attempt: send, read the answer, raise :meth:`_error` for a status of 400 or more.
        Connection faults and timeouts become :class:`TrackerTransient`. ``headers`` is not kept
        or changed (a JSON body adds its ``Content-Type`` to a copy)."""
        body: aiohttp.FormData | bytes | None = data
        if data is None and json_body is not None:
            body = encode_json(json_body)
            headers = {**headers, "Content-Type": "application/json"}
        if data is None and not allow_redirects:
            answer = await self._plain(method, url, describe, headers, params, body)
        else:
            try:
                async with self.session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=headers,
                    allow_redirects=allow_redirects,
                ) as resp:
                    raw = await resp.content.read(MAX_ERROR_BODY if resp.status >= 400 else -1)
                    next_url: str | None = None
                    if "Link" in resp.headers:  # parsing Link costs; most answers have none
                        link = resp.links.get("next")
                        next_url = str(link.get("url")) if link and link.get("url") else None
                    answer = Answer(resp.status, resp.headers, raw, next_url)
            except CLIENT_ERRORS as exc:
                raise transient_from_client_error(exc, describe) from exc
        self._observe(answer)
        if answer.status >= 400:
            raise self._error(answer, describe)
        return answer

    async def _plain(
        self,
        method: str,
        url: str,
        describe: str,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None,
        body: Any,
    ) -> Answer:
        """The answer on the lean pool, not yet judged (no upload, no redirect to follow). A URL the client
        cannot send (a bad absolute path from a tracker) is :class:`InvalidRequest`: rejected, not
        worth a retry."""
        try:
            resp = await self.http.request(
                method, url, headers=headers, body=body, params=params, max_error_body=MAX_ERROR_BODY
            )
        except HttpClientError as exc:
            raise transient_from_client_error(exc, describe) from None
        except InvalidRequest as exc:
            raise TrackerRejected(f"{describe}: {exc}") from None
        return Answer(resp.status, resp.headers, resp.body)  # never paged: no Link to read

    @staticmethod
    def decode_json(answer: Answer, describe: str) -> Any:
        """The body as JSON; ``None`` for an empty one. A garbled body is transient (a proxy's page)."""
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            if not answer.body.strip():
                return None
            try:  # orjson is strict where the stdlib is lenient (NaN, Infinity): accept those too
                return json.loads(answer.body)
            except ValueError:
                pass
            raise TrackerTransient(f"{describe}: response is not JSON", status=answer.status) from exc

    def _observe(self, answer: Answer) -> None:
        """See every answer before it is judged (rate-limit headers)."""

    def _error(self, answer: Answer, describe: str) -> TrackerError:
        raise NotImplementedError
