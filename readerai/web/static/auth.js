// Signing in, shared by the student page and the teacher dashboard (docs/classroom.md,
// "Getting a token"). A one-time code is traded for a token with POST /api/auth/exchange;
// the token lives in the tab's sessionStorage only, so it never sits in a URL or history,
// and it goes out as `Authorization: Bearer` (REST) or as a WebSocket subprotocol.

/** Thrown for every refused REST call; `status` is the HTTP status, `code` the stable error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    Object.assign(this, { name: "ApiError", status, code });
  }
}

/** The signed-in user of one page, kept in sessionStorage under `key` (memory if storage is off). */
export class Account {
  constructor(key) {
    this.key = key;
    this.memory = null;
  }

  /** `{token, role, userId, name, classId, expiresAt}` or null. */
  get profile() {
    try {
      const saved = sessionStorage.getItem(this.key);
      return saved ? JSON.parse(saved) : null;
    } catch {
      return this.memory;
    }
  }

  get token() { return this.profile?.token ?? null; }

  save(profile) {
    this.memory = profile;
    try { sessionStorage.setItem(this.key, JSON.stringify(profile)); } catch { /* memory only */ }
  }

  clear() {
    this.memory = null;
    try { sessionStorage.removeItem(this.key); } catch { /* nothing kept */ }
  }
}

async function refusal(response) {
  const body = await response.json().catch(() => null);
  // The request id lets an operator find this failure in the server logs.
  if (body?.error?.requestId) console.warn("ReaderAI request failed", response.url, body.error);
  const message = body?.error?.message ?? `${response.status} ${response.statusText}`;
  return new ApiError(response.status, body?.error?.code ?? "http_error", message);
}

/** A one-time code → the profile with its token (ApiError 401 `invalid_code` if it is no good). */
export async function exchangeCode(code) {
  const response = await fetch("api/auth/exchange", {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify({ code: code.trim() }),
  });
  if (!response.ok) throw await refusal(response);
  return response.json();
}

/** A token pasted by an operator → its profile, checked with GET /api/me. */
export async function profileOfToken(token) {
  const response = await fetch("api/me", {
    headers: { Accept: "application/json", Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw await refusal(response);
  return { ...(await response.json()), token };
}

/**
 * REST calls signed in as `account`. `onUnauthorized(error)` runs when the server
 * refuses the token (401: expired or invalid), before the call rejects.
 */
export function createApi(account, onUnauthorized) {
  /** The raw Response of an authorised fetch; rejects with ApiError unless it is 2xx. */
  async function send(path, init = {}) {
    const token = account.token;
    const headers = { Accept: "application/json", ...init.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (typeof init.body === "string") headers["Content-Type"] = "application/json";
    const response = await fetch(path, { ...init, headers });
    if (response.ok) return response;
    const error = await refusal(response);
    if (response.status === 401 && token && token === account.token) onUnauthorized(error);
    throw error;
  }

  /** The JSON body of an authorised call (null for 204). */
  async function json(path, init = {}) {
    const response = await send(path, init);
    return response.status === 204 ? null : response.json();
  }

  return { send, json };
}

/** The subprotocols a browser WebSocket offers to sign in: the token stays out of the URL. */
export const socketProtocols = (token) => ["readerai.v1", `bearer.${token}`];

/** Close codes meaning "sign in again" and "this user may not". */
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_FORBIDDEN = 4403;

/** The `?code=` of the address, if any; the address is rewritten without it at once. */
export function takeCodeFromUrl() {
  const url = new URL(location.href);
  const code = url.searchParams.get("code");
  if (code === null) return null;
  url.searchParams.delete("code");
  history.replaceState(history.state, "", url); // a used code should not stay in history
  return code.trim() || null;
}

/**
 * Wire a sign-in form: `form` holds an input named `code`, `error` shows why a code
 * failed. `onSignedIn(profile)` runs after a successful exchange.
 */
export function wireCodeForm(form, error, onSignedIn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.elements.namedItem("code");
    const button = form.querySelector("button[type=submit]");
    const code = input.value.trim();
    if (!code) return input.focus();
    button.disabled = true;
    showError(error, "");
    try {
      const profile = await exchangeCode(code);
      input.value = "";
      onSignedIn(profile);
    } catch (failure) {
      showError(error, codeFailure(failure));
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
}

/** What to tell the person whose code did not work. */
export function codeFailure(failure) {
  if (failure?.status === 401 || failure?.status === 422) {
    return "That code did not work. It may be mistyped, already used or expired – ask your teacher for a new one.";
  }
  return `Could not sign in: ${failure?.message ?? failure}`;
}

/** Show (or, with "", clear) a message in an error element linked to its input. */
export function showError(element, message) {
  element.textContent = message;
  element.hidden = !message;
}
