"""`OpenAIAudioClient`: what the OpenAI-compatible speech backends share.

The base-URL check, the official SDK client (built off the loop: it reads CA
files), and the mapping of SDK errors to `VoiceError`. Invariants: every request
has a deadline (the SDK timeout); failures are not retried (``max_retries=0``), as
a student waiting to hear or be heard should get a visible error fast; no message
carries the API key or URL credentials.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import anyio
import openai

from readerai.errors import ServiceStartupError, VoiceError

#: Longest wait for the HTTP connections to close.
CLOSE_SECONDS = 2.0


class OpenAIAudioClient:
    """An `openai.AsyncOpenAI` for one speech backend, named ``service`` in errors."""

    def __init__(
        self, service: str, base_url: str, api_key: str, timeout: float, *, max_retries: int = 0
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None
        # For messages: a URL can carry credentials (http://user:secret@host/v1).
        self.shown_url = re.sub(r"//[^/@]*@", "//***@", self.base_url)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The started client; `VoiceError` before `start` or after `close`."""
        if self._client is None:
            raise VoiceError(f"{self.service} is not started")
        return self._client

    async def start(self) -> None:
        """Check the base URL and build the client; the server is not called."""
        if self._client is not None:
            return
        parts = urlsplit(self.base_url)
        try:
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"base URL must look like http(s)://host[:port]/path, got {self.shown_url!r}"
                )
            parts.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError as exc:
            raise ServiceStartupError(self.service, exc) from None
        self._client = await anyio.to_thread.run_sync(self._make_client)

    def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=self._max_retries,
        )

    async def close(self) -> None:
        """Close the HTTP connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await client.close()

    def error(self, exc: openai.APIError) -> VoiceError:
        """A `VoiceError` describing ``exc`` without the key; raise it ``from None``
        (the SDK's message can hold the response body, which may echo the key)."""
        where = f"{self.service} at {self.shown_url}"
        if isinstance(exc, openai.APITimeoutError):
            return VoiceError(f"{where} did not answer within {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return VoiceError(f"cannot reach {where}: {self.redact(_cause(exc))}")
        if isinstance(exc, openai.APIStatusError):
            detail = self.redact(exc.message)[:200]
            return VoiceError(f"{where} answered HTTP {exc.status_code}: {detail}")
        return VoiceError(f"{where} failed: {self.redact(exc.message)[:200]}")

    def redact(self, text: str) -> str:
        """``text`` with the API key masked."""
        return text.replace(self._api_key, "***") if self._api_key else text


def _cause(exc: BaseException) -> str:
    """The innermost cause, e.g. ``ConnectError: All connection attempts failed``."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
