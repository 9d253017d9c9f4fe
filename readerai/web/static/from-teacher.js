// "From your teacher": class broadcasts (SESSION_RESTORED.broadcasts, then live
// CLASS_BROADCAST) and notices to this session (NOTICE), newest last.
// The list is a polite live region that stays in the page, so a screen reader
// announces a new message without taking the student away from the story.

import { el } from "./dom.js";

const KEEP = 20; // as many as the server restores

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

export class TeacherMessages {
  /** `list` is the <ol> of messages; `empty` the line shown while there are none. */
  constructor(list, empty) {
    Object.assign(this, { list, empty, seen: new Set() });
  }

  /** Add messages `{id, text, sentAt}` not shown yet, in time order (newest last); how many were new. */
  add(...messages) {
    let added = 0;
    for (const message of messages) {
      if (!message?.id || this.seen.has(message.id)) continue;
      this.seen.add(message.id);
      added += 1;
      const item = this.item(message);
      // Usually the newest, so it goes last; a restored older one slots in before.
      const later = [...this.list.children].find((other) => other.dataset.sentAt > item.dataset.sentAt);
      this.list.insertBefore(item, later ?? null);
    }
    while (this.list.childElementCount > KEEP) this.list.firstElementChild.remove();
    this.empty.hidden = this.list.childElementCount > 0;
    return added;
  }

  clear() {
    this.list.replaceChildren();
    this.seen.clear();
    this.empty.hidden = false;
  }

  item({ id, text, sentAt }) {
    const sent = new Date(sentAt);
    const known = !Number.isNaN(sent.getTime());
    const item = el("li", { className: "teacher-message" }, el("p", { textContent: text }));
    item.dataset.id = id;
    item.dataset.sentAt = known ? sent.toISOString() : "";
    if (known) item.append(el("time", { dateTime: item.dataset.sentAt, textContent: timeFormat.format(sent) }));
    return item;
  }
}
