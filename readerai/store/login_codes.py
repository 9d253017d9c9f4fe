"""`LoginCodeStore`: one-time sign-in codes, kept only as hashes and usable once.

A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), drawn
with `secrets`: 31**8, about 8.5e11, codes. The database holds the SHA-256 of the
upper-cased code, so a copy of it signs nobody in.

Invariant: redeeming is one conditional UPDATE (not used, not expired → used now),
so of two concurrent redeems of one code exactly one gets it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from readerai.errors import Conflict
from readerai.store.base import LoginCode
from readerai.store.core import SqlStoreCore, check_length
from readerai.store.models import (
    CLASS_ID_LENGTH,
    ROLE_LENGTH,
    USER_ID_LENGTH,
    LoginCodeRow,
    utc_now,
)
from readerai.store.retry import retried_write

#: The characters of a code: digits and capitals that cannot be mistaken for others.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
#: Fresh codes drawn before giving up when each one drawn is already stored.
CODE_ATTEMPTS = 3


def new_code() -> str:
    """A fresh random code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str | None:
    """The code as stored, from what was typed (any case, spaces, dashes); None if no code."""
    code = typed.strip().upper().replace(" ", "").replace("-", "")
    if len(code) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in code):
        return None
    return code


def code_hash(code: str) -> str:
    """The SHA-256 (hex) of a normalised code: the only form the database sees."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


class LoginCodeStore(SqlStoreCore):
    """The sign-in code part of `SqlStore`."""

    @retried_write
    async def create_login_code(
        self, *, user_id: str, role: str, class_id: str | None, ttl_seconds: float
    ) -> tuple[str, datetime]:
        """A new one-time code standing for this user, and when it expires."""
        check_length("user id", user_id, USER_ID_LENGTH)
        check_length("role", role, ROLE_LENGTH)
        if class_id is not None:
            check_length("class id", class_id, CLASS_ID_LENGTH)
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = utc_now()
        expires_at = now + timedelta(seconds=ttl_seconds)
        for _ in range(CODE_ATTEMPTS):
            code = new_code()
            row = LoginCodeRow(
                code_hash=code_hash(code),
                user_id=user_id,
                role=role,
                class_id=class_id,
                expires_at=expires_at,
                created_at=now,
            )
            try:
                async with self._db.transaction() as session:
                    session.add(row)
            except IntegrityError:
                continue  # the same code is live already: astronomically rare
            return code, expires_at
        raise Conflict("could not draw an unused sign-in code")

    @retried_write
    async def redeem_login_code(self, code: str) -> LoginCode | None:
        """Use the code up and say whom it stands for; None if unknown, used or expired.

        Case, spaces and dashes do not matter. If the connection drops while this
        commits, a retry finds the code used: the caller is told to try another.
        """
        normal = normalise_code(code)
        if normal is None:
            return None
        now = utc_now()
        statement = (
            update(LoginCodeRow)
            .where(
                LoginCodeRow.code_hash == code_hash(normal),
                LoginCodeRow.used_at.is_(None),
                LoginCodeRow.expires_at > now,
            )
            .values(used_at=now)
            .returning(
                LoginCodeRow.user_id,
                LoginCodeRow.role,
                LoginCodeRow.class_id,
                LoginCodeRow.expires_at,
            )
        )
        async with self._db.connection() as connection:
            found = (await connection.execute(statement)).one_or_none()
        if found is None:
            return None
        return LoginCode(
            user_id=found.user_id,
            role=found.role,
            class_id=found.class_id,
            expires_at=found.expires_at,
        )
