// Shared helpers for the dashboard pages (ES module, no build step).
//
// Everything that comes from a device (ids, locations, messages) is untrusted: it only ever
// reaches the DOM through textContent or attribute setters, never innerHTML. Ages are computed
// from the device's own `at` against the server's clock (offset learnt from each message's
// `now`), so a laptop with a wrong clock still shows the same ages as /metrics.

export const REQUESTED_WITH = "edge-recorder";

/** Create an element: el("td", {class: "x", dataset: {k: "v"}}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Set textContent only when it changed (keeps layout work down on big tables). */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** "1 device", "3 devices". */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/** ISO-8601 (the devices' `at`) to epoch seconds, or null. */
export function parseIso(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms / 1000;
}

// Server clock minus browser clock, seconds; updated from every message carrying `now`.
let clockOffset = 0;

export function learnServerNow(now) {
  if (typeof now === "number" && Number.isFinite(now)) clockOffset = now - Date.now() / 1000;
}

/** Now on the server's clock, epoch seconds. */
export function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

/** "12s ago", "4m 05s ago", "3h 10m ago", "2d 4h ago"; "—" when unknown. */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 0) return "just now"; // device clock ahead of ours
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h ago`;
}

/** Age of a device `at` (ISO) now, in seconds, or null. */
export function ageOf(iso) {
  const at = parseIso(iso);
  return at === null ? null : serverNow() - at;
}

/** Binary units, as disk tools print them: "1.5 GiB". */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A number with at most `digits` decimals, "—" for null. */
export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return String(Math.round(value * 10 ** digits) / 10 ** digits);
}

/** Local wall-clock time of an epoch (seconds). */
export function formatClock(epoch) {
  if (epoch === null || epoch === undefined) return "—";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

/** Local time of an epoch (seconds), with the day when it is not today: "Dec 5 14:02:11". */
export function formatDateTime(epoch) {
  if (epoch === null || epoch === undefined) return "—";
  const d = new Date(epoch * 1000);
  const time = d.toLocaleTimeString([], { hour12: false });
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/** Axis labels for byte values: one unit for the whole axis, decimals from the tick step. */
export function formatBytesAxis(splits) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const top = Math.max(...splits.map((v) => Math.abs(v ?? 0)));
  let unit = 0;
  while (top / 1024 ** unit >= 1024 && unit < units.length - 1) unit += 1;
  const scale = 1024 ** unit;
  const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) / scale : 1;
  const digits = step >= 1 || unit === 0 ? 0 : step >= 0.1 ? 1 : 2;
  return splits.map((v) => (v === null ? "" : `${(v / scale).toFixed(digits)} ${units[unit]}`));
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** GET JSON; a 401 sends the browser to the login page. Throws on other errors. */
export async function getJson(path) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (response.status === 401) {
    toLogin();
    throw new Error("login required");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** POST `{}` with the CSRF header; returns {status, body}. A 401 goes to the login page. */
export async function postJson(path) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-Requested-With": REQUESTED_WITH,
    },
    body: "{}",
  });
  if (response.status === 401) toLogin();
  const body = await response.json().catch(() => null);
  return { status: response.status, body };
}

/** The broker banner: shown only while the dashboard's MQTT connection is down. */
export function showBroker(banner, broker) {
  if (!broker || broker.connected) {
    banner.hidden = true;
    return;
  }
  const parts = ["MQTT broker disconnected"];
  if (broker.url) parts[0] += ` (${broker.url})`;
  if (broker.since) parts.push(`since ${formatClock(broker.since)}`);
  if (broker.error) parts.push(broker.error);
  parts.push("device data shown is as of the last message");
  setText(banner, parts.join(" — "));
  banner.hidden = false;
}

/**
 * Live updates over server-sent events. `handlers.snapshot(data)` and `handlers.update(data)`
 * get parsed JSON; `connBanner` is shown while the stream is down. EventSource reconnects by
 * itself; a stream the browser gave up on (HTTP error, e.g. 401 after the session expired)
 * is checked with a plain request and reopened after a pause.
 */
export function openStream(connBanner, handlers) {
  let source = null;
  let retry = null;

  const parse = (event, handler) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    connBanner.hidden = true;
    learnServerNow(data.now);
    handler(data);
  };

  const open = () => {
    retry = null;
    source = new EventSource("/api/stream");
    source.addEventListener("snapshot", (event) => parse(event, handlers.snapshot));
    source.addEventListener("update", (event) => parse(event, handlers.update));
    source.addEventListener("error", () => {
      connBanner.textContent = "connection to dashboard lost — reconnecting…";
      connBanner.hidden = false;
      if (source.readyState === EventSource.CLOSED && retry === null) {
        source.close();
        // getJson redirects to /login on 401; anything else: try again shortly.
        retry = setTimeout(() => {
          getJson("/api/fleet").then(open, () => {
            retry = null;
            setTimeout(open, 5000);
          });
        }, 2000);
      }
    });
  };
  open();
  return () => {
    if (source) source.close();
    if (retry !== null) clearTimeout(retry);
  };
}

/** Show who is signed in; no sign-out in open mode (loopback, no login: user "local"). */
export function showUser(container, user) {
  if (!user || !user.name) return;
  const name = container.querySelector("[data-testid=user-name]");
  if (name) setText(name, `${user.name} (${user.role})`);
  const open = user.mode === "open" || (user.mode === undefined && user.name === "local");
  const button = container.querySelector("button[type=submit]");
  if (button) button.hidden = open;
  container.hidden = false;
}
