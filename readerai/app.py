"""The app factory: `create_app(settings)` wires routers and the lifespan.

The lifespan starts every service concurrently and refuses to serve if one fails;
on shutdown it lets replies in flight finish (up to the grace period), stores them,
writes pending progress, and closes services in reverse order.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import structlog
from fastapi import FastAPI

from readerai import __version__
from readerai.api import auth, classes, health, jobs, passages, readings, sessions, web
from readerai.api.problems import RequestIdMiddleware, install_error_handlers
from readerai.api.ws import SocketFastPath
from readerai.auth.demo import seed_demo
from readerai.errors import ServiceStartupError
from readerai.logs import configure_logging
from readerai.metrics import METRICS_DIR_ENV
from readerai.services import NodeServices
from readerai.settings import WORKER_SETTINGS_ENV, Settings, settings_from_worker_json

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings | None = None, *, metrics_dir: str | None = None
) -> SocketFastPath:
    """Build a ReaderAI app; nothing starts until the server runs its lifespan.

    `metrics_dir` is the folder where the workers of `readerai serve --workers N`
    share their metrics (`PROMETHEUS_MULTIPROC_DIR`); None for a single process.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = NodeServices.build(settings, metrics_dir=metrics_dir)
        try:
            await services.start()
        except ServiceStartupError as exc:
            log.error("startup.failed", service=exc.service, error=str(exc.cause))
            raise
        app.state.services = services
        try:
            app.state.assets = await anyio.to_thread.run_sync(web.load_assets)
            await services.seed_samples()
            if settings.environment == "development" and settings.demo_accounts:
                links = await seed_demo(
                    services.store, _public_url(settings), settings.login_code_ttl_seconds
                )
                log.info("demo.sign_in", teacher=links.teacher, student=links.student)
            services.tune_collector()  # what lives long, out of the cycle collector's sight
            services.ready = True
            log.info("startup.ready", engine=services.engine.name, database=_db_kind(settings))
            yield
        finally:
            log.info("shutdown.begin", live_sessions=len(services.hub))
            await services.close()
            log.info("shutdown.done")

    app = FastAPI(
        title="ReaderAI",
        version=__version__,
        summary="A real-time AI reading tutor server.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for router in (
        health.router,
        auth.router,
        passages.router,
        jobs.router,
        sessions.router,
        classes.router,
        readings.router,
        web.router,
    ):
        app.include_router(router)
    return SocketFastPath(app)


def create_worker_app() -> SocketFastPath:
    """The app of one `readerai serve --workers N` worker (a factory uvicorn imports)."""
    settings = settings_from_worker_json(os.environ[WORKER_SETTINGS_ENV])
    listener = configure_logging(settings.log_level, settings.log_format)
    atexit.register(listener.stop)
    return create_app(settings, metrics_dir=os.environ.get(METRICS_DIR_ENV))


def _public_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _db_kind(settings: Settings) -> str:
    return settings.database_url.split(":", 1)[0]
