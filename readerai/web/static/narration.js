// Read-aloud: a passage's narration (GET /api/passages/{id}/audio/{i}, one WAV per
// sentence), played one sentence after another from where the student is.
// The audio is fetched with the Authorization header, so it cannot be a plain <audio
// src>: each sentence becomes a Blob and an object URL, revoked once it is no longer
// needed. The next sentence is fetched while the current one plays, so there is no gap.
//
// Invariant: after stop() (or a jump), no callback of the old run fires and every
// object URL it made is revoked: a `run` object is the identity of one reading.

/** `state`: "stopped" | "loading" | "playing" | "paused". */
export class ReadAloud {
  /**
   * `fetchAudio(index)` resolves to a Blob; `onSentence(index)` runs when a sentence
   * starts; `onChange(state)` when the state changes; `onError(error)` when it stops on a failure.
   */
  constructor({ fetchAudio, onSentence, onChange, onError }) {
    Object.assign(this, { fetchAudio, onSentence, onChange, onError });
    this.run = null; // {count, index, audio, urls: Map(index -> Promise<url>)}
    this.state = "stopped";
  }

  get index() { return this.run?.index ?? null; }

  /** Read sentences `from` … `count - 1`; a reading already going is replaced. */
  start(from, count) {
    this.stop();
    this.run = { count, index: from, audio: null, urls: new Map() };
    this.play(this.run, from);
  }

  pause() {
    if (this.state !== "playing" && this.state !== "loading") return;
    this.run.audio?.pause();
    this.set("paused");
  }

  resume() {
    const run = this.run;
    if (this.state !== "paused") return;
    if (!run.audio) { // paused before its audio arrived
      this.set("loading");
      return this.play(run, run.index);
    }
    this.set("playing");
    run.audio.play().catch((error) => this.fail(run, error));
  }

  /** Go on from sentence `index` (the student tapped it) if reading; otherwise nothing. */
  jump(index) {
    if (!this.run || index === this.run.index) return;
    const { count } = this.run;
    const paused = this.state === "paused";
    this.start(index, count);
    if (paused) this.pause();
  }

  stop() {
    const run = this.run;
    if (!run) return;
    this.run = null;
    run.audio?.pause();
    for (const url of run.urls.values()) url.then(URL.revokeObjectURL, () => {});
    this.set("stopped");
  }

  async play(run, index) {
    if (index >= run.count) return this.stop(); // the end of the passage
    run.index = index;
    const step = (run.step = (run.step ?? 0) + 1); // a newer play() of this run wins
    run.audio?.pause();
    run.audio = null;
    this.set(this.state === "paused" ? "paused" : "loading");
    this.onSentence(index);
    let url;
    try {
      url = await this.url(run, index);
    } catch (error) {
      return this.fail(run, error);
    }
    if (this.run !== run || run.step !== step) return; // stopped or moved meanwhile
    this.url(run, index + 1).catch(() => {}); // fetched now, so it is ready when this one ends
    const audio = new Audio(url);
    run.audio = audio;
    audio.addEventListener("ended", () => {
      if (this.run !== run || run.audio !== audio) return;
      this.forget(run, index);
      this.play(run, index + 1);
    });
    if (this.state === "paused") return; // paused while it loaded: resume() plays it
    this.set("playing");
    audio.play().catch((error) => this.fail(run, error));
  }

  /** The object URL of sentence `index`, fetched once per run. */
  url(run, index) {
    if (index >= run.count) return Promise.resolve(null);
    if (!run.urls.has(index)) {
      const url = this.fetchAudio(index).then((blob) => URL.createObjectURL(blob));
      run.urls.set(index, url);
      url.catch(() => run.urls.delete(index)); // a later try fetches it again
    }
    return run.urls.get(index);
  }

  forget(run, index) {
    run.urls.get(index)?.then(URL.revokeObjectURL, () => {});
    run.urls.delete(index);
  }

  fail(run, error) {
    if (this.run !== run) return;
    // A browser that refuses to play without a fresh tap: wait for one, keep the place.
    if (error?.name === "NotAllowedError") return this.set("paused");
    this.stop();
    this.onError(error);
  }

  set(state) {
    if (state === this.state) return;
    this.state = state;
    this.onChange(state);
  }
}
