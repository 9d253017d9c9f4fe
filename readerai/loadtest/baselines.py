"""Two minimal servers of the load-test protocol, the points ReaderAI is compared with.

``plain``
    The floor for Python: the ``websockets`` library's asyncio server with its
    default settings, compression off, any path.
``naive``
    The original design written the naive way: one FastAPI endpoint at
    ``/ws/{session_id}``, a global dict of sockets and a ``receive_json`` loop,
    under uvicorn's defaults; plus ``GET /healthz``.

The protocol (a sliver of ReaderAI's, enough for the harness to time round trips):

- on connect the server sends ``SESSION_RESTORED``;
- ``STUDENT_INTERRUPTION`` is answered with ``INTERRUPTION_ACKNOWLEDGED``
  (``turnId``: a uuid4 hex, ``timestamp``: ISO 8601, UTC);
- ``READING_PROGRESS`` with ``PROGRESS_ACK``, ``PING`` with ``PONG``;
- anything else is ignored.

The first subprotocol a client offers is answered (the harness offers ``readerai.v1``
and ``bearer.<token>``; neither server checks them). Both servers write ``ready`` on
stdout once listening and exit with status 0 on SIGTERM or SIGINT.

    python -m readerai.loadtest.baselines {plain,naive} --host H --port P
"""

# No `from __future__ import annotations` here, unlike the rest of ReaderAI: FastAPI
# resolves an endpoint's string annotations against module globals only, and the naive
# endpoint's `WebSocket` is imported inside `naive_app` (see there for why).

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Data, Subprotocol

if TYPE_CHECKING:
    from fastapi import FastAPI, WebSocket

#: What every connection is sent first.
SESSION_RESTORED: dict[str, object] = {"type": "SESSION_RESTORED", "payload": {}}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def reply_to(event: object) -> dict[str, object] | None:
    """The server's answer to one decoded client event, or None when it gets none."""
    if not isinstance(event, dict):
        return None
    match event.get("type"):
        case "STUDENT_INTERRUPTION":
            payload = {"turnId": uuid.uuid4().hex, "timestamp": datetime.now(UTC).isoformat()}
            return {"type": "INTERRUPTION_ACKNOWLEDGED", "payload": payload}
        case "READING_PROGRESS":
            return {"type": "PROGRESS_ACK", "payload": {}}
        case "PING":
            return {"type": "PONG", "payload": {}}
        case _:
            return None


def _announce_ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# --- plain: the websockets library, nothing else ---------------------------------


def _decode(frame: Data) -> object:
    if isinstance(frame, bytes):
        return None
    try:
        event: object = json.loads(frame)
    except ValueError:
        return None
    return event


def _first_offered(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    return offered[0] if offered else None


async def _plain_connection(websocket: ServerConnection) -> None:
    # A client leaving mid-send is normal under load; websockets would log it as an error.
    with contextlib.suppress(ConnectionClosed):
        await websocket.send(json.dumps(SESSION_RESTORED))
        async for frame in websocket:
            reply = reply_to(_decode(frame))
            if reply is not None:
                await websocket.send(json.dumps(reply))


async def serve_plain(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT; leaving closes every connection (going away)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        _plain_connection, host, port, compression=None, select_subprotocol=_first_offered
    ):
        _announce_ready()
        await stop.wait()


# --- naive: the original design, written the naive way ---------------------------
#
# Intentionally naive, as a baseline: this is NOT ReaderAI's style (a global dict of
# sockets, no bounded queues, no deadlines, no actor). Do not copy it.

#: Connected sockets by session id, the naive way: global, unbounded, last one wins.
connected: dict[str, "WebSocket"] = {}


def naive_app() -> "FastAPI":
    """The FastAPI app of the naive design.

    FastAPI is imported here, not at the top, so that a ``plain`` process does not
    carry it: the floor's memory and start-up stay those of websockets alone.
    """
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws/{session_id}")
    async def session_socket(websocket: WebSocket, session_id: str) -> None:
        offered: list[str] = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=offered[0] if offered else None)
        connected[session_id] = websocket
        try:
            await websocket.send_json(SESSION_RESTORED)
            while True:
                data = await websocket.receive_json()
                reply = reply_to(data)
                if reply is not None:
                    await websocket.send_json(reply)
        except WebSocketDisconnect:
            pass
        finally:
            connected.pop(session_id, None)

    return app


def run_naive(host: str, port: int) -> None:
    """`uvicorn.run(app, host, port, log_level="warning")`, announcing when it listens."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                _announce_ready()

    config = uvicorn.Config(naive_app(), host=host, port=port, log_level="warning")
    AnnouncingServer(config).run()


# --- command line -----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m readerai.loadtest.baselines {plain,naive} --host H --port P``."""
    parser = argparse.ArgumentParser(prog="python -m readerai.loadtest.baselines")
    parser.add_argument("server", choices=["plain", "naive"], help="which baseline to run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    # Uvicorn shuts down gracefully on a stop signal, then raises it again once its own
    # handlers are gone: this handler turns that into exit status 0. It also covers a
    # signal arriving before either server has installed its own.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_cleanly)
    if args.server == "plain":
        asyncio.run(serve_plain(args.host, args.port))
    else:
        run_naive(args.host, args.port)


if __name__ == "__main__":
    main()
