"""JSON errors for every HTTP surface: ``{"error": {"code": ..., "message": ...}}``.

Bad input gets a 4xx naming the problem. Only a true bug reaches the catch-all, which logs the
traceback and answers a generic 500 — never the traceback itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.connections import ManagerError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except ManagerError as exc:
        return error_response(exc.status, exc.code, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            message = "the request body is too large"
        return error_response(exc.status, code, message)
    except Exception:
        # The route template, not the path: a path can carry a secret (the webhook endpoint).
        route = request.match_info.route.resource
        where = route.canonical if route is not None else "an unknown route"
        log.exception("unexpected error serving %s %s", request.method, where)
        return error_response(500, "internal_error", "internal error (details are in the node's log)")
