"""A small async REST client for GitHub (api.github.com and GitHub Enterprise Server ``/api/v3``).

It owns the HTTP concerns only (session, exchange and JSON decoding are the shared
:class:`~node.trackers.common.rest.RestClient`): token authentication
(``Authorization: Bearer``), API versioning headers, conditional requests, rate limits, pagination
and GitHub's error bodies turned into the :class:`~node.trackers.base.TrackerError` tree, retried
with the shared policy from :mod:`node.trackers.http`.

* **Conditional requests.** Every GET remembers the response's ``ETag`` (a bounded LRU keyed by
  URL) and sends ``If-None-Match`` next time; a 304 returns the remembered body and, on GitHub,
  costs no rate limit. Polling an unchanged repository is therefore free.
* **Rate limits.** ``x-ratelimit-*`` headers of every response are kept in :attr:`rate`. The primary
  limit exhausted (403/429 with ``x-ratelimit-remaining: 0``) is a
  :class:`~node.trackers.base.TrackerTransient` whose ``retry_after`` is the time until
  ``x-ratelimit-reset``; a secondary limit (403/429 with ``retry-after``) honours ``retry-after``,
  and one without it waits 60 s as GitHub's documentation asks. Waits longer than the policy's
  ``max_retry_after`` are not slept through: the error is raised so the engine can park the work.

Never logs or echoes the token.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from node.trackers import DEFAULT_CONNECTIONS
from node.trackers.base import TrackerAuthError, TrackerError, TrackerRejected, TrackerTransient
from node.trackers.common.rest import USER_AGENT, Answer, RestClient, error_text
from node.trackers.http import (
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    with_retries,
)

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
SECONDARY_DEFAULT_WAIT = 60.0


@dataclass
class RateLimit:
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds
    used: int | None = None
    resource: str | None = None


@dataclass
class Page:
    body: Any
    next_url: str | None
    not_modified: bool = False


class GitHubClient(RestClient):
    """Authenticated, retried JSON requests against one GitHub API root.

    ``base_url`` is the REST root: ``https://api.github.com`` or ``https://ghe.example.com/api/v3``.
    ``path`` arguments are relative to it (``repos/o/r/issues``) or absolute URLs on the same origin
    (``Link`` header pages)."""

    product: ClassVar[str] = "GitHub"

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        policy: RetryPolicy | None = None,
        connection_limit: int = DEFAULT_CONNECTIONS,
        timeout: float = 60.0,
        etag_cache_size: int = 512,
        clock: Callable[[], float] = time.time,
        verify_tls: bool = True,
    ) -> None:
        if not token:
            raise ValueError("a GitHub token is required")
        super().__init__(
            base_url,
            auth_header=f"Bearer {token}",
            policy=policy,
            connection_limit=connection_limit,
            timeout=timeout,
            verify_tls=verify_tls,
        )
        self.rate = RateLimit()
        self._etags: OrderedDict[str, tuple[str, Any, str | None]] = OrderedDict()
        self._etag_cache_size = etag_cache_size
        self._clock = clock
        self.not_modified = 0  # 304 answers received (tests, metrics)

    def url(self, path: str, params: Mapping[str, str | int] | None = None) -> str:
        if path.startswith(("http://", "https://")):
            if not self.same_origin(path):
                raise TrackerRejected(
                    f"refusing to send the GitHub token to another host: {urlsplit(path).netloc}"
                )
            url = path
        else:
            url = f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in params.items()})
        return url

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": self._auth_header,
            "Accept": MEDIA_TYPE,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }

    # -------------------------------------------------------------------------------------------
    # Requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
    ) -> Any:
        """One JSON request with retries; returns the decoded body (``None`` for an empty one)."""
        return (await self.page(method, path, params=params, json_body=json_body)).body

    async def page(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
    ) -> Page:
        """Like :meth:`request`, also returning the ``Link: rel="next"`` URL (and whether the body
        came from the ETag cache after a 304)."""
        url = self.url(path, params)
        describe = self.describe(method, url)
        conditional = method == "GET"

        async def once() -> Page:
            headers = self._headers()
            cached = self._etags.get(url) if conditional else None
            if cached is not None:
                headers["If-None-Match"] = cached[0]
            answer = await self.exchange(
                method, url, describe, headers=headers, json_body=json_body, allow_redirects=method == "GET"
            )
            if answer.status == 304 and cached is not None:
                self.not_modified += 1
                self._etags.move_to_end(url)
                return Page(cached[1], cached[2], not_modified=True)
            if answer.status >= 300:
                raise TrackerRejected(
                    f"{describe}: unexpected {answer.status} redirect (is the base URL right?)",
                    status=answer.status,
                )
            body = self.decode_json(answer, describe)
            etag = answer.headers.get("ETag")
            if conditional and etag:
                self._remember(url, etag, body, answer.next_url)
            return Page(body, answer.next_url)

        return await with_retries(once, self.policy, describe=describe)

    async def paginate(
        self, path: str, *, params: Mapping[str, str | int] | None = None, max_pages: int = 1000
    ) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` (bounded)."""
        out: list[Any] = []
        url: str | None = self.url(path, params)
        for _ in range(max_pages):
            if url is None:
                break
            page = await self.page("GET", url)
            if isinstance(page.body, list):
                out.extend(page.body)
            url = page.next_url
        return out

    def _remember(self, url: str, etag: str, body: Any, next_url: str | None) -> None:
        self._etags[url] = (etag, body, next_url)
        self._etags.move_to_end(url)
        while len(self._etags) > self._etag_cache_size:
            self._etags.popitem(last=False)

    def _observe(self, answer: Answer) -> None:
        headers = answer.headers

        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        remaining = num("x-ratelimit-remaining")
        if remaining is None:
            return
        self.rate = RateLimit(
            limit=num("x-ratelimit-limit"),
            remaining=remaining,
            reset=float(num("x-ratelimit-reset") or 0) or None,
            used=num("x-ratelimit-used"),
            resource=headers.get("x-ratelimit-resource"),
        )
        if remaining == 0:
            log.warning("GitHub rate limit for %s used up until %s", self.base_url, self.rate.reset)

    # -------------------------------------------------------------------------------------------
    # Errors

    def _error(self, resp: Answer, describe: str) -> TrackerError:
        status = resp.status
        message, errors = _github_error_body(resp.body)
        detail = message + ("; " + "; ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "")
        headers = resp.headers
        if status in (403, 429):
            if headers.get("x-ratelimit-remaining") == "0":
                reset = headers.get("x-ratelimit-reset")
                try:
                    wait = max(0.0, float(reset) - self._clock()) + 1.0 if reset else None
                except ValueError:
                    wait = None
                return TrackerTransient(
                    f"{describe}: GitHub primary rate limit used up"
                    + (f"; resets in {wait:.0f}s" if wait is not None else ""),
                    status=status,
                    retry_after=wait,
                )
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is not None:
                return TrackerTransient(
                    f"{describe}: GitHub secondary rate limit; retry after {retry_after:.0f}s",
                    status=status,
                    retry_after=retry_after,
                )
            if "rate limit" in message.lower():
                return TrackerTransient(
                    f"{describe}: {message}", status=status, retry_after=SECONDARY_DEFAULT_WAIT
                )
            if status == 429:
                return TrackerTransient(f"{describe} → 429", status=status)
            return TrackerAuthError(
                f"GitHub token lacks permission for {describe} at {self.base_url} (403)"
                + (f": {detail}" if detail else ""),
                status=status,
            )
        if status == 401:
            return TrackerAuthError(
                f"GitHub rejected the credentials (token) at {self.base_url} ({describe} → 401"
                + (f": {message}" if message else "")
                + ")",
                status=status,
            )
        if status == 410:
            return TrackerRejected(f"{describe} → 410: {message or 'gone (issues disabled?)'}", status=status)
        msg = f"{describe} → {status}" + (f": {detail}" if detail else "")
        return error_for_status(
            status, msg, retry_after=parse_retry_after(headers.get("retry-after")), errors=errors
        )


def _github_error_body(raw: bytes) -> tuple[str, dict[str, str]]:
    """GitHub's ``{"message": ..., "errors": [{"resource","field","code","message"}]}``."""
    try:
        body = json.loads(raw)
    except ValueError:
        return error_text(raw), {}
    if not isinstance(body, dict):
        return "", {}
    message = str(body.get("message") or "")
    errors: dict[str, str] = {}
    for i, err in enumerate(body.get("errors") or []):
        if isinstance(err, dict):
            field = str(err.get("field") or err.get("resource") or i)
            text = err.get("message") or err.get("code") or "invalid"
            if err.get("value") is not None:
                text = f"{text} ({err['value']!r})"
            errors[field] = str(text)
        elif isinstance(err, str):
            errors[str(i)] = err
    return message, errors
