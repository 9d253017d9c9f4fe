"""A client's frames are parsed no faster than the application takes them, through a
real uvicorn server: a flood the application closes costs the parsing of what it
read and at most 16 KiB past the close (it was up to 64 KiB, some 1,300 frames).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from readerai.api.bounded_protocols import (
    CLOSE_LINGER_SECONDS,
    MAX_BYTES_AFTER_CLOSE,
    PARSE_SLICE_BYTES,
    BoundedWebSocketProtocol,
)
from tests.api.uvicorn_app import handshake, serving

#: Messages the application reads before it closes the connection (1008).
READ_BEFORE_CLOSE = 50
FLOOD_FRAMES = 3000


@asynccontextmanager
async def recording_server(parsed: list[tuple[bool, int]]) -> AsyncIterator[int]:
    """A server whose protocol records each parse of frames: (close sent already,
    bytes); not the handshake's request, which uvicorn hands over to it first."""

    class Recording(BoundedWebSocketProtocol):
        def _parse(self, data: bytes) -> None:
            close_sent = self.close_sent
            super()._parse(data)
            if self.handshake_complete and not self._deaf:  # not refused
                parsed.append((close_sent, len(data)))

    async def read_then_close(websocket: WebSocket) -> None:
        await websocket.accept()
        for _ in range(READ_BEFORE_CLOSE):
            await websocket.receive_text()
        await websocket.close(1008)

    async with serving(read_then_close, functools.partial(Recording, send_buffer=0)) as port:
        yield port


async def flood(port: int, frames: int) -> tuple[int | None, int]:
    """Connect, write `frames` text frames at once, read until the server closes
    (answering its close frame); the close code received (None: the connection was
    reset or just ended) and the bytes of a frame."""
    reader, writer, client = await handshake(port)
    for i in range(frames):
        client.send_text(f'{{"type": "PING", "payload": {{"id": "{i:05}"}}}}'.encode())
    sent = b"".join(client.data_to_send())
    writer.write(sent)
    code: int | None = None
    try:
        while data := await asyncio.wait_for(reader.read(65536), 10):
            client.receive_data(data)
            for event in client.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    code = int.from_bytes(event.data[:2], "big")
            writer.write(b"".join(client.data_to_send()))  # the close reply
    except ConnectionResetError:
        pass
    writer.close()
    return code, len(sent) // frames


async def test_a_flood_is_parsed_only_as_far_as_the_application_reads() -> None:
    parsed: list[tuple[bool, int]] = []
    async with recording_server(parsed) as port:
        code, frame_bytes = await flood(port, FLOOD_FRAMES)
    assert code == 1008
    before = sum(n for closed, n in parsed if not closed)
    after = sum(n for closed, n in parsed if closed)
    # What the application read, and at most the slice in which its close fell
    # (parsed eagerly, the whole first read of some 64 KiB went before the close).
    assert before <= READ_BEFORE_CLOSE * frame_bytes + PARSE_SLICE_BYTES, parsed
    # Past the close, at most the budget for frames in flight (then a reset).
    assert after <= MAX_BYTES_AFTER_CLOSE == 16 * 1024, parsed


async def test_a_client_sending_little_gets_its_frames_and_a_clean_close() -> None:
    parsed: list[tuple[bool, int]] = []
    async with recording_server(parsed) as port:
        code, frame_bytes = await flood(port, READ_BEFORE_CLOSE)
    assert code == 1008
    # Every frame, and after the close the client's close reply (a few bytes).
    assert sum(n for closed, n in parsed if not closed) == READ_BEFORE_CLOSE * frame_bytes
    assert 0 < sum(n for closed, n in parsed if closed) < 16


def send_until_closed(port: int) -> tuple[ConnectionClosed, float]:
    """In a thread with its own event loop (the server's loop must not wait on it):
    send PINGs, a frame per `send` as a buggy app would, until the connection is
    closed; what the client learnt of the close, and after how many seconds."""

    async def run() -> tuple[ConnectionClosed, float]:
        started = time.monotonic()
        async with connect(f"ws://127.0.0.1:{port}/", close_timeout=2 * CLOSE_LINGER_SECONDS) as ws:
            try:
                for i in range(FLOOD_FRAMES):
                    await ws.send(f'{{"type": "PING", "payload": {{"id": "{i:05}"}}}}')
                await ws.recv()
            except ConnectionClosed as closed:
                return closed, time.monotonic() - started
        raise AssertionError("the server never closed the connection")

    return asyncio.run(run())


async def test_a_client_still_sending_after_the_close_gets_its_close_code() -> None:
    """A client that goes on sending past the close budget still learns why it was
    closed: it is read no more, and its close frame is followed by the end of the
    stream rather than a reset (which would make its next write fail, losing the
    close frame waiting unread: how CI saw `closed with None`)."""
    parsed: list[tuple[bool, int]] = []
    async with recording_server(parsed) as port:
        closed, seconds = await asyncio.to_thread(send_until_closed, port)
    assert closed.rcvd is not None, f"reset before the close frame was read: {closed!r}"
    assert closed.rcvd.code == 1008
    assert sum(n for closed, n in parsed if closed) <= MAX_BYTES_AFTER_CLOSE, parsed
    # Told by the end of the stream, not left waiting for the linger timer's reset.
    assert seconds < CLOSE_LINGER_SECONDS, seconds
