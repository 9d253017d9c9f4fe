"""Importing a folder of passages (`readerai passages import DIR`), prepared in-process.

Each file becomes a passage and a `prepare_passage` job, exactly as
`POST /api/passages` does; a `JobWorker` in this process then runs the jobs with
the same handler and the node's own settings (database, voice). A server running
against the same database may take some of them: it does the same work, and the
import waits for every one of its jobs to end, whoever runs it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from readerai.jobs.markdown import markdown_title, markdown_to_text
from readerai.jobs.passages import PREPARE_PASSAGE, PassagePreparer
from readerai.jobs.worker import JobWorker
from readerai.settings import Settings
from readerai.store import JobRecord
from readerai.store.sql import SqlStore
from readerai.supervisor import TaskSupervisor
from readerai.voice.factory import build_tts

#: The files `import_passages` reads, by suffix.
PASSAGE_SUFFIXES = (".md", ".txt")
#: Longest title (as `POST /api/passages` allows).
MAX_TITLE = 200
#: How often the import looks at its jobs (and how often the worker reports progress).
WATCH_SECONDS = 0.5

#: Called with the index of a file in the list and the latest state of its job.
JobWatcher = Callable[[int, JobRecord], None]


@dataclass(frozen=True, slots=True)
class PassageFile:
    """One file to import: its name, title and plain text."""

    name: str
    title: str
    text: str


def read_passage_files(folder: Path) -> list[PassageFile]:
    """The `.md` and `.txt` files of `folder` (not its subfolders), by name.

    Markdown is turned into plain text; the title is the document's title (front
    matter or first heading), else the file's name. Blocking: call it off the loop.
    """
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PASSAGE_SUFFIXES
    )
    files: list[PassageFile] = []
    for path in paths:
        raw = path.read_text(encoding="utf-8", errors="replace")
        title = _title_from_name(path)
        if path.suffix.lower() == ".md":
            title = markdown_title(raw) or title
            raw = markdown_to_text(raw)
        files.append(PassageFile(name=path.name, title=title[:MAX_TITLE], text=raw))
    return files


def _title_from_name(path: Path) -> str:
    return " ".join(path.stem.replace("_", " ").replace("-", " ").split()) or path.name


async def import_passages(
    settings: Settings, files: list[PassageFile], *, level: str | None, watch: JobWatcher
) -> list[JobRecord]:
    """Add each file as a passage, prepare them all, and return their jobs as they ended."""
    store = SqlStore(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout,
        write_retry_seconds=settings.store_write_retry_seconds,
    )
    tts = build_tts(settings)
    await store.start()
    try:
        await tts.start()
        try:
            jobs = []
            for file in files:
                passage = await store.add_passage(
                    title=file.title, text=file.text, level=level, sentences=[], status="preparing"
                )
                jobs.append(await store.create_job(kind=PREPARE_PASSAGE, target=passage.id))
            worker = JobWorker(
                store,
                TaskSupervisor(),
                owner=f"cli-{socket.gethostname()}-{os.getpid()}"[:64],
                handlers={PREPARE_PASSAGE: PassagePreparer(store, tts)},
                poll_seconds=WATCH_SECONDS,
                heartbeat_seconds=min(WATCH_SECONDS, settings.job_heartbeat_seconds),
                stale_seconds=settings.job_stale_seconds,
                max_attempts=settings.job_max_attempts,
            )
            worker.start()
            try:
                return await _wait_for(store, jobs, watch)
            finally:
                await worker.close()
        finally:
            await tts.close()
    finally:
        await store.close()


async def _wait_for(store: SqlStore, jobs: list[JobRecord], watch: JobWatcher) -> list[JobRecord]:
    """Watch the jobs until every one is `completed` or `failed`."""
    latest = list(jobs)
    pending = set(range(len(jobs)))
    while pending:
        await anyio.sleep(WATCH_SECONDS)
        for index in sorted(pending):
            job = await store.get_job(jobs[index].id)
            if job is None:  # deleted behind our back: nothing more to wait for
                pending.discard(index)
                continue
            latest[index] = job
            watch(index, job)
            if job.status in ("completed", "failed"):
                pending.discard(index)
    return latest
