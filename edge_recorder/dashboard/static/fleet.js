// The fleet page: every device, problems first, updated live.
//
// The server ranks devices (problems first); the page keeps that order, sorting by
// (rank, device_id) when it merges live updates. Rows are built once per device and kept in a
// keyed map; an update rewrites only the cells whose value changed, and the table body is
// re-ordered only when a rank, the filter or the search changed (a no-move pass touches no
// DOM). Rows that do not match the filter are detached, so the table holds only what is shown.

import {
  ageOf,
  el,
  formatAge,
  formatBytes,
  formatClock,
  formatNumber,
  getJson,
  learnServerNow,
  openStream,
  plural,
  setText,
  showBroker,
  showUser,
} from "./common.js";

const FILTERS = {
  all: () => true,
  problems: (d) => d.problems.length > 0,
  offline: (d) => d.presence === "offline",
  stale: (d) => d.presence === "stale",
  online: (d) => d.presence === "online",
  unknown: (d) => d.presence === "unknown",
  recording: (d) => d.presence === "online" && d.state === "recording",
  paused: (d) => d.presence === "online" && (d.state === "paused" || d.state === "stopping"),
  idle: (d) => d.presence === "online" && d.state === "idle",
};

const COLUMNS = [
  ["device", "Device"],
  ["location", "Location"],
  ["presence", "Link"],
  ["state", "State"],
  ["problems", "Problems"],
  ["seen", "Last status"],
  ["backlog", "Backlog"],
  ["mic", "Mic"],
  ["disk", "Disk free"],
];

const $ = (selector) => document.querySelector(selector);
const ui = {
  body: $("[data-testid=fleet-table] tbody"),
  search: $("[data-testid=search]"),
  filter: $("[data-testid=filter]"),
  counts: $("[data-testid=counts]"),
  shown: $("[data-testid=shown]"),
  updated: $("[data-testid=updated]"),
  broker: $("[data-testid=broker-banner]"),
  conn: $("[data-testid=conn-banner]"),
  empty: $("[data-testid=empty]"),
  unattributed: $("[data-testid=unattributed]"),
  user: $("[data-testid=user]"),
};

/** @type {Map<string, Row>} */
const rows = new Map();
let order = []; // Row objects sorted by (rank, device_id)
let total = 0;

function worstSeverity(problems) {
  if (problems.some((p) => p.severity === "error")) return "error";
  if (problems.length > 0) return "warning";
  return "ok";
}

function presenceText(d) {
  if (d.presence === "offline" && d.offline_reason) return `offline (${d.offline_reason})`;
  return d.presence || "unknown";
}

function backlogText(d) {
  if (d.backlog_recordings === null && d.backlog_bytes === null) return "—";
  if (!d.backlog_recordings) return "empty";
  let text = `${d.backlog_recordings} rec · ${formatBytes(d.backlog_bytes)}`;
  if (d.oldest_age_s) text += ` · ${formatAge(d.oldest_age_s).replace(" ago", "")} old`;
  return text;
}

function micText(d) {
  if (d.mic_present === false) return "absent";
  if (d.mic_level_dbfs === null) return "—";
  return `${formatNumber(d.mic_level_dbfs, 0)} dBFS`;
}

function diskText(d) {
  if (d.disk_free_bytes === null) return "—";
  let text = formatBytes(d.disk_free_bytes);
  if (d.disk_total_bytes) text += ` (${Math.round((100 * d.disk_free_bytes) / d.disk_total_bytes)} %)`;
  return text;
}

function stateText(d) {
  if (!d.state) return "—";
  if (d.state === "recording" && d.encounter_elapsed_s !== null) {
    const m = Math.floor(d.encounter_elapsed_s / 60);
    return `recording ${m} min`;
  }
  return d.state;
}

function problemChip(problem) {
  const sev = problem.severity === "error" ? "error" : "warning";
  return el(
    "span",
    { class: `chip chip-${sev}`, title: problem.code },
    el("span", { class: "chip-sev", text: sev === "error" ? "ERROR" : "WARN" }),
    " ",
    el("span", { class: "chip-text", text: problem.text }),
  );
}

class Row {
  constructor(device) {
    this.id = device.device_id;
    this.tr = el("tr", { dataset: { deviceId: this.id } });
    this.cells = {};
    this.keys = {};
    for (const [name, label] of COLUMNS) {
      const td = el("td", { class: name, dataset: { label } });
      this.cells[name] = td;
      this.tr.append(td);
    }
    this.link = el("a", { href: `/devices/${encodeURIComponent(this.id)}`, text: this.id });
    this.cells.device.append(this.link);
    this.device = null;
    this.update(device);
  }

  /** Rewrite the cells whose content changed; returns true when the rank changed. */
  update(d) {
    const rankChanged = !this.device || this.device.rank !== d.rank;
    this.device = d;
    if (rankChanged) this.tr.dataset.rank = String(d.rank);
    const sev = worstSeverity(d.problems);
    const rowClass = `sev-${sev} presence-${d.presence}`;
    if (this.tr.className !== rowClass) this.tr.className = rowClass;
    setText(this.cells.location, d.location || "—");
    setText(this.cells.presence, presenceText(d));
    setText(this.cells.state, stateText(d));
    setText(this.cells.backlog, backlogText(d));
    setText(this.cells.mic, micText(d));
    setText(this.cells.disk, diskText(d));
    const problemKey = d.problems.map((p) => `${p.severity}\u0000${p.text}`).join("\u0001");
    if (this.keys.problems !== problemKey) {
      this.keys.problems = problemKey;
      const cell = this.cells.problems;
      if (d.problems.length === 0) cell.replaceChildren(el("span", { class: "ok", text: "OK" }));
      else cell.replaceChildren(...d.problems.map(problemChip));
    }
    this.tick();
    return rankChanged;
  }

  /** Refresh the age of the device's last status (called every second). */
  tick() {
    setText(this.cells.seen, formatAge(ageOf(this.device.at)));
  }
}

function compare(a, b) {
  const ra = a.device.rank;
  const rb = b.device.rank;
  if (ra !== rb) return ra - rb;
  const ia = a.id;
  const ib = b.id;
  return ia < ib ? -1 : ia > ib ? 1 : 0;
}

function matcher() {
  const predicate = FILTERS[ui.filter.value] || FILTERS.all;
  const needle = ui.search.value.trim().toLowerCase();
  if (!needle) return predicate;
  return (d) =>
    predicate(d) &&
    (d.device_id.toLowerCase().includes(needle) ||
      (d.location || "").toLowerCase().includes(needle));
}

let visible = [];

/** Make the table body hold exactly `wanted`, in order, with as few DOM moves as possible. */
function syncBody(wanted) {
  const body = ui.body;
  if (Math.abs(body.childElementCount - wanted.length) > 50) {
    // a new filter or search: one replacement beats hundreds of single moves
    body.replaceChildren(...wanted.map((row) => row.tr));
    return;
  }
  const keep = new Set(wanted.map((row) => row.tr));
  let cursor = body.firstElementChild;
  for (const row of wanted) {
    while (cursor && cursor !== row.tr) {
      // a row no longer shown goes; a row right before the wanted one was displaced (it
      // moved down): detach it, it is inserted again when its turn comes
      if (keep.has(cursor) && cursor.nextElementSibling !== row.tr) break;
      const next = cursor.nextElementSibling;
      cursor.remove();
      cursor = next;
    }
    if (cursor === row.tr) cursor = cursor.nextElementSibling;
    else body.insertBefore(row.tr, cursor);
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    cursor.remove();
    cursor = next;
  }
}

function render() {
  const matches = matcher();
  visible = order.filter((row) => matches(row.device));
  syncBody(visible);
  const n = visible.length;
  setText(ui.shown, n === total ? plural(total, "device") : `${n} of ${plural(total, "device")}`);
  if (n === 0) {
    ui.empty.textContent =
      total === 0 ? "No device has reported yet." : "No device matches the search and filter.";
    ui.empty.hidden = false;
  } else {
    ui.empty.hidden = true;
  }
}

function setCounts(counts) {
  for (const node of ui.counts.querySelectorAll("[data-count]")) {
    const value = counts[node.dataset.count];
    setText(node, String(value ?? 0));
    node.parentElement.classList.toggle("count-zero", !value);
  }
  total = counts.total ?? order.length;
  const problems = counts.problem ?? 0;
  document.title = problems
    ? `(${problems}) Fleet — edge-recorder`
    : "Fleet — edge-recorder";
}

function setUnattributed(unattributed) {
  const n = Object.values(unattributed || {}).reduce((a, b) => a + b, 0);
  ui.unattributed.hidden = n === 0;
  if (n) setText(ui.unattributed, `${plural(n, "message")} from unknown devices dropped`);
}

function merge(devices, removed) {
  let reorder = false;
  for (const d of devices) {
    const row = rows.get(d.device_id);
    if (row) {
      if (row.update(d)) reorder = true;
    } else {
      const created = new Row(d);
      rows.set(d.device_id, created);
      order.push(created);
      reorder = true;
    }
  }
  for (const id of removed || []) {
    if (rows.delete(id)) reorder = true;
  }
  if (reorder) {
    order = order.filter((row) => rows.get(row.id) === row);
    order.sort(compare);
  }
}

function onSnapshot(data) {
  const seen = new Set(data.devices.map((d) => d.device_id));
  const gone = [...rows.keys()].filter((id) => !seen.has(id));
  merge(data.devices, gone);
  setCounts(data.counts);
  showBroker(ui.broker, data.broker);
  if (data.unattributed) setUnattributed(data.unattributed);
  if (data.user) showUser(ui.user, data.user);
  setText(ui.updated, formatClock(data.now));
  render();
}

function onUpdate(data) {
  merge(data.devices || [], data.removed || []);
  if (data.counts) setCounts(data.counts);
  showBroker(ui.broker, data.broker);
  if (data.unattributed) setUnattributed(data.unattributed);
  setText(ui.updated, formatClock(data.now));
  render();
}

// ------------------------------------------------------------------ controls

function saveView() {
  const params = new URLSearchParams();
  if (ui.search.value) params.set("q", ui.search.value);
  if (ui.filter.value !== "all") params.set("filter", ui.filter.value);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function markActiveCount() {
  for (const button of ui.counts.querySelectorAll("button[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === ui.filter.value));
  }
}

function viewChanged() {
  markActiveCount();
  saveView();
  render();
}

function restoreView() {
  const params = new URLSearchParams(location.search);
  const filter = params.get("filter");
  if (filter && filter in FILTERS) ui.filter.value = filter;
  ui.search.value = params.get("q") || "";
  markActiveCount();
}

let searchFrame = 0;
ui.search.addEventListener("input", () => {
  cancelAnimationFrame(searchFrame);
  searchFrame = requestAnimationFrame(viewChanged);
});
ui.filter.addEventListener("change", viewChanged);
ui.counts.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-filter]");
  if (!button) return;
  const wanted = button.dataset.filter;
  ui.filter.value = ui.filter.value === wanted ? "all" : wanted;
  viewChanged();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement !== ui.search) {
    event.preventDefault();
    ui.search.focus();
  }
});

setInterval(() => {
  for (const row of visible) row.tick();
}, 1000);

restoreView();
// The first paint comes from the snapshot event; a plain request first gets a 401 redirect to
// the login page (EventSource cannot see status codes) and shows the data before the stream is up.
getJson("/api/fleet")
  .then((data) => {
    learnServerNow(data.now);
    onSnapshot(data);
  })
  .catch(() => {})
  .finally(() => openStream(ui.conn, { snapshot: onSnapshot, update: onUpdate }));

// the table header sticks under the page header, whose height changes with wrapping
const header = document.querySelector("header.top");
new ResizeObserver(() => {
  document.documentElement.style.setProperty("--header-height", `${header.offsetHeight}px`);
}).observe(header);
