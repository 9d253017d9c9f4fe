"""JWT bearer tokens: minted for a user, checked on every request and connection.

HS256 with a shared secret by default; RS256/ES256 with a key pair, where nodes that
only check tokens need just the public key. A development node without a configured
secret generates one and keeps it in `READERAI_AUTH_SECRET_FILE`, so its tokens
survive restarts and `readerai token` mints tokens it accepts.

A token that verified is remembered (the most recently used `VERIFIED_CACHE_SIZE`,
with their expiry), so a client sending the same token on every request or
connection pays for its signature once: on a 2-core machine checking an HS256 token
was an eighth of a REST request's CPU (`python bench/rest_cost.py`). A remembered
token still expires on time; a token that failed is checked again every time.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from readerai.auth.principal import Principal, Role
from readerai.errors import Unauthenticated
from readerai.settings import Settings

ISSUER = "readerai"
#: Clock difference between nodes tolerated on `exp` and `iat`.
LEEWAY_SECONDS = 30
ID_LIMIT = 64
#: Verified tokens remembered per node (about 0.5 KB each).
VERIFIED_CACHE_SIZE = 4096


class TokenService:
    """Mints and verifies tokens with one key configuration."""

    def __init__(
        self,
        algorithm: str,
        signing_key: str | None,
        verifying_key: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self._clock = clock
        self._verified = functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)(self._decode)

    @classmethod
    def with_secret(cls, secret: str) -> TokenService:
        """HS256 tokens signed and checked with one shared secret."""
        return cls("HS256", secret, secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        """Keys from settings; blocking (it may read or create the secret file)."""
        if settings.auth_algorithm != "HS256":
            assert settings.auth_public_key is not None  # checked by Settings
            private = settings.auth_private_key
            return cls(
                settings.auth_algorithm,
                private.get_secret_value() if private else None,
                settings.auth_public_key,
            )
        if settings.auth_secret is not None:
            secret = settings.auth_secret.get_secret_value()
        else:
            secret = _development_secret(settings.auth_secret_file)
        return cls.with_secret(secret)

    def mint(
        self,
        *,
        user_id: str,
        role: Role,
        ttl_seconds: float,
        name: str = "",
        class_id: str | None = None,
    ) -> str:
        if self._signing_key is None:
            raise RuntimeError("this node has no private key: it can check tokens, not mint them")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "role": role.value,
            "name": name,
            "iss": ISSUER,
            "iat": now,
            "exp": now + int(ttl_seconds),
        }
        if class_id is not None:
            claims["cls"] = class_id
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify(self, token: str) -> Principal:
        """The token's principal; `Unauthenticated` saying why when it is not valid."""
        principal, expires = self._verified(token)
        # As PyJWT judges `exp`, for a token verified before it expired.
        if expires <= self._clock() - LEEWAY_SECONDS:
            raise Unauthenticated("the token has expired; sign in again")
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        """Check `token`'s signature and claims: its principal and its `exp`."""
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "role", "exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired; sign in again") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        user_id, role, class_id = claims.get("sub"), claims.get("role"), claims.get("cls")
        if not isinstance(user_id, str) or not 0 < len(user_id) <= ID_LIMIT:
            raise Unauthenticated("invalid token: bad subject")
        if not isinstance(role, str) or role not in {r.value for r in Role}:
            raise Unauthenticated("invalid token: unknown role")
        if class_id is not None and not isinstance(class_id, str):
            raise Unauthenticated("invalid token: bad class")
        name = claims.get("name")
        principal = Principal(
            user_id=user_id,
            role=Role(role),
            name=name if isinstance(name, str) else "",
            class_id=class_id,
        )
        return principal, float(claims["exp"])


def _development_secret(path: Path) -> str:
    """Read the generated secret, or create it (0600) the first time; blocking."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
