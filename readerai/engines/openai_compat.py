"""`OpenAIEngine`: any server that speaks the OpenAI chat-completions API.

OpenAI itself, llama.cpp's or llama-cpp-python's server, vLLM, Ollama and others.
Replies are streamed (``stream=True``) with the official ``openai`` SDK.

Invariants: stopping the consumer (cancel or ``aclose``) closes the HTTP response,
so the upstream sees the client go and can stop generating; every network wait has
a deadline (the SDK timeout, and `CLOSE_SECONDS` for closing); errors leave as
`EngineError`/`EngineTimeout` whose messages never contain the API key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import anyio
import openai

from readerai.engines.base import EngineRequest
from readerai.engines.prompt import build_messages
from readerai.errors import EngineError, EngineTimeout, ServiceStartupError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

#: Longest wait for the HTTP response to close after the consumer stops.
CLOSE_SECONDS = 2.0
TEMPERATURE = 0.2


class OpenAIEngine:
    """Streams replies from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    `start` checks the base URL but does not call the server, which may come up
    later; an unreachable server fails each reply with `EngineError` instead.
    Failed requests are not retried here (``max_retries=0`` by default): a reply
    the student is waiting for should fail fast and visibly.
    """

    name: str = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float,
        *,
        max_retries: int = 0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._model = model
        self._timeout = timeout
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None
        # For messages: a URL can carry credentials (http://user:secret@host/v1).
        self._shown_url = re.sub(r"//[^/@]*@", "//***@", self._base_url)

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self._shown_url!r}, model={self._model!r})"

    async def start(self) -> None:
        """Validate the base URL and build the client (off the loop: it reads CA files)."""
        if self._client is not None:
            return
        parts = urlsplit(self._base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            reason = ValueError(
                f"base URL must look like http(s)://host[:port]/path, got {self._shown_url!r}"
            )
            raise ServiceStartupError("openai engine", reason)
        try:
            parts.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError as exc:
            raise ServiceStartupError("openai engine", exc) from exc
        self._client = await anyio.to_thread.run_sync(self._make_client)

    def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key,
            timeout=self._timeout,
            max_retries=self._max_retries,
        )

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await client.close()

    async def stream(self, request: EngineRequest) -> AsyncGenerator[str, None]:
        """Yield ``choices[0].delta.content`` of each streamed chunk, in order."""
        client = self._client
        if client is None:
            raise EngineError("openai engine is not started")
        messages = cast("list[ChatCompletionMessageParam]", build_messages(request))
        try:
            chunks = await client.chat.completions.create(
                model=self._model,
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=TEMPERATURE,
                stream=True,
            )
            try:
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            finally:
                # Bounded and shielded: runs even when this task is being cancelled.
                with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                    await chunks.close()
        except openai.APIConnectionError as exc:
            raise self._engine_error(exc) from exc
        except openai.APIError as exc:
            # Not chained: the SDK's message carries the response body, which may
            # echo the key, and tracebacks print chained messages.
            raise self._engine_error(exc) from None

    def _engine_error(self, exc: openai.APIError) -> EngineError:
        where = f"the OpenAI-compatible server at {self._shown_url}"
        if isinstance(exc, openai.APITimeoutError):
            return EngineTimeout(f"{where} did not answer within {self._timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return EngineError(f"cannot reach {where}: {self._redact(_cause(exc))}")
        if isinstance(exc, openai.APIStatusError):
            detail = self._redact(exc.message)[:200]
            return EngineError(f"{where} answered HTTP {exc.status_code}: {detail}")
        return EngineError(f"{where} failed: {self._redact(exc.message)[:200]}")

    def _redact(self, text: str) -> str:
        # Some servers echo the key they refused; it must not reach logs or clients.
        return text.replace(self._api_key, "***") if self._api_key else text


def _cause(exc: BaseException) -> str:
    """The innermost cause's class and message, e.g. ``ConnectError: All connection attempts
    failed``; the SDK's own message is only "Connection error."."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
