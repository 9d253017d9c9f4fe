"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from readerai.errors import StoreUnavailable
from readerai.services import NodeServices


def get_services(connection: HTTPConnection) -> NodeServices:
    services: NodeServices | None = getattr(connection.app.state, "services", None)
    if services is None or not services.ready:
        raise StoreUnavailable("the server is starting or stopping")
    return services


ServicesDep = Annotated[NodeServices, Depends(get_services)]
