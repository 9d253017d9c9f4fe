"""FastAPI dependencies as `Annotated` aliases: the node's services and who is asking.

Each is `async def` though none awaits: FastAPI runs a plain `def` dependency in its
thread pool, a trip to a worker thread and back per dependency per request. These
only read the app's state and check a token's signature, which costs less than the
trip (`python bench/rest_cost.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from readerai.auth.access import require_role
from readerai.auth.principal import Principal, Role
from readerai.errors import StoreUnavailable, Unauthenticated
from readerai.services import NodeServices


async def get_services(connection: HTTPConnection) -> NodeServices:
    services: NodeServices | None = getattr(connection.app.state, "services", None)
    if services is None or not services.ready:
        raise StoreUnavailable("the server is starting or stopping")
    return services


ServicesDep = Annotated[NodeServices, Depends(get_services)]


async def current_principal(connection: HTTPConnection, services: ServicesDep) -> Principal:
    """The user of the request's `Authorization: Bearer` token; 401 without a valid one."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("sign in first: send `Authorization: Bearer <token>`")
    return services.tokens.verify(token.strip())


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _with_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        require_role(principal, *roles)
        return principal

    return check


TeacherDep = Annotated[Principal, Depends(_with_role(Role.TEACHER, Role.ADMIN))]
