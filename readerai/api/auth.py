"""Signing in: a one-time code becomes a token; `me` says who the token is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, status

from readerai.api.accounts import issue_code, open_account
from readerai.api.deps import PrincipalDep, ServicesDep
from readerai.api.schemas import CodeIn, ErrorResponse, MeOut, SignInCode, StudentIn, TokenOut
from readerai.auth.access import require_role
from readerai.auth.principal import Role
from readerai.errors import InvalidCode

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/auth/exchange", responses={401: {"model": ErrorResponse}})
async def exchange_code(body: CodeIn, services: ServicesDep) -> TokenOut:
    """Trade a one-time sign-in code for a token (the code is used up)."""
    login = await services.store.redeem_login_code(body.code)
    if login is None:
        raise InvalidCode("that code is unknown, used or expired; ask your teacher for a new one")
    user = await services.store.get_user(login.user_id)
    name = user.name if user else ""
    ttl = services.settings.token_ttl_seconds
    token = services.tokens.mint(
        user_id=login.user_id,
        role=Role(login.role),
        ttl_seconds=ttl,
        name=name,
        class_id=login.class_id,
    )
    return TokenOut(
        token=token,
        role=login.role,
        user_id=login.user_id,
        name=name,
        class_id=login.class_id,
        expires_at=(datetime.now(UTC) + timedelta(seconds=ttl)).isoformat(),
    )


@router.get("/me", responses={401: {"model": ErrorResponse}})
async def me(principal: PrincipalDep) -> MeOut:
    """Who the bearer token says you are."""
    return MeOut(
        user_id=principal.user_id,
        role=principal.role.value,
        name=principal.name,
        class_id=principal.class_id,
    )


@router.post(
    "/teachers",
    status_code=status.HTTP_201_CREATED,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)
async def create_teacher(
    body: StudentIn, services: ServicesDep, principal: PrincipalDep
) -> SignInCode:
    """Admins: create a teacher account and a one-time sign-in code for it."""
    require_role(principal, Role.ADMIN)
    user_id = await open_account(services, role=Role.TEACHER, name=body.name, user_id=body.user_id)
    return await issue_code(
        services, user_id=user_id, name=body.name, role=Role.TEACHER, class_id=None
    )
