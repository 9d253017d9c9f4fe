"""Errors as JSON bodies `{"error": {"code", "message", "requestId"}}`, and request ids.

Every HTTP request gets an id (the client's `X-Request-ID` if it sent a sane one), bound
to every log line of the request and echoed in the response and in error bodies. A
WebSocket connection gets one the same way (`request_id_of`, in `api/ws.py`, which
serves sockets before this middleware).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from readerai.api.schemas import ErrorResponse
from readerai.errors import ReaderAIError

log = structlog.get_logger(__name__)

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Codes of the errors FastAPI and Starlette raise themselves. Their 400 means the
#: body could not be read as JSON at all (not UTF-8, say); JSON that does not fit
#: the schema is a 422 `invalid_payload`.
_HTTP_CODES = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


class RequestIdMiddleware:
    """Pure ASGI middleware (no body buffering, WebSockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's `X-Request-ID` if it is sane (1-64 of `A-Za-z0-9._-`), else a new id."""
    sent = next((v for k, v in headers if k == b"x-request-id"), b"").decode("latin-1")
    return sent if _SANE_ID.match(sent) else uuid.uuid4().hex


def _body(request: Request, status: int, code: str, message: str) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.info("http.error", status=status, code=code, path=request.url.path)
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.http_errors.labels(code=code).inc()
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
    _document_error_bodies(app)


_REF = "#/components/schemas/{model}"


def _document_error_bodies(app: FastAPI) -> None:
    """Make the OpenAPI schema show the 422 body that `validation_error` sends.

    FastAPI documents every 422 as its own `HTTPValidationError` (`{"detail": [...]}`);
    ours is the error body of every other status. FastAPI builds the schema once, on
    the first request for it, after every route is in.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # cached by FastAPI as `app.openapi_schema`: changed in place
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                _replace_422(operation.get("responses", {}).get("422", {}))
        models = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorResponse" not in models:
            error = ErrorResponse.model_json_schema(ref_template=_REF)
            models.update(error.pop("$defs"), ErrorResponse=error)
        for model in ("HTTPValidationError", "ValidationError"):  # the first uses the second
            if _REF.format(model=model) not in json.dumps(schema):
                models.pop(model, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _replace_422(response: dict[str, Any]) -> None:
    body = response.get("content", {}).get("application/json", {})
    if body.get("schema") == {"$ref": _REF.format(model="HTTPValidationError")}:
        response["description"] = "The request does not fit the schema (`invalid_payload`)."
        body["schema"] = {"$ref": _REF.format(model="ErrorResponse")}
