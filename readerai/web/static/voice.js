// ReaderAI voice: the microphone going to the server, and the tutor's spoken replies
// coming back. Wire format: docs/protocol.md, section "Binary frames".
// Nothing here runs until the student turns the microphone on: a page that never
// does so creates no AudioContext and asks for no permission.

const INPUT_RATE = 16000; // the server's speech recogniser takes 16 kHz mono PCM16
const CHUNK_MS = 40;
const WORKLET_URL = "static/mic-worklet.js"; // relative, like the page's other assets
const FRAME_MAGIC = [0x52, 0x44, 0x41, 0x31]; // "RDA1"
const HEADER_BYTES = 28;
const START_LEAD_S = 0.05; // a first frame scheduled slightly ahead starts without a click

export const VOICE_CONFIG = {
  turnDetection: "server_vad",
  audio: { inputFormat: "pcm16", inputSampleRate: INPUT_RATE, output: true },
};

/** Whether this browser can capture and play voice here (getUserMedia needs a secure page). */
export function voiceSupport() {
  if (!window.isSecureContext) return "insecure";
  const apis = navigator.mediaDevices?.getUserMedia && window.AudioContext && window.AudioWorkletNode;
  return apis ? "ok" : "missing";
}

/** A reply-audio frame as {turnId, seq, sampleRate, pcm: DataView}, or null when malformed. */
export function parseAudioFrame(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  if (FRAME_MAGIC.some((byte, i) => view.getUint8(i) !== byte)) return null;
  const turnBytes = new Uint8Array(buffer, 4, 16);
  const turnId = Array.from(turnBytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const seq = view.getUint32(20); // big-endian, DataView's default
  const sampleRate = view.getUint32(24);
  const pcmBytes = buffer.byteLength - HEADER_BYTES;
  if (seq < 1 || sampleRate < 1 || sampleRate > 192000 || pcmBytes % 2) return null;
  return { turnId, seq, sampleRate, pcm: new DataView(buffer, HEADER_BYTES) };
}

function toAudioBuffer(context, { sampleRate, pcm }) {
  const count = pcm.byteLength / 2;
  const buffer = context.createBuffer(1, Math.max(count, 1), sampleRate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < count; i += 1) channel[i] = pcm.getInt16(i * 2, true) / 0x8000;
  return buffer;
}

/** Milliseconds of a scheduled segment heard by context time `now`. */
const playedMs = ({ start, duration }, now) => Math.min(Math.max(now - start, 0), duration) * 1000;

/** The microphone through the capture worklet: calls `onChunk(ArrayBuffer)` every ~40 ms. */
class MicCapture {
  constructor(context, onChunk, onEnded) {
    Object.assign(this, { context, onChunk, onEnded, stream: null, source: null, node: null });
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
    });
    try {
      await this.context.audioWorklet.addModule(WORKLET_URL); // a no-op after the first time
      this.source = this.context.createMediaStreamSource(this.stream);
      // No outputs: the worklet is a sink, so the microphone is never played back.
      this.node = new AudioWorkletNode(this.context, "pcm16-capture", {
        numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
        processorOptions: { targetRate: INPUT_RATE, chunkMs: CHUNK_MS },
      });
    } catch (error) {
      this.stop();
      throw error;
    }
    this.node.port.onmessage = (event) => this.onChunk(event.data);
    this.source.connect(this.node);
    // The device can go away (unplugged, permission revoked): tell the page once.
    for (const track of this.stream.getAudioTracks()) track.addEventListener("ended", this.onEnded);
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) {
      track.removeEventListener("ended", this.onEnded);
      track.stop();
    }
    this.source?.disconnect();
    if (this.node) {
      this.node.port.onmessage = null;
      this.node.port.postMessage("stop"); // lets the processor end on the audio thread
    }
    Object.assign(this, { stream: null, source: null, node: null });
  }
}

/**
 * Plays one reply at a time, gaplessly: each frame is scheduled where the previous one
 * ends. Invariant: once a turn is stopped, none of its audio plays again, and its
 * PLAYBACK_POSITION has been reported (if any of it had been heard and some was left).
 */
class ReplyPlayer {
  constructor(context, { onCut, onChange, stats }) {
    Object.assign(this, { context, onCut, onChange, stats, turn: null });
  }

  /** `turnId` is the newest reply: only its audio plays from now on (none of it if `silent`). */
  follow(turnId, { silent = false } = {}) {
    if (this.turn?.id === turnId) return;
    this.stop();
    this.turn = { id: turnId, lastSeq: 0, endAt: 0, heardMs: 0, playing: new Set(), stopped: silent, done: false };
  }

  accept(frame) {
    const turn = this.turn;
    // Audio of an older or cancelled turn is stale: it must not talk over the new one.
    if (!turn || turn.stopped || frame.turnId !== turn.id || frame.seq <= turn.lastSeq) return;
    turn.lastSeq = frame.seq;
    const source = this.context.createBufferSource();
    source.buffer = toAudioBuffer(this.context, frame);
    source.connect(this.context.destination);
    const wasPlaying = this.playingTurnId !== null;
    const start = Math.max(turn.endAt, this.context.currentTime + START_LEAD_S);
    const segment = { source, start, duration: source.buffer.duration };
    source.start(start);
    turn.endAt = start + segment.duration;
    turn.playing.add(segment);
    source.addEventListener("ended", () => this.ended(turn, segment));
    if (!wasPlaying) this.onChange();
  }

  ended(turn, segment) {
    if (turn.stopped || !turn.playing.delete(segment)) return; // counted when it was stopped
    turn.heardMs += segment.duration * 1000;
    this.stats.audioMsPlayed += segment.duration * 1000;
    if (!turn.playing.size) this.onChange();
  }

  /** The server finished the reply: no more audio will come for it. */
  done(turnId) {
    if (this.turn?.id === turnId) this.turn.done = true;
  }

  /** Silence the current reply now; report how much was heard if it was cut short. */
  stop() {
    const turn = this.turn;
    if (!turn || turn.stopped) return;
    turn.stopped = true;
    const now = this.context.currentTime;
    let heardMs = turn.heardMs;
    for (const segment of turn.playing) {
      const played = playedMs(segment, now);
      heardMs += played;
      this.stats.audioMsPlayed += played;
      segment.source.stop();
      segment.source.disconnect();
    }
    const left = turn.playing.size > 0 && now < turn.endAt;
    turn.playing.clear();
    // A turn with no audio yet was read, not heard: leave its stored text alone.
    if (turn.lastSeq > 0 && (left || !turn.done)) this.onCut(turn.id, Math.round(heardMs));
    this.onChange();
  }

  get playingTurnId() {
    const turn = this.turn;
    return turn && !turn.stopped && turn.playing.size ? turn.id : null;
  }

  /** Milliseconds played in all, including the reply playing now. */
  totalPlayedMs() {
    const now = this.context.currentTime;
    let ms = this.stats.audioMsPlayed;
    if (this.turn && !this.turn.stopped) for (const segment of this.turn.playing) ms += playedMs(segment, now);
    return ms;
  }
}

/**
 * Voice for the page. `sendEvent(type, payload)` sends a JSON event, `sendAudio(buffer)`
 * a binary frame (and returns whether it went out), `onChange()` is called when the
 * microphone or playback turns on or off.
 */
export class Voice {
  constructor({ sendEvent, sendAudio, onChange, onMicLost }) {
    Object.assign(this, { sendEvent, sendAudio, onChange, onMicLost });
    this.context = null; // created on the first "mic on" click, so autoplay is allowed
    this.mic = null;
    this.player = null;
    this.starting = null;
    this.uses = new Set(); // who holds the microphone: "talk" (questions), "read" (read-aloud)
    this.counters = { audioFramesReceived: 0, audioMsPlayed: 0, micChunksSent: 0 };
    this.transcripts = [];
  }

  /** Whether "Talk" is on: the microphone asks questions and replies are spoken. */
  get on() { return this.mic !== null && this.uses.has("talk"); }

  get playingTurnId() { return this.player?.playingTurnId ?? null; }

  /**
   * Turn the microphone on for `use` ("talk", or "read" for read-aloud); one microphone
   * serves both. Rejects (and stays off) if the student or browser refuses.
   */
  async enable(use = "talk") {
    if (!this.mic) {
      this.starting ??= this.startMic().finally(() => { this.starting = null; });
      await this.starting;
    }
    this.uses.add(use);
    this.onChange();
  }

  async startMic() {
    this.context ??= new AudioContext({ latencyHint: "interactive" });
    this.player ??= new ReplyPlayer(this.context, {
      stats: this.counters,
      onCut: (turnId, ms) => this.sendEvent("PLAYBACK_POSITION", { turnId, ms }),
      onChange: () => this.onChange(),
    });
    await this.context.resume(); // inside the click that started it: allowed to play
    const mic = new MicCapture(this.context, (chunk) => this.sendChunk(chunk), () => this.micLost());
    await mic.start();
    this.mic = mic;
    this.onChange();
  }

  /**
   * `use` is done with the microphone, which goes off once no use holds it. Talk off:
   * a reply being spoken finishes; later ones are text only.
   */
  disable(use = "talk") {
    const held = this.uses.delete(use);
    if (!this.uses.size) {
      this.mic?.stop();
      this.mic = null;
    }
    if (use === "talk" && (held || !this.mic)) {
      this.sendEvent("SESSION_UPDATE", { audio: { ...VOICE_CONFIG.audio, output: false } });
    }
    this.onChange();
  }

  micLost() {
    const talking = this.uses.has("talk");
    this.uses.clear();
    this.mic?.stop();
    this.mic = null;
    if (talking) this.sendEvent("SESSION_UPDATE", { audio: { ...VOICE_CONFIG.audio, output: false } });
    this.onChange();
    this.onMicLost();
  }

  sendChunk(chunk) {
    if (this.mic && this.sendAudio(chunk)) this.counters.micChunksSent += 1;
  }

  /** A binary frame from the server. */
  receive(buffer) {
    const frame = parseAudioFrame(buffer);
    if (!frame) return;
    this.counters.audioFramesReceived += 1;
    this.player?.accept(frame); // no player: voice was never on in this page, stay silent
  }

  // With the microphone off, a reply already being spoken finishes but a new one stays
  // silent, even if the server still speaks it (its audio setting outlives a page).
  follow(turnId) { this.player?.follow(turnId.toLowerCase(), { silent: !this.on }); }

  stopPlayback() { this.player?.stop(); }

  replyDone(turnId, status) {
    const id = turnId.toLowerCase();
    this.player?.done(id);
    if (status === "cancelled" && this.player?.turn?.id === id) this.player.stop();
  }

  heard(text) { this.transcripts.push(text); }

  /** A read-only snapshot for tests and debugging. */
  stats() {
    const audioMsPlayed = Math.round(this.player?.totalPlayedMs() ?? 0);
    return Object.freeze({ ...this.counters, audioMsPlayed, transcripts: Object.freeze([...this.transcripts]) });
  }
}
