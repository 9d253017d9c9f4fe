"""`OpenAIUpstream`: what every backend on an OpenAI-compatible server shares.

The chat engine and the speech backends all keep: the base-URL check, the official
SDK client (built off the loop: it reads CA files), and the mapping of SDK errors to
the caller's error classes. Invariants: every request has a deadline (the SDK
timeout); failures are not retried (``max_retries=0``), as a student waiting for a
reply should get a visible error fast; no message carries the API key or URL
credentials.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import anyio
import openai

from readerai.errors import ReaderAIError, ServiceStartupError

#: Longest wait for the HTTP connections to close.
CLOSE_SECONDS = 2.0


class OpenAIUpstream:
    """An `openai.AsyncOpenAI` for one backend, named ``service`` in errors.

    Failures become ``failure`` errors, timeouts ``timeout_failure`` ones (by
    default ``failure`` too).
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        api_key: str,
        timeout: float,
        *,
        failure: type[ReaderAIError],
        timeout_failure: type[ReaderAIError] | None = None,
        max_retries: int = 0,
        described_as: str | None = None,
    ) -> None:
        self.service = service
        #: How failure messages name the server ("<described_as> at <url>").
        self._described_as = described_as or service
        self._failure = failure
        self._timeout_failure = timeout_failure or failure
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None
        self.shown_url = shown_url(self.base_url)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The started client; a ``failure`` error before `start` or after `close`."""
        if self._client is None:
            raise self._failure(f"{self.service} is not started")
        return self._client

    async def start(self) -> None:
        """Check the base URL and build the client; the server is not called."""
        if self._client is not None:
            return
        check_base_url(self.service, self.base_url)
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

    def error(self, exc: openai.APIError) -> ReaderAIError:
        """An error describing ``exc`` without the key; raise it ``from None``
        (the SDK's message can hold the response body, which may echo the key)."""
        where = f"{self._described_as} at {self.shown_url}"
        if isinstance(exc, openai.APITimeoutError):
            return self._timeout_failure(f"{where} did not answer within {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return self._failure(f"cannot reach {where}: {self.redact(innermost_cause(exc))}")
        if isinstance(exc, openai.APIStatusError):
            detail = self.redact(exc.message)[:200]
            return self._failure(f"{where} answered HTTP {exc.status_code}: {detail}")
        return self._failure(f"{where} failed: {self.redact(exc.message)[:200]}")

    def redact(self, text: str) -> str:
        """``text`` with the API key masked."""
        return redact(text, self._api_key)


def shown_url(base_url: str) -> str:
    """`base_url` as messages show it: a URL can carry credentials (http://user:secret@host/v1)."""
    return re.sub(r"//[^/@]*@", "//***@", base_url)


def check_base_url(service: str, base_url: str) -> None:
    """`ServiceStartupError` for `service` unless `base_url` is http(s)://host[:port]/path."""
    parts = urlsplit(base_url)
    try:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base URL must look like http(s)://host[:port]/path, got {shown_url(base_url)!r}"
            )
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise ServiceStartupError(service, exc) from None


def redact(text: str, api_key: str) -> str:
    """``text`` with `api_key` masked."""
    return text.replace(api_key, "***") if api_key else text


def innermost_cause(exc: BaseException) -> str:
    """The innermost cause, e.g. ``ConnectError: All connection attempts failed``."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
