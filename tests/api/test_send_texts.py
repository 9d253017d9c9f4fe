"""Several text frames in one write (`SEND_TEXTS`), through a real uvicorn server.

The connection writer hands the events queued together (a turn's acknowledgement,
`RESPONSE_STARTED` and first delta) to the transport at once; with `readerai serve`'s
WebSocket protocol they leave in one write, and under any other server they are sent
one by one, in the same order.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from readerai.api.bounded_protocols import BoundedWebSocketProtocol
from readerai.api.ws import StarletteTransport
from tests.api.uvicorn_app import handshake, serving

TEXTS = ["first", "second " * 50, "third"]


class CountedWrites:
    """The server's real transport, with the writes made to it counted."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        if not data.startswith(b"HTTP/"):  # the handshake's response is not counted
            self._writes.append(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def counting(
    base: type[WebSocketsSansIOProtocol], writes: list[bytes], **settings: Any
) -> Callable[..., Any]:
    """`base` (built with `settings`), its writes after the handshake counted in `writes`."""

    class Counting(base):  # type: ignore[valid-type,misc]
        async def run_asgi(self) -> None:
            self.transport = CountedWrites(self.transport, writes)
            await super().run_asgi()

    return functools.partial(Counting, **settings)


async def send_on_request(websocket: WebSocket) -> None:
    """Waits for "go", sends `TEXTS` with one `send_texts`, then waits for "done"."""
    await websocket.accept()
    await websocket.receive_text()
    await StarletteTransport(websocket).send_texts(TEXTS)
    await websocket.receive_text()
    await websocket.close()


async def received_texts(port: int) -> list[str]:
    """Connects, says "go", and returns the text frames the server sent back."""
    reader, writer, client = await handshake(port)
    client.send_text(b"go")
    writer.write(b"".join(client.data_to_send()))
    texts: list[str] = []
    while len(texts) < len(TEXTS):
        client.receive_data(await asyncio.wait_for(reader.read(65536), 10))
        frames = [e for e in client.events_received() if isinstance(e, Frame)]
        texts += [f.data.decode() for f in frames if f.opcode is Opcode.TEXT]
    client.send_text(b"done")
    writer.write(b"".join(client.data_to_send()))
    writer.close()
    return texts


def frames_in(write: bytes) -> int:
    """How many frames one write of the server holds."""
    count, offset = 0, 0
    while offset < len(write):
        length = write[offset + 1] & 0x7F
        header = 2 + {126: 2, 127: 8}.get(length, 0)
        if length == 126:
            length = int.from_bytes(write[offset + 2 : offset + 4], "big")
        offset += header + length
        count += 1
    return count


async def test_readerai_protocol_writes_the_texts_together() -> None:
    writes: list[bytes] = []
    protocol = counting(BoundedWebSocketProtocol, writes, send_buffer=0)
    async with serving(send_on_request, protocol) as port:
        texts = await received_texts(port)
    assert texts == TEXTS
    assert frames_in(writes[0]) == len(TEXTS), "the three frames left in one write"


async def test_other_servers_get_the_texts_one_by_one_in_order() -> None:
    writes: list[bytes] = []
    async with serving(send_on_request, counting(WebSocketsSansIOProtocol, writes)) as port:
        texts = await received_texts(port)
    assert texts == TEXTS
    assert [frames_in(w) for w in writes[: len(TEXTS)]] == [1] * len(TEXTS)
