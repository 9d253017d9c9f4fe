"""A bare Starlette WebSocket endpoint under a real uvicorn server, and a sans-I/O
client for it: for tests of `readerai.api.bounded_protocols` on the wire."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri


@asynccontextmanager
async def serving(
    endpoint: Callable[[WebSocket], Awaitable[None]], ws_protocol: Callable[..., Any]
) -> AsyncIterator[int]:
    """`endpoint` at `/`, served with `ws_protocol` on a free port (yielded)."""
    app = Starlette(routes=[WebSocketRoute("/", endpoint)])
    listening = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog
    server = uvicorn.Server(uvicorn.Config(app, ws=ws_protocol, log_level="error"))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        listening.close()


async def handshake(
    port: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientProtocol]:
    """A connection to `serving`'s port with its WebSocket handshake done."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
    client.send_request(client.connect())
    writer.write(b"".join(client.data_to_send()))
    while not any(isinstance(e, Response) for e in client.events_received()):
        client.receive_data(await reader.read(65536))
    return reader, writer, client
