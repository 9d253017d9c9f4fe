"""What the browser tests share: Debian's Chromium, signing people in, screenshots.

Helpers, not fixtures (those are in conftest.py): sync code the tests call directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Expect, Page, ViewportSize

from tests.fixtures_server import ROOT, ServerProcess, auth_headers, mint_token

CHROMIUM = Path("/usr/bin/chromium")
# Measured to work headless on these machines (see MEASURED.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Read-aloud plays after a fetch, which some policies no longer count as the tap.
    "--autoplay-policy=no-user-gesture-required",
]
TIMEOUT_MS = 20_000
#: A phone held upright (iPhone SE / mini width): every page must work at 375 px.
PHONE: ViewportSize = {"width": 375, "height": 740}
#: Git-ignored; a human (or a reviewer) looks at these after a run.
SCREENSHOTS = ROOT / "test-output" / "screenshots"

# Assertions wait longer than Playwright's default 5 s (their own instance, so other
# code keeps the default).
expect = Expect()
expect.set_options(timeout=TIMEOUT_MS)


@dataclass(frozen=True)
class Enrolment:
    """A class made through the API by a teacher, with one student and their code."""

    teacher_token: str
    class_id: str
    student_id: str
    code: str


def enrol_student(
    server: ServerProcess, name: str = "Ada", teacher: str = "t-web", class_name: str = "3B"
) -> Enrolment:
    """Create a class as teacher `teacher` and add student `name` (a fresh code)."""
    token = mint_token("teacher", teacher, name="Ms Web")
    with httpx.Client(base_url=server.base_url, headers=auth_headers(token), timeout=10) as http:
        created = http.post("/api/classes", json={"name": class_name})
        created.raise_for_status()
        class_id = created.json()["id"]
        added = http.post(f"/api/classes/{class_id}/students", json={"name": name})
        added.raise_for_status()
        student = added.json()
    return Enrolment(token, class_id, student["userId"], student["code"])


def new_code(server: ServerProcess, enrolment: Enrolment) -> str:
    """A fresh one-time code for the enrolled student (codes work once)."""
    path = f"/api/classes/{enrolment.class_id}/students/{enrolment.student_id}/code"
    response = httpx.post(
        server.base_url + path, headers=auth_headers(enrolment.teacher_token), timeout=10
    )
    response.raise_for_status()
    code: str = response.json()["code"]
    return code


def sign_in_by_link(page: Page, server: ServerProcess, code: str, path: str = "/") -> None:
    """Open `path?code=…` and wait until the page is signed in."""
    page.goto(f"{server.base_url}{path}?code={code}")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def open_story(page: Page, title: str) -> None:
    """Choose a story in the list and wait for its live connection."""
    page.get_by_role("link", name=re.compile(re.escape(title))).click()
    expect(page.locator("#passage-title")).to_have_text(title)
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")


def fake_microphone(wav: Path) -> list[str]:
    """Chromium arguments that make `wav` the microphone, granted without a prompt.

    Chromium plays the file from the start when the page opens the microphone and
    loops it: pad it with enough silence that a test ends before it starts again.
    """
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save what `page` shows as `test-output/screenshots/<name>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
