"""Structured logging: structlog events, JSON lines or a console renderer.

Events are named (`turn.finished`) and carry fields (`session_id`, `turn_id`); they
never carry a token or a student's question text at info level.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys

import structlog


class _RecordQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting happens there."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


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
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
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
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    listener.start()
    return listener
