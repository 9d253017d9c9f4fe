// ReaderAI teacher dashboard: sign in, pick or create a class, watch the roster live
// (GET /api/classes/{id}/feed), add students and hand out sign-in codes, read each
// student's questions and the tutor's answers, message the class, add stories.
// REST and events: docs/classroom.md. Server text goes in with textContent only.
// The roster is roster.js, the event stream feed.js, story uploads upload.js, readings
// aloud (fluency charts, missed words, replay, the stall-help setting) fluency.js.

import {
  Account, codeFailure, createApi, exchangeCode, profileOfToken, showError, takeCodeFromUrl, wireCodeForm,
} from "./auth.js";
import { el, toast as showToast } from "./dom.js";
import { EventFeed } from "./feed.js";
import { FluencyPanel } from "./fluency.js";
import { TeacherMessages } from "./from-teacher.js";
import { Roster } from "./roster.js";
import { PassageUpload } from "./upload.js";

const TICK_MS = 15_000; // "2 minutes ago" stays true
const SIGNED_OUT = "You were signed out because your sign-in expired. Sign in again.";
const FEED_LABELS = { connecting: "Connecting…", online: "Live", reconnecting: "Reconnecting…", stopped: "Not live" };
const FEED_DOTS = { connecting: "connecting", online: "online", reconnecting: "reconnecting", stopped: "offline" };
const STATUS_NOTES = { cancelled: "Stopped", interrupted: "Cut short", failed: "The tutor could not answer", in_progress: "Still answering…" };

const $ = (id) => document.getElementById(id);
const ui = {
  signin: $("signin"), signinForm: $("signin-form"), signinError: $("signin-error"), code: $("code"),
  tokenForm: $("token-form"), app: $("app"), account: $("account"), who: $("who"), signout: $("signout"),
  feedState: $("feed-state"), feedStateText: $("feed-state-text"), toasts: $("toasts"),
  classList: $("class-list"), classForm: $("class-form"), className: $("class-name"), classesStatus: $("classes-status"),
  classView: $("class-view"), classTitle: $("class-title"), classSummary: $("class-summary"), classBody: $("class-body"),
  roster: $("roster"), studentForm: $("student-form"), studentName: $("student-name"), classStatus: $("class-status"),
  codeBox: $("code-box"), codeFor: $("code-for"), codeValue: $("code-value"), codeLink: $("code-link"),
  copyLink: $("copy-link"), codeExpiry: $("code-expiry"), codeAnnounce: $("code-announce"),
  studentView: $("student-view"), studentTitle: $("student-title"), studentEmpty: $("student-empty"),
  studentMessages: $("student-messages"),
  broadcastView: $("broadcast-view"), broadcastForm: $("broadcast-form"), broadcastText: $("broadcast-text"),
  broadcastStatus: $("broadcast-status"), broadcastList: $("broadcast-list"), broadcastEmpty: $("broadcast-empty"),
};

const account = new Account("readerai.teacher");
const api = createApi(account, () => showSignIn(SIGNED_OUT));
const toast = (message) => showToast(ui.toasts, message);
const enc = encodeURIComponent;

const state = {
  classes: [],
  classId: null,
  student: null, // {userId, name, sessionId} whose questions are shown
  messages: new Map(), // `${turnId}:${role}` -> bubble of the shown student's conversation
  passages: new Map(), // id -> {title, sentenceCount, sentenceStarts}
  passagesLoading: null,
  tick: 0,
};

const roster = new Roster(ui.roster, {
  passageOf: (id) => state.passages.get(id),
  onSelect: showStudent,
  onNewCode: newCode,
});
const feed = new EventFeed({
  open: (signal) => api.send(`api/classes/${enc(state.classId)}/feed`, {
    signal, headers: { Accept: "text/event-stream" },
  }),
  onEvent: onFeedEvent,
  onState: setFeedState,
  onFatal: (error) => error.status === 401 || toast(`Live updates stopped: ${error.message}`),
});
const broadcasts = new TeacherMessages(ui.broadcastList, ui.broadcastEmpty);
const fluency = new FluencyPanel({
  student: $("fluency-student"), chart: $("fluency-chart"), chartTitle: $("chart-title"), chartList: $("chart-list"),
  missedWords: $("missed-words"), missedEmpty: $("missed-empty"), readingList: $("reading-list"),
  readingsEmpty: $("readings-empty"), replay: $("replay"), replayTitle: $("replay-title"),
  replayClose: $("replay-close"), replaySummary: $("replay-summary"), replayPlay: $("replay-play"),
  replayHeard: $("replay-heard"), replayText: $("replay-text"), helpForm: $("help-form"),
  stallSeconds: $("stall-seconds"), stallHelp: $("stall-help"), helpStatus: $("help-status"),
}, {
  api,
  passageOf: (id) => state.passages.get(id),
  toast,
  onClassChanged: (room) => {
    const index = state.classes.findIndex((c) => c.id === room.id);
    if (index >= 0) state.classes[index] = room;
  },
});
const upload = new PassageUpload({
  form: $("upload-form"), file: $("upload-file"), title: $("upload-name"), level: $("upload-level"),
  format: $("upload-format"), text: $("upload-text"), submit: $("upload-submit"), job: $("job"),
  label: $("job-label"), bar: $("job-progress"), percent: $("job-percent"), status: $("job-status"),
}, { api, onReady: loadPassages });

// ---- signing in
async function boot() {
  const code = takeCodeFromUrl(); // /teacher?code=XXXX: a new sign-in wins over a kept one
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
  if (profile.role === "student") { // a student's code: the reading page is theirs
    new Account("readerai.student").save(profile);
    return location.assign("./");
  }
  account.save(profile);
  showApp();
}

async function useToken(event) {
  event.preventDefault();
  const token = ui.tokenForm.elements.namedItem("token").value.trim();
  try {
    signedIn(await profileOfToken(token));
    ui.tokenForm.reset();
  } catch (error) {
    showError(ui.signinError, error.status === 401 ? `That token was refused: ${error.message}` : error.message);
  }
}

function showApp() {
  const profile = account.profile;
  ui.who.replaceChildren(el("span", { className: "who-label", textContent: "Signed in as " }),
    profile.name || profile.userId);
  ui.signin.hidden = true;
  ui.app.hidden = ui.account.hidden = false;
  clearInterval(state.tick);
  state.tick = setInterval(() => roster.refresh(), TICK_MS);
  loadPassages();
  loadClasses();
}

/** Back to the sign-in form (signed out by choice, or `message` says why). */
function showSignIn(message = "") {
  account.clear();
  closeClass();
  upload.cancel();
  clearInterval(state.tick);
  state.classes = [];
  ui.app.hidden = ui.account.hidden = true;
  ui.signin.hidden = false;
  showError(ui.signinError, message);
  ui.code.focus();
}

// ---- classes
const classFromUrl = () => new URLSearchParams(location.search).get("class");

async function loadClasses() {
  try {
    state.classes = await api.json("api/classes");
  } catch (error) {
    if (error.status !== 401) ui.classList.replaceChildren(el("li", { className: "muted", textContent: `Could not load classes: ${error.message}` }));
    return;
  }
  renderClasses();
  const wanted = state.classId ?? classFromUrl();
  const pick = state.classes.find((c) => c.id === wanted) ?? (state.classes.length === 1 ? state.classes[0] : null);
  if (pick && pick.id !== state.classId) openClass(pick.id);
}

function renderClasses() {
  if (!state.classes.length) {
    return ui.classList.replaceChildren(el("li", { className: "muted", textContent: "No classes yet. Create one below." }));
  }
  ui.classList.replaceChildren(...state.classes.map((c) => {
    const button = el("button", { type: "button", className: "class-button" },
      el("span", { className: "class-name", textContent: c.name }),
      el("span", { className: "class-meta", textContent: `${c.studentCount} ${c.studentCount === 1 ? "student" : "students"}` }));
    button.setAttribute("aria-pressed", String(c.id === state.classId));
    button.addEventListener("click", () => openClass(c.id));
    return el("li", {}, button);
  }));
}

async function createClass(event) {
  event.preventDefault();
  const name = ui.className.value.trim();
  if (!name) return ui.className.focus();
  try {
    const created = await api.json("api/classes", { method: "POST", body: JSON.stringify({ name }) });
    state.classes.push(created);
    ui.classForm.reset();
    ui.classesStatus.textContent = `Created ${created.name}.`;
    openClass(created.id);
  } catch (error) {
    if (error.status !== 401) ui.classesStatus.textContent = `Could not create the class: ${error.message}`;
  }
}

function openClass(id) {
  const found = state.classes.find((c) => c.id === id);
  if (!found) return;
  closeClass();
  state.classId = id;
  const url = new URL(location.href);
  url.searchParams.set("class", id);
  history.replaceState(history.state, "", url); // reload keeps the class
  renderClasses();
  ui.classTitle.textContent = found.name;
  ui.classBody.hidden = ui.broadcastView.hidden = ui.feedState.hidden = false;
  roster.render([], "Loading students…");
  summarise();
  feed.start();
  loadBroadcasts();
  fluency.open(found);
}

function closeClass() {
  feed.stop();
  fluency.close();
  Object.assign(state, { classId: null, student: null });
  ui.classTitle.textContent = "Pick a class";
  ui.classSummary.textContent = ui.classStatus.textContent = ui.broadcastStatus.textContent = "";
  ui.codeAnnounce.textContent = "";
  ui.classBody.hidden = ui.codeBox.hidden = ui.studentView.hidden = ui.broadcastView.hidden = true;
  ui.feedState.hidden = true;
  broadcasts.clear();
}

function setFeedState(kind) {
  ui.feedState.dataset.state = FEED_DOTS[kind];
  ui.feedStateText.textContent = FEED_LABELS[kind];
}

function summarise() {
  const entries = [...roster.cards.values()].map((card) => card.entry);
  const online = entries.filter((e) => e.online).length;
  ui.classSummary.textContent = `${entries.length} ${entries.length === 1 ? "student" : "students"} · ${online} online`;
}

// ---- the live feed
function onFeedEvent(type, data) {
  if (type === "roster") onRoster(data);
  else if (type === "student") onStudentChange(data);
  else if (type === "message") onMessage(data);
  else if (type === "reading") fluency.onReading(data);
  const passageIds = type === "roster" ? data.map((e) => e.passageId) : [data.passageId];
  if (passageIds.some((id) => id && !state.passages.has(id))) loadPassages(); // a story added since
  summarise();
}

// The first event of every (re)connection: messages missed while the feed was down
// are fetched again for the student being shown.
function onRoster(entries) {
  roster.render(entries);
  fluency.setStudents(entries);
  const shown = state.student && roster.entry(state.student.userId);
  if (shown) showStudent(shown, { focus: false });
  else if (state.student) { // taken out of the class
    state.student = null;
    ui.studentView.hidden = true;
  }
}

function onStudentChange(change) {
  if (!roster.update(change)) return reloadRoster(); // a student added since the snapshot
  const shown = state.student;
  if (shown?.userId === change.userId && change.sessionId && change.sessionId !== shown.sessionId) {
    showStudent(roster.entry(change.userId), { focus: false }); // they opened another story
  }
}

function onMessage(message) {
  roster.countMessage(message);
  const shown = state.student;
  if (shown?.userId !== message.userId) return;
  if (message.sessionId !== shown.sessionId) return showStudent(roster.entry(message.userId), { focus: false });
  addMessage(message);
}

async function reloadRoster() {
  const classId = state.classId;
  try {
    const entries = await api.json(`api/classes/${enc(classId)}/roster`);
    if (state.classId === classId) {
      roster.render(entries);
      fluency.setStudents(entries);
    }
    summarise();
  } catch (error) {
    if (error.status !== 401) toast(`Could not refresh the students: ${error.message}`);
  }
}

async function loadPassages() {
  state.passagesLoading ??= api.json("api/passages").then((list) => {
    state.passages = new Map(list.map((p) => [p.id, p]));
    roster.refresh();
  }).catch(() => {}).finally(() => { state.passagesLoading = null; });
  return state.passagesLoading;
}

// ---- one student's questions
async function showStudent(entry, { focus = true } = {}) {
  if (!entry) return;
  const name = entry.name || entry.userId;
  roster.select(entry.userId);
  state.student = { userId: entry.userId, name, sessionId: entry.sessionId };
  state.messages.clear();
  ui.studentMessages.replaceChildren();
  ui.studentTitle.textContent = `Questions of ${name}`;
  ui.studentView.hidden = false;
  ui.studentEmpty.hidden = true;
  if (focus) ui.studentView.focus();
  if (!entry.sessionId) return (ui.studentEmpty.hidden = false);
  let detail;
  try {
    detail = await api.json(`api/sessions/${enc(entry.sessionId)}`);
  } catch (error) {
    return error.status === 401 || toast(`Could not load the questions: ${error.message}`);
  }
  if (state.student?.sessionId !== entry.sessionId) return; // another student picked meanwhile
  for (const message of detail.messages) addMessage(message);
  ui.studentEmpty.hidden = state.messages.size > 0;
}

function addMessage({ turnId, role, text, status }) {
  const key = `${turnId}:${role}`;
  const known = state.messages.get(key);
  const bubble = el("li", { className: `msg ${role}` },
    el("span", { className: "msg-who", textContent: role === "student" ? `${state.student.name}: ` : "Tutor: " }),
    el("p", { className: "msg-text", textContent: text }));
  const note = role === "tutor" && STATUS_NOTES[status];
  if (note) bubble.append(el("p", { className: "msg-note", textContent: note }));
  if (known) known.replaceWith(bubble); // a reply that was still streaming, now finished
  else ui.studentMessages.append(bubble);
  state.messages.set(key, bubble);
  ui.studentEmpty.hidden = true;
  ui.studentMessages.scrollTop = ui.studentMessages.scrollHeight;
}

// ---- students and codes
async function addStudent(event) {
  event.preventDefault();
  const name = ui.studentName.value.trim();
  if (!name) return ui.studentName.focus();
  try {
    showCode(await api.json(`api/classes/${enc(state.classId)}/students`, {
      method: "POST", body: JSON.stringify({ name }),
    }));
    ui.studentForm.reset();
    const found = state.classes.find((c) => c.id === state.classId);
    if (found) found.studentCount += 1;
    renderClasses();
    reloadRoster();
  } catch (error) {
    if (error.status !== 401) ui.classStatus.textContent = `Could not add ${name}: ${error.message}`;
  }
}

async function newCode(entry) {
  try {
    showCode(await api.json(`api/classes/${enc(state.classId)}/students/${enc(entry.userId)}/code`, { method: "POST" }));
  } catch (error) {
    if (error.status !== 401) ui.classStatus.textContent = `Could not make a code: ${error.message}`;
  }
}

function showCode({ name, code, codeExpiresAt }) {
  ui.codeFor.textContent = `Sign-in code for ${name}`;
  ui.codeValue.textContent = code;
  ui.codeLink.value = new URL(`./?code=${enc(code)}`, location.href).href;
  const expires = new Date(codeExpiresAt);
  ui.codeExpiry.textContent = `It works once, until ${expires.toLocaleDateString()}. Type it at the reading page, or open the link.`;
  ui.codeBox.hidden = false;
  // Spelled out letter by letter, so a screen reader does not read it as a word.
  ui.classStatus.textContent = "";
  ui.codeAnnounce.textContent = `${name}’s code is ${[...code].join(" ")}.`;
}

async function copyLink() {
  try {
    await navigator.clipboard.writeText(ui.codeLink.value);
    ui.classStatus.textContent = "Link copied.";
  } catch {
    ui.codeLink.focus();
    ui.codeLink.select();
    ui.classStatus.textContent = "Link selected: press Ctrl+C (or ⌘C) to copy it.";
  }
}

// ---- broadcasts
async function loadBroadcasts() {
  const classId = state.classId;
  try {
    const recent = await api.json(`api/classes/${enc(classId)}/broadcasts`);
    if (state.classId !== classId) return;
    broadcasts.add(...recent.map((b) => ({ id: b.broadcastId, text: b.text, sentAt: b.sentAt })));
  } catch (error) {
    if (error.status !== 401) ui.broadcastStatus.textContent = `Could not load messages: ${error.message}`;
  }
}

async function sendBroadcast(event) {
  event.preventDefault();
  const text = ui.broadcastText.value.trim();
  if (!text) return ui.broadcastText.focus();
  const button = ui.broadcastForm.querySelector("button");
  button.disabled = true;
  try {
    const sent = await api.json(`api/classes/${enc(state.classId)}/broadcasts`, {
      method: "POST", body: JSON.stringify({ text }),
    });
    broadcasts.add({ id: sent.broadcastId, text, sentAt: sent.sentAt });
    ui.broadcastForm.reset();
    ui.broadcastStatus.textContent = "Sent to the class.";
  } catch (error) {
    if (error.status !== 401) ui.broadcastStatus.textContent = `Not sent: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

// ---- wiring
wireCodeForm(ui.signinForm, ui.signinError, signedIn);
ui.tokenForm.addEventListener("submit", useToken);
ui.signout.addEventListener("click", () => showSignIn());
ui.classForm.addEventListener("submit", createClass);
ui.studentForm.addEventListener("submit", addStudent);
ui.copyLink.addEventListener("click", copyLink);
ui.broadcastForm.addEventListener("submit", sendBroadcast);
// Ctrl+Enter sends a message from the text box, as in most chat tools.
ui.broadcastText.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ui.broadcastForm.requestSubmit();
});
document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && roster.refresh());

boot();
