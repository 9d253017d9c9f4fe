// ReaderAI microphone capture, on the audio rendering thread (an AudioWorklet).
// Turns the microphone's float samples at the context's rate into 16 kHz mono PCM16
// little-endian chunks of `chunkMs`, posted to the page as transferable ArrayBuffers.
// The server's speech recogniser wants 16 kHz; browsers capture at 44.1 or 48 kHz.

const FILTER_TAPS = 63; // odd, so the filter is symmetric; ~3 MFLOP/s at 48 kHz, 0.7 ms of delay

// Windowed-sinc low-pass (Blackman window), normalised to unit gain at 0 Hz.
// `cutoff` is in cycles per input sample. It keeps speech below the new Nyquist
// frequency and removes what would otherwise fold back as aliasing noise.
function lowPass(taps, cutoff) {
  const middle = (taps - 1) / 2;
  const weights = new Float32Array(taps);
  let sum = 0;
  for (let i = 0; i < taps; i += 1) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const phase = (2 * Math.PI * i) / (taps - 1);
    const blackman = 0.42 - 0.5 * Math.cos(phase) + 0.08 * Math.cos(2 * phase);
    weights[i] = sinc * blackman;
    sum += weights[i];
  }
  return weights.map((w) => w / sum);
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor({ processorOptions = {} } = {}) {
    super();
    const targetRate = processorOptions.targetRate ?? 16000;
    const chunkMs = processorOptions.chunkMs ?? 40;
    this.step = sampleRate / targetRate; // input samples per output sample (global `sampleRate`)
    // Only downsampling needs the filter; at or below 16 kHz the samples pass as they are.
    this.weights = this.step > 1 ? lowPass(FILTER_TAPS, 0.45 / this.step) : new Float32Array([1]);
    this.history = new Float32Array(this.weights.length); // ring buffer of recent input
    this.head = 0;
    this.previous = 0; // filtered sample just before the current one
    this.offset = 0; // where the next output sample falls, in input samples after `previous`
    this.chunk = new Int16Array(Math.round((targetRate * chunkMs) / 1000));
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (event) => { if (event.data === "stop") this.running = false; };
  }

  filter(sample) {
    const { history, weights } = this;
    history[this.head] = sample;
    this.head = (this.head + 1) % history.length;
    let acc = 0;
    for (let i = 0, j = this.head; i < weights.length; i += 1) {
      acc += weights[i] * history[j];
      j = j + 1 === history.length ? 0 : j + 1;
    }
    return acc;
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled] = Math.round(clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff);
    this.filled += 1;
    if (this.filled < this.chunk.length) return;
    // Int16Array stores in the platform's byte order, little-endian on every browser platform.
    // Transferring detaches the buffer (its length becomes 0): size the next one first.
    const full = this.chunk;
    this.chunk = new Int16Array(full.length);
    this.filled = 0;
    this.port.postMessage(full.buffer, [full.buffer]);
  }

  process(inputs) {
    // Mono: the node is created with channelCount 1, so Web Audio already mixed down.
    const samples = inputs[0]?.[0];
    if (!samples) return this.running;
    for (let i = 0; i < samples.length; i += 1) {
      const current = this.filter(samples[i]);
      // Linear interpolation between the two latest filtered samples.
      while (this.offset <= 1) {
        this.emit(this.previous + (current - this.previous) * this.offset);
        this.offset += this.step;
      }
      this.offset -= 1;
      this.previous = current;
    }
    return this.running;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
