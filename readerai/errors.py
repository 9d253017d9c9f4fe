"""ReaderAI's one error hierarchy.

Every error has a stable ``code`` (used in ``ERROR`` events, HTTP problem bodies and
logs) and an HTTP status. Errors that end a WebSocket map to a close code through
:func:`close_code_for`.

    ReaderAIError                      code            http
    ├── ProtocolError                  (client sent something we cannot use)
    │   ├── InvalidJSON                invalid_json     400
    │   ├── UnknownEventType           unknown_type     400
    │   ├── InvalidPayload             invalid_payload  422
    │   ├── TextTooLong                text_too_long    422
    │   ├── Unsupported                unsupported      400
    │   └── FrameTooLarge              frame_too_large  413   -> close 1009
    ├── RateLimited                    rate_limited     429   -> close 1008 when it persists
    ├── NotFound                       not_found        404
    ├── Unauthenticated                unauthenticated  401   -> close 4401
    │   └── InvalidCode                invalid_code     401
    ├── Forbidden                      forbidden        403   -> close 4403
    ├── Conflict                       conflict         409
    ├── SlowConsumer                   slow_consumer    -     -> close 4008
    ├── EngineError                    engine_error     502
    │   ├── EngineTimeout              engine_timeout   503
    │   └── EngineBusy                 engine_busy      503
    ├── StoreUnavailable               store_unavailable 503
    ├── BusUnavailable                 bus_unavailable  503   (Redis unreachable)
    ├── VoiceError                     voice_error      502   (STT or TTS failed)
    └── ServiceStartupError            startup_failed   -     (refuses to start)

WebSocket close codes (documented in docs/protocol.md):

    1000 normal                 1007 text frame not UTF-8 (sent by uvicorn)
    1008 rate limit persisted   1009 frame too large     1011 internal error
    1012 server restarting      1013 try again later (store unavailable)
    4000 idle timeout           4401 not signed in
    4403 not allowed            4404 session not found
    4008 client not reading (outbound queue full or send timed out)
    1011 also: no pong within READERAI_WS_PING_TIMEOUT (sent by uvicorn's keepalive)

Before the WebSocket upgrade there is no close code: a request head that is not
complete in time gets HTTP 408, one too large 431 (`readerai.api.bounded_protocols`).
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes ReaderAI uses; part of the public API."""

    NORMAL = 1000
    #: A text frame that is not UTF-8; uvicorn closes with it before the app sees it.
    INVALID_DATA = 1007
    #: Over the message rate limit past its strikes (text or binary frames).
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    #: Also uvicorn's, when a keepalive ping goes unanswered (`READERAI_WS_PING_*`).
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    #: The session could not be read (the store is unavailable): reconnect later.
    TRY_AGAIN_LATER = 1013
    IDLE_TIMEOUT = 4000
    #: The client stopped reading; sent if it has room, then the connection is reset.
    SLOW_CONSUMER = 4008
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    SESSION_NOT_FOUND = 4404


class ReaderAIError(Exception):
    """Base of every error ReaderAI raises on purpose."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(ReaderAIError):
    """The client sent something that is not a valid event."""

    code = "invalid_payload"
    http_status = 400


class InvalidJSON(ProtocolError):
    code = "invalid_json"


class UnknownEventType(ProtocolError):
    code = "unknown_type"


class InvalidPayload(ProtocolError):
    code = "invalid_payload"
    http_status = 422


class TextTooLong(ProtocolError):
    code = "text_too_long"
    http_status = 422


class Unsupported(ProtocolError):
    code = "unsupported"


class FrameTooLarge(ProtocolError):
    code = "frame_too_large"
    http_status = 413


class RateLimited(ReaderAIError):
    code = "rate_limited"
    http_status = 429


class NotFound(ReaderAIError):
    code = "not_found"
    http_status = 404


class Unauthenticated(ReaderAIError):
    """No token, or one that is malformed, tampered with or expired."""

    code = "unauthenticated"
    http_status = 401


class InvalidCode(Unauthenticated):
    """A sign-in code that is unknown, already used or expired."""

    code = "invalid_code"


class Forbidden(ReaderAIError):
    """A valid token whose user may not do this."""

    code = "forbidden"
    http_status = 403


class Conflict(ReaderAIError):
    code = "conflict"
    http_status = 409


class SlowConsumer(ReaderAIError):
    """The client stopped reading; its outbound queue filled or a send timed out."""

    code = "slow_consumer"


class EngineError(ReaderAIError):
    code = "engine_error"
    http_status = 502


class EngineTimeout(EngineError):
    code = "engine_timeout"
    http_status = 503


class EngineBusy(EngineError):
    code = "engine_busy"
    http_status = 503


class StoreUnavailable(ReaderAIError):
    code = "store_unavailable"
    http_status = 503


class BusUnavailable(ReaderAIError):
    """The cross-node bus (Redis) cannot be reached; node-local work goes on."""

    code = "bus_unavailable"
    http_status = 503


class ServiceStartupError(ReaderAIError):
    """A service failed to start; the node refuses to serve."""

    code = "startup_failed"

    def __init__(self, service: str, cause: BaseException) -> None:
        super().__init__(f"{service} failed to start: {type(cause).__name__}: {cause}")
        self.service = service
        self.cause = cause


def close_code_for(error: BaseException) -> CloseCode:
    """The WebSocket close code that ends a connection because of ``error``."""
    if isinstance(error, FrameTooLarge):
        return CloseCode.MESSAGE_TOO_BIG
    if isinstance(error, RateLimited):
        return CloseCode.POLICY_VIOLATION
    if isinstance(error, SlowConsumer):
        return CloseCode.SLOW_CONSUMER
    if isinstance(error, NotFound):
        return CloseCode.SESSION_NOT_FOUND
    if isinstance(error, Unauthenticated):
        return CloseCode.UNAUTHENTICATED
    if isinstance(error, Forbidden):
        return CloseCode.FORBIDDEN
    if isinstance(error, StoreUnavailable):
        return CloseCode.TRY_AGAIN_LATER
    return CloseCode.INTERNAL_ERROR


class VoiceError(ReaderAIError):
    """Speech-to-text or text-to-speech failed (a local model, or the server behind it)."""

    code = "voice_error"
    http_status = 502
