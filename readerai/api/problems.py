"""Errors as JSON bodies `{"error": {"code", "message", "requestId"}}`, and request ids.

Every HTTP request gets an id (the client's `X-Request-ID` if it sent a sane one), bound
to every log line of the request and echoed in the response and in error bodies.
"""

from __future__ import annotations

import re
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from readerai.errors import ReaderAIError

log = structlog.get_logger(__name__)

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


class RequestIdMiddleware:
    """Pure ASGI middleware (no body buffering, WebSockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SANE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _body(request: Request, status: int, code: str, message: str) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.info("http.error", status=status, code=code, path=request.url.path)
    return JSONResponse(
        {"error": {"code": code, "message": message, "requestId": request_id}}, status_code=status
    )


def install_error_handlers(app: FastAPI) -> None:
    async def readerai_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReaderAIError)
        return _body(request, exc.http_status, exc.code, exc.message)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        return _body(request, 422, "invalid_payload", "; ".join(parts))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _body(request, exc.status_code, code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("http.unhandled", path=request.url.path, exc_info=exc)
        return _body(request, 500, "internal", "internal error")

    app.add_exception_handler(ReaderAIError, readerai_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
