"""Opening benchmark sessions: created over REST, connected over a WebSocket.

A session is opened the way a student's page opens it: `POST /api/sessions`, then
`/ws/{id}` offering `readerai.v1` and `bearer.<token>`, and it counts as open once
`SESSION_RESTORED` has arrived. A baseline server (no token) gets a random id and no
REST call. Sockets may be bound to a local address of their own (127.0.0.x): one
source address has only ~28,000 ephemeral ports towards one server port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

#: Linux: choose the local port at connect(), not bind(), so ports are shared across
#: destinations (the constant is missing from older `socket` modules).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: Longest wait for a WebSocket handshake and its `SESSION_RESTORED`.
OPEN_TIMEOUT = 30.0
#: Longest wait for a close handshake when the benchmark ends.
CLOSE_TIMEOUT = 3.0


class OpenFailed(Exception):
    """A session could not be opened; `kind` names why, for the error counts."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass
class TurnTiming:
    """When things happened to one question's reply (perf_counter seconds)."""

    sent: float
    first: float | None = None
    last: float | None = None
    deltas: int = 0
    cancel_sent: float | None = None


@dataclass
class BenchSession:
    """One open session and what its load is waiting for."""

    id: str
    ws: ClientConnection
    asked: deque[float] = field(default_factory=deque)
    turns: dict[str, TurnTiming] = field(default_factory=dict)
    pings: deque[float] = field(default_factory=deque)
    broadcasts: int = 0
    #: Closed on purpose (the soak's reconnects): its reader's end is not an error.
    leaving: bool = False

    def awaited(self) -> int:
        """Answers this session still waits for."""
        return len(self.asked) + len(self.turns) + len(self.pings)

    async def send(self, type_: str, **payload: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, "payload": payload}))


class SessionOpener:
    """Creates and connects sessions for one client process."""

    def __init__(
        self,
        http: httpx.AsyncClient | None,
        ws_url: str,
        token: str | None,
        *,
        passage_id: str | None,
        class_id: str | None,
        source_address: str | None,
        create_concurrency: int,
    ) -> None:
        self._http = http
        self._ws_url = ws_url.rstrip("/")
        self._protocols = (
            [Subprotocol("readerai.v1"), Subprotocol(f"bearer.{token}")] if token else None
        )
        self._body = {
            k: v for k, v in (("passageId", passage_id), ("classId", class_id)) if v is not None
        }
        self._source_address = source_address
        self._creating = asyncio.Semaphore(create_concurrency)

    async def open(self, session_id: str | None = None) -> tuple[BenchSession, float, float]:
        """A connected session, with the seconds it took in all and for the WebSocket.

        `session_id`: connect again to that session instead of creating one."""
        started = time.perf_counter()
        if session_id is None:
            session_id = await self._create()
        connecting = time.perf_counter()
        ws = await self._connect(session_id)
        try:
            frame = await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT)
        except BaseException:
            ws.transport.abort()
            raise
        event = json.loads(frame)
        if event.get("type") != "SESSION_RESTORED":
            ws.transport.abort()
            raise OpenFailed("unexpected_first_event", str(event.get("type")))
        done = time.perf_counter()
        return BenchSession(session_id, ws), done - started, done - connecting

    async def _create(self) -> str:
        if self._http is None:
            return uuid.uuid4().hex
        async with self._creating:
            response = await self._http.post("/api/sessions", json=self._body)
        if response.status_code != 201:
            raise OpenFailed(f"create_http_{response.status_code}", response.text[:200])
        session_id: str = response.json()["id"]
        return session_id

    async def _connect(self, session_id: str) -> ClientConnection:
        url = f"{self._ws_url}/ws/{session_id}"
        sock = await self._bound_socket(url) if self._source_address else None
        return await connect(
            url,
            subprotocols=self._protocols,
            compression=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT,
            # The server pings; a client pinging too would only add load to measure.
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=2**22,
            sock=sock,
        )

    async def _bound_socket(self, url: str) -> socket.socket:
        """A TCP socket from our source address, connected to the URL's host and port."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self._source_address, 0))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(
                loop.sock_connect(sock, (parts.hostname, parts.port)), OPEN_TIMEOUT
            )
        except BaseException:
            sock.close()
            raise
        return sock
