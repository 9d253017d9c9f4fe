// Small DOM helpers shared by the pages. Server text always goes in as textContent.

/** `el("p", {className: "x"}, child, "text")`: an element with properties and children. */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"]];

/** "just now", "3 minutes ago", "yesterday" … for an ISO time (empty for none). */
export function timeAgo(iso, now = Date.now()) {
  const at = Date.parse(iso ?? "");
  if (Number.isNaN(at)) return "";
  let amount = Math.round((at - now) / 1000);
  if (Math.abs(amount) < 45) return "just now";
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(amount, unit);
    amount = Math.round(amount / size);
  }
  return relative.format(amount, "week");
}

/** A <time> showing `timeAgo(iso)`, with the exact time on hover; refresh with `refreshTime`. */
export function timeElement(iso) {
  const time = el("time");
  setTime(time, iso);
  return time;
}

export function setTime(time, iso) {
  time.dateTime = iso ?? "";
  time.title = iso ? new Date(iso).toLocaleString() : "";
  refreshTime(time);
}

export function refreshTime(time) {
  const text = timeAgo(time.dateTime);
  if (time.textContent !== text) time.textContent = text;
}

/**
 * A short message at the bottom of the page; the container is a polite live region.
 * `announce: false` for a message a live region elsewhere already reads out.
 */
export function toast(container, message, { announce = true } = {}) {
  const item = el("p", { className: "toast", textContent: message });
  if (!announce) item.setAttribute("aria-hidden", "true");
  container.append(item);
  while (container.childElementCount > 3) container.firstElementChild.remove();
  setTimeout(() => container.firstElementChild?.remove(), 6000);
}
