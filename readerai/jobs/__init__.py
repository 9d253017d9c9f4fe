"""Background jobs: work that outlives a request and survives the node running it.

`JobWorker` claims jobs from the store and runs one handler per kind of job;
`PassagePreparer` is the handler that readies an added passage (sentences, retrieval
terms, narration). The job queue itself lives in the store (`Store.claim_job`).
"""

from __future__ import annotations

from readerai.jobs.markdown import markdown_title, markdown_to_text
from readerai.jobs.passages import PREPARE_PASSAGE, PassagePreparer
from readerai.jobs.worker import Handler, JobFailed, JobWorker, ProgressReporter

__all__ = [
    "PREPARE_PASSAGE",
    "Handler",
    "JobFailed",
    "JobWorker",
    "PassagePreparer",
    "ProgressReporter",
    "markdown_title",
    "markdown_to_text",
]
