"""The web app: the student page (`/`), the teacher dashboard (`/teacher`) and their
static files, no build step.

The files are read once at start-up (in a worker thread) and served from memory:
Starlette's `StaticFiles` stats files on the event loop, which blocks it.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request, Response

from readerai.errors import NotFound

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of `readerai/web/static`, by name (blocking: call from a thread)."""
    assets = {}
    for entry in (files("readerai.web") / "static").iterdir():
        if entry.is_file():
            body = entry.read_bytes()
            media_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            assets[entry.name] = Asset(body, media_type, etag)
    return assets


def _serve(request: Request, name: str) -> Response:
    assets: dict[str, Asset] = request.app.state.assets
    asset = assets.get(name)
    if asset is None:
        raise NotFound(f"no file {name!r}")
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/teacher")
async def teacher(request: Request) -> Response:
    return _serve(request, "teacher.html")


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    return _serve(request, name)
