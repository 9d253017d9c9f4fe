"""Tokens: a verified token is remembered, and still refused once it has expired."""

from __future__ import annotations

import time

import pytest

from readerai.auth.principal import Principal, Role
from readerai.auth.tokens import LEEWAY_SECONDS, TokenService
from readerai.errors import Unauthenticated
from tests.auth.test_access_matrix import tampered

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


class Clock:
    """Wall-clock time that a test moves forward."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def test_a_token_verified_before_stays_refused_once_it_has_expired() -> None:
    clock = Clock()
    tokens = TokenService("HS256", SECRET, SECRET, clock=clock)
    # Expired 20 s ago: still accepted for 10 s within the tolerated clock difference.
    token = tokens.mint(user_id="s1", role=Role.STUDENT, ttl_seconds=-(LEEWAY_SECONDS - 10))
    expected = Principal(user_id="s1", role=Role.STUDENT, name="", class_id=None)
    assert tokens.verify(token) == expected
    assert tokens.verify(token) == expected  # remembered: same answer
    clock.ahead = 11.0
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)


def test_only_the_exact_token_that_verified_is_remembered() -> None:
    tokens = TokenService.with_secret(SECRET)
    token = tokens.mint(user_id="s1", role=Role.STUDENT, ttl_seconds=600, class_id="c1")
    assert tokens.verify(token).role is Role.STUDENT
    forged = tampered(token)  # role changed to admin, signature kept
    for _ in range(2):  # a refusal is not remembered as anything else
        with pytest.raises(Unauthenticated, match="invalid token"):
            tokens.verify(forged)
    other = TokenService.with_secret(SECRET[::-1])
    with pytest.raises(Unauthenticated, match="invalid token"):
        other.verify(token)  # another key: the first service's memory is its own
    assert tokens.verify(token).class_id == "c1"
