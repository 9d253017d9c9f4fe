"""Structured logging: structlog events, JSON lines or a console renderer.

Events are named (`turn.finished`) and carry fields; they never carry a token or a
student's question text at info level. The fields that say what a line belongs to
come from structlog's context variables, bound once per scope, not per line:

- `request_id`: every line of an HTTP request (`api/problems.py`) and of a WebSocket
  connection (`api/ws.py`), the client's `X-Request-ID` when it sent a sane one;
- `session_id`: every line of a connection (`api/ws.py`);
- `turn_id`: every line of a turn, from its question to its stored reply
  (`session/runner.py`); the turn's tasks inherit it, being started in its context.

A task that serves the whole node but may be started from inside a connection or a
turn (a loop over every reply) starts `without_log_context`, so that it does not
carry the ids of whoever started it. Lines that uvicorn logs (the access log) take
the context of the thread that logs them, like structlog's own.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog
from structlog.typing import EventDict, WrappedLogger

T = TypeVar("T")
#: Where a stdlib record (uvicorn's) keeps the context it was logged in.
_CONTEXT_ATTR = "readerai_context"


async def without_log_context(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` (as a task's whole body) with no context fields bound."""
    structlog.contextvars.clear_contextvars()  # this task's copy of the context only
    return await coro


class _RecordQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting happens there."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not isinstance(record.msg, dict):  # a stdlib logger's: take the context now
            setattr(record, _CONTEXT_ATTR, structlog.contextvars.get_contextvars())
        return record


def _merge_record_context(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """The context a stdlib record was logged in (the writer thread has none of it)."""
    record = event_dict.get("_record")
    for key, value in getattr(record, _CONTEXT_ATTR, {}).items():
        event_dict.setdefault(key, value)
    return event_dict


class _ClientFaultFilter(logging.Filter):
    """uvicorn logs a client's non-UTF-8 text frame as an error with a traceback; it is
    the client's fault (closed with 1007), so it becomes one info line, no traceback:
    otherwise any client could write tracebacks into the log, one per connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error" and record.getMessage().startswith("Invalid UTF-8"):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = "websocket.invalid_utf8 (closed with 1007)", ()
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


class _QueryStringFilter(logging.Filter):
    """uvicorn logs each request's and WebSocket's path with its query string; a client
    may put a credential there (a sign-in `?code=`, a token where none belongs), so the
    query's values are left out: `/ws/abc?lastSeq=…&token=…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(_without_query_values(arg) for arg in record.args)
        return True


def _without_query_values(arg: object) -> object:
    if not (isinstance(arg, str) and arg.startswith("/") and "?" in arg):
        return arg
    path, _, query = arg.partition("?")
    names = (pair.partition("=")[0] for pair in query.split("&"))
    return f"{path}?{'&'.join(f'{name}=…' for name in names)}"


def configure_logging(level: str, fmt: str) -> logging.handlers.QueueListener:
    """Route structlog and the stdlib loggers (uvicorn's) through one renderer.

    Writing to stderr can block, so the event loop only enqueues records; a listener
    thread formats and writes them. Stop the returned listener at exit to flush it.
    """
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            # First: a line below the level costs a level check, not the chain.
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_merge_record_context, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, stream, respect_handler_level=False)
    root = logging.getLogger()
    handler = _RecordQueueHandler(records)
    handler.addFilter(_ClientFaultFilter())
    handler.addFilter(_QueryStringFilter())
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    listener.start()
    return listener
