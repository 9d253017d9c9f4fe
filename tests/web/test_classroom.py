"""A lesson end to end in real browsers: the teacher dashboard and a student's page.

One server for the module; the teacher and the student each get their own browser
context (separate storage, as two devices would have). Screenshots of every page
and state go to `test-output/screenshots/` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Locator, Page, ViewportSize

from tests.fixtures_server import ServerProcess, auth_headers, mint_token, running_server
from tests.web.browsers import PHONE, TIMEOUT_MS, expect, screenshot, sign_in_by_link

pytestmark = pytest.mark.slow

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
STORY = "The Red Kite"
STORY_MARKDOWN = """# The Red Kite

Mia had a **red kite** with a long blue tail. She ran up the hill with it.

The wind took the kite high into the sky. Mia laughed and held the string tight.

Then the string broke! The kite flew over the trees and far away.
"""
#: Preparing a passage synthesises its narration: the voice model loads on first use.
JOB_TIMEOUT_MS = 90_000
#: A restart: the old server drains, the new one starts, the page backs off meanwhile.
RESTART_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("classroom")) as srv:
        yield srv


@pytest.fixture
def contexts(browser: Browser) -> Iterator[dict[str, BrowserContext]]:
    """A browser context per person (and one at phone width), closed after the test."""
    made = {
        "teacher": browser.new_context(viewport=DESKTOP),
        "student": browser.new_context(viewport=DESKTOP),
        "phone": browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True),
    }
    for context in made.values():
        context.set_default_timeout(TIMEOUT_MS)
    yield made
    for context in made.values():
        context.close()


def create_teacher(server: ServerProcess, name: str) -> str:
    """An admin makes a teacher account through the API; its one-time code."""
    response = httpx.post(
        f"{server.base_url}/api/teachers", json={"name": name}, headers=auth_headers(), timeout=10
    )
    response.raise_for_status()
    code: str = response.json()["code"]
    return code


def fits_the_width(page: Page) -> bool:
    """Nothing sticks out sideways: the page reads without horizontal scrolling."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def roster_card(teacher: Page, name: str) -> Locator:
    """The dashboard's card of the student called `name`."""
    return teacher.locator(".student-card").filter(has=teacher.get_by_role("heading", name=name))


def test_a_lesson_from_the_teachers_code_to_a_server_restart(
    server: ServerProcess, contexts: dict[str, BrowserContext]
) -> None:
    # a. An admin creates a teacher; the teacher opens the link, makes a class and
    #    uploads a Markdown story, and waits for it to be prepared.
    teacher = contexts["teacher"].new_page()
    teacher.goto(server.base_url + "/teacher")
    expect(teacher.get_by_label("Your code")).to_be_visible()
    screenshot(teacher, "01-teacher-sign-in")
    sign_in_by_link(teacher, server, create_teacher(server, "Ms Rivera"), path="/teacher")
    assert "code=" not in teacher.url
    expect(teacher.locator("#who")).to_contain_text("Ms Rivera")

    teacher.get_by_label("New class name").fill("Class 3B")
    teacher.get_by_role("button", name="Create class").click()
    expect(teacher.locator("#class-title")).to_have_text("Class 3B")
    expect(teacher.locator("#feed-state")).to_have_attribute("data-state", "online")

    story_file: FilePayload = {
        "name": "red-kite.md",
        "mimeType": "text/markdown",
        "buffer": STORY_MARKDOWN.encode(),
    }
    teacher.get_by_label("From a file").set_input_files(files=[story_file])
    expect(teacher.get_by_label("Title")).to_have_value(STORY)  # from the file's heading
    expect(teacher.get_by_label("Format")).to_have_value("markdown")
    teacher.get_by_label("Level").fill("Grade 1")
    teacher.get_by_role("button", name="Upload story").click()
    job = teacher.locator("#job")
    expect(job).to_have_attribute("data-status", "completed", timeout=JOB_TIMEOUT_MS)
    expect(teacher.locator("#job-status")).to_contain_text(f"Ready: “{STORY}”")
    expect(teacher.locator("#job-progress")).to_have_js_property("value", 1)
    screenshot(teacher, "02-teacher-story-uploaded")

    # b. The teacher adds a student and reads the code off the page; the student types
    #    it, opens the new story and asks; the answer's source is marked in the story.
    teacher.get_by_label("Student's name").fill("Ada")
    teacher.get_by_role("button", name="Add student").click()
    code = teacher.locator("#code-value")
    expect(code).to_have_text(re.compile(r"^[A-Z2-9]{8}$"))
    expect(teacher.get_by_label("Sign-in link")).to_have_value(re.compile(r"/\?code=[A-Z2-9]{8}$"))
    expect(roster_card(teacher, "Ada")).to_contain_text("Offline")
    screenshot(teacher, "03-teacher-student-code")
    teacher.evaluate("window.stillTheSamePage = true")  # a reload would forget it

    student = contexts["student"].new_page()
    student.goto(server.base_url + "/")
    screenshot(student, "04-student-sign-in")
    student.get_by_label("Your code").fill(code.inner_text())
    student.get_by_role("button", name="Sign in").click()
    expect(student.locator("#who")).to_contain_text("Ada")
    story = student.get_by_role("link", name=re.compile(STORY))
    expect(story).to_contain_text("Grade 1")
    story.click()
    expect(student.locator("#connection")).to_have_attribute("data-state", "online")
    sentences = student.locator("#passage .sentence")
    expect(sentences.first).to_have_text(re.compile(r"^Mia had a red kite"))  # Markdown made plain

    ask(student, "What colour was the kite?")
    cited = student.locator("#passage .sentence.cited")
    expect(cited.first).to_be_visible()
    expect(cited.first).to_contain_text("kite")
    screenshot(student, "05-student-answer-cited")

    # c. Without a reload, the dashboard shows Ada online, where she is, her question.
    card = roster_card(teacher, "Ada")
    expect(card).to_have_attribute("data-online", "true")
    expect(card).to_contain_text(f"Reading: {STORY}")
    expect(card).to_contain_text("1 question")
    sentences.nth(2).click()
    count = sentences.count()
    expect(card.locator(".student-place")).to_have_text(f"Sentence 3 of {count}")
    expect(card.get_by_role("progressbar")).to_have_js_property("value", 3)
    card.get_by_role("button", name="Questions of Ada").click()
    shown = teacher.locator("#student-messages .msg")
    expect(shown.first).to_contain_text("What colour was the kite?")
    expect(teacher.locator("#student-messages .msg.tutor")).to_have_count(1)
    ask(student, "Where did the kite fly?")
    expect(shown.filter(has_text="Where did the kite fly?")).to_have_count(1)
    expect(teacher.locator("#student-messages .msg.tutor")).to_have_count(2)
    expect(card).to_contain_text("2 questions")
    assert teacher.evaluate("window.stillTheSamePage") is True, "the dashboard did not reload"
    screenshot(teacher, "06-teacher-dashboard-live")

    # Read-aloud: sentence after sentence from Ada's place, the place moving along.
    read = student.get_by_role("button", name="Read aloud")
    read.focus()
    student.keyboard.press("Enter")
    reading = student.locator("#passage .sentence.reading")
    expect(reading).to_have_count(1)
    expect(sentences.nth(2)).to_have_class(re.compile(r"\breading\b"))
    expect(sentences.nth(3)).to_have_class(re.compile(r"\breading\b"), timeout=JOB_TIMEOUT_MS)
    expect(sentences.nth(3)).to_have_attribute("aria-current", "location")
    expect(card.locator(".student-place")).to_have_text(f"Sentence 4 of {count}")
    screenshot(student, "07-student-read-aloud")
    student.get_by_role("button", name="Pause").click()
    expect(student.locator("#read-status")).to_have_text("Paused")
    student.get_by_role("button", name="Stop reading").click()
    expect(reading).to_have_count(0)

    # d. A message to the class shows on the student's page, newest last.
    teacher.get_by_label("Message to every student of the class").fill("Five more minutes!")
    teacher.get_by_role("button", name="Send to class").click()
    expect(teacher.locator("#broadcast-list li")).to_contain_text(["Five more minutes!"])
    from_teacher = student.locator("#from-teacher li")
    expect(from_teacher.last).to_contain_text("Five more minutes!")
    screenshot(student, "08-student-teacher-message")

    # Both pages at phone width: readable without sideways scrolling.
    for page, name in ((student, "09-student-phone"), (teacher, "10-teacher-phone")):
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(200)  # the layout settles
        assert fits_the_width(page), f"{name}: wider than {PHONE['width']} px"
        screenshot(page, name)
        page.set_viewport_size(DESKTOP)

    # e. The server restarts: the student's page reconnects by itself and works on.
    server.stop()
    expect(student.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(teacher.locator("#feed-state")).to_have_attribute("data-state", "reconnecting")
    screenshot(student, "11-student-reconnecting", full_page=False)
    server.start()
    expect(student.locator("#connection")).to_have_attribute(
        "data-state", "online", timeout=RESTART_TIMEOUT_MS
    )
    expect(student.locator("#connection-text")).to_have_text("Online")
    ask(student, "Who laughed?")
    expect(student.locator(".msg.tutor").last.locator(".msg-text")).to_contain_text("Mia")
    expect(teacher.locator("#feed-state")).to_have_attribute(
        "data-state", "online", timeout=RESTART_TIMEOUT_MS
    )
    expect(card).to_contain_text("3 questions")
    screenshot(student, "12-student-after-restart")


def ask(page: Page, question: str) -> None:
    """Ask by typing, and wait for the whole answer."""
    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".msg.tutor").last
    expect(page.locator(".msg.student").last).to_contain_text(question)
    expect(answer).to_have_attribute("aria-busy", "false")


def test_operators_sign_in_with_a_token_and_students_codes_lead_to_the_reading_page(
    server: ServerProcess, contexts: dict[str, BrowserContext]
) -> None:
    phone = contexts["phone"].new_page()
    phone.goto(server.base_url + "/teacher")
    assert fits_the_width(phone)
    screenshot(phone, "13-teacher-sign-in-phone")
    phone.get_by_text("Sign in with a token (operators)").click()
    phone.get_by_label("Token").fill(mint_token("teacher", "t-operator", name="Mr Ops"))
    phone.get_by_role("button", name="Use this token").click()
    expect(phone.locator("#who")).to_contain_text("Mr Ops")
    expect(phone.get_by_text("No classes yet")).to_be_visible()
    phone.get_by_label("New class name").fill("Night class")
    phone.get_by_role("button", name="Create class").click()
    phone.get_by_label("Student's name").fill("Bo")
    phone.get_by_role("button", name="Add student").click()
    code = phone.locator("#code-value")
    expect(code).to_have_text(re.compile(r"^[A-Z2-9]{8}$"))
    assert fits_the_width(phone)
    screenshot(phone, "14-teacher-code-phone")

    # The student's code typed at the dashboard by mistake: it opens the reading page.
    student = contexts["phone"].new_page()
    student.goto(server.base_url + "/teacher")
    student.get_by_label("Your code").fill(code.inner_text())
    student.get_by_role("button", name="Sign in").click()
    expect(student).to_have_url(re.compile(r"/$"))
    expect(student.locator("#who")).to_contain_text("Bo")
    expect(student.get_by_role("heading", name="From your teacher")).to_be_visible()
    assert fits_the_width(student)
    screenshot(student, "15-student-phone-signed-in")

    phone.get_by_role("button", name="Sign out").click()
    expect(phone.get_by_label("Your code")).to_be_focused()
