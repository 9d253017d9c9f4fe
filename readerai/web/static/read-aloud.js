// Read-aloud mode: the student reads the story out loud and the server follows along.
// The page sends SESSION_UPDATE {mode: "read_aloud", passageId}, streams the microphone
// (voice.js), and the server answers with READING_PROGRESS {passageId, position,
// wordIndex}: the word reached, which is marked with aria-current and kept in view.
// "Done reading" sends SESSION_UPDATE {mode: "conversation"}. Typed questions work
// all along. (Not narration.js, where the tutor reads the story to the student.)
//
// Words are cut as the server cuts them (readerai/readaloud/words.py): a run of letters
// or digits, apostrophes allowed inside, over the whole passage text, so `wordIndex`
// names the same word here. `position` is the word's offset in code points (Python's
// string index); each word span keeps it too, and a word found by index is only
// trusted when its offset agrees, so a split that ever differs still marks the word
// the server meant.

import { el } from "./dom.js";

// Python's [^\W_] is a letter or a digit (str.isalnum): \p{L} or \p{N}.
const WORD = /[\p{L}\p{N}]+(?:['\u2019\u02bc\u2018][\p{L}\p{N}]+)*/gu;
// Refusals of the mode itself, or a reading the server could no longer follow.
const ENDS_READING = new Set(["unsupported", "invalid_payload", "not_found", "voice_error"]);
// The miscues that count as errors, and how a marked word explains itself.
const MISSED = {
  omission: () => "skipped",
  substitution: (heard) => (heard ? `read as “${heard}”` : "misread"),
};
const STATUS = {
  off: "",
  starting: "Starting the microphone…",
  reading: "Listening to you read…",
  waiting: "Reading aloud – waiting for the connection…",
};

/**
 * The words of `text` in order: {text, start, end} (indices into the JS string) and
 * `offset`, the start in code points, as the server counts.
 */
export function passageWords(text) {
  const words = [];
  let offset = 0, last = 0;
  for (const match of text.matchAll(WORD)) {
    offset += codePoints(text, last, match.index);
    last = match.index;
    words.push({ text: match[0], start: match.index, end: match.index + match[0].length, offset });
  }
  return words;
}

function codePoints(text, from, to) {
  let count = 0;
  for (let i = from; i < to; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff) count += 1; // a low surrogate ends a pair counted already
  }
  return count;
}

/**
 * Append `text[from, to)` to `parent`, each word of `words` inside it as a span
 * `.word` with data-word-index (its index in `words`) and data-position.
 */
export function appendWords(parent, text, from, to, words) {
  let cursor = from;
  words.forEach((word, index) => {
    if (word.start < from || word.end > to) return;
    if (word.start > cursor) parent.append(text.slice(cursor, word.start));
    const span = el("span", { className: "word", textContent: word.text });
    span.dataset.wordIndex = String(index);
    span.dataset.position = String(word.offset);
    parent.append(span);
    cursor = word.end;
  });
  if (cursor < to) parent.append(text.slice(cursor, to));
}

/**
 * One student reading the shown story aloud. `state`: "off" | "starting" | "reading".
 * While "reading", audio may go out on `socket` (the one that was sent the mode), and
 * only there: on a new connection the mode is sent again first (`resume`).
 */
export class StudentReading {
  /**
   * `ui`: {start, stop, status, result} elements; `voice`: voice.js's Voice;
   * `send(type, payload)` sends on the live socket (false when there is none);
   * `socket()` the live socket; `passageId()` the story shown; `supported()` whether
   * this browser may use the microphone here; `onWord(span)` runs when
   * the reader reaches a word; `onMicError(error)` when the microphone is refused;
   * `onChange()` when the state changes.
   */
  constructor({ ui, voice, send, socket, passageId, supported, onWord, onMicError, onChange }) {
    Object.assign(this, { ui, voice, send, socket, passageId, supported, onWord, onMicError, onChange });
    this.state = "off";
    this.sentOn = null; // the socket that was sent SESSION_UPDATE {mode: "read_aloud"}
    this.spans = []; // word spans of the story shown, by word index
    this.byPosition = new Map(); // data-position -> word span
    this.current = null; // the word span marked as reached
  }

  get active() { return this.state !== "off"; }

  /** Whether a microphone chunk may go out on `socket` as part of the reading. */
  acceptsAudioOn(socket) { return this.state === "reading" && socket !== null && this.sentOn === socket; }

  /** The story shown changed (or was re-rendered): index its word spans. */
  attach(passage) {
    this.stop();
    this.spans = [...passage.querySelectorAll(".word")];
    this.byPosition = new Map(this.spans.map((span) => [Number(span.dataset.position), span]));
    this.current = null;
    this.ui.result.replaceChildren();
    this.ui.result.hidden = true;
    this.setStatus("");
    this.update();
  }

  async start() {
    if (this.state !== "off" || !this.spans.length || !this.supported()) return;
    const focused = document.activeElement === this.ui.start; // it is disabled from here on
    this.set("starting");
    this.ui.result.hidden = true;
    try {
      await this.voice.enable("read");
    } catch (error) {
      this.set("off");
      if (focused) this.ui.start.focus();
      return this.onMicError(error);
    }
    if (this.state !== "starting") return this.voice.disable("read"); // stopped meanwhile
    this.set("reading");
    this.resume();
    if (focused) this.ui.stop.focus();
  }

  /** (Re)send the mode on the live socket: a new connection starts in conversation mode. */
  resume() {
    if (this.state !== "reading") return;
    const sent = this.send("SESSION_UPDATE", { mode: "read_aloud", passageId: this.passageId() });
    this.sentOn = sent ? this.socket() : null;
    this.update();
  }

  /** Done reading: the microphone goes off (unless Talk keeps it) and the server is told. */
  stop() {
    if (this.state === "off") return;
    const wasReading = this.state === "reading";
    const focused = document.activeElement === this.ui.stop;
    this.set("off"); // first: no more chunks go out as reading
    this.voice.disable("read");
    if (wasReading && this.sentOn === this.socket()) this.send("SESSION_UPDATE", { mode: "conversation" });
    this.sentOn = null;
    this.current?.removeAttribute("aria-current"); // still shown: where the reader got to
    this.setStatus(this.current ? `You read up to “${this.current.textContent}”.` : "");
    if (focused) this.ui.start.focus();
  }

  /**
   * The word span at `position` (a code point offset), or else the last one starting
   * before it: the word a reading resumed from that position counts as read last.
   */
  wordFrom(position) {
    let found = null;
    for (const span of this.spans) {
      if (Number(span.dataset.position) > position) break;
      found = span;
    }
    return found;
  }

  /** `span` is where an earlier reading stopped (the next one resumes after it). */
  restore(span) {
    if (this.state !== "off") return;
    this.reach(span);
    this.setStatus(`Last time you read up to “${span.textContent}”.`);
  }

  reach(span) {
    if (this.current === span) return;
    this.current?.removeAttribute("aria-current");
    this.current?.classList.remove("reached");
    this.current = span;
    span.classList.add("reached");
  }

  /** The microphone went away: the reading cannot go on. */
  micLost() {
    this.stop();
    this.setStatus("The microphone stopped, so reading aloud stopped.");
  }

  /** READING_PROGRESS from the server. Also after "Done": the last words heard come late. */
  progress({ passageId, position, wordIndex }) {
    if (passageId !== this.passageId()) return;
    const byIndex = this.spans[wordIndex];
    const span = byIndex && Number(byIndex.dataset.position) === position ? byIndex : this.byPosition.get(position) ?? byIndex;
    if (!span) return;
    this.reach(span);
    if (this.state !== "off") span.setAttribute("aria-current", "true"); // not announced: a live region per word would never stop talking
    else this.setStatus(`You read up to “${span.textContent}”.`);
    this.onWord(span);
  }

  /** An ERROR from the server; true when it ended the reading. */
  refused({ code, message }) {
    if (this.state !== "reading" || !ENDS_READING.has(code)) return false;
    this.stop();
    this.setStatus(`Reading aloud stopped: ${message || code}`);
    return true;
  }

  /**
   * READING_RESULT, once the server has scored a reading: words correct per minute,
   * accuracy, and the words missed (omitted or misread) marked in the story to practise.
   */
  result({ passageId, wcpm, accuracy, wordsCorrect, wordsAttempted, miscues = [] }) {
    if (passageId !== this.passageId()) return;
    for (const span of this.spans) {
      span.classList.remove("miscue");
      span.removeAttribute("title");
    }
    const missed = [];
    for (const { kind, wordIndex, heard } of miscues) {
      const span = this.spans[wordIndex];
      if (!span || !MISSED[kind]) continue; // repetitions, insertions, self-corrections are fine
      span.classList.add("miscue");
      span.title = MISSED[kind](heard);
      if (!missed.includes(span.textContent)) missed.push(span.textContent);
    }
    const facts = [
      `${Math.round(wcpm)} words correct per minute`,
      `${wordsCorrect} of ${wordsAttempted} words right (${Math.round(accuracy * 100)}%)`,
    ];
    if (missed.length) facts.push(`Words to practise (underlined in the story): ${missed.join(", ")}`);
    this.ui.result.replaceChildren(el("h3", { textContent: "Your reading" }),
      el("ul", {}, ...facts.map((fact) => el("li", { textContent: fact }))));
    this.ui.result.hidden = false;
  }

  set(state) {
    this.state = state;
    this.update();
    this.onChange();
  }

  update() {
    const { start, stop } = this.ui;
    start.disabled = this.state !== "off" || !this.spans.length || !this.supported();
    start.classList.toggle("active", this.state !== "off");
    stop.disabled = this.state === "off";
    if (this.state === "off") return;
    const waiting = this.state === "reading" && !this.acceptsAudioOn(this.socket());
    this.setStatus(STATUS[waiting ? "waiting" : this.state]);
  }

  setStatus(text) {
    // Rewriting the same text would make screen readers announce it again.
    if (this.ui.status.textContent !== text) this.ui.status.textContent = text;
  }
}
