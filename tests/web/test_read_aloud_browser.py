"""Read-aloud on the student page: the story's opening, read by the bundled Piper voice
into Chromium's fake microphone, is followed word by word by the real server (Whisper).

The student taps "Read it myself"; the page streams the microphone in read-aloud mode
and marks the word the server reports with aria-current. A MutationObserver records
every word marked, so the test sees the whole path of the highlight, not only where it
ends. Along the way: a typed question is answered mid-reading, the tutor's unasked
help shows when the reader stops, "Done reading" shows the reading's score, and the
word reached is shown again after a reload. Chromium loops the WAV file: it ends in
silence longer than the test runs.
"""

from __future__ import annotations

import contextlib
import re
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from playwright.sync_api import Page, Playwright

from readerai.readaloud import tokenize
from readerai.samples import load_samples
from readerai.voice.base import INPUT_SAMPLE_RATE
from tests.fixtures_server import ServerProcess
from tests.speech_samples import silence, spoken
from tests.web.browsers import (
    CHROMIUM_ARGS,
    PHONE,
    TIMEOUT_MS,
    enrol_student,
    expect,
    fake_microphone,
    open_story,
    screenshot,
    sign_in_by_link,
)

pytestmark = pytest.mark.slow

STORY = "The Lion and the Mouse"
TEXT = next(sample.text for sample in load_samples() if sample.title == STORY)
#: What the student reads aloud: the story's first 31 words, up to "running along."
READ = TEXT[: TEXT.index("running along.") + len("running along.")]
READ_WORDS = len(tokenize(READ))
#: Text whose words are easy to cut differently in JavaScript than in Python.
TRICKY = (
    "It\u2019s sky-blue caf\u00e9 (cafe\u0301) \u2014 the 10th, don't x_y \u00bd 2\u00b2 "
    "\U0001f981 lion's \u65e5\u672c\u8a9e na\u00efve \u2018quoted\u2019 end."
)
#: The highlight must reach one of the last words read ...
NEAR_THE_END = READ_WORDS - 3
#: ... within this long of the end of the speech (recognition runs on 1.5 s steps).
LAG_BOUND_MS = 15_000
#: Silence Piper's speech is padded with (`tests.speech_samples.spoken`) ...
LEAD_MS, TAIL_MS = 500, 1500
#: ... and after it: longer than the test runs, so Chromium's loop never starts again.
TRAILING_SILENCE_MS = 90_000

# Records each word span that gains aria-current: [wordIndex, ms since the click].
RECORD_MARKS = """() => {
  window.marks = [];
  const start = performance.now();
  new MutationObserver((changes) => {
    for (const change of changes) {
      const span = change.target;
      if (span.classList.contains("word") && span.hasAttribute("aria-current")) {
        window.marks.push([Number(span.dataset.wordIndex), performance.now() - start]);
      }
    }
  }).observe(document.getElementById("passage"),
             { subtree: true, attributes: true, attributeFilter: ["aria-current"] });
}"""


class ReadingPage(NamedTuple):
    """A page whose microphone hears `READ`, and when that speech ends (ms from the start)."""

    page: Page
    speech_ends_ms: float


def write_reading(path: Path) -> float:
    """Write `READ` spoken as a 16 kHz WAV file; when its speech ends, in ms from the start."""
    speech = spoken(" ".join(READ.split()), silence_before_ms=LEAD_MS, silence_after_ms=TAIL_MS)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(INPUT_SAMPLE_RATE)
        wav.writeframes(speech + silence(TRAILING_SILENCE_MS))
    return len(speech) / 2 / INPUT_SAMPLE_RATE * 1000 - TAIL_MS


@pytest.fixture
def reading_page(
    playwright: Playwright,
    chromium: Path,
    server_factory: Callable[..., ServerProcess],
    tmp_path: Path,
) -> Iterator[ReadingPage]:
    """A student signed in on a phone-sized page, its microphone hearing `READ`."""
    server = server_factory(start=False, READERAI_STT="whisper", READERAI_ENGINE="extractive")
    server.start(wait=False)  # it loads its models while the reading is synthesised
    wav = tmp_path / "reading.wav"
    speech_ends_ms = write_reading(wav)
    browser = playwright.chromium.launch(
        executable_path=str(chromium), headless=True, args=[*CHROMIUM_ARGS, *fake_microphone(wav)]
    )
    try:
        page = browser.new_page(viewport=PHONE)
        page.set_default_timeout(TIMEOUT_MS)
        server.wait_ready()
        sign_in_by_link(page, server, enrol_student(server).code)
        open_story(page, STORY)
        yield ReadingPage(page, speech_ends_ms)
    finally:
        browser.close()


@contextlib.contextmanager
def explained(page: Page) -> Iterator[None]:
    """A failed assertion also says which words were marked and what the page shows."""
    try:
        yield
    except AssertionError as exc:
        shown = page.evaluate(
            """() => ({
                marks: window.marks,
                status: document.getElementById("read-self-status").textContent,
                toasts: document.getElementById("toasts").textContent,
                state: window.readerai.state(),
                micChunksSent: window.readerai.stats.micChunksSent,
            })"""
        )
        raise AssertionError(f"{exc}\nThe page shows: {shown}") from exc


def assert_words_are_the_servers(page: Page) -> None:
    """The page cuts words as the server does, so its wordIndex and position name them."""
    words: list[list[Any]] = page.locator("#passage .word").evaluate_all(
        "spans => spans.map((s) => [s.textContent, Number(s.dataset.wordIndex),"
        " Number(s.dataset.position)])"
    )
    assert words == [[word.text, i, word.start] for i, word in enumerate(tokenize(TEXT))]
    # The same on harder text: curly apostrophes, dashes, accents (composed or not),
    # digits, other scripts, characters beyond 16 bits (offsets count code points).
    cut: list[list[Any]] = page.evaluate(
        """async (text) => (await import("./static/read-aloud.js"))
            .passageWords(text).map((word) => [word.text, word.offset])""",
        TRICKY,
    )
    assert cut == [[word.text, word.start] for word in tokenize(TRICKY)]
    # Wrapping words in spans leaves the sentences' text as it was.
    expect(page.locator("#passage .sentence").first).to_have_text(
        "A big lion was sleeping in the warm grass."
    )


def test_the_word_read_aloud_is_highlighted_as_the_reading_goes_on(
    reading_page: ReadingPage,
) -> None:
    page, speech_ends_ms = reading_page
    assert_words_are_the_servers(page)

    page.evaluate(RECORD_MARKS)
    start = page.get_by_role("button", name="Read it myself")
    done = page.get_by_role("button", name="Done reading")
    expect(done).to_be_disabled()
    start.click()
    expect(done).to_be_enabled()
    expect(page.locator("#read-self-status")).to_have_text("Listening to you read…")

    # A typed question mid-reading is a normal turn; the reading goes on.
    page.get_by_label("Your question").fill("Where was the lion sleeping?")
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".msg.tutor").first  # the tutor's help may come later
    with explained(page):
        expect(answer).to_have_attribute("aria-busy", "false")
    expect(answer.locator(".msg-text")).to_contain_text("grass")

    with explained(page):
        page.wait_for_function(
            "(n) => window.marks.some(([index]) => index >= n)",
            arg=NEAR_THE_END,
            timeout=speech_ends_ms + LAG_BOUND_MS,
        )
    marks: list[list[float]] = page.evaluate("window.marks")
    indices = [int(index) for index, _ in marks]
    assert indices == sorted(indices), f"the highlight moved back: {indices}"
    assert len(set(indices)) >= 4, f"the highlight jumped instead of following: {indices}"
    assert indices[-1] < READ_WORDS, f"marked a word that was not read: {indices}"
    current = page.locator("#passage .word[aria-current]")
    expect(current).to_have_count(1)
    expect(current).to_be_in_viewport()  # scrolled to, on a phone where the story is below
    screenshot(page, "20-student-reading-aloud", full_page=False)

    # The reader stops (the file goes silent): the tutor offers the next word unasked,
    # in a reply of its own (no question before it).
    offer = page.locator(".msg.tutor").filter(has_text=re.compile(r"\bShe\b"))
    with explained(page):
        expect(offer).to_have_count(1)
    expect(offer).to_have_attribute("aria-busy", "false")
    expect(page.locator(".msg.student")).to_have_count(1)

    done.click()
    expect(start).to_be_enabled()
    expect(current).to_have_count(0)  # the reading is over: no word is "current"
    expect(page.locator("#passage .word.reached")).to_have_count(1)  # but the place is shown
    expect(page.locator("#read-self-status")).to_have_text(re.compile("You read up to"))
    # The server scores the reading it heard, and the page shows the score.
    result = page.locator("#read-self-result")
    with explained(page):
        expect(result).to_contain_text("words correct per minute")
    # Words are scored as heard: Whisper may write "grey" for "gray" or "main" for
    # "mane", so a clean reading is not asserted to have no miscue here.
    expect(result).to_contain_text(re.compile(r"\d+ of (29|30|31) words right"))
    sent = page.evaluate("window.readerai.stats.micChunksSent")
    page.wait_for_timeout(300)
    assert page.evaluate("window.readerai.stats.micChunksSent") == sent, "the microphone is off"
    assert page.evaluate("window.readerai.state().reading") == "off"

    # The session keeps the word reached: shown again after a reload (and the server
    # resumes the next reading after it).
    reached = page.locator("#passage .word.reached")
    last_word = reached.text_content()
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(reached).to_have_text(last_word or "")
    expect(page.locator("#read-self-status")).to_contain_text(
        f"Last time you read up to “{last_word}”"
    )
