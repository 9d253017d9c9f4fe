"""The teacher dashboard's reading-aloud section in a real browser: a stored reading's
WCPM in the list and the student's chart, the most missed words, the replay with its
miscues marked and played in time, and the class's stall-help setting.

The readings are stored through the store (as the server stores one when a reading
ends) on the server's own database: quicker than reading aloud to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page

from readerai.readaloud import tokenize
from readerai.store.models import HeardWordRecord, ReadingMiscue, ReadingRecord
from readerai.store.sql import SqlStore
from tests.fixtures_server import ServerProcess, auth_headers, mint_token, running_server
from tests.web.browsers import TIMEOUT_MS, expect, screenshot, sign_in_by_link

pytestmark = pytest.mark.slow

PASSAGE = "the-lion-and-the-mouse"  # a bundled sample
TEACHER_ID, CLASS_ID, STUDENT_ID = "t-fluent", "fluency-2a", "s-rita"
OMITTED, MISREAD, SAID, ADDED_BEFORE, ADDED = 3, 5, "snow", 8, "big"
READ_UP_TO = 12
#: Seconds between replayed words: the replay takes about a second.
STEP = 0.08


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("fluency")) as srv:
        yield srv


def teacher_code(server: ServerProcess) -> str:
    """A fresh one-time sign-in code of the teacher (made on first use)."""
    made = httpx.post(
        f"{server.base_url}/api/teachers",
        json={"name": "Ms Fluent", "userId": TEACHER_ID},
        headers=auth_headers(),
        timeout=10,
    )
    code: str = made.raise_for_status().json()["code"]
    return code


@pytest.fixture(scope="module")
def enrolled(server: ServerProcess) -> None:
    """The teacher's class `fluency-2a`, student Rita, and two readings of hers."""
    teacher_code(server)
    text = httpx.get(f"{server.base_url}/api/passages/{PASSAGE}", headers=auth_headers())
    text = text.raise_for_status().json()["text"]
    teacher = auth_headers(mint_token("teacher", TEACHER_ID))
    with httpx.Client(base_url=server.base_url, headers=teacher, timeout=10) as http:
        http.post("/api/classes", json={"name": "Fluency 2A", "id": CLASS_ID}).raise_for_status()
        added = http.post(
            f"/api/classes/{CLASS_ID}/students", json={"name": "Rita", "userId": STUDENT_ID}
        )
        added.raise_for_status()
    store_readings(server, [older_reading(), newest_reading(text)])


def newest_reading(text: str) -> ReadingRecord:
    """Rita read the first 12 words, skipping one, misreading one and adding one."""
    words = [w.text for w in tokenize(text)]
    timeline: list[HeardWordRecord] = []
    at = 1.0
    for index in range(READ_UP_TO):
        if index == OMITTED:
            continue
        if index == ADDED_BEFORE:
            timeline.append(HeardWordRecord(ADDED, at, at + STEP / 2, None, False))
            at += STEP
        heard = SAID if index == MISREAD else words[index]
        timeline.append(HeardWordRecord(heard, at, at + STEP / 2, index, index != MISREAD))
        at += STEP
    miscues = (
        ReadingMiscue("omission", OMITTED, words[OMITTED], "", 1.2),
        ReadingMiscue("substitution", MISREAD, words[MISREAD], SAID, 1.3),
        ReadingMiscue("insertion", None, "", ADDED, timeline[ADDED_BEFORE - 1].start),
    )
    return reading_record(
        "newest", minutes=0, wcpm=92.4, accuracy=10 / 12, miscues=miscues, timeline=tuple(timeline)
    )


def older_reading() -> ReadingRecord:
    return reading_record("older", minutes=-60 * 24, wcpm=71.0, accuracy=0.9)


def reading_record(
    reading_id: str,
    *,
    minutes: int,
    wcpm: float,
    accuracy: float,
    miscues: tuple[ReadingMiscue, ...] = (),
    timeline: tuple[HeardWordRecord, ...] = (),
) -> ReadingRecord:
    ended = datetime.now(UTC) + timedelta(minutes=minutes)
    return ReadingRecord(
        id=reading_id,
        session_id="sess-rita",
        user_id=STUDENT_ID,
        class_id=CLASS_ID,
        passage_id=PASSAGE,
        started_at=ended - timedelta(seconds=20),
        ended_at=ended,
        duration_seconds=7.8,
        words_attempted=READ_UP_TO,
        words_correct=round(accuracy * READ_UP_TO),
        errors=READ_UP_TO - round(accuracy * READ_UP_TO),
        wcpm=wcpm,
        accuracy=accuracy,
        miscues=miscues,
        timeline=timeline,
    )


def store_readings(server: ServerProcess, readings: list[ReadingRecord]) -> None:
    """Save readings in the server's database (in a thread: Playwright holds this one's loop)."""

    async def save() -> None:
        store = SqlStore(f"sqlite+aiosqlite:///{server.data_dir}/readerai.db")
        await store.start()
        try:
            for reading in readings:
                await store.save_reading(reading)
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, save()).result()


@pytest.fixture
def teacher(browser: Browser, server: ServerProcess, enrolled: None) -> Iterator[Page]:
    """The teacher's dashboard, signed in, in a browser context of its own."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in_by_link(page, server, teacher_code(server), path="/teacher")
    yield page
    context.close()


def test_the_dashboard_shows_a_readings_fluency_and_replays_its_miscues(
    teacher: Page, server: ServerProcess
) -> None:
    expect(teacher.locator("#class-title")).to_have_text("Fluency 2A")
    newest = teacher.locator('.reading-item[data-reading-id="newest"]')
    expect(newest).to_contain_text("Rita")
    expect(newest).to_contain_text("92 WCPM")
    expect(newest).to_contain_text("83% accurate")
    expect(teacher.locator("#missed-words li")).to_have_count(2)

    # Rita's chart: one passage, two readings, the latest WCPM labelled.
    teacher.get_by_label("Student", exact=True).select_option(label="Rita")
    chart = teacher.locator(f'.chart-item[data-passage-id="{PASSAGE}"]')
    expect(chart).to_contain_text("latest 92 WCPM, 83% accurate (2 readings)")
    expect(chart.locator("circle.dot-wcpm")).to_have_count(2)
    expect(chart.locator("text.chart-label")).to_have_text("92")
    screenshot(teacher, "fluency-01-readings-and-chart")

    # The replay marks each miscue on the passage, with what was said.
    newest.get_by_role("button", name=re.compile("^Replay Rita")).click()
    replay = teacher.locator("#replay")
    expect(replay).to_be_visible()
    expect(replay.locator("#replay-summary")).to_contain_text("92 WCPM")
    words = replay.locator(".replay-word")
    expect(words.nth(OMITTED)).to_have_class(re.compile(r"\bmiscue-omission\b"))
    expect(words.nth(MISREAD)).to_have_class(re.compile(r"\bmiscue-substitution\b"))
    expect(words.nth(MISREAD - 1)).not_to_have_class(re.compile("miscue"))
    expect(replay.locator(".said")).to_have_text(SAID)
    expect(replay.locator("ins.miscue-insertion")).to_have_text(f"+{ADDED}")
    screenshot(teacher, "fluency-02-replay")

    # Played in time: words light up in turn, a misread word shows what was said.
    replay.get_by_role("button", name="Play", exact=True).click()
    expect(replay.locator(".replay-current")).to_have_count(1)
    expect(replay.locator("#replay-heard")).to_contain_text(f"Said “{SAID}”")
    expect(replay.get_by_role("button", name="Play again")).to_be_visible()
    expect(replay.locator(".replay-current")).to_have_count(0)


def test_the_teacher_sets_how_a_stuck_reader_is_helped(
    teacher: Page, server: ServerProcess
) -> None:
    expect(teacher.locator("#class-title")).to_have_text("Fluency 2A")
    expect(teacher.get_by_label("Wait (seconds)")).to_have_value("5")
    expect(teacher.get_by_label("Then")).to_have_value("say_word")
    teacher.get_by_label("Wait (seconds)").fill("3")
    teacher.get_by_label("Then").select_option("ask")
    teacher.get_by_role("button", name="Save help setting").click()
    expect(teacher.locator("#help-status")).to_have_text(
        "Saved: after 3 s stuck on a word, the tutor will ask a question."
    )
    headers = auth_headers(mint_token("teacher", TEACHER_ID))
    room = httpx.get(f"{server.base_url}/api/classes/{CLASS_ID}", headers=headers).json()
    assert (room["stallSeconds"], room["stallHelp"]) == (3.0, "ask")
