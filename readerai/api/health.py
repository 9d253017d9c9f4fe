"""Liveness, readiness and metrics."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from readerai.services import NodeServices

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "starting, stopping or store down"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: started, not stopping, and the store answers (`bus` tells whether
    cross-node features work)."""
    services: NodeServices | None = getattr(request.app.state, "services", None)
    if services is None or not services.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    bus = "ok" if services.bus.healthy else "unavailable"
    store_up = await services.store.ping()
    services.metrics.store_up.set(store_up)
    if not store_up:
        return JSONResponse({"status": "store_unavailable", "bus": bus}, status_code=503)
    # A node whose bus is down still serves its own sessions: it stays ready.
    return JSONResponse({"status": "ready", "bus": bus})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services: NodeServices | None = getattr(request.app.state, "services", None)
    if services is None:
        return Response(status_code=503)
    metrics = services.metrics
    metrics.store_up.set(await services.store.ping())
    metrics.sample()  # on the loop: some gauges read the loop's tasks
    if metrics.multiprocess_dir is None:
        body = metrics.render()
    else:  # reads every worker's file
        body = await anyio.to_thread.run_sync(metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
