"""One-time sign-in codes: random, stored only as hashes, usable once, before they expire."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import select

from readerai.store.base import LoginCode
from readerai.store.login_codes import CODE_ALPHABET, normalise_code
from readerai.store.models import LoginCodeRow, utc_now
from readerai.store.sql import SqlStore

WEEK = 7 * 24 * 3600.0


async def _code(store: SqlStore, ttl_seconds: float = WEEK) -> str:
    code, _ = await store.create_login_code(
        user_id="s-cy", role="student", class_id="4b", ttl_seconds=ttl_seconds
    )
    return code


async def test_code_is_8_unambiguous_characters_expiring_after_its_ttl(store: SqlStore) -> None:
    before = utc_now()
    code, expires_at = await store.create_login_code(
        user_id="s-cy", role="student", class_id="4b", ttl_seconds=WEEK
    )
    assert len(code) == 8
    assert set(code) <= set(CODE_ALPHABET)
    assert not set("0O1IL") & set(CODE_ALPHABET)
    assert before + timedelta(seconds=WEEK) <= expires_at <= utc_now() + timedelta(seconds=WEEK)


async def test_codes_differ(store: SqlStore) -> None:
    codes = {await _code(store) for _ in range(20)}
    assert len(codes) == 20


async def test_redeemed_code_says_whom_it_stands_for(store: SqlStore) -> None:
    code, expires_at = await store.create_login_code(
        user_id="s-cy", role="student", class_id="4b", ttl_seconds=WEEK
    )
    assert await store.redeem_login_code(code) == LoginCode(
        user_id="s-cy", role="student", class_id="4b", expires_at=expires_at
    )


async def test_code_without_class_redeems_without_class(store: SqlStore) -> None:
    code, _ = await store.create_login_code(
        user_id="t-ada", role="teacher", class_id=None, ttl_seconds=60
    )
    redeemed = await store.redeem_login_code(code)
    assert redeemed is not None
    assert (redeemed.role, redeemed.class_id) == ("teacher", None)


async def test_code_works_once(store: SqlStore) -> None:
    code = await _code(store)
    assert await store.redeem_login_code(code) is not None
    assert await store.redeem_login_code(code) is None


async def test_two_concurrent_redeems_of_one_code_have_one_winner(nodes: list[SqlStore]) -> None:
    codes = [await _code(nodes[0]) for _ in range(5)]
    for code in codes:
        results = await asyncio.gather(
            nodes[1].redeem_login_code(code), nodes[2].redeem_login_code(code)
        )
        assert sum(result is not None for result in results) == 1


async def test_expired_code_is_refused(store: SqlStore) -> None:
    code = await _code(store, ttl_seconds=0.05)
    await anyio.sleep(0.1)
    assert await store.redeem_login_code(code) is None


async def test_case_spaces_and_dashes_do_not_matter(store: SqlStore) -> None:
    code = await _code(store)
    typed = f"  {code[:4].lower()}-{code[4:6]} {code[6:].lower()} "
    assert await store.redeem_login_code(typed) is not None


@pytest.mark.parametrize("typed", ["", "ABC", "ABCDEFGHJ", "ABCDEFG0", "ABCDEFGI", "ÄBCDEFGH"])
async def test_what_cannot_be_a_code_is_refused(store: SqlStore, typed: str) -> None:
    await _code(store)
    assert await store.redeem_login_code(typed) is None


async def test_unknown_code_is_refused(store: SqlStore) -> None:
    await _code(store)
    assert await store.redeem_login_code("ABCDEFGH") is None


async def test_code_is_stored_only_as_the_sha256_of_its_upper_case(store: SqlStore) -> None:
    code = await _code(store)
    async with store._db.transaction() as session:
        hashes = list(await session.scalars(select(LoginCodeRow.code_hash)))
    assert hashes == [hashlib.sha256(code.encode()).hexdigest()]


async def test_ttl_must_be_positive(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await _code(store, ttl_seconds=0)


def test_normalising_keeps_only_a_well_formed_code() -> None:
    assert normalise_code(" abcd-efgh ") == "ABCDEFGH"
    assert normalise_code("ab cd ef gh") == "ABCDEFGH"
    assert normalise_code("abcd_efgh") is None
    assert normalise_code("ABCDEFG1") is None
