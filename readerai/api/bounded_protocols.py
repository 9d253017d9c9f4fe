"""uvicorn's HTTP and WebSocket protocols, with the bounds uvicorn 0.54 leaves out.

`readerai serve` runs these (`readerai.cli`); each adds a limit to one protocol and
changes nothing else.

- `BoundedHttpProtocol` (httptools): uvicorn starts no timer on a connection until
  it has answered a request, and httptools stores request headers without limit.
  A client that opens a socket and sends nothing, or a request head a few bytes at
  a time (slowloris), would hold a socket and memory for ever. Here a request head
  (a WebSocket upgrade included) must be complete within `head_timeout` seconds of
  the connection opening or of the previous response, and within `MAX_HEAD_BYTES`;
  otherwise the client gets `408 Request Timeout` or `431 Request Header Fields Too
  Large` and the connection is closed.
- `BoundedWebSocketProtocol` (websockets sans-I/O):
  - what waits to be sent to one client is bounded (`send_buffer`: the socket's
    kernel buffer, which autotuning would grow to 4 MiB, and uvicorn's own), so a
    client that stops reading soon makes sends wait, and the actor's send timeout
    closes it (4008) before it holds megabytes;
  - when the application is done with a connection, or a keepalive ping went
    unanswered (close code 1011), uvicorn closes the transport gracefully, which
    waits for the peer to take what is still buffered for it; a peer that stopped
    reading never does, and the connection would stay for ever (or, once uvicorn's
    buffer is empty, the kernel would hold it, retrying). Here it is reset at once
    if the peer is not reading, else `CLOSE_LINGER_SECONDS` later;
  - several text frames can be written in one call (`SEND_TEXTS`, an ASGI
    extension advertised in the scope): the events a turn has ready at once (its
    acknowledgement, `RESPONSE_STARTED`, the first delta) leave in one `send`
    system call instead of one each;
  - a client writing as fast as it can fills each read (about 256 KiB, 10,000 small
    frames, a hundred milliseconds to parse): reads are parsed `PARSE_SLICE_BYTES` at
    a time, other connections running in between, and no faster than the application
    takes the messages. Once the server's close frame is out (a flood closed with
    1008), what the client has queued is parsed only to find its close reply, and a
    client with more than `MAX_BYTES_AFTER_CLOSE` received or waiting is read no
    more and reset `CLOSE_LINGER_SECONDS` later (by then its close frame has reached
    it; a reset at once would make its next write fail with the frame unread).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Mapping
from typing import Any, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

#: The ASGI extension (in the scope's "extensions") and the key of a `websocket.send`
#: message that carries several text frames, written to the socket together; the
#: message's "text" is the first of them, for a server without the extension.
SEND_TEXTS = "readerai.websocket.send_texts"

#: Most bytes of a request line and headers; a JWT in `Sec-WebSocket-Protocol` is
#: well under 1 KiB. Checked between reads, so a head may pass it by one read.
MAX_HEAD_BYTES = 64 * 1024
#: How long a connection the server has closed may take to flush what it was sent
#: (its close frame included) before it is aborted.
CLOSE_LINGER_SECONDS = 5.0
#: Bytes of a read parsed before other connections get a turn: about 100 small
#: frames, 1-2 ms of parsing (16 KiB, 800 frames, stopped the loop for 10-15 ms at a
#: time and raised other sessions' acknowledgement p99 from 7 to 20 ms; test_floods).
PARSE_SLICE_BYTES = 2 * 1024
#: Bytes a client may still send once the server has sent its close frame: frames in
#: flight (a few audio chunks) and the close reply. Parsed to find the close reply,
#: so each KiB a flooder gets costs the node some 0.2 ms.
MAX_BYTES_AFTER_CLOSE = 16 * 1024

#: Bytes the kernel may still hold for a peer whose keepalive timed out before it
#: counts as not reading (`_peer_behind`).
UNREAD_BYTES = 4096
#: `SO_LINGER` on, for 0 s: closing the socket resets the connection.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
_REFUSALS = {
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request head has `head_timeout` seconds and
    `MAX_HEAD_BYTES`. Build it with `functools.partial(BoundedHttpProtocol,
    head_timeout=...)`: uvicorn passes the rest."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        #: Bytes received of the request head being read; None between heads.
        self._head_bytes: int | None = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431)
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._head_bytes = None
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_head_timer()
        super().handle_websocket_upgrade()
        # The transport now belongs to the WebSocket protocol and this object is
        # dropped, never told `connection_lost`: its parser, holding its callbacks,
        # would keep it in a reference cycle until a collector pass (every WebSocket
        # connection's, some 40 objects, each pass then stopping the loop longer).
        self.parser = None  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        answering = self.cycle is not None and not self.cycle.response_complete
        if not self.transport.is_closing() and not answering:
            self._await_head()  # the next request's head, if one comes

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        in_request = self.cycle is not None and not self.cycle.response_complete
        if self._head_bytes is not None and not in_request:
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        self._stop_head_timer()
        self._head_bytes = None
        if self.transport.is_closing():
            return
        self.logger.debug("Refused an incomplete request head: %d", status)
        self.transport.write(_REFUSALS[status] + b"content-length: 0\r\nconnection: close\r\n\r\n")
        self.transport.close()


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets sans-I/O protocol; a connection the server closed is
    gone `CLOSE_LINGER_SECONDS` later, whether or not the peer reads, and what waits
    to be sent to one client is bounded by `send_buffer` (0: the kernel's default).
    Build it with `functools.partial(BoundedWebSocketProtocol, send_buffer=...)`."""

    def __init__(self, *args: Any, send_buffer: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_buffer = send_buffer
        self._abort_timer: asyncio.TimerHandle | None = None
        #: Received but not parsed yet (reading is paused meanwhile).
        self._backlog = bytearray()
        self._parse_scheduled = False
        self._bytes_after_close = 0
        #: Past `MAX_BYTES_AFTER_CLOSE`: read no more, parse nothing, wait for the reset.
        self._deaf = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.send_buffer:
            # The kernel's buffer (Linux doubles the figure; autotuned it grows to
            # `tcp_wmem`'s maximum, 4 MiB by default) and uvicorn's own, past which
            # sends wait: a client that stops reading holds this much, not megabytes.
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            self.transport.set_write_buffer_limits(high=self.send_buffer)

    def data_received(self, data: bytes) -> None:
        if self._deaf:
            self.transport.pause_reading()  # uvicorn may have resumed it
            return
        if self._backlog or len(data) > PARSE_SLICE_BYTES:
            # Keep the order (parse after what is waiting); read no more meanwhile.
            self._backlog += data
            self.transport.pause_reading()
            self._parse_soon()
        else:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        if self._past_close_budget(len(data)):
            return
        if self.close_sent:
            self._bytes_after_close += len(data)
        super().data_received(data)

    def _past_close_budget(self, more: int) -> bool:
        """Whether, once the close frame is out, `more` bytes take the client past
        `MAX_BYTES_AFTER_CLOSE`; if so its backlog is dropped unparsed, it is read no
        more, and it is reset `CLOSE_LINGER_SECONDS` later. Not at once: a client
        still writing would have its next write fail on the reset, and the close
        frame waiting unread for it (why it was closed) would be lost."""
        if self._deaf:
            return True
        if not self.close_sent or self._bytes_after_close + more <= MAX_BYTES_AFTER_CLOSE:
            return False
        self._deaf = True
        self._backlog.clear()
        self.transport.pause_reading()
        if self.transport.can_write_eof():
            # After the close frame, our end of the stream: the client need not wait
            # for the TCP close it would otherwise wait for after its close reply.
            self.transport.write_eof()
        self._abort_later()
        return True

    def _parse_soon(self) -> None:
        if not self._parse_scheduled:
            self._parse_scheduled = True
            self.loop.call_soon(self._parse_backlog)

    def _parse_backlog(self) -> None:
        """Parse the next slice of the backlog once the application has taken every
        message parsed before (`receive` calls again); the rest on a later turn."""
        self._parse_scheduled = False
        if self.disconnected or self.transport.is_closing():
            self._backlog.clear()
            return
        if self._past_close_budget(len(self._backlog)):
            return  # reset now rather than parse the budget's worth first
        if not self.close_sent and not self.queue.empty():
            return  # a client is parsed no faster than its messages are handled
        data = bytes(self._backlog[:PARSE_SLICE_BYTES])
        del self._backlog[:PARSE_SLICE_BYTES]  # cheap: a bytearray keeps a start offset
        self._parse(data)
        if self._backlog:
            self._parse_soon()
        elif not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()  # uvicorn has not paused it for its own queue

    async def receive(self) -> ASGIReceiveEvent:
        message = await super().receive()
        if self._backlog:
            # uvicorn resumes reading once its queue is empty; the backlog comes first.
            self.transport.pause_reading()
            self._parse_soon()
        return message

    async def run_asgi(self) -> None:
        self.scope["extensions"][SEND_TEXTS] = {}
        try:
            await super().run_asgi()
        finally:
            if self._backlog:
                self._parse_soon()  # the application is gone: look for the close reply
            if self.writable.is_set() or self.disconnected:
                self._abort_later()
            else:  # the peer has stopped reading: the app gave it up already (4008)
                self.reset()

    async def send(self, message: ASGISendEvent) -> None:
        texts = cast(Mapping[str, Any], message).get(SEND_TEXTS)
        if texts is None or message["type"] != "websocket.send":
            await super().send(message)
            if message["type"] == "websocket.close" and self._backlog:
                self._parse_soon()  # for the peer's close reply (or over budget: reset)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            await super().send(message)  # uvicorn's own answer to a send in that state
            return
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()  # sends close 1011 and closes the transport
        if self._peer_behind():  # it reads nothing: the close frame cannot reach it
            self.reset()
        else:
            self._abort_later()

    def _peer_behind(self) -> bool:
        """Whether the peer leaves data unread: uvicorn's buffer is over its limit, or
        the kernel holds more for it than a close frame and a last event or two."""
        if not self.writable.is_set():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
        return bool(struct.unpack("i", unsent)[0] > UNREAD_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)

    def _abort_later(self) -> None:
        if self._abort_timer is None and not self.disconnected:
            self._abort_timer = self.loop.call_later(CLOSE_LINGER_SECONDS, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        if not self.disconnected:
            self.reset()

    def reset(self) -> None:
        """Drop the connection now, with a TCP reset: a plain close would leave the
        kernel holding the unsent data, retrying a peer that never takes it."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()
