"""OpenTelemetry traces of turns: off by default; when on, one trace per turn.

A turn's trace is a root span `turn` (attributes `session.id`, `turn.id`,
`question.chars`, and at its end `turn.status`, `turn.seq`, `turn.error`) with
children `store.question` (the question and the reply's `in_progress` row written),
`engine.stream` (the engine call after its slot was granted; event `first_token`),
`tts.synthesize` (one per sentence spoken, when voice is on) and `store.reply` (the
reply written whole). No span carries question or reply text.

On when `READERAI_TRACING=on`, or `auto` (the default) and an OTLP endpoint is set in
the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
`OTEL_SDK_DISABLED=true` turns it off. Spans go over OTLP/HTTP (protobuf), configured
by the standard `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables, from the SDK's batch
processor thread, never from the event loop.

Off, nothing of OpenTelemetry's SDK or exporter is imported, and every span is the
same do-nothing object: a turn pays two attribute lookups and an empty `with`.
The provider is the app's own, never the global one: two apps in a process trace
apart, and FastAPI's built-in telemetry (which follows the global provider) stays off.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TracingMode = Literal["auto", "on", "off"]
AttributeValue = str | bool | int | float
#: The standard variables that name where OTLP spans go.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: How long closing may take to send the spans still queued.
FLUSH_SECONDS = 5.0


class SpanLike(Protocol):
    """What instrumented code may do with a span (an OpenTelemetry span, or nothing)."""

    def set_attribute(self, key: str, value: AttributeValue) -> Any: ...

    def add_event(self, name: str) -> Any: ...


class TurnSpan(SpanLike, Protocol):
    """A turn's root span: made current around the work it parents, ended once."""

    def active(self) -> AbstractContextManager[object]: ...

    def end(self, status: str, error: str | None = None) -> None: ...


class _NoSpan:
    """Records nothing: what every span is when tracing is off."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def add_event(self, name: str) -> None:
        return None

    def active(self) -> _NoSpan:
        return self

    def end(self, status: str, error: str | None = None) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


NO_SPAN = _NoSpan()


def tracing_wanted(mode: TracingMode, environ: Mapping[str, str]) -> bool:
    """Whether to trace, from the setting and the standard OpenTelemetry variables."""
    if mode == "off" or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return mode == "on" or any(environ.get(name) for name in ENDPOINT_VARIABLES)


class Tracing:
    """The node's tracing service: `start` sets up the exporter when tracing is wanted."""

    def __init__(self, enabled: bool, environ: Mapping[str, str]) -> None:
        self.enabled = enabled
        self._environ = dict(environ)
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None

    async def start(self) -> None:
        """Import OpenTelemetry's SDK and exporter (in a thread: it reads many files)."""
        if self.enabled and self._provider is None:
            self._provider = await anyio.to_thread.run_sync(_provider, self._environ)
            self._tracer = self._provider.get_tracer("readerai")

    async def close(self) -> None:
        """Send the spans still queued (for `FLUSH_SECONDS` at most) and stop exporting."""
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            with anyio.move_on_after(FLUSH_SECONDS):
                await anyio.to_thread.run_sync(_shut_down, provider, abandon_on_cancel=True)

    def turn(self, session_id: str, turn_id: str, question_chars: int) -> TurnSpan:
        """The root span of a new turn (a new trace), not yet current."""
        tracer = self._tracer
        if tracer is None:
            return NO_SPAN
        from opentelemetry.context import Context

        span = tracer.start_span(
            "turn",
            context=Context(),  # a root: one trace per turn, whatever is current
            attributes={
                "session.id": session_id,
                "turn.id": turn_id,
                "question.chars": question_chars,
            },
        )
        return _OtelTurn(span)

    def span(self, name: str, **attributes: AttributeValue) -> AbstractContextManager[SpanLike]:
        """A child of the current turn's span, current inside the `with`; nothing outside
        a turn (work outside turns, like preparing a passage's narration, is not traced)."""
        tracer = self._tracer
        if tracer is None:
            return NO_SPAN
        from opentelemetry import trace

        if not trace.get_current_span().get_span_context().is_valid:
            return NO_SPAN
        return tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        )

    def event(self, name: str) -> None:
        """Mark a moment (`first_token`) on the current span, if tracing."""
        if self._tracer is not None:
            from opentelemetry import trace

            trace.get_current_span().add_event(name)


class _OtelTurn:
    """A turn's root span: its children are made under `active()`."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str) -> None:
        self._span.add_event(name)

    def active(self) -> AbstractContextManager[object]:
        from opentelemetry import trace

        return trace.use_span(
            self._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def end(self, status: str, error: str | None = None) -> None:
        from opentelemetry.trace import StatusCode

        self._span.set_attribute("turn.status", status)
        if error is not None:
            self._span.set_attribute("turn.error", error)
            self._span.set_status(StatusCode.ERROR, error)
        self._span.end()


def _provider(environ: Mapping[str, str]) -> TracerProvider:
    """A tracer provider exporting over OTLP/HTTP in batches (blocking: imports)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(
            f"tracing is on but {exc.name} is missing: pip install 'readerai[tracing]', "
            "or set READERAI_TRACING=off"
        ) from exc

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over this default name.
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": "readerai"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _shut_down(provider: TracerProvider) -> None:
    provider.force_flush(int(FLUSH_SECONDS * 1000))
    provider.shutdown()
