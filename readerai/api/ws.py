"""The WebSocket endpoint: authenticate the upgrade, then hand the socket to an actor."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import anyio
import pydantic_core
import structlog
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketState

from readerai.api.bounded_protocols import SEND_TEXTS
from readerai.api.problems import request_id_of
from readerai.errors import (
    CloseCode,
    Forbidden,
    NotFound,
    StoreUnavailable,
    Unauthenticated,
    close_code_for,
)
from readerai.services import NodeServices
from readerai.session.actor import ClientGone, ConnectionActor

log = structlog.get_logger(__name__)

#: `/ws/{sessionId}`; anything else under `/ws/` falls through to FastAPI (404).
SOCKET_PATH = re.compile(r"/ws/([A-Za-z0-9_-]{1,64})")

#: The subprotocol the server speaks, and the prefix of the one that carries a token.
SUBPROTOCOL = "readerai.v1"
BEARER = "bearer."
#: How long a connection without a token in its handshake has to send `AUTH`.
AUTH_TIMEOUT = 5.0


class StarletteTransport:
    """Adapts Starlette's WebSocket to the actor's `Transport`."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive(self) -> str | bytes | None:
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes = message.get("bytes") or b""
        return data

    async def send_texts(self, texts: list[str]) -> None:
        """Several text frames; in one write where the server can (`SEND_TEXTS`)."""
        try:
            if len(texts) > 1 and SEND_TEXTS in self._ws.scope.get("extensions", {}):
                await self._ws.send({"type": "websocket.send", "text": texts[0], SEND_TEXTS: texts})
            else:
                for text in texts:
                    await self._ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ClientGone(str(exc)) from exc

    async def send_bytes(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ClientGone(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        if self._ws.application_state is not WebSocketState.DISCONNECTED:
            await self._ws.close(code, reason)


def _origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """Browsers send Origin; other clients may not. Same host is always allowed."""
    origin = websocket.headers.get("origin")
    if origin is None or origin in allowed:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


class SocketFastPath:
    """The ASGI app uvicorn runs: WebSockets at `/ws/{sessionId}` go straight to the
    session handler; everything else goes to the FastAPI app.

    A WebSocket lives for hours, and every layer between uvicorn and the handler keeps
    a coroutine frame alive for all that time. FastAPI's middleware, router and
    dependency solving add about twenty frames (several KB per idle connection);
    answering here keeps an idle connection small.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            match = SOCKET_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["app"] = self.app  # Starlette's WebSocket reads `app.state`
                await session_socket(WebSocket(scope, receive, send), match[1])
                return
        await self.app(scope, receive, send)


async def session_socket(websocket: WebSocket, session_id: str) -> None:
    """One student connection; the protocol is in docs/protocol.md.

    The token comes in `Sec-WebSocket-Protocol` (`bearer.<token>`, beside
    `readerai.v1`) or as a first `AUTH` frame, never in the URL. A refused connection
    is closed with 4401 or 4403 (4404: no such session) before any event is sent;
    a malformed `lastSeq` is refused with 1008. Its request id (the client's
    `X-Request-ID` if sane) is echoed in the handshake's response.
    """
    request_id = request_id_of(websocket.scope["headers"])
    # Every log line of the connection, its turns included, names it and its session.
    # Bound in the connection's own task (uvicorn runs each in one): it ends with it.
    structlog.contextvars.bind_contextvars(request_id=request_id, session_id=session_id)
    services: NodeServices | None = getattr(websocket.app.state, "services", None)
    if services is None or not services.ready:
        await websocket.close(CloseCode.SERVICE_RESTART, "server starting or stopping")
        return
    if not _origin_allowed(websocket, services.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION, "origin not allowed")
        return
    raw_seq = websocket.query_params.get("lastSeq")
    if raw_seq is not None and not (raw_seq.isdigit() and len(raw_seq) <= 18):
        await websocket.close(CloseCode.POLICY_VIOLATION, "lastSeq must be a whole number >= 0")
        return
    last_seq = int(raw_seq) if raw_seq is not None else None
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    token = next((p[len(BEARER) :] for p in offered if p.startswith(BEARER)), None)
    await websocket.accept(
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None,
        headers=[(b"x-request-id", request_id.encode())],
    )
    try:
        if token is None:
            token = await _first_frame_token(websocket)
        principal = services.tokens.verify(token)
        record = await services.access.session(principal, session_id)
    except (Unauthenticated, Forbidden, NotFound, StoreUnavailable) as exc:
        log.info("connection.refused", session_id=session_id, code=exc.code)
        await websocket.close(close_code_for(exc), exc.message[:120])
        return
    actor = ConnectionActor(
        StarletteTransport(websocket),
        session_id,
        services.session_services,
        services.connection_limits,
    )
    del offered, token, principal  # nothing of the handshake is kept for the connection
    await actor.run(last_seq, record)


async def _first_frame_token(websocket: WebSocket) -> str:
    """The token of an `AUTH` first frame, sent within `AUTH_TIMEOUT` seconds."""
    with anyio.move_on_after(AUTH_TIMEOUT):
        message = await websocket.receive()
        text = message.get("text")
        if isinstance(text, str):
            try:
                frame = pydantic_core.from_json(text)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and frame.get("type") == "AUTH":
                payload = frame.get("payload")
                token = payload.get("token") if isinstance(payload, dict) else None
                if isinstance(token, str) and token:
                    return token
        raise Unauthenticated(
            'send the token: Sec-WebSocket-Protocol "bearer.<token>" or a first '
            '{"type": "AUTH", "payload": {"token": ...}} frame'
        )
    raise Unauthenticated(f"no AUTH frame within {AUTH_TIMEOUT:g} s")
