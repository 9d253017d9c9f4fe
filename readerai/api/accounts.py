"""Accounts the API opens (teachers for admins, students for teachers) and the
one-time sign-in codes it hands out for them."""

from __future__ import annotations

import re
import uuid

from readerai.api.schemas import SignInCode
from readerai.auth.principal import Role
from readerai.errors import Conflict
from readerai.services import NodeServices

#: Attempts at a free `name-xxxx` user id before giving up.
ID_ATTEMPTS = 20


async def open_account(
    services: NodeServices, *, role: Role, name: str, user_id: str | None
) -> str:
    """Create (or rename) the `role` user `user_id`, or one with a new id made from
    `name`; Conflict if that id belongs to someone with another role."""
    user_id = user_id or await _free_user_id(services, name, role)
    existing = await services.store.get_user(user_id)
    if existing is not None and existing.role != role:
        raise Conflict(f"{user_id!r} is a {existing.role}, not a {role}")
    await services.store.upsert_user(user_id=user_id, role=role.value, name=name)
    return user_id


async def issue_code(
    services: NodeServices, *, user_id: str, name: str, role: Role, class_id: str | None
) -> SignInCode:
    """A fresh one-time sign-in code for the user."""
    code, expires = await services.store.create_login_code(
        user_id=user_id,
        role=role.value,
        class_id=class_id,
        ttl_seconds=services.settings.login_code_ttl_seconds,
    )
    return SignInCode(user_id=user_id, name=name, code=code, code_expires_at=expires.isoformat())


async def _free_user_id(services: NodeServices, name: str, role: Role) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or role.value
    for _ in range(ID_ATTEMPTS):
        candidate = f"{base}-{uuid.uuid4().hex[:4]}"
        if await services.store.get_user(candidate) is None:
            return candidate
    raise Conflict("could not find a free user id")  # pragma: no cover
