"""The services of one node, started together and closed in reverse order.

Start-up is concurrent and fail-fast: every service starts at once; if any fails, the
ones that did start are closed and `ServiceStartupError` names the service and cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib
import os
from dataclasses import dataclass
from typing import Protocol

import anyio
import structlog

from readerai.auth.access import Access
from readerai.auth.tokens import TokenService
from readerai.bus.base import Bus
from readerai.bus.factory import build_bus
from readerai.collector import keep_freezing, tune_for_serving
from readerai.engines.base import Engine
from readerai.engines.cluster import ClusterLimit
from readerai.engines.factory import build_engine
from readerai.engines.limiter import EngineLimiter
from readerai.errors import BusUnavailable, Conflict, ServiceStartupError, StoreUnavailable
from readerai.grounding import split_sentences
from readerai.jobs import PREPARE_PASSAGE, JobWorker, PassagePreparer
from readerai.looplag import watch_loop_lag
from readerai.metrics import Metrics
from readerai.samples import load_samples
from readerai.session.actor import ConnectionLimits, SessionServices
from readerai.session.catalog import PassageCatalog
from readerai.session.feed import ClassFeed
from readerai.session.hub import SessionHub
from readerai.session.read_aloud import ReadAloudModel
from readerai.session.reading_results import ReadingRecorder
from readerai.session.router import SessionRouter
from readerai.session.runner import TurnLimits, TurnRunner
from readerai.settings import Settings
from readerai.store import Store
from readerai.store.models import ReadingHelp
from readerai.store.sql import SqlStore
from readerai.supervisor import TaskSupervisor
from readerai.tracing import Tracing, tracing_wanted
from readerai.voice.base import SpeechToText, TextToSpeech
from readerai.voice.factory import (
    SegmenterFactory,
    build_segmenter_factory,
    build_stt,
    build_tts,
)
from readerai.voice.stt import TimedSpeechToText
from readerai.voice.tts import TimedTextToSpeech

log = structlog.get_logger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class NodeServices:
    """Everything a node runs, reachable from `app.state.services`."""

    settings: Settings
    store: Store
    engine: Engine
    bus: Bus
    router: SessionRouter
    metrics: Metrics
    supervisor: TaskSupervisor
    limiter: EngineLimiter
    catalog: PassageCatalog
    hub: SessionHub
    runner: TurnRunner
    stt: SpeechToText
    tts: TextToSpeech
    new_segmenter: SegmenterFactory
    access: Access
    jobs: JobWorker
    tracing: Tracing
    ready: bool = False
    _loop_watch: asyncio.Task[None] | None = None
    _sampling: asyncio.Task[None] | None = None
    _freezing: asyncio.Task[None] | None = None
    _tokens: TokenService | None = None

    @property
    def tokens(self) -> TokenService:
        """Mints and checks tokens (set up by `start`)."""
        if self._tokens is None:
            raise StoreUnavailable("the server is starting")
        return self._tokens

    @classmethod
    def build(cls, settings: Settings, *, metrics_dir: str | None = None) -> NodeServices:
        """Every service, not started; `metrics_dir`: the workers' shared metrics folder
        (`PROMETHEUS_MULTIPROC_DIR`) when this process is one of several workers."""
        store = SqlStore(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout,
            write_retry_seconds=settings.store_write_retry_seconds,
        )
        engine = build_engine(settings)
        metrics = Metrics(metrics_dir)
        # OpenTelemetry's own variables say where spans go (and whether, in `auto`).
        tracing = Tracing(tracing_wanted(settings.tracing, os.environ), os.environ)
        supervisor = TaskSupervisor()
        metrics.watch_tasks(lambda: len(supervisor))
        limiter = EngineLimiter(settings.engine_concurrency, settings.engine_queue_limit)
        catalog = PassageCatalog(store)
        bus = build_bus(settings.redis_url, prefix=settings.redis_prefix)
        router = SessionRouter(bus, supervisor)
        feed = ClassFeed()
        router.bind_feed(feed)
        hub = SessionHub(
            store,
            supervisor,
            router,
            history_limit=settings.history_limit,
            progress_interval=settings.progress_flush_seconds,
            lease_seconds=settings.turn_lease_seconds,
            stream_max_len=settings.reply_stream_max_len,
            feed=feed,
        )
        tts = build_tts(settings)
        runner = TurnRunner(
            store=store,
            engine=engine,
            limiter=limiter,
            cluster=ClusterLimit(
                bus, settings.cluster_engine_concurrency, settings.engine_timeout_seconds + 10
            ),
            catalog=catalog,
            supervisor=supervisor,
            metrics=metrics,
            limits=TurnLimits(
                engine_timeout=settings.engine_timeout_seconds,
                max_reply_tokens=settings.max_reply_tokens,
                context_sentences=settings.context_sentences,
                lease_seconds=settings.turn_lease_seconds,
                stream_max_len=settings.reply_stream_max_len,
            ),
            router=router,
            tts=TimedTextToSpeech(tts, metrics.tts_seconds.observe, tracing),
            feed=feed,
            tracing=tracing,
        )
        hub.on_cancel_request = runner.cancel_soon
        metrics.read_from(metrics.live_sessions, lambda: float(len(hub)))
        metrics.read_from(metrics.engine_waiting, lambda: float(limiter.waiting))
        metrics.read_from(metrics.engine_active, lambda: float(limiter.active))
        metrics.read_from(metrics.bus_up, lambda: float(bus.healthy))
        return cls(
            settings=settings,
            store=store,
            engine=engine,
            bus=bus,
            router=router,
            metrics=metrics,
            supervisor=supervisor,
            limiter=limiter,
            catalog=catalog,
            hub=hub,
            runner=runner,
            stt=build_stt(settings),
            tts=tts,
            new_segmenter=build_segmenter_factory(settings),
            access=Access(store),
            jobs=JobWorker(
                store,
                supervisor,
                owner=bus.node_id,
                handlers={PREPARE_PASSAGE: PassagePreparer(store, tts, on_change=catalog.forget)},
                poll_seconds=settings.job_poll_seconds,
                heartbeat_seconds=settings.job_heartbeat_seconds,
                stale_seconds=settings.job_stale_seconds,
                max_attempts=settings.job_max_attempts,
            ),
            tracing=tracing,
        )

    def _ordered(self) -> list[tuple[str, Service]]:
        return [
            ("tracing", self.tracing),  # first started, last closed: it sends the last spans
            ("store", self.store),
            ("engine", self.engine),
            ("bus", self.bus),
            ("speech-to-text", self.stt),
            ("text-to-speech", self.tts),
            ("voice-activity", self.new_segmenter),
        ]

    async def start(self) -> None:
        """Start every service concurrently; on any failure close the started ones."""
        started: list[tuple[str, Service]] = []
        failures: list[ServiceStartupError] = []
        # Services import their native libraries in worker threads; two threads
        # importing interdependent modules at once can deadlock on Python's import
        # locks (seen: faster_whisper.vad), so import them first, in one thread.
        await anyio.to_thread.run_sync(_import_native_libraries)
        # Reading (or creating) a development secret is file I/O: in a thread.
        self._tokens = await anyio.to_thread.run_sync(TokenService.from_settings, self.settings)

        async def start_one(name: str, service: Service) -> None:
            try:
                await service.start()
            except Exception as exc:  # noqa: BLE001 - reported as ServiceStartupError
                failures.append(ServiceStartupError(name, exc))
            else:
                started.append((name, service))

        async with anyio.create_task_group() as tg:
            for name, service in self._ordered():
                tg.start_soon(start_one, name, service)
        if failures:
            order = [name for name, _ in self._ordered()]
            await _close_all(sorted(started, key=lambda s: order.index(s[0])))
            raise failures[0]
        if not self.bus.shared:
            # One process is the whole deployment: a reply stored `in_progress` was
            # cut off by its previous run (a crash or kill), never by a live node.
            cut = await self.store.interrupt_all_in_progress()
            if cut:
                log.info("startup.replies_interrupted", count=cut)
        self._loop_watch = self.supervisor.start(
            watch_loop_lag(self.metrics.loop_lag_seconds), name="loop.lag"
        )
        if self.metrics.multiprocess_dir is not None:
            # Several workers: each keeps its sampled gauges current for whichever
            # worker answers the scrape.
            self._sampling = self.supervisor.start(
                self.metrics.keep_sampling(), name="metrics.sample"
            )
        self.jobs.start()

    def tune_collector(self) -> None:
        """Once the node is ready: freeze what lives as long as the process, space the
        collector's passes, and keep freezing what survives (`readerai.collector`)."""
        tune_for_serving()
        every = self.settings.gc_freeze_seconds
        if every and self._freezing is None:
            self._freezing = self.supervisor.start(
                keep_freezing(every, self.settings.gc_full_collection_seconds),
                name="gc.freeze",
            )

    async def close(self) -> None:
        """Drain turns, write pending progress, then close services in reverse order."""
        self.ready = False
        await self.jobs.close()  # its job in flight is resumed by a node later
        for endless in (self._loop_watch, self._sampling, self._freezing):
            if endless is not None:
                endless.cancel()  # endless by design: it must not hold the drain up
        if self._freezing is not None:
            # The process may live on (an embedding app, a test run): what was frozen
            # goes back to the collector, cycles among it included.
            gc.unfreeze()
        self.hub.stop_following()
        self.hub.feed.close()  # dashboards' event streams end, so connections can close
        await self.supervisor.drain(self.settings.shutdown_grace_seconds)
        await self.hub.flush_all()
        await self.supervisor.drain(5.0)  # the final progress writes
        await _close_all(self._ordered())

    async def presence_of(self, session_id: str) -> bool:
        """Whether the session is live on some node (this one, or any while Redis answers)."""
        live = self.hub.get(session_id)
        if live is not None and live.subscribers:
            return True
        try:
            return bool(await self.bus.presence(session_id))
        except BusUnavailable:
            return False

    async def seed_samples(self) -> None:
        """Add the bundled sample passages that the store does not have yet."""
        samples = await anyio.to_thread.run_sync(load_samples)
        existing = {p.id for p in await self.store.list_passages()}
        for sample in samples:
            if sample.id in existing:
                continue
            with contextlib.suppress(Conflict):  # another node seeded it at the same moment
                await self.store.add_passage(
                    passage_id=sample.id,
                    title=sample.title,
                    text=sample.text,
                    level=sample.level,
                    sentences=split_sentences(sample.text),
                )

    @functools.cached_property
    def session_services(self) -> SessionServices:
        """What every connection actor shares (built once, not per connection)."""
        return SessionServices(
            hub=self.hub,
            runner=self.runner,
            catalog=self.catalog,
            store=self.store,
            metrics=self.metrics,
            stt=TimedSpeechToText(self.stt, self.metrics.stt_seconds.observe),
            tts=self.tts,
            new_segmenter=self.new_segmenter,
            read_aloud=ReadAloudModel(
                self.stt,
                self.settings.read_aloud_concurrency,
                ReadingHelp(
                    self.settings.read_aloud_stall_seconds, self.settings.read_aloud_stall_help
                ),
            ),
            readings=ReadingRecorder(self.store, self.supervisor, self.hub.feed),
        )

    @functools.cached_property
    def connection_limits(self) -> ConnectionLimits:
        """Per-connection limits from settings (built once)."""
        s = self.settings
        return ConnectionLimits(
            outbound_queue_size=s.outbound_queue_size,
            send_timeout=s.send_timeout_seconds,
            rate_per_second=s.rate_limit_per_second,
            rate_burst=s.rate_limit_burst,
            rate_strikes=s.rate_limit_strikes,
            idle_timeout=s.idle_timeout_seconds,
            max_question_chars=s.max_question_chars,
            audio_bytes_per_second=s.audio_bytes_per_second,
            max_utterance_ms=s.vad_max_utterance_ms,
        )


def _import_native_libraries() -> None:
    """Import the model runtimes one after another (blocking: run in a thread)."""
    for name in ("onnxruntime", "ctranslate2", "faster_whisper", "faster_whisper.vad", "piper"):
        importlib.import_module(name)


async def _close_all(services: list[tuple[str, Service]]) -> None:
    for name, service in reversed(services):
        try:
            with anyio.fail_after(10):
                await service.close()
        except Exception as exc:  # noqa: BLE001 - one failed close must not skip the rest
            log.error("service.close_failed", service=name, error=repr(exc))
