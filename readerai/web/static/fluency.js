// Reading aloud on the teacher dashboard: a class's readings, each student's fluency
// over time (words correct per minute and accuracy per passage, as small inline SVG
// charts), the words the class misses most, the replay of one reading with its miscues
// marked, and the class's setting for helping a student stuck on a word.
// REST: GET /api/classes/{id}/readings, .../missed-words, .../students/{userId}/fluency,
// GET /api/readings/{readingId}, PATCH /api/classes/{id} (docs/classroom.md).
// Server text goes in with textContent only.

import { el, timeElement } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const enc = encodeURIComponent;
const KINDS = {
  omission: "skipped", substitution: "misread", insertion: "added", repetition: "repeated",
  self_correction: "self-corrected",
};
// The colour a word gets when it has several miscues: errors first.
const RANK = { omission: 4, substitution: 4, self_correction: 2, repetition: 1 };
const HELP_TEXT = { off: "do nothing", say_word: "say the word", ask: "ask a question" };
const CHART = { width: 320, height: 110, pad: 14 };
const percent = (x) => `${Math.round(x * 100)}%`;
const wcpmText = (x) => `${Math.round(x)} WCPM`;

export class FluencyPanel {
  /**
   * `ui`: the elements of teacher.html's #fluency section; `passageOf(id)` gives a known
   * passage's `{title}`; `onClassChanged(room)` gets the class after its help setting changed.
   */
  constructor(ui, { api, passageOf, toast, onClassChanged }) {
    Object.assign(this, { ui, api, passageOf, toast, onClassChanged });
    this.classId = null;
    this.names = new Map(); // userId -> name
    this.loading = 0; // a counter: only the newest load paints
    this.player = null; // the replay being played: {timer, at}
    this.shown = null; // what the lists show: {readings, missed, fluency}
    ui.student.addEventListener("change", () => this.load());
    ui.helpForm.addEventListener("submit", (event) => this.saveHelp(event));
    ui.replayPlay.addEventListener("click", () => (this.player ? this.stop() : this.play()));
    ui.replayClose.addEventListener("click", () => this.closeReplay());
  }

  /** Show the reading of class `room` ({id, stallSeconds, stallHelp}). */
  open(room) {
    this.close();
    this.classId = room.id;
    this.ui.stallSeconds.value = String(room.stallSeconds ?? 5);
    this.ui.stallHelp.value = room.stallHelp ?? "say_word";
    this.load();
  }

  close() {
    this.closeReplay();
    this.classId = null;
    this.loading += 1;
    this.shown = null;
    this.names.clear();
    this.ui.student.replaceChildren(el("option", { value: "", textContent: "Whole class" }));
    this.ui.readingList.replaceChildren();
    this.ui.missedWords.replaceChildren();
    this.ui.chartList.replaceChildren();
    this.ui.helpStatus.textContent = "";
  }

  /** The class's students (from the roster), for the filter and the names. */
  setStudents(entries) {
    this.names = new Map(entries.map((e) => [e.userId, e.name || e.userId]));
    const chosen = this.ui.student.value;
    this.ui.student.replaceChildren(el("option", { value: "", textContent: "Whole class" }),
      ...entries.map((e) => el("option", { value: e.userId, textContent: e.name || e.userId })));
    this.ui.student.value = this.names.has(chosen) ? chosen : "";
    if (this.ui.student.value !== chosen) this.load(); // the student shown left the class
    else if (this.shown) this.paint(this.shown); // names may have arrived after the readings
  }

  /** A `reading` event of the class feed: a student finished a reading. */
  onReading(report) {
    if (!this.classId) return;
    const passage = this.passageOf(report.passageId)?.title ?? report.passageId;
    this.toast(`${this.nameOf(report.userId)} read ${passage}: ${wcpmText(report.wcpm)}, ${percent(report.accuracy)} accurate`);
    this.load();
  }

  nameOf(userId) { return this.names.get(userId) ?? userId ?? "A student"; }

  async load() {
    const classId = this.classId;
    if (!classId) return;
    const load = ++this.loading;
    const userId = this.ui.student.value;
    const filter = userId ? `?userId=${enc(userId)}` : "";
    const base = `api/classes/${enc(classId)}`;
    try {
      const [readings, missed, fluency] = await Promise.all([
        this.api.json(`${base}/readings${filter}${filter ? "&" : "?"}limit=50`),
        this.api.json(`${base}/missed-words${filter}`),
        userId ? this.api.json(`${base}/students/${enc(userId)}/fluency`) : null,
      ]);
      if (load !== this.loading) return; // another class or student chosen meanwhile
      this.paint({ readings, missed, fluency });
    } catch (error) {
      if (error.status !== 401 && load === this.loading) this.toast(`Could not load the readings: ${error.message}`);
    }
  }

  paint(shown) {
    this.shown = shown;
    this.paintReadings(shown.readings);
    this.paintMissed(shown.missed);
    this.paintChart(shown.fluency);
  }

  paintReadings(readings) {
    this.ui.readingsEmpty.hidden = readings.length > 0;
    this.ui.readingList.replaceChildren(...readings.map((r) => {
      const passage = this.passageOf(r.passageId)?.title ?? r.passageId;
      const name = this.nameOf(r.userId);
      const replay = el("button", { type: "button", className: "secondary small", textContent: "Replay" });
      replay.setAttribute("aria-label", `Replay ${name}'s reading of ${passage}`);
      replay.addEventListener("click", () => this.replay(r.readingId));
      const item = el("li", { className: "reading-item" },
        el("p", { className: "reading-who" }, el("strong", { textContent: name }), ` · ${passage} · `, timeElement(r.endedAt)),
        el("p", { className: "reading-score" },
          el("span", { className: "reading-wcpm", textContent: wcpmText(r.wcpm) }),
          ` · ${percent(r.accuracy)} accurate · ${r.errors} ${r.errors === 1 ? "error" : "errors"}`),
        replay);
      item.dataset.readingId = r.readingId;
      return item;
    }));
  }

  paintMissed(words) {
    this.ui.missedEmpty.hidden = words.length > 0;
    this.ui.missedWords.replaceChildren(...words.map((w) => el("li", {},
      el("span", { className: "missed-word", textContent: w.word }),
      ` missed ${w.misses} ${w.misses === 1 ? "time" : "times"}${w.readings > 1 ? ` in ${w.readings} readings` : ""}`)));
  }

  /** One chart per passage the student read: WCPM and accuracy per reading. */
  paintChart(fluency) {
    this.ui.chart.hidden = !fluency;
    if (!fluency) return this.ui.chartList.replaceChildren();
    this.ui.chartTitle.textContent = `Fluency of ${this.nameOf(fluency.userId)} over time`;
    if (!fluency.passages.length) {
      return this.ui.chartList.replaceChildren(el("li", { className: "muted", textContent: "No readings yet." }));
    }
    this.ui.chartList.replaceChildren(...fluency.passages.map((p) => {
      const title = p.title ?? this.passageOf(p.passageId)?.title ?? p.passageId;
      const last = p.readings[p.readings.length - 1];
      const summary = `${title}: latest ${wcpmText(last.wcpm)}, ${percent(last.accuracy)} accurate` +
        ` (${p.readings.length} ${p.readings.length === 1 ? "reading" : "readings"})`;
      const item = el("li", { className: "chart-item" },
        el("p", { className: "chart-caption", textContent: summary }), chart(p.readings, summary));
      item.dataset.passageId = p.passageId;
      return item;
    }));
  }

  // ---- the help setting
  async saveHelp(event) {
    event.preventDefault();
    const seconds = Number(this.ui.stallSeconds.value);
    const help = this.ui.stallHelp.value;
    try {
      const room = await this.api.json(`api/classes/${enc(this.classId)}`, {
        method: "PATCH", body: JSON.stringify({ stallSeconds: seconds, stallHelp: help }),
      });
      this.onClassChanged(room);
      this.ui.helpStatus.textContent = room.stallHelp === "off"
        ? "Saved: the tutor will not step in."
        : `Saved: after ${room.stallSeconds} s stuck on a word, the tutor will ${HELP_TEXT[room.stallHelp]}.`;
    } catch (error) {
      if (error.status !== 401) this.ui.helpStatus.textContent = `Not saved: ${error.message}`;
    }
  }

  // ---- replay
  async replay(readingId) {
    let reading;
    try {
      reading = await this.api.json(`api/readings/${enc(readingId)}`);
    } catch (error) {
      return error.status === 401 || this.toast(`Could not open the reading: ${error.message}`);
    }
    this.stop();
    const ui = this.ui;
    const passage = reading.passageTitle ?? reading.passageId;
    ui.replayTitle.textContent = `Replay: ${this.nameOf(reading.userId)} reading ${passage}`;
    ui.replaySummary.textContent = `${wcpmText(reading.wcpm)} · ${percent(reading.accuracy)} accurate · ` +
      `${reading.wordsCorrect} of ${reading.wordsAttempted} words correct · ${Math.round(reading.durationSeconds)} s`;
    this.spans = renderPassage(ui.replayText, reading);
    this.steps = reading.timeline;
    ui.replayHeard.textContent = "";
    ui.replayPlay.textContent = "Play";
    ui.replay.hidden = false;
    ui.replay.dataset.readingId = reading.readingId;
    ui.replay.focus();
  }

  /** Step through the timeline in time, highlighting each word as it was read. */
  play() {
    const steps = this.steps ?? [];
    if (!steps.length) return;
    const t0 = steps[0].start;
    const began = performance.now();
    this.player = { at: 0 };
    this.ui.replayHeard.textContent = "";
    this.ui.replayPlay.textContent = "Stop";
    this.ui.replay.dataset.playing = "true";
    const next = () => {
      const player = this.player;
      if (!player) return;
      if (player.at >= steps.length) return this.stop(true);
      const step = steps[player.at++];
      this.show(step);
      const following = steps[player.at];
      const due = following ? (following.start - t0) * 1000 - (performance.now() - began) : (step.end - step.start) * 1000;
      player.timer = setTimeout(next, Math.max(0, due));
    };
    next();
  }

  show(step) {
    for (const span of this.ui.replayText.querySelectorAll(".replay-current")) span.classList.remove("replay-current");
    const span = step.wordIndex == null ? null : this.spans[step.wordIndex];
    span?.classList.add("replay-current");
    // What was said instead stays shown until the next miscue: a word lasts too short to read it.
    const heard = this.ui.replayHeard;
    if (step.wordIndex == null) heard.textContent = `Said “${step.heard}” (not in the story)`;
    else if (!step.correct) heard.textContent = `Said “${step.heard}” for “${span?.textContent ?? ""}”`;
  }

  stop(ended = false) {
    if (this.player) clearTimeout(this.player.timer);
    this.player = null;
    this.ui.replay.dataset.playing = "false";
    this.ui.replayPlay.textContent = ended ? "Play again" : "Play";
    if (!ended) return;
    for (const span of this.ui.replayText.querySelectorAll(".replay-current")) span.classList.remove("replay-current");
  }

  closeReplay() {
    this.stop();
    this.ui.replay.hidden = true;
    this.ui.replayText.replaceChildren();
    this.steps = null;
  }
}

/**
 * The passage in `box`, each word a span coloured by its miscue (with what was said
 * instead for a misread word) and a mark where words were added. Returns the spans by
 * word index.
 */
function renderPassage(box, reading) {
  const byWord = new Map();
  for (const m of reading.miscues) {
    if (m.wordIndex == null) continue;
    const known = byWord.get(m.wordIndex);
    if (!known || RANK[m.kind] > RANK[known.kind]) byWord.set(m.wordIndex, m);
  }
  const added = new Map(); // word index it comes before -> words said
  const insertions = reading.miscues.filter((m) => m.kind === "insertion");
  reading.timeline.forEach((step, i) => {
    if (step.wordIndex != null || !insertions.some((m) => m.heard === step.heard && Math.abs(m.time - step.start) < 0.01)) return;
    const before = reading.timeline.slice(i + 1).find((s) => s.wordIndex != null)?.wordIndex ?? reading.words.length;
    added.set(before, [...(added.get(before) ?? []), step.heard]);
  });
  const text = reading.passageText ?? reading.words.map((w) => w.text).join(" ");
  const spans = [];
  const parts = [];
  let at = 0;
  reading.words.forEach((word, index) => {
    if (word.start > at) parts.push(text.slice(at, word.start));
    for (const said of added.get(index) ?? []) parts.push(insertionMark(said));
    const span = el("span", { className: "replay-word", textContent: text.slice(word.start, word.end) });
    span.dataset.index = String(index);
    const miscue = byWord.get(index);
    if (miscue) {
      span.classList.add(`miscue-${miscue.kind}`);
      span.title = miscue.heard ? `${KINDS[miscue.kind]}: said “${miscue.heard}”` : KINDS[miscue.kind];
    }
    spans.push(span);
    parts.push(span);
    if (miscue?.kind === "substitution" && miscue.heard) {
      parts.push(el("span", { className: "said", textContent: miscue.heard }));
    }
    at = word.end;
  });
  for (const said of added.get(reading.words.length) ?? []) parts.push(insertionMark(said));
  parts.push(text.slice(at));
  box.replaceChildren(...parts);
  return spans;
}

function insertionMark(said) {
  const mark = el("ins", { className: "miscue-insertion", textContent: `+${said}` });
  mark.title = `added: said “${said}”`;
  return mark;
}

/** A small line chart: WCPM (left scale) and accuracy (0-100 %), one point per reading. */
function chart(readings, label) {
  const { width, height, pad } = CHART;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "fluency-svg");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const top = Math.max(60, ...readings.map((r) => r.wcpm)) * 1.1;
  const x = (i) => pad + (readings.length === 1 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (readings.length - 1));
  const y = (fraction) => height - pad - fraction * (height - 2 * pad);
  svg.append(svgNode("line", { x1: pad, x2: width - pad, y1: y(0), y2: y(0), class: "axis" }));
  for (const [series, value] of [["accuracy", (r) => r.accuracy], ["wcpm", (r) => r.wcpm / top]]) {
    const points = readings.map((r, i) => `${x(i).toFixed(1)},${y(value(r)).toFixed(1)}`).join(" ");
    svg.append(svgNode("polyline", { points, class: `line-${series}` }));
    readings.forEach((r, i) => {
      const dot = svgNode("circle", { cx: x(i).toFixed(1), cy: y(value(r)).toFixed(1), r: 3.5, class: `dot-${series}` });
      const title = svgNode("title", {});
      title.textContent = `${new Date(r.endedAt).toLocaleString()}: ${wcpmText(r.wcpm)}, ${percent(r.accuracy)} accurate`;
      dot.append(title);
      svg.append(dot);
    });
  }
  const lastWcpm = readings[readings.length - 1].wcpm;
  const labelNode = svgNode("text", { x: width - pad, y: Math.max(10, y(lastWcpm / top) - 6), class: "chart-label" });
  labelNode.textContent = String(Math.round(lastWcpm));
  svg.append(labelNode);
  return svg;
}

function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}
