"""HMAC-SHA256 webhook signatures of the form ``sha256=<hex>``, as GitHub (``X-Hub-Signature-256``)
and Jira (``X-Hub-Signature``) send them: one way to make them (trackers' emulators, tests) and one
way to check them (adapters). Each tracker finds the header its own way and passes its value here."""

from __future__ import annotations

import hashlib
import hmac

from node.trackers.base import WebhookError


def sign(body: bytes, secret: str) -> str:
    """The ``sha256=<hex>`` signature of ``body`` under ``secret``."""
    return "sha256=" + _hex(body, secret)


def _hex(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(given: str | None, body: bytes, secret: str, *, tracker: str, header: str) -> None:
    """Raise :class:`WebhookError` unless ``given`` (the header's value) signs ``body`` with
    ``secret``; messages name ``tracker`` and ``header``. Compared in constant time."""
    if not given:
        raise WebhookError(f"{tracker} webhook: {header} header missing (a secret is configured)")
    method, _, digest = given.strip().partition("=")
    if method.strip().lower() != "sha256" or not digest:
        raise WebhookError(f"{tracker} webhook: {header} is not of the form sha256=<hex>")
    if not hmac.compare_digest(_hex(body, secret).encode(), digest.strip().lower().encode()):
        raise WebhookError(
            f"{tracker} webhook: signature does not match the body (wrong secret or altered body)"
        )
