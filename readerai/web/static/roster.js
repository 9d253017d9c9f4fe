// The dashboard's roster: one card per student, from the feed's `roster` snapshot,
// then kept current by its `student` and `message` events.
// Cards are updated in place, never rebuilt, so a teacher's keyboard focus on a
// card's button survives the live updates.

import { el, refreshTime, setTime, timeElement } from "./dom.js";

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// A position is a character offset into the passage text (the student's page sends the
// start of the sentence moved to; reading aloud, the server stores the word heard).
// Its sentence is the last one starting at or before it: `starts` are the passage's
// `sentenceStarts`, in order.
function sentenceAt(starts, position) {
  let low = 0, high = starts.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (starts[middle] <= position) low = middle;
    else high = middle - 1;
  }
  return low;
}

export class Roster {
  /**
   * `passageOf(id)` gives `{title, sentenceCount, sentenceStarts}` of a known passage
   * (GET /api/passages); `onSelect(entry)`
   * runs when the teacher opens a student's questions, `onNewCode(entry)` asks for a code.
   */
  constructor(list, { passageOf, onSelect, onNewCode }) {
    Object.assign(this, { list, passageOf, onSelect, onNewCode });
    this.cards = new Map(); // userId -> {entry, turns: Set, ...elements}
    this.selected = null;
  }

  entry(userId) { return this.cards.get(userId)?.entry ?? null; }

  /** Show exactly these students (a `roster` event or GET .../roster); `empty` if none. */
  render(entries, empty = "No students yet. Add one below.") {
    const keep = new Set(entries.map((e) => e.userId));
    for (const [userId, card] of this.cards) {
      if (!keep.has(userId)) {
        card.item.remove();
        this.cards.delete(userId);
      }
    }
    for (const entry of entries) {
      const card = this.cards.get(entry.userId) ?? this.add(entry);
      card.entry = { ...entry };
      card.turns.clear();
      this.list.append(card.item); // server order
      this.paint(card);
    }
    if (!entries.length) this.list.replaceChildren(el("li", { className: "muted", textContent: empty }));
    else this.list.querySelector(":scope > .muted")?.remove();
  }

  /** A `student` event: only the fields that changed. False if the student is unknown. */
  update(change) {
    const card = this.cards.get(change.userId);
    if (!card) return false;
    const entry = card.entry;
    if (change.sessionId && change.sessionId !== entry.sessionId) {
      entry.questions = 0; // the roster counts the questions of the latest session
      card.turns.clear();
    }
    for (const field of ["sessionId", "online", "passageId", "position", "lastActivity"]) {
      if (change[field] !== undefined) entry[field] = change[field];
    }
    this.paint(card);
    return true;
  }

  /** A `message` event: a question adds to the count; any message is activity. */
  countMessage({ userId, sessionId, turnId, role }) {
    const card = this.cards.get(userId);
    if (!card) return;
    const entry = card.entry;
    entry.sessionId ??= sessionId;
    if (role === "student" && sessionId === entry.sessionId && !card.turns.has(turnId)) {
      card.turns.add(turnId);
      entry.questions += 1;
    }
    entry.lastActivity = new Date().toISOString();
    this.paint(card);
  }

  /** Repaint every card (passages arrived) and refresh relative times. */
  refresh() {
    for (const card of this.cards.values()) this.paint(card);
  }

  select(userId) {
    this.selected = userId;
    for (const [id, card] of this.cards) {
      card.show.setAttribute("aria-pressed", String(id === userId));
      card.item.classList.toggle("selected", id === userId);
    }
  }

  add(entry) {
    const dot = el("span", { className: "dot" });
    dot.setAttribute("aria-hidden", "true");
    const card = {
      entry,
      turns: new Set(),
      presence: el("span", { className: "presence-text" }),
      name: el("h4", { className: "student-name" }),
      story: el("p", { className: "student-story" }),
      bar: el("progress", { max: 1, value: 0 }),
      place: el("span", { className: "student-place" }),
      questions: el("span"),
      time: timeElement(null),
      show: el("button", { type: "button", className: "secondary small", textContent: "Questions" }),
      code: el("button", { type: "button", className: "secondary small", textContent: "New code" }),
    };
    card.status = el("p", { className: "presence" }, dot, card.presence);
    card.active = el("span", {}, " · active ", card.time);
    card.progress = el("div", { className: "student-progress" }, card.bar, card.place);
    card.item = el("li", { className: "student-card" },
      el("div", { className: "student-head" }, card.name, card.status),
      card.story, card.progress,
      el("p", { className: "student-stats" }, card.questions, card.active),
      el("div", { className: "student-actions" }, card.show, card.code));
    card.item.dataset.userId = entry.userId;
    card.show.setAttribute("aria-pressed", "false");
    card.show.addEventListener("click", () => this.onSelect(card.entry));
    card.code.addEventListener("click", () => this.onNewCode(card.entry));
    this.cards.set(entry.userId, card);
    return card;
  }

  paint(card) {
    const { entry } = card;
    const name = entry.name || entry.userId;
    card.name.textContent = name;
    card.item.dataset.online = String(Boolean(entry.online));
    card.presence.textContent = entry.online ? "Online" : "Offline";
    card.show.setAttribute("aria-label", `Questions of ${name}`);
    card.code.setAttribute("aria-label", `New code for ${name}`);
    card.bar.setAttribute("aria-label", `Reading progress of ${name}`);
    const passage = entry.passageId ? this.passageOf(entry.passageId) : null;
    card.story.textContent = entry.passageId ? `Reading: ${passage?.title ?? entry.passageId}` : "Not reading yet";
    const count = passage?.sentenceStarts?.length ?? 0;
    const at = entry.position == null || !count ? 0 : sentenceAt(passage.sentenceStarts, entry.position) + 1;
    card.progress.hidden = !entry.passageId;
    card.bar.max = Math.max(count, 1);
    card.bar.value = at;
    card.place.textContent = entry.position == null ? "Not started" : count ? `Sentence ${at} of ${count}` : "Started";
    card.questions.textContent = plural(entry.questions ?? 0, "question", "questions");
    card.active.hidden = !entry.lastActivity;
    if (card.time.dateTime !== (entry.lastActivity ?? "")) setTime(card.time, entry.lastActivity);
    else refreshTime(card.time);
  }
}
