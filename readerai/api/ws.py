"""The WebSocket endpoint: authenticate the upgrade, then hand the socket to an actor."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from readerai.errors import CloseCode
from readerai.services import NodeServices
from readerai.session.actor import ClientGone, ConnectionActor

router = APIRouter()


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

    async def send_text(self, text: str) -> None:
        try:
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


@router.websocket("/ws/{session_id}")
async def session_socket(
    websocket: WebSocket,
    session_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    last_seq: Annotated[int | None, Query(alias="lastSeq", ge=0)] = None,
) -> None:
    """One student connection; the protocol is in docs/protocol.md."""
    services: NodeServices | None = getattr(websocket.app.state, "services", None)
    if services is None or not services.ready:
        await websocket.close(CloseCode.SERVICE_RESTART, "server starting or stopping")
        return
    if not _origin_allowed(websocket, services.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION, "origin not allowed")
        return
    await websocket.accept()
    actor = ConnectionActor(
        StarletteTransport(websocket),
        session_id,
        services.session_services,
        services.connection_limits,
    )
    await actor.run(last_seq)
