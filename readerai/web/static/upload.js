// Adding a story from the dashboard: the form, reading a chosen file in the browser,
// and following the job that prepares the passage (docs/classroom.md, "Jobs"):
// POST /api/passages → 202 {jobId, passageId}, then GET /api/jobs/{jobId} every
// 500 ms until it is `completed` or `failed`.
//
// The status line (a live region) changes only when the job's status does, so a
// screen reader is not told every percent; the progress bar carries the percentage.

const POLL_MS = 500;
const MAX_POLL_FAILURES = 20; // about 10 s of a server that does not answer
const JOB_LABELS = { queued: "Waiting to start…", running: "Preparing…" };

export class PassageUpload {
  /** `ui`: {form, file, title, level, format, text, submit, job, label, bar, percent, status}. */
  constructor(ui, { api, onReady }) {
    Object.assign(this, { ui, api, onReady, timer: 0, jobId: null });
    ui.form.addEventListener("submit", (event) => this.submit(event));
    ui.file.addEventListener("change", () => this.readFile());
  }

  /** Fill the form from the chosen file: text, format by extension, title if empty. */
  async readFile() {
    const file = this.ui.file.files?.[0];
    if (!file) return;
    let text;
    try {
      text = await file.text();
    } catch (error) {
      return this.show("failed", `Could not read ${file.name}: ${error.message}`);
    }
    const markdown = /\.(md|markdown)$/i.test(file.name) || file.type === "text/markdown";
    this.ui.text.value = text;
    this.ui.format.value = markdown ? "markdown" : "text";
    if (!this.ui.title.value.trim()) {
      const heading = markdown && /^#\s+(.+)$/m.exec(text);
      this.ui.title.value = heading ? heading[1].trim() : file.name.replace(/\.[^.]+$/, "");
    }
  }

  async submit(event) {
    event.preventDefault();
    const { form, title, level, format, text } = this.ui;
    if (!form.reportValidity()) return;
    const body = {
      title: title.value.trim(),
      text: text.value,
      level: level.value.trim() || null,
      format: format.value,
    };
    this.cancel();
    this.ui.submit.disabled = true;
    this.ui.job.hidden = false;
    this.ui.label.textContent = `“${body.title}”`;
    this.show("queued");
    let created;
    try {
      created = await this.api.json("api/passages", { method: "POST", body: JSON.stringify(body) });
    } catch (error) {
      this.ui.submit.disabled = false;
      return this.show("failed", `Could not upload: ${error.message}`);
    }
    if (!created?.jobId) return this.finish({ status: "completed", passageId: created?.id ?? created?.passageId }, body.title);
    this.jobId = created.jobId;
    this.poll(created.jobId, body.title, 0);
  }

  poll(jobId, title, failures) {
    this.timer = setTimeout(async () => {
      let job;
      try {
        job = await this.api.json(`api/jobs/${encodeURIComponent(jobId)}`);
      } catch (error) {
        if (this.jobId !== jobId || error.status === 401) return; // cancelled, or signed out
        if (failures + 1 >= MAX_POLL_FAILURES || error.status === 404) {
          this.ui.submit.disabled = false;
          return this.show("failed", `Lost track of the upload: ${error.message}`);
        }
        return this.poll(jobId, title, failures + 1);
      }
      if (this.jobId !== jobId) return;
      if (job.status === "completed" || job.status === "failed") return this.finish(job, title);
      this.show(job.status, null, job.progress);
      this.poll(jobId, title, 0);
    }, POLL_MS);
  }

  finish(job, title) {
    this.jobId = null;
    this.ui.submit.disabled = false;
    if (job.status === "failed") {
      return this.show("failed", `Could not prepare “${title}”: ${job.detail || "unknown reason"}`);
    }
    this.show("completed", `Ready: “${title}” can be read now.`, 1);
    this.ui.form.reset();
    this.onReady(job.passageId);
  }

  /** Stop following a job (signing out, or a new upload). */
  cancel() {
    clearTimeout(this.timer);
    this.jobId = null;
  }

  show(status, message = null, progress = null) {
    const { job, bar, percent, status: line } = this.ui;
    job.hidden = false;
    job.dataset.status = status;
    if (progress != null) bar.value = Math.max(0, Math.min(1, progress));
    else if (status === "queued") bar.value = 0;
    percent.textContent = `${Math.round(bar.value * 100)}%`;
    const text = message ?? JOB_LABELS[status] ?? status;
    if (line.textContent !== text) line.textContent = text;
  }
}
