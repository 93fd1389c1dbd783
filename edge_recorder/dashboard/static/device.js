// One device: every status field, its events and connections, 24 h charts, and commands.
//
// The detail comes from /api/devices/{id} and is fetched again (at most once a second) when
// the live stream says this device changed; the charts start from the stored history and grow
// by one point per new status (the device's own `at`), so they stay live without polling.
// Device data reaches the DOM only through textContent.

import {
  ageOf,
  el,
  formatAge,
  formatBytes,
  formatBytesAxis,
  formatClock,
  formatDateTime,
  formatNumber,
  getJson,
  openStream,
  parseIso,
  postJson,
  serverNow,
  setText,
  showBroker,
  showUser,
} from "./common.js";

const DAY_S = 86400;
const $ = (selector) => document.querySelector(selector);
const ui = {
  title: $("[data-testid=device-title]"),
  seen: $("[data-testid=seen]"),
  updated: $("[data-testid=updated]"),
  badges: $("[data-testid=badges]"),
  broker: $("[data-testid=broker-banner]"),
  conn: $("[data-testid=conn-banner]"),
  notFound: $("[data-testid=not-found]"),
  fields: $("[data-testid=status-fields] tbody"),
  badInput: $("[data-testid=bad-input]"),
  events: $("[data-testid=events]"),
  births: $("[data-testid=births]"),
  result: $("[data-testid=cmd-result]"),
  note: $("[data-testid=cmd-note]"),
  buttons: [...document.querySelectorAll("button[data-command]")],
  user: $("[data-testid=user]"),
};

const deviceId = decodeURIComponent(location.pathname.split("/")[2] || "");
const apiBase = `/api/devices/${encodeURIComponent(deviceId)}`;
let summary = null;
let operator = false;
let busy = false;

// ------------------------------------------------------------------ summary and badges

function badge(text, kind, title) {
  return el("span", { class: `badge badge-${kind}`, title }, text);
}

function renderSummary(s) {
  summary = s;
  document.title = `${s.device_id} — edge-recorder`;
  setText(ui.title, s.location ? `${s.device_id} — ${s.location}` : s.device_id);
  const presenceKind = s.presence === "online" ? "ok" : s.presence === "offline" ? "error" : "warning";
  const presence = s.offline_reason ? `${s.presence} (${s.offline_reason})` : s.presence;
  const marks = [badge(presence, presenceKind, "connection"), badge(s.state || "no state", "plain", "state")];
  if (s.problems.length === 0) marks.push(badge("no problems", "ok"));
  for (const p of s.problems) {
    marks.push(badge(`${p.severity === "error" ? "ERROR" : "WARN"} ${p.text}`, p.severity, p.code));
  }
  if (s.version) marks.push(badge(`version ${s.version}`, "plain"));
  ui.badges.replaceChildren(...marks);
  tick();
}

function tick() {
  if (summary) setText(ui.seen, formatAge(ageOf(summary.at)));
}

// ------------------------------------------------------------------ status fields

function flatten(value, prefix, out) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0 && prefix) out.push([prefix, {}]);
    for (const [key, inner] of entries) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

function fieldText(key, value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "none";
  if (typeof value === "object") return "—";
  if (typeof value === "number" && key.endsWith("bytes")) return `${value} (${formatBytes(value)})`;
  if (typeof value === "number" && key.endsWith("_s") && value >= 120) {
    return `${formatNumber(value)} (${formatAge(value).replace(" ago", "")})`;
  }
  return String(value);
}

let fieldCells = new Map();

function renderStatus(status) {
  const pairs = status ? flatten(status, "", []) : [];
  const keys = pairs.map(([key]) => key).join("\n");
  if (keys !== [...fieldCells.keys()].join("\n")) {
    fieldCells = new Map();
    const rows = pairs.map(([key]) => {
      const cell = el("td");
      fieldCells.set(key, cell);
      return el("tr", { dataset: { field: key } }, el("th", { scope: "row", text: key }), cell);
    });
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { text: "no status received yet" })));
    ui.fields.replaceChildren(...rows);
  }
  for (const [key, value] of pairs) setText(fieldCells.get(key), fieldText(key, value));
}

function renderBadInput(counts, last) {
  const total = Object.values(counts || {}).reduce((a, b) => a + b, 0);
  if (!total) {
    setText(ui.badInput, "No bad messages from this device.");
    return;
  }
  const parts = Object.entries(counts)
    .filter(([, n]) => n)
    .map(([kind, n]) => `${kind} ${n}`);
  let text = `Messages dropped: ${parts.join(", ")}.`;
  if (last) text += ` Last: ${last.kind} (${last.reason}) at ${formatClock(last.at)}.`;
  setText(ui.badInput, text);
}

// ------------------------------------------------------------------ events and births

function renderEvents(events) {
  const items = events.map((e) => {
    const what = [e.type, e.code, e.message].filter(Boolean).join(" · ");
    const details = Object.entries(e.details || {})
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    return el(
      "li",
      { dataset: { type: e.type, severity: e.severity } },
      el("span", { class: "when", text: formatDateTime(parseIso(e.at)) }),
      el("span", { class: `sev sev-${e.severity}`, text: e.severity.toUpperCase() }),
      el(
        "span",
        {},
        el("span", { text: what }),
        details ? el("div", { class: "detail", text: details }) : null,
      ),
    );
  });
  if (items.length === 0) items.push(el("li", { class: "muted", text: "no events yet" }));
  ui.events.replaceChildren(...items);
}

const VERDICTS = {
  accepted: "accepted",
  stale_will: "ignored: stale will (an older session's)",
  plain: "plain text (no birth sequence)",
};

function renderBirths(births) {
  const items = births.map((b) => {
    const what = [b.state, b.reason, b.birth_seq !== null ? `session ${b.birth_seq}` : null]
      .filter(Boolean)
      .join(" · ");
    return el(
      "li",
      { dataset: { verdict: b.verdict } },
      el("span", { class: "when", text: formatDateTime(b.received_at) }),
      el("span", { class: `sev verdict-${b.verdict}`, text: b.verdict === "accepted" ? "OK" : "NOTE" }),
      el("span", {}, el("span", { text: what }), el("div", { class: "detail", text: VERDICTS[b.verdict] || b.verdict })),
    );
  });
  if (items.length === 0) items.push(el("li", { class: "muted", text: "no availability messages yet" }));
  ui.births.replaceChildren(...items);
}

// ------------------------------------------------------------------ detail loading

async function load() {
  let detail;
  try {
    detail = await getJson(apiBase);
  } catch (error) {
    if (error.status === 404) {
      setText(ui.notFound, `No device "${deviceId}" has reported to this dashboard.`);
      ui.notFound.hidden = false;
      setText(ui.title, deviceId);
    }
    return false;
  }
  ui.notFound.hidden = true;
  renderSummary(detail.summary);
  renderStatus(detail.status);
  renderEvents(detail.events || []);
  renderBirths(detail.births || []);
  renderBadInput(detail.bad_input, detail.bad_input_last);
  if (detail.user) {
    showUser(ui.user, detail.user);
    setOperator(detail.user.role === "operator");
  }
  return true;
}

let refreshTimer = null;
let lastLoad = 0;

function scheduleLoad() {
  if (refreshTimer !== null) return;
  const wait = Math.max(0, 1000 - (Date.now() - lastLoad));
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    lastLoad = Date.now();
    load();
  }, wait);
}

// ------------------------------------------------------------------ charts

const CHARTS = {
  backlog_bytes: { label: "backlog", format: formatBytes, axis: formatBytesAxis },
  mic_level_dbfs: { label: "mic level", format: (v) => `${formatNumber(v)} dBFS` },
  disk_free_bytes: { label: "disk free", format: formatBytes, axis: formatBytesAxis },
  cpu_temp_c: { label: "CPU", format: (v) => `${formatNumber(v)} °C` },
};
const charts = new Map(); // name -> {plot, data, box}

// tick steps for byte axes: 1, 2, 5, 10, 20, 50, 100, 200, 500 of B, KiB, MiB, GiB, TiB
const BYTE_STEPS = [0, 1, 2, 3, 4].flatMap((k) =>
  [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** k),
);

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function countPoints(values) {
  return values.reduce((n, v) => (v === null || v === undefined ? n : n + 1), 0);
}

function chartWidth(box) {
  return Math.max(240, box.clientWidth);
}

function makeChart(name, t, values) {
  const spec = CHARTS[name];
  const box = document.querySelector(`[data-testid=chart-${name}]`);
  const muted = cssVar("--muted");
  const grid = { stroke: cssVar("--chart-grid"), width: 1 };
  const format = (v) => (v === null || v === undefined ? "—" : spec.format(v));
  const data = [t.slice(), values.slice()];
  const plot = new uPlot(
    {
      width: chartWidth(box),
      height: 200,
      scales: { x: { time: true } },
      series: [
        { value: (_u, v) => (v === null ? "—" : formatDateTime(v)) },
        { label: spec.label, stroke: cssVar("--chart-line"), width: 2, value: (_u, v) => format(v) },
      ],
      axes: [
        { stroke: muted, grid, ticks: grid },
        {
          stroke: muted,
          grid,
          ticks: grid,
          size: 80,
          incrs: spec.axis ? BYTE_STEPS : undefined,
          values: (_u, splits) => (spec.axis ? spec.axis(splits) : splits.map(format)),
        },
      ],
    },
    data,
    box,
  );
  const note = el("p", { class: "no-data", text: "no samples in the last 24 hours" });
  box.append(note);
  const chart = { plot, data, box, note };
  charts.set(name, chart);
  markPoints(chart);
  new ResizeObserver(() => plot.setSize({ width: chartWidth(box), height: 200 })).observe(box);
}

function markPoints(chart) {
  const n = countPoints(chart.data[1]);
  chart.box.dataset.points = String(n);
  chart.note.hidden = n > 0;
}

async function loadHistory() {
  let history;
  try {
    history = await getJson(`${apiBase}/history?hours=24`);
  } catch {
    history = null;
  }
  const series = (history && history.series) || {};
  const t = series.t || [];
  for (const name of Object.keys(CHARTS)) makeChart(name, t, series[name] || t.map(() => null));
  if (summary) appendPoint(summary);
}

/** Add the live status as a point when it is newer than the last one drawn. */
function appendPoint(s) {
  const at = parseIso(s.at);
  if (at === null || charts.size === 0) return;
  const cutoff = serverNow() - DAY_S;
  for (const [name, chart] of charts) {
    const [t, v] = chart.data;
    if (t.length && at <= t[t.length - 1]) continue;
    t.push(at);
    v.push(s[name] ?? null);
    while (t.length && t[0] < cutoff) {
      t.shift();
      v.shift();
    }
    chart.plot.setData(chart.data);
    markPoints(chart);
  }
}

// ------------------------------------------------------------------ commands

function setOperator(isOperator) {
  operator = isOperator;
  for (const button of ui.buttons) {
    button.disabled = !operator || busy;
    button.title = operator ? "" : "operators only";
  }
  ui.note.hidden = operator;
}

function describeResult(status, body) {
  const request = body && body.request_id ? ` (request ${body.request_id})` : "";
  if (status === 200 && body && body.ok) return [`ok${request}`, true];
  if (status === 504 || (body && body.ok === false && !body.response && body.error === "timeout")) {
    return [`no answer${request}`, false];
  }
  if (status === 403) return ["not allowed: the operator role is needed", false];
  if (status === 404) return ["unknown device or command", false];
  if (status === 200 && body) {
    const error = (body.response && body.response.error) || {};
    const code = typeof body.error === "string" ? body.error : error.code || "failed";
    const reason = error.reason ? ` (${error.reason})` : "";
    return [`refused: ${code}${reason}${request}`, false];
  }
  if (status === 503) return [`not sent: ${(body && body.error) || "dashboard busy"}`, false];
  return [`error: HTTP ${status}${body && body.error ? ` ${body.error}` : ""}`, false];
}

async function runCommand(name) {
  busy = true;
  setOperator(operator);
  ui.result.className = "cmd-result";
  setText(ui.result, `${name}: sending…`);
  let text;
  let good;
  try {
    const { status, body } = await postJson(`${apiBase}/commands/${encodeURIComponent(name)}`);
    [text, good] = describeResult(status, body);
  } catch {
    [text, good] = ["error: the dashboard did not answer", false];
  }
  busy = false;
  setOperator(operator);
  ui.result.className = `cmd-result ${good ? "result-ok" : "result-bad"}`;
  setText(ui.result, `${name}: ${text}`);
}

for (const button of ui.buttons) {
  button.addEventListener("click", () => runCommand(button.dataset.command));
}

// ------------------------------------------------------------------ live

function onLive(data) {
  showBroker(ui.broker, data.broker);
  setText(ui.updated, formatClock(data.now));
  if ((data.removed || []).includes(deviceId)) {
    scheduleLoad();
    return;
  }
  const mine = (data.devices || []).find((d) => d.device_id === deviceId);
  if (!mine) return;
  renderSummary(mine);
  appendPoint(mine);
  scheduleLoad();
}

setInterval(tick, 1000);
load().then(() => {
  lastLoad = Date.now();
  loadHistory();
  openStream(ui.conn, { snapshot: onLive, update: onLive });
});
