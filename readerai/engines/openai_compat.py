"""`OpenAIEngine`: any server that speaks the OpenAI chat-completions API.

OpenAI itself, llama.cpp's or llama-cpp-python's server, vLLM, Ollama and others.
Replies are streamed (``"stream": true``) over aiohttp, on one connection pool per
engine.

Why not the official ``openai`` SDK (which the speech backends still use): on this
path it is the time ReaderAI adds to the tutor's first word. From the call to the
upstream having read the request: 1.9 ms through the SDK, 1.3 ms through httpx,
0.4 ms through aiohttp (`bench/engine_request.py`, 2-core machine); inside a busy
server the SDK's share grew to 3-5 ms (`readerai bench stream`, per-stage trace).
The request is a fixed JSON body; the reply, server-sent events read as lines of
JSON, never went through the SDK's models anyway.

Invariants: stopping the consumer (cancel or ``aclose``) closes the HTTP response and
its connection, so the upstream sees the client go and can stop generating; a reply
read to its end returns the connection to the pool; every network wait has a
deadline (``timeout`` for connecting and between reads, `CLOSE_SECONDS` for closing);
errors leave as `EngineError`/`EngineTimeout` whose messages never contain the API
key; failed requests are not retried (a student waiting for a reply should get a
visible error fast).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio

from readerai import __version__
from readerai.engines.base import EngineRequest
from readerai.engines.prompt import build_messages
from readerai.errors import EngineError, EngineTimeout
from readerai.upstream import check_base_url, innermost_cause, redact, shown_url

#: Longest wait for the HTTP response to close after the consumer stops.
CLOSE_SECONDS = 2.0
TEMPERATURE = 0.2
#: Most of an error response's body read to explain it.
ERROR_BODY_BYTES = 8192
#: Longest line of a server-sent event stream (a chunk of JSON).
MAX_LINE_BYTES = 1 << 20
DESCRIBED_AS = "the OpenAI-compatible server"


class OpenAIEngine:
    """Streams replies from an OpenAI-compatible ``/chat/completions`` endpoint.

    `start` checks the base URL and opens the connection pool but does not call the
    server, which may come up later; an unreachable server fails each reply with
    `EngineError` instead.
    """

    name: str = "openai"

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float) -> None:
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._base_url = base_url.rstrip("/")
        self._url = f"{self._base_url}/chat/completions"
        self._shown_url = shown_url(self._base_url)
        self._where = f"{DESCRIBED_AS} at {self._shown_url}"
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "User-Agent": f"readerai/{__version__}",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
        }
        self._http: aiohttp.ClientSession | None = None
        self._proxy: str | None = None

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self._shown_url!r}, model={self._model!r})"

    async def start(self) -> None:
        """Validate the base URL and open the connection pool; the server is not called."""
        if self._http is not None:
            return
        check_base_url("openai engine", self._base_url)
        # HTTP(S)_PROXY and NO_PROXY apply, as they did through the SDK; read once,
        # off the loop (aiohttp's `trust_env` would also read ~/.netrc per request).
        self._proxy = await anyio.to_thread.run_sync(_env_proxy, self._url)
        self._http = aiohttp.ClientSession(
            # No limit here: the engine limiter bounds the replies in flight.
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=self._timeout
            ),
            # A line (one event) may take up to twice this.
            read_bufsize=MAX_LINE_BYTES // 2,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
        )

    async def close(self) -> None:
        """Close the connection pool; idempotent."""
        http, self._http = self._http, None
        if http is not None:
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await http.close()

    async def stream(self, request: EngineRequest) -> AsyncGenerator[str, None]:
        """Yield ``choices[0].delta.content`` of each streamed chunk, in order."""
        if self._http is None:
            raise EngineError("openai engine is not started")
        body = json.dumps(
            {
                "model": self._model,
                "messages": build_messages(request),
                "max_tokens": request.max_tokens,
                "temperature": TEMPERATURE,
                "stream": True,
            }
        )
        try:
            response = await self._http.post(
                self._url, data=body, headers=self._headers, proxy=self._proxy
            )
        except TimeoutError:
            raise self._timed_out() from None
        except aiohttp.ClientError as exc:
            cause = self._redact(innermost_cause(exc))
            raise EngineError(f"cannot reach {self._where}: {cause}") from None
        try:
            if response.status >= 400:
                raise await self._status_error(response)
            while True:
                try:
                    line = await response.content.readline()
                except TimeoutError:
                    raise self._timed_out() from None
                except aiohttp.ClientError as exc:
                    raise EngineError(
                        f"{self._where} broke off the reply: {self._redact(innermost_cause(exc))}"
                    ) from None
                except ValueError:  # aiohttp: a line longer than its buffer allows
                    raise EngineError(f"{DESCRIBED_AS} sent an event too long") from None
                if not line:
                    break  # the server ended the stream without [DONE]
                text = _delta_text(line.decode("utf-8", "replace"))
                if text is _END:
                    break
                if text:
                    yield text
        except BaseException:
            # Cancelled, closed early or failed: drop the connection, so the upstream
            # sees the client go (a pooled connection would keep the reply running).
            response.close()
            raise
        # Read to its end: the connection goes back to the pool.
        with anyio.move_on_after(CLOSE_SECONDS, shield=True):
            await response.release()

    def _timed_out(self) -> EngineTimeout:
        return EngineTimeout(f"{self._where} did not answer within {self._timeout:g} s")

    async def _status_error(self, response: aiohttp.ClientResponse) -> EngineError:
        """An HTTP error status as `EngineError`, with the server's message (key masked)."""
        try:
            raw = await response.content.read(ERROR_BODY_BYTES)
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        text = raw.decode("utf-8", "replace")
        detail = _error_message(text) or response.reason or ""
        return EngineError(
            f"{self._where} answered HTTP {response.status}: {self._redact(detail)[:200]}"
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)


def _env_proxy(url: str) -> str | None:
    """The proxy the environment sets for `url` (HTTP(S)_PROXY, NO_PROXY), if any."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _error_message(body: str) -> str:
    """``error.message`` of an OpenAI error body, else the body itself."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return body.strip()
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else body.strip()


#: Returned by `_delta_text` for the stream's ``data: [DONE]``.
_END = "\x00end"


def _delta_text(line: str) -> str | None:
    """The content of one server-sent-event line of a chat-completions stream."""
    if not line.startswith("data:"):
        return None  # blank separators, comments, `event:` lines
    data = line[5:].strip()
    if data == "[DONE]":
        return _END
    try:
        chunk = json.loads(data)
    except ValueError:
        raise EngineError(f"{DESCRIBED_AS} sent a malformed event") from None
    if not isinstance(chunk, dict):
        raise EngineError(f"{DESCRIBED_AS} sent a malformed event")
    if chunk.get("error"):
        raise EngineError(f"{DESCRIBED_AS} reported an error mid-reply")
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None
