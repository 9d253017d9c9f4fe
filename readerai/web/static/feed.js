// A server-sent event stream read with fetch and a stream reader, so the token goes
// in the Authorization header (EventSource cannot send one). Used by the dashboard
// for GET /api/classes/{id}/feed (docs/classroom.md, "Live events for the web app").
//
// Invariant: one connection at a time per EventFeed; after stop() no callback fires.
// A dropped or silent stream is reopened with jittered exponential backoff; a refusal
// (401, 403, 404) is final and goes to `onFatal`.

const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 15_000;
const SILENCE_MS = 40_000; // the server sends ": keep-alive" every 15 s: silence this long means dead
const FINAL_STATUSES = new Set([401, 403, 404]);

/**
 * Split an event stream into events. `push(text)` takes the next chunk of decoded text
 * and calls `onEvent(type, data)` for each complete event (`data` is the joined data
 * lines; comments and ids are skipped).
 */
export class EventStreamParser {
  constructor(onEvent) {
    Object.assign(this, { onEvent, buffer: "", type: "", data: [] });
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop(); // an unfinished line waits for the next chunk
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment: keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
  }

  dispatch() {
    const { type, data } = this;
    this.type = "";
    this.data = [];
    if (data.length) this.onEvent(type || "message", data.join("\n"));
  }
}

export class EventFeed {
  /**
   * `open(signal)` resolves to a streaming Response; `onEvent(type, data)` gets each
   * event's parsed JSON; `onState(state)` "connecting" | "online" | "reconnecting" |
   * "stopped"; `onFatal(error)` a refusal that ends the feed.
   */
  constructor({ open, onEvent, onState, onFatal }) {
    Object.assign(this, { open, onEvent, onState, onFatal, controller: null });
  }

  start() {
    this.stop();
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async run(signal) {
    let attempts = 0;
    while (!signal.aborted) {
      this.onState(attempts ? "reconnecting" : "connecting");
      try {
        await this.readOnce(signal, () => {
          attempts = 0; // a connection that delivered something resets the backoff
          this.onState("online");
        });
      } catch (error) {
        if (signal.aborted) return;
        if (FINAL_STATUSES.has(error?.status)) {
          this.onState("stopped");
          return this.onFatal(error);
        }
      }
      if (signal.aborted) return;
      attempts += 1;
      this.onState("reconnecting");
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempts);
      await sleep(ceiling * (0.5 + Math.random() / 2), signal);
    }
  }

  /** One connection, until the stream ends, goes silent, or `signal` aborts. */
  async readOnce(signal, onFirst) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    signal.addEventListener("abort", abort);
    let watchdog = setTimeout(abort, SILENCE_MS);
    try {
      const response = await this.open(connection.signal);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let first = true;
      const parser = new EventStreamParser((type, data) => {
        if (first) onFirst();
        first = false;
        let parsed;
        try { parsed = JSON.parse(data); } catch { return; }
        if (!signal.aborted) this.onEvent(type, parsed);
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(abort, SILENCE_MS);
        parser.push(value);
      }
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", abort);
      connection.abort(); // releases the connection if we stopped reading early
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
