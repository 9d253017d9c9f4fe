"""The OpenAI-compatible engine, against a real llama-cpp-python server and fake peers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from readerai.engines.base import EngineRequest
from readerai.engines.factory import build_engine
from readerai.engines.local import default_model_path
from readerai.engines.openai_compat import OpenAIEngine
from readerai.errors import EngineError, EngineTimeout, ServiceStartupError
from readerai.settings import Settings

KEY = "sk-test-do-not-leak-1234"
KITE = [
    "Mia had a small red kite.",
    "One windy day the string snapped and the kite floated away over the trees.",
    "The new kite was blue and flew even higher.",
]
COLOR = EngineRequest("What color was the new kite?", list(enumerate(KITE)), "Mia's Kite")
LONG = EngineRequest("Tell me a long story about kites.", list(enumerate(KITE)), max_tokens=400)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` with SmolLM2 on a free loopback port; its /v1 URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(default_model_path()),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(proc, f"http://127.0.0.1:{port}/v1/models", log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"llama_cpp.server did not answer within 60 s: {log_path.read_text()[-2000:]}")


@pytest.fixture
async def engine(llama_server: str) -> AsyncIterator[OpenAIEngine]:
    remote = OpenAIEngine(llama_server, KEY, "smollm2", timeout=30)
    await remote.start()
    try:
        yield remote
    finally:
        await remote.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_peer(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on a loopback port standing in for a misbehaving upstream.

    On exit every connection it accepted is closed, so no socket outlives the test.
    """
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        with anyio.fail_after(5):
            for writer in writers:
                await writer.wait_closed()
            await server.wait_closed()


async def collect(engine: OpenAIEngine, request: EngineRequest) -> str:
    return "".join([delta async for delta in engine.stream(request)])


# ------------------------------------------------------------------ real server


@pytest.mark.slow
async def test_streams_an_answer_from_a_real_openai_compatible_server(
    engine: OpenAIEngine,
) -> None:
    deltas = [delta async for delta in engine.stream(COLOR)]
    assert len(deltas) > 1  # streamed, not one block
    answer = "".join(deltas)
    assert answer.strip()
    assert sum(c.isascii() for c in answer) / len(answer) > 0.95


@pytest.mark.slow
async def test_cancelling_mid_stream_returns_promptly_and_the_server_serves_on(
    engine: OpenAIEngine,
) -> None:
    first = anyio.Event()

    async def consume() -> None:
        async for _ in engine.stream(LONG):
            first.set()

    task = asyncio.get_running_loop().create_task(consume())
    with anyio.fail_after(30):
        await first.wait()
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - cancelled_at < 0.5
    with anyio.fail_after(30):
        assert (await collect(engine, COLOR)).strip()


@pytest.mark.slow
async def test_closing_the_stream_early_closes_the_response(engine: OpenAIEngine) -> None:
    stream = engine.stream(LONG)
    assert await anext(stream)
    with anyio.fail_after(2):
        await stream.aclose()
    with anyio.fail_after(30):
        assert (await collect(engine, COLOR)).strip()


# ------------------------------------------------------------------ failures


async def test_unreachable_server_is_an_engine_error_that_names_it_not_the_key() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = OpenAIEngine(url, KEY, "any", timeout=5)
    await engine.start()  # start does not need the server
    try:
        with anyio.fail_after(10), pytest.raises(EngineError) as caught:
            await collect(engine, COLOR)
    finally:
        await engine.close()
    assert type(caught.value) is EngineError
    assert caught.value.code == "engine_error"
    assert f"cannot reach the OpenAI-compatible server at {url}" in caught.value.message
    assert KEY not in caught.value.message


async def test_a_server_that_never_answers_is_an_engine_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # never answers; returns when the client gives up

    async with fake_peer(silent) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=0.5)
        await engine.start()
        started = time.perf_counter()
        with pytest.raises(EngineTimeout, match=r"did not answer within 0\.5 s"):
            await collect(engine, COLOR)
        assert time.perf_counter() - started < 5
        await engine.close()


async def test_an_http_error_names_the_status_and_redacts_the_key() -> None:
    body = b'{"error": {"message": "Incorrect API key provided: ' + KEY.encode() + b'"}}'

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async with fake_peer(refuse) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=5)
        await engine.start()
        with pytest.raises(EngineError, match="HTTP 401") as caught:
            await collect(engine, COLOR)
        await engine.close()
    assert "Incorrect API key provided: ***" in caught.value.message
    assert KEY not in caught.value.message
    # Nor does its traceback, chained causes and contexts included.
    assert KEY not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    "base_url", ["not a url", "ftp://127.0.0.1/v1", "http:///v1", "http://127.0.0.1:99999/v1"]
)
async def test_start_refuses_an_invalid_base_url(base_url: str) -> None:
    with pytest.raises(ServiceStartupError, match="openai engine failed to start"):
        await OpenAIEngine(base_url, KEY, "any", timeout=5).start()


async def test_stream_before_start_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="not started"):
        await anext(OpenAIEngine("http://127.0.0.1:1/v1", KEY, "any", 5).stream(COLOR))


def test_factory_builds_it_from_settings_and_keeps_the_key_out_of_its_repr() -> None:
    settings = Settings(engine="openai", openai_api_key=KEY, openai_model="m")
    engine = build_engine(settings)
    assert isinstance(engine, OpenAIEngine)
    assert engine.name == "openai"
    assert KEY not in repr(engine)


def _sse_peer(
    events: list[bytes],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A peer answering with these server-sent events (`data:` payloads; a payload
    starting with a colon is sent as it is, an SSE comment line)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"".join(
            (event if event.startswith(b":") else b"data: " + event) + b"\n\n" for event in events
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    return answer


def _chunk(text: str) -> bytes:
    return b'{"choices": [{"index": 0, "delta": {"content": "%s"}}]}' % text.encode()


async def test_stream_reads_the_deltas_of_each_event_until_done() -> None:
    events = [b'{"choices": [{"delta": {"role": "assistant"}}]}', _chunk("The kite "), b": ping"]
    events += [_chunk("was blue."), b"[DONE]", _chunk("after the end")]
    async with fake_peer(_sse_peer(events)) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=5)
        await engine.start()
        assert await collect(engine, COLOR) == "The kite was blue."
        await engine.close()


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (b'{"error": {"message": "model overloaded"}}', "reported an error mid-reply"),
        (b"{not json", "malformed event"),
        (b"[1, 2]", "malformed event"),
    ],
)
async def test_a_broken_event_mid_stream_is_an_engine_error(event: bytes, says: str) -> None:
    async with fake_peer(_sse_peer([_chunk("The kite "), event])) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=5)
        await engine.start()
        with pytest.raises(EngineError, match=says):
            await collect(engine, COLOR)
        await engine.close()


def _keep_alive_peer(
    requests: list[bytes], connections: list[int]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A keep-alive peer: answers every request on a connection with one short reply,
    recording each request line and, per connection, how many requests it carried."""
    body = b"data: " + _chunk("Blue.") + b"\n\ndata: [DONE]\n\n"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        index = len(connections) - 1
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            requests.append(head.split(b"\r\n")[0])
            connections[index] += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    return answer


async def test_replies_read_to_the_end_share_one_kept_alive_connection() -> None:
    requests: list[bytes] = []
    connections: list[int] = []
    async with fake_peer(_keep_alive_peer(requests, connections)) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=5)
        await engine.start()
        for _ in range(3):
            assert await collect(engine, COLOR) == "Blue."
        await engine.close()
    assert requests == [b"POST /v1/chat/completions HTTP/1.1"] * 3
    assert connections == [3]


async def test_a_reply_stopped_early_closes_its_connection() -> None:
    """The upstream must see the client go, so it can stop generating: a reply the
    consumer stops mid-stream is not kept for the pool, its connection is closed."""
    client_left = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        event = b"data: " + _chunk("Blue ") + b"\n\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(event), event)
        )
        await writer.drain()
        await reader.read()  # returns at EOF: the client closed the connection
        client_left.set()

    async with fake_peer(endless) as url:
        engine = OpenAIEngine(url, KEY, "any", timeout=5)
        await engine.start()
        stream = engine.stream(COLOR)
        assert await anext(stream) == "Blue "
        await stream.aclose()
        with anyio.fail_after(2):
            await client_left.wait()
        await engine.close()


async def test_the_environments_proxy_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY applies (as it did through the SDK), NO_PROXY exempts a host."""
    requests: list[bytes] = []
    connections: list[int] = []
    async with fake_peer(_keep_alive_peer(requests, connections)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.removesuffix("/v1"))
        monkeypatch.setenv("NO_PROXY", "exempt.invalid")
        # `.invalid` never resolves (RFC 2606): only the proxy can answer.
        proxied = OpenAIEngine("http://tutor-upstream.invalid/v1", KEY, "any", timeout=5)
        await proxied.start()
        assert await collect(proxied, COLOR) == "Blue."
        await proxied.close()
        exempt = OpenAIEngine("http://exempt.invalid/v1", KEY, "any", timeout=5)
        await exempt.start()
        with pytest.raises(EngineError, match="cannot reach"):
            await collect(exempt, COLOR)
        await exempt.close()
    assert requests == [b"POST http://tutor-upstream.invalid/v1/chat/completions HTTP/1.1"]
