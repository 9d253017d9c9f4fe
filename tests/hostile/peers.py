"""Hostile peers at the socket level: each does only what its test tells it to.

A `RawPeer` speaks WebSocket through the sans-I/O `websockets.client.ClientProtocol`
over a plain asyncio stream, so a test decides byte by byte what it sends and when
it reads: it can write thousands of frames in one go, never read, or read and never
answer a ping. `tcp_state` tells, without reading, whether the server has dropped
the connection (a reset arrives even when the receive buffer is full).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from tests.fixtures_server import ServerProcess, http_client, ws_protocols

#: `tcpi_state` values of Linux's `struct tcp_info`.
TCP_ESTABLISHED = 1
#: Longest wait for the server to answer a handshake.
HANDSHAKE_SECONDS = 15.0


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of `sock` (first byte of `TCP_INFO`)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    state: int = struct.unpack("B", info[:1])[0]
    return state


async def open_socket(server: ServerProcess, rcvbuf: int | None = None) -> socket.socket:
    """A TCP socket connected to `server`; `rcvbuf` shrinks its receive buffer first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class RawPeer:
    """One WebSocket connection driven frame by frame, on a non-blocking socket read
    only when the test says so (`sock_recv` returns what arrived before a reset)."""

    sock: socket.socket
    protocol: ClientProtocol
    #: JSON text events received, in order.
    events: list[dict[str, Any]] = field(default_factory=list)
    binary_frames: int = 0
    pings: int = 0
    #: `time.monotonic()` when the server's close frame, or the end of the stream, came.
    closed_at: float | None = None

    @classmethod
    async def connect(
        cls, server: ServerProcess, session_id: str, token: str, rcvbuf: int | None = None
    ) -> RawPeer:
        """Open a socket and complete the WebSocket handshake (signed in with `token`)."""
        sock = await open_socket(server, rcvbuf)
        protocol = ClientProtocol(
            parse_uri(f"{server.ws_url}/ws/{session_id}"),
            subprotocols=[Subprotocol(p) for p in ws_protocols(token)],
            max_size=None,
        )
        protocol.send_request(protocol.connect())
        peer = cls(sock, protocol)
        try:
            await peer.flush()
            async with asyncio.timeout(HANDSHAKE_SECONDS):
                while not any(isinstance(e, Response) for e in await peer._receive()):
                    pass
        except BaseException:
            sock.close()
            raise
        if protocol.handshake_exc is not None:
            sock.close()
            raise protocol.handshake_exc
        return peer

    async def flush(self) -> None:
        """Write what the protocol has to send (requests, frames, pongs, close replies);
        a connection already reset takes nothing more."""
        data = b"".join(self.protocol.data_to_send())
        if data:
            with contextlib.suppress(ConnectionError):
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def send_raw(self, data: bytes) -> None:
        """Bytes already framed (`flood_bytes`), written in one go."""
        with contextlib.suppress(ConnectionError):
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def read(self, answer: bool = True) -> None:
        """Read until the connection ends; `answer=False` never replies (no pong, no
        close reply)."""
        while self.closed_at is None:
            await self._receive()
            if answer:
                await self.flush()

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame, if one came."""
        rcvd = self.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    def close(self) -> None:
        self.sock.close()

    async def _receive(self) -> list[Any]:
        try:
            data = await asyncio.get_running_loop().sock_recv(self.sock, 2**16)
        except ConnectionError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        events = self.protocol.events_received()
        for event in events:
            if isinstance(event, Frame):
                self._note(event)
        if not data:
            self.closed_at = self.closed_at or time.monotonic()
        return events

    def _note(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT:
            self.events.append(json.loads(frame.data))
        elif frame.opcode is Opcode.BINARY:
            self.binary_frames += 1
        elif frame.opcode is Opcode.PING:
            self.pings += 1
        elif frame.opcode is Opcode.CLOSE:
            self.closed_at = time.monotonic()


# -- the four hostile peers of test_floods.py ------------------------------------------


@dataclass(frozen=True)
class Ending:
    """How a hostile peer ended: the close code it read (or what it saw instead:
    "reset", "408", "open") and how many seconds after it began."""

    code: int | str | None
    seconds: float
    #: Events it was sent before the end (a flood's answers).
    answers: int = 0


async def never_read(
    server: ServerProcess, session_id: str, token: str, notice_every: float
) -> Ending:
    """Connect, then never read a byte while a teacher sends the session a long
    notice every `notice_every` seconds; ends when the server has reset the
    connection (or after 30 s)."""
    peer = await RawPeer.connect(server, session_id, token, rcvbuf=4096)
    started = time.monotonic()
    notice = {"text": "Please look up. " * 125}  # 2,000 characters, the most allowed
    async with http_client(server) as http:
        while tcp_state(peer.sock) == TCP_ESTABLISHED and time.monotonic() - started < 30:
            response = await http.post(f"/api/sessions/{session_id}/notices", json=notice)
            assert response.status_code == 202, response.text
            await asyncio.sleep(notice_every)
    state = tcp_state(peer.sock)
    peer.close()
    return Ending("open" if state == TCP_ESTABLISHED else "reset", time.monotonic() - started)


def flood_bytes(frames: int, binary: bool) -> bytes:
    """`frames` masked client frames, ready to write: `PING`s, or binary frames
    (audio, though none was set up)."""
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
    for i in range(frames):
        if binary:
            protocol.send_binary(b"\x00\x01" * 80)
        else:
            protocol.send_text(json.dumps({"type": "PING", "payload": {"id": str(i)}}).encode())
    return b"".join(protocol.data_to_send())


async def flood(server: ServerProcess, session_id: str, token: str, data: bytes) -> Ending:
    """Connect, write `data` (`flood_bytes`) in one go while reading what comes back,
    until the server closes."""
    peer = await RawPeer.connect(server, session_id, token)
    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(peer.send_raw, data)
        with anyio.move_on_after(15):
            await peer.read()
        tasks.cancel_scope.cancel()
    closed_at = peer.closed_at or time.monotonic()
    peer.close()
    # After SESSION_RESTORED: a PONG or an ERROR for each frame handled.
    return Ending(peer.close_code, closed_at - started, answers=len(peer.events) - 1)


async def slowloris(server: ServerProcess, silent: bool, within: float) -> Ending:
    """Open a socket and never finish the request head: send nothing (`silent`), or
    part of it and then a byte every two seconds; what the server answers, and when."""
    loop = asyncio.get_running_loop()
    sock = await open_socket(server)
    started = time.monotonic()
    head = b"GET /ws/x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"

    async def dribble() -> None:
        sent = 0 if silent else 20
        with contextlib.suppress(ConnectionError):
            await loop.sock_sendall(sock, head[:sent])
            while not silent and sent < len(head):
                await asyncio.sleep(2.0)
                await loop.sock_sendall(sock, head[sent : sent + 1])
                sent += 1

    answer = b""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(dribble)
        with anyio.move_on_after(within):
            try:
                answer = await loop.sock_recv(sock, 4096)
            except ConnectionError:
                answer = b"reset"
        tasks.cancel_scope.cancel()
    sock.close()
    seconds = time.monotonic() - started
    if answer.startswith(b"HTTP/1.1 "):
        return Ending(answer.split()[1].decode(), seconds)
    return Ending(answer[:20].decode(errors="replace") or "open", seconds)


async def ignore_pings(server: ServerProcess, session_id: str, token: str, within: float) -> Ending:
    """Read everything, answer nothing (no pong, no close reply)."""
    peer = await RawPeer.connect(server, session_id, token)
    started = time.monotonic()
    with anyio.move_on_after(within):
        await peer.read(answer=False)
    peer.close()
    return Ending(peer.close_code, (peer.closed_at or time.monotonic()) - started)
