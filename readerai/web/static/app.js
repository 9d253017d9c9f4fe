// ReaderAI student page: sign in, pick a story, read it (or hear it read), ask the
// tutor, watch answers stream in, see what the teacher sends the class.
// Wire protocol: docs/protocol.md (generated from readerai/protocol.py); accounts and
// REST: docs/classroom.md. All server text is put in the page with textContent, never
// as HTML. Voice (microphone and spoken replies) lives in voice.js; it stays idle until
// the student turns the microphone on. The tutor reading the story is narration.js;
// the student reading it aloud to the tutor, read-aloud.js; sign-in, auth.js.

import {
  Account, CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, codeFailure, createApi, exchangeCode,
  showError, socketProtocols, takeCodeFromUrl, wireCodeForm,
} from "./auth.js";
import { el, toast as showToast } from "./dom.js";
import { TeacherMessages } from "./from-teacher.js";
import { ReadAloud } from "./narration.js";
import { appendWords, passageWords, StudentReading } from "./read-aloud.js";
import { Voice, VOICE_CONFIG, voiceSupport } from "./voice.js";

const PROGRESS_INTERVAL_MS = 250; // READING_PROGRESS at most ~4 per second
const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000; // no SESSION_RESTORED by then: treat the socket as dead
const PONG_TIMEOUT_MS = 5_000;
const LIBRARY_REFRESH_MS = 3_000; // while a story is still being prepared
const SIGNED_OUT = "You were signed out because your sign-in expired. Ask your teacher for a new code.";
const READ_LABELS = { stopped: "Read aloud", loading: "Pause", playing: "Pause", paused: "Resume" };
const READ_STATUS = { stopped: "", loading: "Reading aloud…", playing: "Reading aloud…", paused: "Paused" };
const STATUS_NOTES = { cancelled: "Stopped", interrupted: "Cut short", failed: "The tutor could not answer" };
const CONNECTION_LABELS = { connecting: "Connecting…", online: "Online", reconnecting: "Reconnecting…", offline: "Offline" };
const MIC_ERRORS = {
  NotAllowedError: "The microphone is blocked. Allow it for this page to talk to the tutor.",
  NotFoundError: "No microphone was found.",
  NotReadableError: "The microphone is busy in another app.",
};
const CLOSE_NOTES = { 1008: "Too many messages at once – slowing down.", 1009: "That message was too big to send." };

const $ = (id) => document.getElementById(id);
const ui = {
  list: $("passage-list"), title: $("passage-title"), level: $("passage-level"), passage: $("passage"),
  conversation: $("conversation"), queue: $("queue"), form: $("ask-form"), question: $("question"),
  ask: $("ask"), stop: $("stop"), connection: $("connection"), connectionText: $("connection-text"),
  toasts: $("toasts"), mic: $("mic"), micStatus: $("mic-status"),
  signin: $("signin"), signinForm: $("signin-form"), signinError: $("signin-error"), code: $("code"),
  app: $("app"), account: $("account"), who: $("who"), signout: $("signout"),
  fromTeacher: $("from-teacher"), fromTeacherEmpty: $("from-teacher-empty"),
  readAloud: $("read-aloud"), readToggle: $("read-toggle"), readToggleText: $("read-toggle-text"),
  readStop: $("read-stop"), readStatus: $("read-status"),
  readSelf: $("read-self"), readSelfStart: $("read-self-start"), readSelfStop: $("read-self-stop"),
  readSelfStatus: $("read-self-status"), readSelfResult: $("read-self-result"),
};

const account = new Account("readerai.student");
// A refused token (expired, or signed by an old key) sends the student back to sign in.
const api = createApi(account, () => showSignIn(SIGNED_OUT));
const teacherMessages = new TeacherMessages(ui.fromTeacher, ui.fromTeacherEmpty);

const state = {
  passage: null, // {id, title, level, text, sentences, narration} being shown
  libraryTimer: 0, // refreshes the story list while one is being prepared
  sessionId: null,
  socket: null, // the one live socket; events from older sockets are ignored
  online: false, // true between SESSION_RESTORED and the socket closing
  attempts: 0, // failed connects since the last SESSION_RESTORED; drives the backoff
  timers: { retry: 0, connect: 0, pong: 0, progress: 0 },
  idle: false, // the server closed us for idleness: reconnect on the next interaction
  restored: false, // the server's saved position was applied to this passage view
  position: null, // index of the sentence the student is at (sent as its start offset)
  sentPosition: null, // the sentence the server's position is in, so it is not resent
  lastProgressAt: 0,
  ignoreScrollUntil: 0,
  pending: [], // questions sent and not yet acknowledged, oldest first: {text, bubble}
  turns: new Map(), // turnId -> {seq, bubble, textEl}: replies still streaming
  activeTurn: null, // turnId of the newest question's reply, while it is not done
  voiceSocket: null, // the socket that was sent the voice SESSION_UPDATE: audio may go out on it
  listening: null, // the "listening…" bubble of a spoken question not yet transcribed
};

const narration = new ReadAloud({
  fetchAudio: async (index) => {
    const path = `api/passages/${encodeURIComponent(state.passage.id)}/audio/${index}`;
    return (await api.send(path, { headers: { Accept: "audio/wav" } })).blob();
  },
  onSentence: (index) => {
    markReading(index);
    setPosition(index, { scroll: true });
  },
  onChange: updateReadAloud,
  onError: (error) => toast(`Could not read aloud: ${error.message ?? error}`),
});

const voice = new Voice({
  sendEvent: send,
  // Audio sent before the server heard SESSION_UPDATE would be refused, so wait for it.
  sendAudio: (chunk) => state.online && (state.voiceSocket === state.socket || reading.acceptsAudioOn(state.socket))
    && sendBinary(chunk),
  onChange: updateControls,
  onMicLost: () => {
    reading.micLost();
    toast("The microphone stopped.");
  },
});

// The student reading the story aloud; the server reports the word reached.
const reading = new StudentReading({
  ui: { start: ui.readSelfStart, stop: ui.readSelfStop, status: ui.readSelfStatus, result: ui.readSelfResult },
  voice,
  send,
  socket: () => state.socket,
  passageId: () => state.passage?.id ?? null,
  supported: () => voiceSupport() === "ok",
  onWord: (span) => {
    const sentence = span.closest(".sentence");
    if (sentence) {
      // The server keeps the word it heard as the place: this page's sentence is not sent.
      state.sentPosition = Number(sentence.dataset.index);
      setPosition(state.sentPosition);
    }
    if (!inView(span)) scrollToSentence(span);
  },
  onMicError: (error) => toast(MIC_ERRORS[error?.name] ?? `Could not use the microphone: ${error?.message ?? error}`),
  onChange: updateControls,
});

// ---- small DOM helpers
const toast = (message) => showToast(ui.toasts, message);

// localStorage can throw (private mode, storage disabled); the page must still work.
// Keyed by user too: two students may share a browser, and a session is its owner's.
const store = {
  key: (passageId) => `readerai.session.${account.profile?.userId ?? ""}.${passageId}`,
  get(passageId) { try { return localStorage.getItem(this.key(passageId)); } catch { return null; } },
  set(passageId, id) { try { localStorage.setItem(this.key(passageId), id); } catch { /* session only */ } },
  forget(passageId) { try { localStorage.removeItem(this.key(passageId)); } catch { /* nothing kept */ } },
};

// ---- signing in
async function boot() {
  const code = takeCodeFromUrl(); // /?code=XXXX: a new sign-in wins over a kept one
  if (code) {
    try {
      return signedIn(await exchangeCode(code));
    } catch (error) {
      return showSignIn(codeFailure(error));
    }
  }
  if (account.token) showApp();
  else showSignIn();
}

function signedIn(profile) {
  if (profile.role !== "student") { // a teacher's code: the dashboard is their page
    new Account("readerai.teacher").save(profile);
    return location.assign("teacher");
  }
  account.save(profile);
  showApp();
}

function showApp() {
  const profile = account.profile;
  ui.who.replaceChildren(el("span", { className: "who-label", textContent: "Signed in as " }),
    profile.name || profile.userId);
  ui.signin.hidden = true;
  ui.app.hidden = ui.account.hidden = ui.connection.hidden = false;
  setConnection("offline", "Pick a story");
  loadLibrary();
}

/** Back to the code form (signed out by choice, or `message` says why). */
function showSignIn(message = "") {
  account.clear();
  leaveStory();
  clearTimeout(state.libraryTimer);
  teacherMessages.clear();
  ui.list.replaceChildren(el("li", { className: "muted", textContent: "Loading stories…" }));
  ui.app.hidden = ui.account.hidden = ui.connection.hidden = true;
  ui.signin.hidden = false;
  showError(ui.signinError, message);
  document.title = "Sign in – ReaderAI";
  ui.code.focus();
}

function leaveStory() {
  reading.stop();
  disconnect();
  narration.stop();
  if (voice.on) voice.disable();
  state.passage = null;
  ui.title.textContent = "Pick a story to read";
  ui.level.hidden = ui.readAloud.hidden = ui.readSelf.hidden = true;
  ui.passage.replaceChildren();
  ui.conversation.replaceChildren();
}

async function loadLibrary() {
  try {
    const passages = await api.json("api/passages");
    renderLibrary(passages);
    openPassage(storyFromUrl());
    clearTimeout(state.libraryTimer);
    if (passages.some((p) => p.status === "preparing")) {
      state.libraryTimer = setTimeout(loadLibrary, LIBRARY_REFRESH_MS);
    }
  } catch (error) {
    if (error.status === 401) return; // already back at the sign-in form
    ui.list.replaceChildren(el("li", { className: "muted", textContent: `Could not load stories: ${error.message}` }));
  }
}

const PASSAGE_STATES = { preparing: "Getting ready…", failed: "Not available" };

function renderLibrary(passages) {
  if (!passages.length) {
    return ui.list.replaceChildren(el("li", { className: "muted", textContent: "No stories yet." }));
  }
  ui.list.replaceChildren(...passages.map((p) => {
    const waiting = PASSAGE_STATES[p.status];
    const size = waiting ?? `${p.sentenceCount} sentences`;
    const link = el("a", { className: "passage-link", href: `?story=${encodeURIComponent(p.id)}` },
      el("span", { className: "passage-name", textContent: p.title }),
      el("span", { className: "passage-meta", textContent: meta(p.level, size) }));
    link.dataset.id = p.id;
    link.dataset.status = p.status ?? "ready";
    if (waiting) link.setAttribute("aria-disabled", "true");
    link.toggleAttribute("aria-current", p.id === state.passage?.id);
    return el("li", {}, link);
  }));
}

const meta = (...parts) => parts.filter(Boolean).join(" · "); // level may be null

// The story is in the query (?story=id), so reload and Back work and #fragments stay free.
const storyFromUrl = () => new URLSearchParams(location.search).get("story") ?? "";

function onLibraryClick(event) {
  const link = event.target.closest("a[data-id]");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault(); // no page load: the socket and the scroll position survive
  if (link.dataset.status === "preparing") return toast("That story is still being prepared. Try again in a moment.");
  if (link.dataset.status === "failed") return toast("That story could not be prepared.");
  history.pushState(null, "", link.href);
  openPassage(link.dataset.id);
}

// ---- opening a passage
async function openPassage(id) {
  if (!id || id === state.passage?.id) return;
  let passage;
  try {
    passage = await api.json(`api/passages/${encodeURIComponent(id)}`);
  } catch (error) {
    return error.status === 401 || toast(`Could not open that story: ${error.message}`);
  }
  if (storyFromUrl() !== id || id === state.passage?.id) return; // picked another meanwhile
  if (passage.status === "preparing") return toast("That story is still being prepared. Try again in a moment.");
  reading.stop();
  disconnect();
  narration.stop();
  Object.assign(state, { passage, position: null, sentPosition: null, restored: false });
  for (const link of ui.list.querySelectorAll("a")) {
    link.toggleAttribute("aria-current", link.dataset.id === id);
  }
  renderPassage(passage);
  renderConversation([], null);
  startSession();
}

function renderPassage(passage) {
  ui.title.textContent = passage.title;
  ui.level.textContent = passage.level ?? "";
  ui.level.hidden = !passage.level;
  document.title = `${passage.title} – ReaderAI`;
  ui.readAloud.hidden = !passage.narration;
  // Words are cut over the whole text, as the server cuts them: their indices are its.
  const words = passageWords(passage.text);
  const paragraphs = [el("p")];
  let cursor = 0;
  passage.sentences.forEach((sentence, index) => {
    // The API gives sentences without paragraph marks: a blank line in `text` between
    // two sentences starts a new paragraph. Sentences not found verbatim stay in place.
    const at = passage.text.indexOf(sentence, cursor);
    const gap = at > cursor ? passage.text.slice(cursor, at) : "";
    if (index > 0 && /\n\s*\n/.test(gap)) paragraphs.push(el("p"));
    if (at >= 0) cursor = at + sentence.length;
    const span = el("span", { className: "sentence", tabIndex: index ? -1 : 0 });
    if (at >= 0) appendWords(span, passage.text, at, cursor, words);
    else span.textContent = sentence; // not in the text: no word the server could report
    span.dataset.index = String(index);
    paragraphs.at(-1).append(span, " ");
  });
  ui.passage.replaceChildren(...paragraphs);
  ui.passage.scrollTop = 0;
  reading.attach(ui.passage);
  const support = voiceSupport();
  ui.readSelf.hidden = support === "missing";
  if (support === "insecure") ui.readSelfStatus.textContent = "Reading aloud needs a secure page (https).";
}

// Entry point of every (re)connect; a socket already open or opening wins over a second call.
async function startSession() {
  const passageId = state.passage?.id;
  if (!passageId || state.socket) return;
  let id = store.get(passageId);
  if (!id) {
    setConnection(state.attempts ? "reconnecting" : "connecting");
    try {
      id = (await api.json("api/sessions", { method: "POST", body: JSON.stringify({ passageId }) })).id;
    } catch (error) {
      if (error.status === 401) return; // already back at the sign-in form
      toast(`Could not start a session: ${error.message}`);
      if (error.status === 403) return setConnection("offline", "Not allowed");
      return scheduleReconnect();
    }
    if (state.passage?.id !== passageId || state.socket) return;
    store.set(passageId, id);
  }
  state.sessionId = id;
  connect();
}

// ---- the socket
function connect() {
  clearTimeout(state.timers.retry);
  const url = new URL(`ws/${encodeURIComponent(state.sessionId)}`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // Resume the reply in flight after the last delta we showed: no gap, no duplicate.
  const live = state.turns.get(state.activeTurn);
  if (live?.seq > 0) url.searchParams.set("lastSeq", String(live.seq));
  setConnection(state.attempts ? "reconnecting" : "connecting");
  const token = account.token;
  if (!token) return showSignIn(SIGNED_OUT);
  // The token rides in the subprotocol list, never in the URL (which servers log).
  const socket = new WebSocket(url, socketProtocols(token));
  socket.binaryType = "arraybuffer"; // reply audio is parsed with DataView, not read from Blobs
  state.socket = socket;
  socket.addEventListener("message", (event) => state.socket === socket && onFrame(event.data));
  socket.addEventListener("close", (event) => state.socket === socket && onClose(event));
  const giveUp = () => state.socket === socket && !state.online && socket.close();
  state.timers.connect = setTimeout(giveUp, CONNECT_TIMEOUT_MS);
}

function disconnect() {
  flushProgress();
  voice.stopPlayback(); // before the close, so the server still hears how much was played
  clearListening();
  Object.values(state.timers).forEach(clearTimeout);
  state.timers = { retry: 0, connect: 0, pong: 0, progress: 0 };
  const socket = state.socket;
  state.socket = null; // first, so this close is not taken for a dropped connection
  socket?.close(1000, "story changed");
  Object.assign(state, { sessionId: null, attempts: 0, idle: false, activeTurn: null, pending: [] });
  state.turns.clear();
  setConnection("offline");
}

function send(type, payload = {}) {
  if (state.socket?.readyState !== WebSocket.OPEN) return false;
  state.socket.send(JSON.stringify({ type, payload }));
  return true;
}

function sendBinary(buffer) {
  if (state.socket?.readyState !== WebSocket.OPEN) return false;
  state.socket.send(buffer);
  return true;
}

function onClose(event) {
  state.socket = null;
  clearTimeout(state.timers.connect);
  clearTimeout(state.timers.pong);
  setConnection("offline");
  givePendingBack();
  clearListening(); // that connection's speech recogniser is gone: no transcript will come
  const code = event.code;
  if (CLOSE_NOTES[code]) toast(CLOSE_NOTES[code]);
  if (code === 4000) { // idle: stay closed until the student is back, so an abandoned tab costs nothing
    state.idle = true;
    return setConnection("offline", "Paused – tap to continue");
  }
  if (code === CLOSE_UNAUTHENTICATED) return showSignIn(SIGNED_OUT);
  // Session unknown (e.g. a fresh database) or not this student's: start a new one.
  if (code === 4404 || code === CLOSE_FORBIDDEN) store.forget(state.passage.id);
  if (code === 1008) state.attempts += 2; // rate limited: back off harder
  if (code === 1012) state.attempts = 0; // server restarting: come back soon, not after a long backoff
  scheduleReconnect();
}

function scheduleReconnect() {
  if (!state.passage) return;
  if (!navigator.onLine) return setConnection("offline", "Offline – waiting for the network");
  // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempts);
  const delay = ceiling * (0.5 + Math.random() / 2);
  state.attempts += 1;
  setConnection("reconnecting");
  clearTimeout(state.timers.retry);
  state.timers.retry = setTimeout(startSession, delay);
}

function reconnectNow() {
  if (!state.passage || state.socket) return;
  state.idle = false;
  state.attempts = 0;
  clearTimeout(state.timers.retry);
  startSession();
}

// After sleep or a network change a socket can look open while it is dead: probe it.
function checkAlive() {
  if (!state.online || !send("PING", { id: String(Date.now()) })) return;
  const socket = state.socket;
  clearTimeout(state.timers.pong);
  state.timers.pong = setTimeout(() => state.socket === socket && socket.close(), PONG_TIMEOUT_MS);
}

function setConnection(kind, label = CONNECTION_LABELS[kind]) {
  state.online = kind === "online";
  ui.connection.dataset.state = kind;
  ui.connectionText.textContent = label;
  updateControls();
}

// ---- server events
const handlers = {
  SESSION_RESTORED: onRestored,
  INTERRUPTION_ACKNOWLEDGED: onAcknowledged,
  RESPONSE_QUEUED: ({ turnId, position }) => turnId === state.activeTurn && showQueue(position),
  RESPONSE_STARTED: onStarted,
  RESPONSE_DELTA: onDelta,
  RESPONSE_DONE: onDone,
  TRANSCRIPT: onTranscript,
  READING_PROGRESS: (progress) => reading.progress(progress),
  // The summary of a reading (WCPM, accuracy, miscues), when the server sends one.
  READING_RESULT: (result) => reading.result(result),
  CLASS_BROADCAST: ({ broadcastId, text, sentAt }) => fromTeacher({ id: broadcastId, text, sentAt }),
  NOTICE: ({ noticeId, text, sentAt }) => fromTeacher({ id: noticeId, text, sentAt }),
  ERROR: onError,
  PONG: () => clearTimeout(state.timers.pong),
};

function onFrame(data) {
  if (typeof data !== "string") return voice.receive(data); // binary frames carry reply audio
  let event;
  try { event = JSON.parse(data); } catch { return; }
  handlers[event?.type]?.(event.payload ?? {});
}

// Kept in the "From your teacher" list (a live region: screen readers hear it from
// there); a toast shows it too while that list is scrolled out of view, as on a phone.
function fromTeacher(message) {
  if (!teacherMessages.add(message)) return; // already shown
  const panel = ui.fromTeacher.parentElement; // scrolls on wide screens: the newest is last
  panel.scrollTop = panel.scrollHeight;
  const box = ui.fromTeacher.getBoundingClientRect();
  if (box.bottom < 0 || box.top > window.innerHeight) {
    showToast(ui.toasts, `Teacher: ${message.text}`, { announce: false });
  }
}

function onRestored({ passageId, messages = [], progress = [], inflight = null, broadcasts = [] }) {
  clearTimeout(state.timers.connect);
  state.attempts = 0;
  setConnection("online");
  if (passageId !== state.passage.id) send("SESSION_UPDATE", { passageId: state.passage.id });
  if (voice.on) configureVoice(); // voice settings last only as long as a connection
  reading.resume(); // and so does read-aloud mode
  renderConversation(messages, inflight);
  restorePosition(progress);
  teacherMessages.add(...broadcasts.map((b) => ({ id: b.broadcastId, text: b.text, sentAt: b.sentAt })));
}

function onAcknowledged({ turnId }) {
  state.pending.shift()?.bubble.classList.remove("sending");
  followTurn(turnId, "", 0).classList.add("waiting");
  updateControls();
}

// Show a reply that is still streaming, and make it the one Stop and resume refer to.
function followTurn(turnId, text, seq) {
  const bubble = addBubble("tutor", text);
  bubble.setAttribute("aria-busy", "true"); // screen readers read the answer once, when whole
  state.turns.set(turnId, { seq, bubble, textEl: bubble.querySelector(".msg-text") });
  state.activeTurn = turnId;
  voice.follow(turnId);
  return bubble;
}

function onStarted({ turnId, reason = null }) {
  // A turn the tutor starts unasked (help when a reading aloud stalls) has no question:
  // its bubble starts here, not at INTERRUPTION_ACKNOWLEDGED.
  if (reason && !state.turns.has(turnId)) {
    followTurn(turnId, "", 0).classList.add("waiting");
    return updateControls();
  }
  if (turnId === state.activeTurn) showQueue(null);
}

function onDelta({ turnId, seq, text }) {
  const turn = state.turns.get(turnId);
  if (!turn || seq <= turn.seq) return; // replayed after a resume, or a reply already done
  const follow = atBottom();
  turn.seq = seq;
  turn.textEl.append(text);
  turn.bubble.classList.remove("waiting");
  if (turnId === state.activeTurn) showQueue(null);
  if (follow) followConversation();
}

function onDone({ turnId, status, text, citations = [], error = null }) {
  voice.replyDone(turnId, status); // a cancelled reply goes quiet at once
  const turn = state.turns.get(turnId);
  if (!turn) return;
  state.turns.delete(turnId);
  turn.textEl.textContent = text; // the stored text wins: a cancel may cut what we showed
  finishBubble(turn.bubble, status, citations, error);
  if (turnId === state.activeTurn) {
    state.activeTurn = null;
    showQueue(null);
    highlight(citations);
  }
  updateControls();
}

function onError({ code, message, turnId }) {
  // A refused question never gets a turn: give its text back instead of leaving it hanging.
  if (!turnId && (code === "text_too_long" || code === "invalid_payload") && state.pending.length) {
    const question = state.pending.shift();
    question.bubble.remove();
    if (!ui.question.value) ui.question.value = question.text;
  }
  if (reading.refused({ code, message })) return; // said next to the read-aloud buttons
  if (code === "voice_error") clearListening(); // the spoken question could not be heard
  toast(message || code);
}

// ---- conversation
function addBubble(role, text, ...classes) {
  const who = role === "student" ? "You" : "Tutor";
  const bubble = el("li", { className: ["msg", role, ...classes].join(" ") },
    el("span", { className: "msg-who", textContent: `${who}: ` }),
    el("p", { className: "msg-text", textContent: text }));
  const follow = atBottom();
  ui.conversation.append(bubble);
  if (follow) followConversation();
  return bubble;
}

// Keep the newest text in view, unless the student scrolled up to read older answers.
// Only the conversation box scrolls: moving the window would pull the story away.
function atBottom() {
  const box = ui.conversation;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
}

const followConversation = () => { ui.conversation.scrollTop = ui.conversation.scrollHeight; };

function finishBubble(bubble, status, citations, error) {
  bubble.classList.remove("waiting");
  bubble.setAttribute("aria-busy", "false");
  const note = STATUS_NOTES[status];
  const detail = error?.message ? `${note}: ${error.message}` : note;
  if (note) bubble.append(el("p", { className: "msg-note", textContent: detail }));
  if (citations.length) {
    const button = el("button", { type: "button", className: "link", textContent: "Show in the story" });
    button.addEventListener("click", () => highlight(citations, { scroll: true }));
    bubble.append(button);
  }
}

function renderConversation(messages, inflight) {
  ui.conversation.replaceChildren();
  for (const message of messages) {
    const bubble = addBubble(message.role, message.text);
    if (message.role === "tutor") finishBubble(bubble, message.status, message.citations ?? []);
  }
  const known = inflight && state.turns.get(inflight.turnId);
  state.turns.clear();
  state.activeTurn = null;
  if (inflight) {
    const asked = messages.some((m) => m.role === "student" && m.turnId === inflight.turnId);
    // A turn the tutor started unasked (help while reading aloud) has no question.
    if (!asked && inflight.questionText) addBubble("student", inflight.questionText);
    // Keep what we already showed if it is as far along; otherwise take the server's text.
    const ours = known && known.seq >= inflight.seq;
    if (ours) followTurn(inflight.turnId, known.textEl.textContent, known.seq);
    else followTurn(inflight.turnId, inflight.text, inflight.seq);
  }
  showQueue(null);
  followConversation();
  updateControls();
}

function showQueue(position) {
  ui.queue.hidden = position == null;
  ui.queue.textContent = position == null ? "" : `Waiting for the tutor, position ${position}`;
}

function givePendingBack() {
  // Unacknowledged questions may never have reached the server: keep the first one's text.
  if (state.pending.length && !ui.question.value) ui.question.value = state.pending[0].text;
  for (const question of state.pending) question.bubble.remove();
  state.pending = [];
}

function updateControls() {
  ui.ask.disabled = !state.online;
  // Stopping the tutor's voice needs no connection; stopping the text reply does.
  ui.stop.disabled = !((state.online && state.activeTurn) || voice.playingTurnId);
  ui.mic.setAttribute("aria-pressed", String(voice.on));
  const status = voiceSupport() === "ok" && micStatus();
  // Rewriting the same text would make screen readers announce it again.
  if (status && ui.micStatus.textContent !== status) ui.micStatus.textContent = status;
  reading.update();
}

function micStatus() {
  if (reading.active) return "The tutor is listening to you read. Type a question, or press Done reading to ask out loud.";
  if (!voice.on) return "Turn on the microphone to ask out loud.";
  if (state.listening) return "Listening…";
  return state.online ? "Microphone on: ask your question out loud." : "Microphone on – waiting for the connection.";
}

function ask(event) {
  event.preventDefault();
  const text = ui.question.value.trim();
  // Asking while a reply streams is allowed on purpose: the server cancels it (barge-in).
  if (!text || !state.online) return;
  narration.pause(); // the answer is what the student wants to hear now
  voice.stopPlayback(); // first: the server cuts the spoken reply to what was heard
  if (!send("STUDENT_INTERRUPTION", { questionText: text })) return;
  highlight([]);
  state.pending.push({ text, bubble: addBubble("student", text, "sending") });
  ui.question.value = "";
}

function stop() {
  voice.stopPlayback(); // PLAYBACK_POSITION goes before the cancel that stores the reply
  if (state.activeTurn) send("RESPONSE_CANCEL", { turnId: state.activeTurn });
}

// ---- voice questions
// TRANSCRIPT final:false means the student started talking: the tutor goes quiet at
// once and a "listening…" bubble appears. final:true carries the words, which then
// wait for INTERRUPTION_ACKNOWLEDGED like a typed question.
function onTranscript({ text = "", final }) {
  if (!final) {
    voice.stopPlayback();
    state.listening ??= addBubble("student", "listening…", "interim");
    return updateControls();
  }
  const words = text.trim();
  if (!words) return clearListening(); // only noise was heard: no question
  const bubble = state.listening ?? addBubble("student", words, "sending");
  state.listening = null;
  bubble.classList.replace("interim", "sending");
  bubble.querySelector(".msg-text").textContent = words;
  state.pending.push({ text: words, bubble });
  voice.heard(words);
  highlight([]);
  updateControls();
}

function clearListening() {
  state.listening?.remove();
  state.listening = null;
  updateControls();
}

function configureVoice() {
  if (send("SESSION_UPDATE", VOICE_CONFIG)) state.voiceSocket = state.socket;
}

async function toggleMic() {
  if (voice.starting) return; // the permission prompt is still open
  if (voice.on) {
    state.voiceSocket = null;
    return voice.disable();
  }
  try {
    await voice.enable();
    configureVoice();
  } catch (error) {
    toast(MIC_ERRORS[error?.name] ?? `Could not use the microphone: ${error?.message ?? error}`);
  }
  updateControls();
}

function setUpVoice() {
  const support = voiceSupport();
  ui.mic.addEventListener("click", toggleMic);
  ui.mic.disabled = support !== "ok";
  ui.mic.closest(".voice-row").hidden = support === "missing";
  if (support === "insecure") ui.micStatus.textContent = "Talking needs a secure page (https).";
  // Read-only view for tests and debugging: snapshots, never the live objects.
  window.readerai = Object.freeze({
    get stats() { return voice.stats(); },
    state: () => ({
      connection: ui.connection.dataset.state,
      playingTurnId: voice.playingTurnId,
      readAloud: narration.state,
      reading: reading.state,
    }),
  });
}

// ---- reading position
const sentences = () => ui.passage.querySelectorAll(".sentence");

function setPosition(index, { focus = false, scroll = false } = {}) {
  const spans = sentences();
  if (!spans[index]) return;
  for (const span of spans) {
    span.tabIndex = -1; // roving tabindex: the passage is one tab stop, arrows move inside
    span.removeAttribute("aria-current");
  }
  const span = spans[index];
  span.tabIndex = 0;
  span.setAttribute("aria-current", "location");
  state.position = index;
  if (scroll) scrollToSentence(span);
  if (focus) span.focus();
  queueProgress();
}

// A position is a character offset into the story's text, in code points (docs/
// protocol.md): this page sends the start of the sentence it moved to, the server
// stores the start of each word it hears read aloud. The sentence is the last one
// starting at or before the offset. An offset inside a sentence is a word read aloud:
// it is marked as reached (the server resumes the next reading after it), not replaced.
function restorePosition(progress) {
  const saved = progress.find((p) => p.passageId === state.passage.id);
  const index = saved ? sentenceAt(saved.position) : null;
  state.sentPosition = index;
  if (state.restored) return queueProgress(); // a reconnect: our own position is the newer one
  state.restored = true;
  const starts = state.passage.sentenceStarts ?? [];
  const heard = saved && !starts.includes(saved.position) ? reading.wordFrom(saved.position) : null;
  if (heard) reading.restore(heard);
  if (index !== null) setPosition(index, { scroll: true });
}

/** The index of the sentence containing character offset `position`. */
function sentenceAt(position) {
  const starts = state.passage.sentenceStarts ?? [];
  let index = 0;
  while (index + 1 < starts.length && starts[index + 1] <= position) index += 1;
  return index;
}

// Throttle with a trailing send: the latest position always goes out, at most every 250 ms.
function queueProgress() {
  if (state.timers.progress || state.position === null) return;
  const wait = Math.max(0, state.lastProgressAt + PROGRESS_INTERVAL_MS - Date.now());
  state.timers.progress = setTimeout(flushProgress, wait);
}

function flushProgress() {
  clearTimeout(state.timers.progress);
  state.timers.progress = 0;
  // While the student reads aloud, the place is the word the server hears: not ours.
  if (reading.active) return;
  if (!state.passage || state.position === null || state.position === state.sentPosition) return;
  const position = state.passage.sentenceStarts?.[state.position]; // the sentence's first character
  if (position === undefined) return;
  if (send("READING_PROGRESS", { passageId: state.passage.id, position })) {
    state.sentPosition = state.position;
    state.lastProgressAt = Date.now();
  }
}

// Scrolling moves the mark only once the marked sentence has left the view, so a
// small scroll does not undo the sentence the student tapped.
function onScroll(event) {
  if (event.target !== document && event.target !== ui.passage) return;
  if (!state.passage || performance.now() < state.ignoreScrollUntil) return;
  const box = ui.passage.getBoundingClientRect();
  const top = Math.max(box.top, 0);
  const bottom = Math.min(box.bottom, window.innerHeight);
  const spans = [...sentences()];
  const current = spans[state.position ?? 0]?.getBoundingClientRect();
  if (!current || (current.bottom > top && current.top < bottom)) return;
  const first = spans.findIndex((span) => span.getBoundingClientRect().bottom > top + 4);
  if (first >= 0) setPosition(first);
}

function onPassageKey(event) {
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
  const span = event.target.closest?.(".sentence");
  if (!step || !span) return;
  event.preventDefault();
  setPosition(Number(span.dataset.index) + step, { focus: true });
}

// ---- read-aloud: the tutor reading the story (narration) …
function toggleReadAloud() {
  const spans = sentences();
  if (!spans.length) return;
  reading.stop(); // two voices reading the story at once is one too many
  if (narration.state === "stopped") narration.start(state.position ?? 0, spans.length);
  else if (narration.state === "paused") narration.resume();
  else narration.pause();
}

function updateReadAloud(status) {
  ui.readToggleText.textContent = READ_LABELS[status];
  ui.readToggle.classList.toggle("active", status !== "stopped");
  ui.readStop.disabled = status === "stopped";
  if (ui.readStatus.textContent !== READ_STATUS[status]) ui.readStatus.textContent = READ_STATUS[status];
  if (status === "stopped") markReading(null);
}

function markReading(index) {
  for (const span of ui.passage.querySelectorAll(".sentence.reading")) span.classList.remove("reading");
  if (index !== null) sentences()[index]?.classList.add("reading");
}

function highlight(indices, { scroll = false } = {}) {
  const spans = sentences();
  for (const span of spans) span.classList.remove("cited");
  for (const index of indices) spans[index]?.classList.add("cited");
  if (scroll && spans[indices[0]]) scrollToSentence(spans[indices[0]]);
}

// ---- … and the student reading it aloud to the tutor
function startReading() {
  narration.stop(); // the tutor's voice must not be heard as the student's
  reading.start();
}

function inView(node) {
  const box = node.getBoundingClientRect();
  const frame = ui.passage.getBoundingClientRect();
  return box.top >= Math.max(frame.top, 0) && box.bottom <= Math.min(frame.bottom, window.innerHeight);
}

function scrollToSentence(span) {
  state.ignoreScrollUntil = performance.now() + 300; // our own scroll is not the student's
  span.scrollIntoView({ block: "center" });
}

// ---- wiring
ui.form.addEventListener("submit", ask);
ui.stop.addEventListener("click", stop);
document.addEventListener("keydown", (event) => event.key === "Escape" && stop());
ui.passage.addEventListener("click", (event) => {
  const span = event.target.closest(".sentence");
  if (!span) return;
  setPosition(Number(span.dataset.index));
  narration.jump(Number(span.dataset.index)); // reading aloud goes on from there
});
ui.passage.addEventListener("keydown", onPassageKey);
document.addEventListener("scroll", onScroll, { capture: true, passive: true });
ui.list.addEventListener("click", onLibraryClick);
window.addEventListener("popstate", () => openPassage(storyFromUrl()));
window.addEventListener("online", reconnectNow);
window.addEventListener("pagehide", flushProgress);
for (const type of ["pointerdown", "keydown", "focus"]) {
  window.addEventListener(type, () => state.idle && reconnectNow(), { capture: true });
}
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  if (state.idle) reconnectNow();
  else checkAlive();
});

ui.readToggle.addEventListener("click", toggleReadAloud);
ui.readStop.addEventListener("click", () => narration.stop());
ui.readSelfStart.addEventListener("click", startReading);
ui.readSelfStop.addEventListener("click", () => reading.stop());
ui.signout.addEventListener("click", () => showSignIn());
wireCodeForm(ui.signinForm, ui.signinError, signedIn);

setUpVoice();
boot();
