"""`OpenAIEngine`: any server that speaks the OpenAI chat-completions API.

OpenAI itself, llama.cpp's or llama-cpp-python's server, vLLM, Ollama and others.
Replies are streamed (``stream=True``) with the official ``openai`` SDK.

Invariants: stopping the consumer (cancel or ``aclose``) closes the HTTP response,
so the upstream sees the client go and can stop generating; every network wait has
a deadline (the SDK timeout, and `CLOSE_SECONDS` for closing); errors leave as
`EngineError`/`EngineTimeout` whose messages never contain the API key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast

import anyio
import openai

from readerai.engines.base import EngineRequest
from readerai.engines.prompt import build_messages
from readerai.errors import EngineError, EngineTimeout
from readerai.upstream import OpenAIUpstream

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
        self._model = model
        self._upstream = OpenAIUpstream(
            "openai engine",
            base_url,
            api_key,
            timeout,
            failure=EngineError,
            timeout_failure=EngineTimeout,
            max_retries=max_retries,
            described_as="the OpenAI-compatible server",
        )

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self._upstream.shown_url!r}, model={self._model!r})"

    async def start(self) -> None:
        """Validate the base URL and build the client; the server is not called."""
        await self._upstream.start()

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._upstream.close()

    async def stream(self, request: EngineRequest) -> AsyncGenerator[str, None]:
        """Yield ``choices[0].delta.content`` of each streamed chunk, in order.

        The SDK sends the request and maps its errors; the server-sent events are
        read here as lines of JSON. Letting the SDK build a typed model of every
        chunk cost more CPU than the rest of a turn together (py-spy, `readerai
        bench stream`: 60 % of the server's samples, a third of them in
        `construct_type`).
        """
        client = self._upstream.client
        messages = cast("list[ChatCompletionMessageParam]", build_messages(request))
        try:
            async with client.chat.completions.with_streaming_response.create(
                model=self._model,
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=TEMPERATURE,
                stream=True,
            ) as response:
                try:
                    async for line in response.iter_lines():
                        text = _delta_text(line)
                        if text is _END:
                            break
                        if text:
                            yield text
                finally:
                    # Bounded and shielded: runs even when this task is being cancelled.
                    with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                        await response.close()
        except openai.APIConnectionError as exc:
            raise self._upstream.error(exc) from exc
        except openai.APIError as exc:
            # Not chained: the SDK's message carries the response body, which may
            # echo the key, and tracebacks print chained messages.
            raise self._upstream.error(exc) from None


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
        raise EngineError("the OpenAI-compatible server sent a malformed event") from None
    if not isinstance(chunk, dict):
        raise EngineError("the OpenAI-compatible server sent a malformed event")
    if chunk.get("error"):
        raise EngineError("the OpenAI-compatible server reported an error mid-reply")
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None
