"""What one streaming chat-completions request costs a client, by HTTP stack.

The time ReaderAI adds to the tutor's first word includes sending the engine's
request. This measures, for the same request, the time from the call to the moment
a loopback server (in this process, on the same loop) has read the whole request,
then reads a short streamed reply. Stacks: the official ``openai`` SDK
(``with_streaming_response``), httpx, and aiohttp (what `OpenAIEngine` uses).

    python bench/engine_request.py                # 300 requests each, 10 ms apart
    python bench/engine_request.py --requests 1000 --gap-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import openai
from ack_latency import machine

REPLY = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
MESSAGES = [
    {"role": "system", "content": "You are a reading tutor. " * 30},
    {"role": "user", "content": "Why did the lion laugh at the mouse?"},
]
BODY = {"model": "m", "messages": MESSAGES, "max_tokens": 100, "temperature": 0.2}


async def serve(read_at: list[float]) -> tuple[asyncio.Server, str]:
    """A keep-alive HTTP/1.1 server that stamps each request when read whole."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                read_at.append(time.perf_counter())
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(REPLY), REPLY)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


async def measure(
    name: str, send: Callable[[], Awaitable[None]], read_at: list[float], n: int, gap: float
) -> None:
    took: list[float] = []
    for i in range(n + 20):
        started = time.perf_counter()
        await send()
        if i >= 20:  # the first requests open connections and warm caches
            took.append((read_at[-1] - started) * 1e3)
        await asyncio.sleep(gap)
    q = statistics.quantiles(took, n=100)
    figures = f"p50 {q[49]:.3f} ms  p90 {q[89]:.3f} ms  p99 {q[98]:.3f} ms"
    print(f"{name:8s} call -> request read: {figures}")


async def main(n: int, gap: float) -> None:
    read_at: list[float] = []
    server, base = await serve(read_at)
    sdk = openai.AsyncOpenAI(base_url=base, api_key="key", max_retries=0)
    plain = httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer key"})
    lean = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = {**BODY, "stream": True}

    async def through_sdk() -> None:
        async with sdk.chat.completions.with_streaming_response.create(
            **BODY,  # type: ignore[call-overload]
            stream=True,
        ) as response:
            async for _ in response.iter_lines():
                pass

    async def through_httpx() -> None:
        async with plain.stream("POST", "/chat/completions", content=json.dumps(body)) as r:
            async for _ in r.aiter_lines():
                pass

    async def through_aiohttp() -> None:
        headers = {"Authorization": "Bearer key", "Content-Type": "application/json"}
        async with lean.post(
            f"{base}/chat/completions", data=json.dumps(body), headers=headers
        ) as response:
            async for _ in response.content:
                pass

    try:
        for name, send in (
            ("openai", through_sdk),
            ("httpx", through_httpx),
            ("aiohttp", through_aiohttp),
        ):
            await measure(name, send, read_at, n, gap)
    finally:
        await lean.close()
        await plain.aclose()
        await sdk.close()
        await asyncio.sleep(0.1)  # the server's handlers see the clients' connections close
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print("machine:", machine())
    asyncio.run(main(args.requests, args.gap_ms / 1000))
