"""A fake OpenAI-compatible LLM server with exact, configurable timing.

``POST /v1/chat/completions`` answers like OpenAI: with ``"stream": true``, Server-Sent
Events — a role chunk, one chunk per token (a word and a space), a chunk with the
``finish_reason``, a usage chunk if ``stream_options.include_usage`` asks for one,
then ``data: [DONE]``; otherwise one ``chat.completion``. ``GET /v1/models`` lists the
one model.

Timing, the invariant a load test relies on: with ``t0`` the moment a request has been
read, the role chunk and the first token are written at ``t0 + ttft``, token ``i``
(from 0) at ``t0 + ttft + i / R``. The times are absolute on the loop's monotonic
clock, so a late wake-up never delays the tokens after it. Each content chunk carries
the wall-clock time it was written in ``x_sent_at`` (non-standard), so a client can
tell what a proxy in between adds. A non-streaming reply is written when its last
token would have been.

The stream holds ``--tokens`` tokens, or ``max_tokens`` (``max_completion_tokens``)
if the request asks for fewer; then ``finish_reason`` is ``"length"``, as with
OpenAI, else ``"stop"``.

HTTP is a minimal HTTP/1.1 over asyncio streams: keep-alive, ``Content-Length``
request bodies (chunked ones are refused with 501), chunked responses for streams.
It is lighter than an ASGI stack by a wide margin per chunk, which keeps the fake
far from saturation, and its timing honest, at thousands of concurrent streams.

    python -m readerai.loadtest.upstream --host 127.0.0.1 --port P \\
        --ttft-ms T --tokens-per-second R --tokens N
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

#: How long a kept-alive connection may sit idle, or a request take to arrive.
IDLE_SECONDS = 300.0
#: How much longer than its schedule a response may take to write (a stalled reader).
WRITE_GRACE_SECONDS = 30.0
MAX_BODY_BYTES = 16 * 1024 * 1024
#: What the fake model says, a word a token, over and over.
PASSAGE = (
    "The lion woke and caught the little mouse, who begged to be let go and promised "
    "to help the lion one day. The lion laughed but let him go."
)
WORDS = tuple(PASSAGE.split())


@dataclass(frozen=True)
class Timing:
    """How the fake model answers: first token after ``ttft`` s, then ``rate`` a second."""

    ttft: float
    rate: float
    tokens: int


@dataclass(frozen=True)
class HttpRequest:
    """One request as read from the wire."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class ChatRequest:
    """What a chat completion request asks of the fake model."""

    model: str
    stream: bool
    max_tokens: int | None
    include_usage: bool
    prompt_tokens: int


class HttpError(Exception):
    """A request this server answers with an error status, then closes the connection."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- HTTP/1.1 ----------------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on the connection, or None when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "head too large") from None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = request_line.split(" ")
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line") from None
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed Content-Length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
    body = await reader.readexactly(length)
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return HttpRequest(method, target.partition("?")[0], headers, body, keep_alive)


def response_head(status: HTTPStatus, headers: dict[str, str], keep_alive: bool) -> bytes:
    """The status line and headers of a response."""
    if not keep_alive:
        headers = {**headers, "Connection": "close"}
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(status: HTTPStatus, body: object, keep_alive: bool) -> bytes:
    """A whole response with a JSON body."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
    return response_head(status, headers, keep_alive) + data


def error_body(message: str) -> dict[str, object]:
    """An error in OpenAI's shape, which the SDK turns into its exceptions."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }


def sse_chunk(event: object) -> bytes:
    """One Server-Sent Event carrying JSON, as one HTTP chunk."""
    return _http_chunk(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


# --- the fake model ------------------------------------------------------------------


def parse_chat_request(body: bytes, default_model: str) -> ChatRequest:
    """The chat request in `body`, checked just enough to answer it."""
    try:
        wire = json.loads(body)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
    if not isinstance(wire, dict):
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
    limits = [
        value
        for value in (wire.get("max_tokens"), wire.get("max_completion_tokens"))
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    options = wire.get("stream_options")
    messages = wire.get("messages")
    prompt = " ".join(
        str(message.get("content", ""))
        for message in (messages if isinstance(messages, list) else [])
        if isinstance(message, dict)
    )
    model = wire.get("model")
    return ChatRequest(
        model=model if isinstance(model, str) and model else default_model,
        stream=wire.get("stream") is True,
        max_tokens=max(0, min(limits)) if limits else None,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        prompt_tokens=len(prompt.split()),
    )


class Completion:
    """One answer in the making: its id, tokens, schedule and chunks."""

    def __init__(self, request: ChatRequest, timing: Timing, received: float) -> None:
        self.request = request
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        limit = request.max_tokens
        self.count = timing.tokens if limit is None else min(timing.tokens, limit)
        self.finish_reason = "length" if self.count < timing.tokens else "stop"
        self.tokens = [f"{word} " for word in itertools.islice(itertools.cycle(WORDS), self.count)]
        self._first = received + timing.ttft
        self._interval = 1.0 / timing.rate

    def due(self, index: int) -> float:
        """When token `index` is to be written (loop time); -1 is the role chunk's."""
        return self._first + max(index, 0) * self._interval

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
        """A ``chat.completion.chunk`` with one choice."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.request.model,
            "choices": [choice],
        }

    def usage(self) -> dict[str, int]:
        prompt = self.request.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.count,
            "total_tokens": prompt + self.count,
        }

    def whole(self) -> dict[str, object]:
        """The non-streaming ``chat.completion``."""
        message = {"role": "assistant", "content": "".join(self.tokens)}
        choice = {"index": 0, "message": message, "logprobs": None}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.request.model,
            "choices": [{**choice, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        }


async def sleep_until(deadline: float) -> None:
    """Sleep until loop time `deadline`; return at once if it has passed."""
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def stream_completion(
    writer: asyncio.StreamWriter, completion: Completion, keep_alive: bool
) -> None:
    """Write `completion` as Server-Sent Events on its schedule (see the module doc)."""
    headers = {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "Transfer-Encoding": "chunked",
    }
    writer.write(response_head(HTTPStatus.OK, headers, keep_alive))
    async with asyncio.timeout_at(completion.due(completion.count) + WRITE_GRACE_SECONDS):
        await sleep_until(completion.due(-1))
        writer.write(sse_chunk(completion.chunk({"role": "assistant", "content": ""})))
        for index, token in enumerate(completion.tokens):
            await sleep_until(completion.due(index))
            chunk = completion.chunk({"content": token})
            chunk["x_sent_at"] = time.time()
            writer.write(sse_chunk(chunk))
            await writer.drain()
        tail = [sse_chunk(completion.chunk({}, completion.finish_reason))]
        if completion.request.include_usage:
            usage = {**completion.chunk({}), "choices": [], "usage": completion.usage()}
            tail.append(sse_chunk(usage))
        tail += [_http_chunk(b"data: [DONE]\n\n"), _http_chunk(b"")]
        writer.write(b"".join(tail))
        await writer.drain()


class UpstreamServer:
    """Routes requests to the fake model; one instance serves every connection."""

    def __init__(self, timing: Timing, model: str) -> None:
        self.timing = timing
        self.model = model
        self.started = int(time.time())

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection until either side closes it."""
        try:
            while True:
                async with asyncio.timeout(IDLE_SECONDS):
                    request = await read_request(reader)
                if request is None:
                    break
                await self.respond(request, writer)
                if not request.keep_alive:
                    break
        except HttpError as exc:
            writer.write(json_response(exc.status, error_body(exc.message), keep_alive=False))
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client left or stalled: nothing to tell it
        finally:
            writer.close()

    async def respond(self, request: HttpRequest, writer: asyncio.StreamWriter) -> None:
        """Answer one request (a stream is written over time)."""
        received = asyncio.get_running_loop().time()
        route = (request.method, request.path)
        if route == ("POST", "/v1/chat/completions"):
            chat = parse_chat_request(request.body, self.model)
            completion = Completion(chat, self.timing, received)
            if chat.stream:
                await stream_completion(writer, completion, request.keep_alive)
                return
            await sleep_until(completion.due(completion.count - 1))
            writer.write(json_response(HTTPStatus.OK, completion.whole(), request.keep_alive))
        elif route == ("GET", "/v1/models"):
            model = {"id": self.model, "object": "model", "created": self.started}
            models = {"object": "list", "data": [{**model, "owned_by": "readerai-loadtest"}]}
            writer.write(json_response(HTTPStatus.OK, models, request.keep_alive))
        elif request.path in ("/v1/chat/completions", "/v1/models"):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} not allowed")
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no route {request.path}")
        await writer.drain()


async def serve(host: str, port: int, timing: Timing, model: str) -> None:
    """Serve until SIGTERM or SIGINT.

    Leaving stops listening without waiting for the connections (since Python 3.12,
    ``Server.wait_closed`` would wait out every idle keep-alive one); `asyncio.run`
    then cancels their tasks, and each closes its socket as it unwinds.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    upstream = UpstreamServer(timing, model)
    server = await asyncio.start_server(upstream.serve_connection, host, port)
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        server.close()


# --- command line ------------------------------------------------------------------


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m readerai.loadtest.upstream --port P --ttft-ms T ...``."""
    parser = argparse.ArgumentParser(prog="python -m readerai.loadtest.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft-ms", type=_non_negative, default=200.0)
    parser.add_argument("--tokens-per-second", type=_positive, default=50.0)
    parser.add_argument("--tokens", type=_count, default=100)
    parser.add_argument("--model", default="readerai-loadtest", help="the one model listed")
    args = parser.parse_args(argv)
    timing = Timing(args.ttft_ms / 1000, args.tokens_per_second, args.tokens)
    asyncio.run(serve(args.host, args.port, timing, args.model))


if __name__ == "__main__":
    main()
