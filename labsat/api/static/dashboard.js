// The labsat dashboard: pages drawn in the browser from the service's own REST API and event streams.
//
// No framework and nothing from another host: the service serves this file, the stylesheet and uPlot (the
// chart library). The token lives in sessionStorage (this tab only) and goes out as the bearer header on
// every request, the job streams included: they are read with fetch, because EventSource cannot send a
// header. Elements are built with textContent, never from HTML strings, so a job's error or a bench's
// name cannot inject markup.
"use strict";

const TOKEN_KEY = "labsat.token";
const BENCH_KEY = "labsat.bench";
const SCOPES = { read: 1, operate: 2, admin: 3 };
const POLL_BENCH_MS = 300;
const POLL_LIST_MS = 1500;
const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const CURVES = [
  ["loss", "mean loss"],
  ["validation_accuracy", "validation accuracy"],
  ["forwards", "device forwards"],
  ["bench_time_s", "bench time (s)"],
];

/** What the browser test reads: when the first page was drawn, and how late each live update was. */
window.labsatTimings = { ready: null, updates: [] };

const session = { token: sessionStorage.getItem(TOKEN_KEY), who: null, benches: [], bench: null, schema: null };
let page = { cleanups: [] };

// -- small helpers ------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace ``node``'s children, leaving out the absent ones (null, false) that replaceChildren would print. */
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(digits);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function when(text) {
  return text ? new Date(parseTime(text)).toLocaleString() : "–";
}

function parseTime(text) {
  return Date.parse(/[zZ]$|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
}

function can(scope) {
  return session.who !== null && SCOPES[session.who.scope] >= SCOPES[scope];
}

function every(ms, task) {
  let stopped = false;
  let timer = null;
  const banner = document.getElementById("banner");
  const tick = async () => {
    try {
      await task();
      if (banner.dataset.source === "poll") banner.hidden = true;  // what a poll said wrong holds no more
    } catch (error) {
      showError(error);
      banner.dataset.source = "poll";
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  page.cleanups.push(() => { stopped = true; clearTimeout(timer); });
}

function showBanner(text, kind = "info") {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.className = `banner ${kind}`;
  banner.dataset.source = "";
  banner.hidden = false;
  banner.title = "click to dismiss";
}

function showError(error) {
  if (error instanceof ApiError && error.status === 401) return;  // logout() has said why
  showBanner(error.message || String(error), "error");
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: fmt(c) })))))));
}

function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), ...children);
}

// -- the API --------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

function describeDetail(detail) {
  if (Array.isArray(detail)) return detail.map((item) => `${item.loc.slice(1).join(".")}: ${item.msg}`).join("; ");
  return detail ? String(detail) : "";
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  const init = { method: options.method || "GET", headers, signal: options.signal };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path.startsWith("/") ? path : `/api/${path}`, init);
  if (response.status === 401) {
    logout("The service does not know this token (or it was removed): log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, `${init.method} ${path}: ${response.status} ${describeDetail(body.detail)}`, body.detail);
  }
  if (options.raw) return response;
  return response.status === 204 ? null : response.json();
}

/** Follow a job's Server-Sent Events after event ``after``, calling ``onEvent`` with each; the stream ends with
 * the job (or when the connection drops: the caller reconnects from the last event it saw). */
async function follow(jobId, onEvent, signal, after = 0) {
  const response = await api(`jobs/${encodeURIComponent(jobId)}/stream?after=${after}`, { raw: true, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart());
      if (data.length) onEvent(JSON.parse(data.join("\n")));
    }
  }
}

/** An artifact as a blob URL: the browser cannot send the bearer header when it follows a plain link. */
async function artifactUrl(url) {
  const response = await api(url, { raw: true });
  const blobUrl = URL.createObjectURL(await response.blob());
  page.cleanups.push(() => URL.revokeObjectURL(blobUrl));
  return blobUrl;
}

function artifactLinks(files) {
  return el("ul", { class: "files" }, files.map((file) => el("li", {},
    el("a", {
      href: "#", text: file.path, "data-artifact": file.url,
      onclick: async (event) => {
        event.preventDefault();
        try { window.open(await artifactUrl(file.url), "_blank"); } catch (error) { showError(error); }
      },
    }), ` (${(file.size / 1024).toFixed(1)} kB)`)));
}

async function artifactImages(files) {
  const images = files.filter((file) => file.path.endsWith(".png"));
  return el("div", { class: "plots" }, await Promise.all(images.map(async (file) =>
    el("figure", {}, el("img", { src: await artifactUrl(file.url), alt: file.path }), el("figcaption", { text: file.path })))));
}

// -- login, header, emergency stop ----------------------------------------------------------------------

function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  session.who = null;
  teardown();
  for (const id of ["nav", "bench-picker", "bench-state", "who", "logout", "estop"]) document.getElementById(id).hidden = true;
  fill(document.getElementById("main"), el("p", { class: "muted", text: "Logged out." }));
  askToken(reason);
}

function askToken(reason) {
  const dialog = document.getElementById("login-dialog");
  const error = document.getElementById("login-error");
  error.hidden = !reason;
  error.textContent = reason || "";
  if (!dialog.open) dialog.showModal();
}

async function login(token) {
  const response = await fetch("/api/whoami", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(response.status === 401 ? "The service does not know this token." : `login: ${response.status}`);
  session.token = token;
  session.who = await response.json();
  sessionStorage.setItem(TOKEN_KEY, token);
}

async function start() {
  session.benches = await api("benches");
  const remembered = sessionStorage.getItem(BENCH_KEY);
  session.bench = session.benches.some((b) => b.name === remembered) ? remembered : session.benches[0]?.name ?? null;
  const select = document.getElementById("bench-select");
  fill(select, ...session.benches.map((b) => el("option", { value: b.name, text: b.name, selected: b.name === session.bench })));
  document.getElementById("who").textContent = `${session.who.name} (${session.who.scope})`;
  for (const id of ["nav", "bench-picker", "bench-state", "who", "logout"]) document.getElementById(id).hidden = false;
  document.getElementById("estop").hidden = !can("operate") || session.benches.length === 0;
  route();
}

async function refreshBenchState() {
  if (!session.token) return;
  session.benches = await api("benches");
  const current = session.benches.find((b) => b.name === session.bench);
  const pill = document.getElementById("bench-state");
  pill.textContent = current ? current.state : "no bench";
  pill.className = `pill state-${current ? current.state : "none"}`;
  pill.title = current?.fault || current?.halted || "";
}

async function emergencyStop() {
  const names = session.benches.map((b) => b.name);
  showBanner(`Emergency stop: driving ${names.join(", ")} to the safe state…`, "warn");
  const results = await Promise.all(names.map((name) => api(`benches/${encodeURIComponent(name)}/stop`, { method: "POST" })));
  const details = await Promise.all(names.map((name) => api(`benches/${encodeURIComponent(name)}`)));
  const lines = results.map((result, i) => {
    const unsafe = details[i].devices.flatMap((device) => (device.channels || [])
      .filter((c) => c.safe_v !== null && c.present_v !== null && Math.abs(c.present_v - c.safe_v) > 1e-9));
    const cancelled = result.cancelled.length ? `; cancelled ${result.cancelled.join(", ")}` : "; no job was running";
    return unsafe.length
      ? `bench ${result.bench}: ${unsafe.length} outputs NOT at their safe values (${unsafe.map((c) => c.name).join(", ")})${cancelled}`
      : `bench ${result.bench} is safe: every output at its safe value${cancelled}`;
  });
  showBanner(lines.join(" · "), lines.some((line) => line.includes("NOT")) ? "error" : "safe");
  await refreshBenchState();
  route();
}

// -- pages ----------------------------------------------------------------------------------------------

const PAGES = [
  [/^#\/jobs\/([^/]+)$/, (id) => jobPage(id)],
  [/^#\/jobs$/, () => jobsPage()],
  [/^#\/calibrations\/([^/]+)$/, (id) => calibrationPage(id)],
  [/^#\/models\/([^/]+)$/, (id) => modelPage(id)],
  [/^#\/compare\/(.+)$/, (ids) => comparePage(ids.split(","))],
  [/^#\/results$/, () => resultsPage()],
  [/^#\/bench$/, () => benchPage()],
];

function teardown() {
  for (const cleanup of page.cleanups) cleanup();
  page = { cleanups: [] };
}

async function route() {
  if (!session.token) return;
  teardown();
  const hash = window.location.hash || "#/bench";
  const [pattern, draw] = PAGES.find(([pattern]) => pattern.test(hash)) || PAGES[PAGES.length - 1];
  const top = hash.split("/")[1];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", top.startsWith(link.dataset.page) || (link.dataset.page === "results" && ["models", "calibrations", "compare"].includes(top)));
  }
  const main = document.getElementById("main");
  const mine = page;
  try {
    const content = await draw(...(hash.match(pattern) || []).slice(1).map(decodeURIComponent));
    if (page !== mine) return;  // the user went elsewhere while it loaded
    fill(main, content);
    if (window.labsatTimings.ready === null) window.labsatTimings.ready = performance.now();
  } catch (error) {
    if (page === mine) fill(main, el("p", { class: "error", text: error.message }));
  }
  every(POLL_LIST_MS, refreshBenchState);
}

// -- bench ----------------------------------------------------------------------------------------------

function heatColor(fraction) {
  const f = Math.min(Math.max(fraction, 0), 1);
  return `hsl(${230 - 230 * f}, 75%, ${28 + 30 * f}%)`;
}

function heatMap(device) {
  const channels = device.channels;
  const columns = Math.ceil(Math.sqrt(channels.length));
  return el("div", { class: "heatmap", style: `grid-template-columns: repeat(${columns}, minmax(3.2rem, 1fr))` },
    channels.map((c) => {
      const span = c.max_v - c.min_v || 1;
      const cell = el("div", {
        class: "cell", "data-channel": `${device.name}.${c.name}`,
        title: `${device.name}.${c.name}: ${fmt(c.present_v)} V of ${c.min_v}–${c.max_v} V` +
          `${c.present_mw !== null ? `, ${fmt(c.present_mw, 3)} mW` : ""}${c.power_max_mw ? ` (max ${c.power_max_mw} mW)` : ""}; safe ${c.safe_v} V`,
      }, el("span", { class: "name", text: c.name }), el("span", { class: "value", text: `${(c.present_v ?? 0).toFixed(2)} V` }));
      cell.style.background = heatColor(((c.present_v ?? c.min_v) - c.min_v) / span);
      return cell;
    }));
}

function colorBar(min, max) {
  return el("div", { class: "colorbar" }, el("span", { text: `${min} V` }), el("span", { class: "ramp" }), el("span", { text: `${max} V` }));
}

function sourceCard(device) {
  const channels = device.channels;
  const min = Math.min(...channels.map((c) => c.min_v));
  const max = Math.max(...channels.map((c) => c.max_v));
  const power = channels.reduce((sum, c) => sum + (c.present_mw || 0), 0);
  return section(`${device.name} — ${channels.length} outputs (${device.driver})`,
    el("p", { class: "muted", text: `${device.address || ""} ${device.identity || ""}`.trim() }),
    heatMap(device), colorBar(min, max),
    el("p", { text: `${channels.filter((c) => c.present_v !== c.safe_v).length} of ${channels.length} away from their safe value; ${power.toFixed(2)} mW` }));
}

function detectorCard(device) {
  const readings = device.channels.map((c) => c.present);
  const top = Math.max(1e-12, ...readings.filter((r) => r !== null).map(Math.abs));
  return section(`${device.name} — detector (${device.driver})`,
    el("div", { class: "bars" }, device.channels.map((c) => el("div", { class: "bar-row" },
      el("span", { class: "name", text: c.name }),
      el("span", { class: "bar" }, el("span", { style: `width: ${c.present === null ? 0 : (100 * Math.abs(c.present)) / top}%` })),
      el("span", { class: "value", text: c.present === null ? "not read (a job holds the bench)" : `${fmt(c.present)} V` })))));
}

function slmCard(device) {
  const frame = device.frame;
  const canvas = el("canvas", { class: "mask", width: 1, height: 1, "aria-label": `${device.name} mask` });
  if (frame.preview) {
    const [low, high] = frame.gray_range;
    const rows = frame.preview.length;
    const cols = frame.preview[0].length;
    canvas.width = cols;
    canvas.height = rows;
    const context = canvas.getContext("2d");
    const image = context.createImageData(cols, rows);
    frame.preview.flat().forEach((gray, i) => {
      const level = Math.round((255 * (gray - low)) / (high - low || 1));
      image.data.set([level, level, level, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
  }
  return section(`${device.name} — SLM ${frame.shape.join(" × ")} (${device.driver})`,
    frame.preview ? canvas : el("p", { class: "muted", text: "Nothing shown yet." }),
    el("p", { text: `mean gray ${fmt(frame.present_mean_gray)} of ${frame.gray_range.join("–")}; safe ${frame.safe_gray}` }));
}

function lightCard(device) {
  const light = device.light;
  return section(`${device.name} — light source (${device.driver})`, table(["enabled", "power (mW)", "wavelength (nm)", "safe"],
    [[light.enabled, light.power_mw, light.wavelength_nm, light.safe]]));
}

function deviceCard(device) {
  if (device.light) return lightCard(device);
  if (device.frame) return slmCard(device);
  if (device.channels.length && device.channels[0].max_v !== null && device.channels[0].max_v !== undefined) return sourceCard(device);
  return detectorCard(device);
}

function benchSummary(detail) {
  const budget = detail.power_budget_mw;
  const used = detail.power_used_mw;
  const clear = can("admin") && detail.state === "faulted"
    ? el("button", { type: "button", text: "Clear fault", onclick: () => clearFault(detail.name) }) : null;
  return el("div", { class: "summary" },
    el("span", { class: `pill state-${detail.state}`, "data-testid": "bench-state", text: detail.state }),
    el("span", { text: detail.live ? "read live from the instruments" : "a job holds the bench: outputs as last written" }),
    detail.job ? el("a", { href: `#/jobs/${detail.job}`, text: `job ${detail.job}` }) : null,
    detail.queued.length ? el("span", { text: `${detail.queued.length} queued` }) : null,
    el("span", { class: "budget" }, "power ",
      el("meter", { min: 0, max: budget || used || 1, value: used }),
      budget ? ` ${used.toFixed(1)} of ${budget} mW budget` : ` ${used.toFixed(1)} mW (no budget set)`),
    detail.fault ? el("span", { class: "error", text: `fault: ${detail.fault}` }) : null,
    detail.halted ? el("span", { class: "warn", text: `halted: ${detail.halted}` }) : null,
    clear);
}

async function clearFault(bench) {
  try {
    const result = await api(`benches/${encodeURIComponent(bench)}/clear-fault`, { method: "POST" });
    showBanner(`bench ${bench}: fault cleared (${result.cleared || "none"}); now ${result.state}`, "info");
  } catch (error) { showError(error); }
}

async function benchPage() {
  if (!session.bench) return el("p", { text: "This service drives no bench." });
  const root = el("div", { "data-testid": "bench-view" });
  const draw = async () => {
    const detail = await api(`benches/${encodeURIComponent(session.bench)}`);
    fill(root, el("h1", { text: `Bench ${detail.name}` }), el("p", { class: "muted", text: detail.file }),
      benchSummary(detail), el("div", { class: "devices" }, detail.devices.map(deviceCard)));
  };
  await draw();
  setTimeout(() => every(POLL_BENCH_MS, draw), POLL_BENCH_MS);
  return root;
}

// -- jobs -----------------------------------------------------------------------------------------------

function progressBar(job) {
  const progress = job.progress;
  if (!progress) return el("span", { class: "muted", text: FINAL.has(job.state) ? "" : "waiting" });
  const fraction = progress.total ? progress.done / progress.total : null;
  return el("span", { class: "progress" },
    el("progress", { max: 1, value: fraction ?? undefined }),
    ` ${progress.phase} ${fmt(progress.done)}${progress.total ? ` / ${fmt(progress.total)}` : ""}`);
}

function jobActions(job, after) {
  if (!can("operate")) return null;
  const act = (verb) => el("button", {
    type: "button", text: verb, "data-action": verb,
    onclick: async () => {
      try { await api(`jobs/${job.id}/${verb}`, { method: "POST" }); await after(); } catch (error) { showError(error); }
    },
  });
  const actions = [];
  if (job.state === "running") actions.push(act("pause"));
  if (job.state === "paused" || (FINAL.has(job.state) && job.state !== "succeeded")) actions.push(act("resume"));
  if (!FINAL.has(job.state)) actions.push(act("cancel"));
  return el("span", { class: "actions" }, actions);
}

async function jobsPage() {
  const list = el("div", {});
  const draw = async () => {
    const jobs = await api("jobs?limit=50");
    fill(list, jobs.length === 0 ? el("p", { class: "muted", text: "No jobs yet." }) : table(
      ["job", "kind", "bench", "state", "progress", "by", "submitted", ""],
      jobs.map((job) => [el("a", { href: `#/jobs/${job.id}`, text: job.id }), job.kind, job.bench,
        el("span", { class: `pill state-${job.state}`, text: job.state }), progressBar(job), job.submitted_by, when(job.created),
        jobActions(job, draw) || ""])));
  };
  await draw();
  setTimeout(() => every(POLL_LIST_MS, draw), POLL_LIST_MS);
  return el("div", {}, el("h1", { text: "Jobs" }), can("operate") ? await submitForm() : null, section("Queue and history", list));
}

async function openapi() {
  if (session.schema === null) session.schema = await (await fetch("/openapi.json")).json();
  return session.schema;
}

function resolve(schema, doc) {
  return schema && schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema;
}

/** How a parameter is entered: from its JSON schema (the one the API validates against). */
function fieldKind(schema, doc) {
  const variants = (schema.anyOf || [schema]).map((s) => resolve(s, doc)).filter((s) => s.type !== "null");
  const nullable = (schema.anyOf || []).some((s) => s.type === "null");
  const only = variants.length === 1 ? variants[0] : null;
  const choices = schema.enum || only?.enum;
  if (choices) return { input: "select", choices: choices.filter((c) => c !== null), nullable };
  if (!only) return { input: "json", nullable };
  if (only.type === "boolean") return { input: "checkbox", nullable };
  if (only.type === "integer" || only.type === "number") return { input: "number", integer: only.type === "integer", min: only.minimum, max: only.maximum, nullable };
  if (only.type === "string") return { input: "text", nullable };
  if (only.type === "array") {
    const items = resolve(only.items, doc) || {};
    if (items.enum) return { input: "multi", choices: items.enum, nullable };
    return { input: "list", numeric: items.type === "integer" || items.type === "number", nullable };
  }
  return { input: "json", nullable };
}

function shown(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind.input === "list") return value.join(", ");
  if (kind.input === "json") return typeof value === "string" ? value : JSON.stringify(value);
  return String(value);
}

function paramField(name, schema, doc) {
  const kind = fieldKind(schema, doc);
  const id = `param-${name}`;
  let input;
  if (kind.input === "select") {
    input = el("select", { id, name }, kind.nullable || schema.default === undefined ? el("option", { value: "", text: "(default)" }) : null,
      kind.choices.map((c) => el("option", { value: c, text: c, selected: c === schema.default })));
  } else if (kind.input === "multi") {
    input = el("select", { id, name, multiple: true, size: Math.min(kind.choices.length, 4) },
      kind.choices.map((c) => el("option", { value: c, text: c, selected: (schema.default || []).includes(c) })));
  } else if (kind.input === "checkbox") {
    input = el("input", { id, name, type: "checkbox", checked: schema.default === true });
  } else {
    input = el("input", {
      id, name, type: kind.input === "number" ? "number" : "text", step: kind.integer ? 1 : "any",
      min: kind.min, max: kind.max, value: shown(kind, schema.default), placeholder: kind.nullable ? "(default)" : "",
    });
  }
  input.dataset.initial = kind.input === "checkbox" ? String(input.checked) : kind.input === "multi" ? JSON.stringify(schema.default || []) : input.value;
  return {
    name, kind, input,
    node: el("label", { class: "field", title: schema.description || "" }, el("span", { class: "label", text: name }), input,
      el("small", { class: "help", text: schema.description || "" }), el("small", { class: "error", "data-error-for": name })),
  };
}

function fieldValue(field) {
  const { kind, input } = field;
  if (kind.input === "checkbox") return input.checked;
  if (kind.input === "multi") return [...input.selectedOptions].map((o) => o.value);
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (kind.input === "number") return kind.integer ? parseInt(raw, 10) : Number(raw);
  if (kind.input === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (kind.numeric ? Number(s) : s));
  if (kind.input === "json") { try { return JSON.parse(raw); } catch { return raw; } }
  return raw;
}

function changed(field) {
  const { kind, input } = field;
  if (kind.input === "checkbox") return String(input.checked) !== input.dataset.initial;
  if (kind.input === "multi") return JSON.stringify(fieldValue(field)) !== input.dataset.initial;
  return input.value !== input.dataset.initial;
}

async function submitForm() {
  const doc = await openapi();
  const body = doc.paths["/api/jobs"].post.requestBody.content["application/json"].schema;
  const variants = Object.fromEntries((body.oneOf || [body]).map((ref) => {
    const request = resolve(ref, doc);
    return [request.properties.kind.const || request.properties.kind.enum[0], request];
  }));
  const kindSelect = el("select", { id: "submit-kind", name: "kind" }, Object.entries(variants).map(([kind, request]) =>
    el("option", { value: kind, text: kind, title: request.description || "", selected: kind === "train" })));
  const fieldsBox = el("div", { class: "fields" });
  const description = el("p", { class: "muted" });
  let fields = [];
  const drawFields = () => {
    const request = variants[kindSelect.value];
    const params = resolve(request.properties.params, doc) || { properties: {} };
    description.textContent = request.description || "";
    fields = Object.entries(params.properties || {}).map(([name, schema]) => paramField(name, schema, doc));
    fill(fieldsBox, ...fields.map((f) => f.node));
  };
  kindSelect.addEventListener("change", drawFields);
  drawFields();
  const form = el("form", { id: "submit-form", class: "submit" },
    el("div", { class: "row" }, el("label", {}, "kind ", kindSelect), el("span", { text: ` on bench ${session.bench}` }),
      el("button", { type: "submit", class: "primary", text: "Submit job" })),
    description, fieldsBox);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
    const params = Object.fromEntries(fields.filter(changed).map((f) => [f.name, fieldValue(f)]).filter(([, v]) => v !== undefined));
    try {
      const job = await api("jobs", { method: "POST", body: { kind: kindSelect.value, bench: session.bench, params } });
      window.location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      for (const item of Array.isArray(error.detail) ? error.detail : []) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(String(item.loc[item.loc.length - 1]))}"]`);
        if (slot) slot.textContent = item.msg;
      }
      showError(error);
    }
  });
  return section("Submit a job", form);
}

function chart(key, label, width = 520) {
  const holder = el("div", { class: "chart", "data-testid": `chart-${key}` });
  const count = el("span", { class: "muted", "data-testid": `points-${key}`, text: "0 points" });
  const data = [[], []];
  let plot = null;
  const redraw = () => {
    if (typeof uPlot === "undefined") return;
    if (plot === null) {
      plot = new uPlot({
        width, height: width > 400 ? 200 : 150, scales: { x: { time: false } },
        axes: [{ label: "epoch" }, { size: 60 }],  // the caption above names the y axis
        series: [{ label: "epoch" }, { label, stroke: "#1f6feb", width: 2, points: { show: true, size: 6 } }],
        legend: { show: false },
      }, data, holder);
      page.cleanups.push(() => plot.destroy());
    } else {
      plot.setData(data);
    }
    count.textContent = `${data[0].length} points`;
  };
  return {
    node: el("figure", { class: "curve" }, el("figcaption", {}, el("strong", { text: label }), " ", count), holder),
    add(x, y) { data[0].push(x); data[1].push(y); redraw(); },
    draw: redraw,
  };
}

/** A calibration's ring sweeps as they arrive: a grid of rings (fitted, flagged, still to come) and the chosen
 * ring's sweep with its fitted Lorentzian. */
function ringSweeps() {
  const sweeps = new Map();
  const grid = el("div", { class: "rings", "data-testid": "ring-grid" });
  const caption = el("figcaption", { "data-testid": "ring-caption", text: "No ring swept yet." });
  const holder = el("div", { class: "chart" });
  let plot = null;
  let pinned = false;  // the user picked a ring: stay on it instead of following the newest
  const show = (key) => {
    const sweep = sweeps.get(key);
    const fit = sweep.fit_volts || sweep.volts.map(() => null);
    caption.textContent = sweep.flag
      ? `ring (${sweep.ring.join(", ")}): ${sweep.flag}`
      : `ring (${sweep.ring.join(", ")}): resonance ${fmt(sweep.resonance_mw)} mW, FWHM ${fmt(sweep.fwhm_mw)} mW, fit RMS ${fmt(1e3 * sweep.rms_volts, 3)} mV`;
    const data = [sweep.power_mw, sweep.volts, fit];
    if (plot === null && typeof uPlot !== "undefined") {
      plot = new uPlot({
        width: 520, height: 220, scales: { x: { time: false } },
        axes: [{ label: "heater power (mW)" }, { label: "detector (V)", size: 70 }],
        series: [{ label: "mW" }, { label: "measured", stroke: "#1f6feb", width: 0, points: { show: true, size: 4 } },
          { label: "Lorentzian fit", stroke: "#c62828", width: 2, points: { show: false } }],
      }, data, holder);
      page.cleanups.push(() => plot.destroy());
    } else if (plot !== null) {
      plot.setData(data);
    }
    for (const cell of grid.children) cell.classList.toggle("chosen", cell.dataset.ring === key);
  };
  return {
    node: el("div", { class: "columns" }, el("figure", { class: "curve" }, caption, holder),
      el("div", {}, el("p", { class: "muted", text: "Rings: green fitted, red flagged; click one to see its sweep." }), grid)),
    add(sweep) {
      const key = sweep.ring.join(",");
      sweeps.set(key, sweep);
      let cell = grid.querySelector(`[data-ring="${key}"]`);
      if (!cell) {
        cell = el("button", { type: "button", class: "ring", "data-ring": key, text: `${sweep.ring[0]},${sweep.ring[1]}`, onclick: () => { pinned = true; show(key); } });
        cell.style.gridRow = sweep.ring[0] + 1;
        cell.style.gridColumn = sweep.ring[1] + 1;
        grid.append(cell);
      }
      cell.classList.toggle("flagged", Boolean(sweep.flag));
      cell.title = sweep.flag || `resonance ${fmt(sweep.resonance_mw)} mW`;
      if (!pinned) show(key);
    },
    get count() { return sweeps.size; },
  };
}

function eventLine(event) {
  const data = event.data;
  const text = event.type === "state" ? `state → ${data.state}${data.error ? `: ${data.error}` : ""}`
    : event.type === "log" ? data.message
      : event.type === "metric" ? Object.entries(data).map(([k, v]) => `${k}=${fmt(v)}`).join("  ")
        : `${data.phase} ${fmt(data.done)}${data.total ? `/${fmt(data.total)}` : ""}`;
  return el("li", { class: `event ${event.type}` }, el("span", { class: "muted", text: `#${event.seq} ${new Date(parseTime(event.time)).toLocaleTimeString()} ` }), text);
}

async function jobPage(jobId) {
  let job = await api(`jobs/${encodeURIComponent(jobId)}`);
  const head = el("div", {});
  const drawHead = () => fill(head,
    el("h1", {}, `Job ${job.id} `, el("span", { class: `pill state-${job.state}`, "data-testid": "job-state", text: job.state })),
    el("p", { text: `${job.kind} on ${job.bench}, attempt ${job.attempt}, by ${job.submitted_by || "–"}; submitted ${when(job.created)}` }),
    el("p", {}, progressBar(job), " ", jobActions(job, async () => { job = await api(`jobs/${job.id}`); drawHead(); }) || ""),
    job.error ? el("p", { class: "error", text: job.error }) : null);
  drawHead();
  const curves = Object.fromEntries(CURVES.map(([key, label]) => [key, chart(key, label)]));
  const rings = ringSweeps();
  const ringsCard = section("Ring sweeps and fits", rings.node);
  ringsCard.hidden = true;
  const phases = el("div", { class: "phases" });
  const phaseBars = {};
  const log = el("ol", { class: "events" });
  const outcome = el("div", {});
  const controller = new AbortController();
  page.cleanups.push(() => controller.abort());
  let lastSeq = 0;
  const onEvent = (event) => {
    lastSeq = event.seq;
    if (event.type === "metric" || event.type === "measurement") {
      const happened = parseTime(event.time);
      if (happened >= following) queueMicrotask(() => window.labsatTimings.updates.push({ seq: event.seq, type: event.type, job: jobId, lagMs: Date.now() - happened }));
    }
    if (event.type === "metric") {
      const x = event.data.epoch ?? event.data.step ?? event.seq;
      for (const [key, curve] of Object.entries(curves)) {
        if (typeof event.data[key] !== "number") continue;
        curve.add(x, event.data[key]);
        curvesCard.hidden = false;
      }
    } else if (event.type === "measurement" && event.data.procedure === "rings") {
      rings.add(event.data);
      ringsCard.hidden = false;
      curvesCard.hidden = job.kind !== "train";
    } else if (event.type === "progress") {
      const phase = event.data.phase || "work";
      phaseBars[phase] ??= phases.appendChild(el("div", { class: "phase" }, el("span", { class: "name", text: phase }), el("progress", { max: 1 }), el("span", { class: "value" })));
      const [, bar, value] = phaseBars[phase].children;
      if (event.data.total) bar.value = event.data.done / event.data.total;
      value.textContent = `${fmt(event.data.done)}${event.data.total ? ` / ${fmt(event.data.total)}` : ""} ${Object.entries(event.data.values || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(" ")}`;
      job = { ...job, progress: event.data };
      drawHead();
    } else if (event.type === "state") {
      job = { ...job, state: event.data.state, error: event.data.error ?? job.error };
      drawHead();
    }
    if (event.type !== "progress" && event.type !== "measurement") log.prepend(eventLine(event));
  };
  const following = Date.now();  // events from before are replayed, not live: they are not timed
  const followToTheEnd = async () => {  // a dropped stream (a restarted service) is taken up after its last event
    for (;;) {
      try {
        await follow(jobId, onEvent, controller.signal, lastSeq);
      } catch (error) {
        if (controller.signal.aborted || (error instanceof ApiError && error.status < 500)) throw error;
      }
      job = await api(`jobs/${encodeURIComponent(jobId)}`);
      if (FINAL.has(job.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    drawHead();
    fill(outcome, await jobOutcome(job));
  };
  followToTheEnd().catch((error) => { if (!controller.signal.aborted) showError(error); });
  const curveBox = el("div", { class: "curves" }, Object.values(curves).map((c) => c.node));
  setTimeout(() => Object.values(curves).forEach((c) => c.draw()), 0);
  const curvesCard = section("Live curves", curveBox);
  curvesCard.hidden = job.kind !== "train";
  return el("div", { "data-testid": "job-view" }, head, curvesCard, ringsCard, section("Progress", phases), outcome, section("Events", log));
}

async function jobOutcome(job) {
  const parts = [];
  if (job.result) {
    const scalars = Object.entries(job.result).filter(([, v]) => v === null || typeof v !== "object");
    parts.push(section("Result", table(["", "value"], scalars)));
    if (job.result.model) parts.push(el("p", {}, el("a", { href: `#/models/${job.result.model}`, text: `model ${job.result.model}` })));
    if (job.result.calibration && job.kind === "calibrate") parts.push(el("p", {}, el("a", { href: `#/calibrations/${job.result.calibration}`, text: `calibration ${job.result.calibration}` })));
  }
  const files = await api(`artifacts/jobs/${job.id}`).catch(() => []);
  const report = files.find((file) => file.path.endsWith(".html"));
  if (report) {  // the report holds every figure: it comes first, the files after it
    parts.unshift(section("Report", el("iframe", { class: "report", src: await artifactUrl(report.url), title: "evaluation report" })));
    parts.push(section("Artifacts", artifactLinks(files)));
  } else if (files.length) {
    parts.push(section("Artifacts", artifactLinks(files), await artifactImages(files)));
  }
  return el("div", {}, parts);
}

// -- results --------------------------------------------------------------------------------------------

function accuracyOf(model) {
  return model.metadata.test_accuracy_device;
}

async function resultsPage() {
  const [calibrations, models, evaluations] = await Promise.all([api("calibrations"), api("models"), api("jobs?kind=evaluate&state=succeeded&limit=50")]);
  const picks = new Set();
  const compare = el("button", { type: "button", text: "Compare selected", disabled: true, onclick: () => { window.location.hash = `#/compare/${[...picks].join(",")}`; } });
  const evaluate = can("operate") ? el("button", {
    type: "button", text: "Evaluate selected", disabled: true,
    onclick: async () => {
      try {
        const job = await api("jobs", { method: "POST", body: { kind: "evaluate", bench: session.bench, params: { models: [...picks] } } });
        window.location.hash = `#/jobs/${job.id}`;
      } catch (error) { showError(error); }
    },
  }) : null;
  const pick = (id) => el("input", {
    type: "checkbox", "aria-label": `select model ${id}`,
    onchange: (event) => {
      if (event.target.checked) picks.add(id); else picks.delete(id);
      compare.disabled = picks.size < 1;
      if (evaluate) evaluate.disabled = picks.size < 1;
    },
  });
  return el("div", {}, el("h1", { text: "Results" }),
    section("Trained models", models.length === 0 ? el("p", { class: "muted", text: "No models yet." }) : table(
      ["", "model", "method", "dataset", "epochs", "device accuracy", "twin accuracy", "bench", "created"],
      models.map((m) => [pick(m.id), el("a", { href: `#/models/${m.id}`, text: m.id }), m.method, m.metadata.dataset, m.metadata.epochs,
        accuracyOf(m), m.metadata.test_accuracy_twin, m.bench, when(m.created)])), el("p", {}, compare, " ", evaluate)),
    section("Calibrations", calibrations.length === 0 ? el("p", { class: "muted", text: "No calibrations yet." }) : table(
      ["calibration", "kind", "bench", "complete", "flags", "twin RMS per weight", "held-out RMS", "created"],
      calibrations.map((c) => [el("a", { href: `#/calibrations/${c.id}`, text: c.id }), c.kind, c.bench, c.complete, c.flags,
        c.twin_weight_rms, c.holdout_rms, when(c.created)]))),
    section("Evaluation reports", evaluations.length === 0 ? el("p", { class: "muted", text: "No evaluations yet." }) : table(
      ["job", "models", "finished"],
      evaluations.map((j) => [el("a", { href: `#/jobs/${j.id}`, text: j.id }), (j.params.models || []).join(", "), when(j.finished)]))));
}

function perEpochCurves(rows) {
  const curves = CURVES.map(([key, label]) => chart(key, label, 270));
  for (const row of rows) CURVES.forEach(([key], i) => { if (typeof row[key] === "number") curves[i].add(row.epoch, row[key]); });
  setTimeout(() => curves.forEach((c) => c.draw()), 0);
  return el("div", { class: "curves small" }, curves.map((c) => c.node));
}

async function modelPage(modelId) {
  const model = await api(`models/${encodeURIComponent(modelId)}`);
  const meta = model.metadata;
  const evaluations = (await api("jobs?kind=evaluate&state=succeeded&limit=100"))
    .filter((job) => (job.params.models || []).some((id) => model.id.startsWith(id)));
  const figures = [
    ["method", meta.method], ["dataset", meta.dataset], ["epochs", meta.epochs], ["steps", meta.steps],
    ["test accuracy (device)", meta.test_accuracy_device], ["test accuracy (twin)", meta.test_accuracy_twin],
    ["validation accuracy (device)", meta.validation_accuracy_device], ["final loss", meta.final_loss],
    ["device forwards", meta.queries?.forwards], ["bench time (s)", meta.queries?.bench_time_s], ["wall time (s)", meta.wall_s],
    ["calibration", meta.calibration], ["layer sizes", meta.sizes],
  ];
  const files = await api(`artifacts/models/${model.id}`).catch(() => []);
  return el("div", { "data-testid": "model-view" },
    el("h1", { text: `Model ${model.id}` }), el("p", { text: `${model.method} on ${model.bench}, ${when(model.created)}` }),
    el("div", { class: "columns" }, section("Figures", table(["", "value"], figures)),
      section("Training curves", perEpochCurves(meta.per_epoch || []))),
    section("Robustness (evaluations of this model)", evaluations.length === 0
      ? el("p", { class: "muted", text: "Not evaluated yet: pick it under Results and press Evaluate selected." })
      : await robustness(evaluations[0], evaluations.length)),
    section("Settings", table(["setting", "value"], Object.entries(meta.settings || {}))),
    files.length ? section("Artifacts", artifactLinks(files)) : null);
}

/** The newest evaluation's robustness sweeps (its report's sweep plots), with a link to the whole report. */
async function robustness(job, count) {
  const files = await api(`artifacts/jobs/${job.id}`);
  const sweeps = files.filter((file) => /^(.*\/)?sweep-[^/]+\.png$/.test(file.path));
  return el("div", { "data-testid": "robustness" },
    el("p", {}, el("a", { href: `#/jobs/${job.id}`, text: `evaluation ${job.id}` }), ` (${when(job.finished)}; the newest of ${count}): its report has every figure`),
    await artifactImages(sweeps));
}

async function comparePage(ids) {
  const models = await Promise.all(ids.map((id) => api(`models/${encodeURIComponent(id)}`)));
  const rows = [
    ["method", (m) => m.method], ["dataset", (m) => m.metadata.dataset], ["epochs", (m) => m.metadata.epochs],
    ["test accuracy (device)", (m) => m.metadata.test_accuracy_device], ["test accuracy (twin)", (m) => m.metadata.test_accuracy_twin],
    ["final loss", (m) => m.metadata.final_loss], ["device forwards", (m) => m.metadata.queries?.forwards],
    ["bench time (s)", (m) => m.metadata.queries?.bench_time_s], ["calibration", (m) => m.metadata.calibration],
  ];
  return el("div", {}, el("h1", { text: "Models side by side" }),
    section("Figures", table(["", ...models.map((m) => m.id)], rows.map(([label, get]) => [label, ...models.map(get)]))));
}

async function calibrationPage(calibrationId) {
  const record = await api(`calibrations/${encodeURIComponent(calibrationId)}`);
  const summary = (await api(`calibrations?bench=${encodeURIComponent(record.bench)}`)).find((c) => c.id === record.id) || {};
  const files = await api(`artifacts/calibrations/${record.id}`).catch(() => []);
  const quality = [
    ["complete", summary.complete], ["flags", summary.flags], ["twin RMS per weight (bank)", summary.twin_weight_rms],
    ["held-out RMS (mesh)", summary.holdout_rms], ["procedures", (summary.procedures || []).join(", ")],
  ].filter(([, value]) => value !== null && value !== undefined);
  const scalars = Object.entries(record).filter(([, v]) => v === null || typeof v !== "object");
  const procedures = Object.entries(record).filter(([, v]) => v && typeof v === "object" && "flags" in v);
  return el("div", { "data-testid": "calibration-view" },
    el("h1", { text: `Calibration ${record.id}` }),
    section("Fit quality", table(["", "value"], quality)),
    el("div", { class: "columns" }, section("Record", table(["", "value"], scalars)),
      section("Procedures", table(["procedure", "steps done", "flags", "first flag"],
        procedures.map(([name, result]) => [name, (result.done || []).length, result.flags.length, result.flags[0]?.message ?? ""])))),
    files.length ? section("Plots", await artifactImages(files)) : null,
    files.length ? section("Files", artifactLinks(files)) : null);
}

// -- wiring ---------------------------------------------------------------------------------------------

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("login-token");
  try {
    await login(input.value.trim());
    input.value = "";
    document.getElementById("login-dialog").close();
    await start();
  } catch (error) {
    askToken(error.message);
  }
});
document.getElementById("logout").addEventListener("click", () => logout(""));
document.getElementById("bench-select").addEventListener("change", (event) => {
  session.bench = event.target.value;
  sessionStorage.setItem(BENCH_KEY, session.bench);
  route();
});
document.getElementById("estop").addEventListener("click", () => {
  const dialog = document.getElementById("estop-dialog");
  document.getElementById("estop-benches").textContent = session.benches.map((b) => b.name).join(", ");
  dialog.returnValue = "";  // only a press of "Stop now" in this opening stops: not Escape, not an old answer
  dialog.showModal();
});
document.getElementById("estop-dialog").addEventListener("close", async (event) => {
  if (event.target.returnValue !== "stop") return;
  try { await emergencyStop(); } catch (error) { showError(error); }
});
document.getElementById("banner").addEventListener("click", (event) => { event.currentTarget.hidden = true; });
window.addEventListener("hashchange", route);

(async () => {
  if (!session.token) { askToken(""); return; }
  try {
    await login(session.token);
    await start();
  } catch (error) {
    logout(error.message);
  }
})();
