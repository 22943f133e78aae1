// The operations page (/ops): sign in as an admin (POST /api/auth/login, the access token kept
// in this tab's sessionStorage), then every few seconds: the gateway's overview of its
// upstream instances (/ops/api/overview), the worker's queues (/api/jobs/stats) and its dead
// letters (/api/jobs/dead), with replay and delete per letter and for all of them (the
// shapes of docs/contracts.md's "Jobs API").
//
// Everything shown is set with textContent or as an SVG attribute, never parsed as markup: a
// dead letter's error is whatever text a job made.
"use strict";

const REFRESH_MS = 3000;
const DEAD_PAGE = 50;
const TOKEN_KEY = "ops-token";
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

/// An element with a class and text.
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/// A call with the admin's token; a 401 signs out.
async function call(method, path, body) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    signOut("Your session ended: sign in again.");
    throw new Error("signed out");
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!response.ok) {
    const message = json && json.error && json.error.message ? json.error.message : `HTTP ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return { json, response };
}

// --- Sign-in ---------------------------------------------------------------------------

function signedIn(who) {
  $("signin").hidden = true;
  $("dashboard").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = who ? `Signed in as ${who}` : "";
  refresh();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(`${TOKEN_KEY}-who`);
  $("dashboard").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-status").textContent = message || "";
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("signin-status");
  status.textContent = "Signing in…";
  let response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: $("signin-email").value, password: $("signin-password").value }),
    });
  } catch (error) {
    status.textContent = `Sign-in failed: ${error}`;
    return;
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || typeof body.access_token !== "string") {
    status.textContent = `Sign-in failed: ${body && body.error ? body.error.message : `HTTP ${response.status}`}`;
    return;
  }
  $("signin-password").value = "";
  status.textContent = "";
  const who = body.user && body.user.email ? body.user.email : "";
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  sessionStorage.setItem(`${TOKEN_KEY}-who`, who);
  signedIn(who);
});

$("signout").addEventListener("click", () => signOut(""));

// --- Formatting ------------------------------------------------------------------------

function number(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

const formats = {
  rate: (v) => `${number(v, v !== null && v < 10 ? 2 : 0)}/s`,
  error_rate: (v) => (v === null || v === undefined ? "–" : `${number(v * 100, 1)} %`),
  p99: (v) => (v === null || v === undefined ? "–" : v < 1 ? `${number(v * 1000, 1)} ms` : `${number(v, 2)} s`),
  memory: (v) => (v === null || v === undefined ? "–" : `${number(v / 1048576, 1)} MiB`),
};

function time(value) {
  if (value === null || value === undefined || value === "") return "–";
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// --- Charts ----------------------------------------------------------------------------

/// A sparkline of `points[key]` over the window ending at `now`: a line through the known
/// values (a gap where a value is missing), the largest value as its top.
function sparkline(points, key, now, windowMs) {
  const width = 240;
  const height = 44;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.dataset.points = String(points.filter((p) => p[key] !== null && p[key] !== undefined).length);
  const values = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const top = Math.max(...values, 0) || 1;
  // The x axis spans the window, or the points' own span while the window is not full yet.
  const start = Math.max(now - windowMs, points.length ? points[0].at : now - windowMs);
  const span = Math.max(now - start, 1);
  const x = (at) => width - ((now - at) / span) * width;
  const y = (v) => height - 2 - (v / top) * (height - 6);
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("x1", "0");
  base.setAttribute("x2", String(width));
  base.setAttribute("y1", String(height - 1));
  base.setAttribute("y2", String(height - 1));
  base.setAttribute("class", "axis");
  svg.appendChild(base);
  let run = [];
  const flush = () => {
    if (run.length === 1) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", run[0][0].toFixed(1));
      dot.setAttribute("cy", run[0][1].toFixed(1));
      dot.setAttribute("r", "2");
      svg.appendChild(dot);
    } else if (run.length > 1) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", run.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "));
      svg.appendChild(line);
    }
    run = [];
  };
  for (const point of points) {
    const value = point[key];
    if (value === null || value === undefined || !Number.isFinite(value)) {
      flush();
      continue;
    }
    run.push([Math.max(0, x(point.at)), y(value)]);
  }
  flush();
  const title = document.createElementNS(SVG, "title");
  title.textContent = `max ${formats[key](values.length ? top : null)}`;
  svg.appendChild(title);
  return svg;
}

// --- Services --------------------------------------------------------------------------

const METRICS = [
  ["rate", "Requests"],
  ["error_rate", "5xx share"],
  ["p99", "p99 latency"],
];

function badge(text, state) {
  return element("span", `badge ${state}`, text);
}

function serviceCard(service, now, windowMs) {
  const card = element("article", "card");
  card.dataset.service = service.service || service.instance;
  const title = element("div", "card-title");
  title.appendChild(element("h3", "", service.service || "unknown service"));
  // An address of a name that resolves to several: both shown.
  const where = service.name && service.name !== service.instance ? `${service.instance} (${service.name})` : service.instance;
  title.appendChild(element("span", "muted", where));
  card.appendChild(title);

  const badges = element("div", "badges");
  const health = service.healthy === null ? ["health ?", "unknown"] : service.healthy ? ["live", "good"] : ["down", "bad"];
  badges.appendChild(badge(health[0], health[1]));
  const readiness = service.readiness ? service.readiness.status : "unknown";
  const readinessState = { ready: "good", degraded: "warn", unready: "bad", unreachable: "bad" }[readiness] || "unknown";
  const readyBadge = badge(readiness, readinessState);
  readyBadge.classList.add("readiness");
  badges.appendChild(readyBadge);
  const last = service.points.length ? service.points[service.points.length - 1] : null;
  badges.appendChild(element("span", "muted memory", `memory ${formats.memory(last ? last.memory : null)}`));
  card.appendChild(badges);

  if (service.readiness) {
    const failing = service.readiness.checks.filter((check) => check.state !== "ok");
    const notes = [];
    if (service.readiness.message) notes.push(service.readiness.message);
    for (const check of failing) notes.push(`${check.name}: ${check.state}`);
    if (service.error) notes.push(service.error);
    for (const note of notes) card.appendChild(element("p", "note", note));
    const checks = service.readiness.checks.map((check) => check.name).join(", ");
    if (checks) card.appendChild(element("p", "muted small", `checks: ${checks}`));
  }

  for (const [key, label] of METRICS) {
    const row = element("div", `metric metric-${key}`);
    const caption = element("div", "metric-caption");
    caption.appendChild(element("span", "", label));
    caption.appendChild(element("strong", "value", formats[key](last ? last[key] : null)));
    row.appendChild(caption);
    row.appendChild(sparkline(service.points, key, now, windowMs));
    card.appendChild(row);
  }
  card.appendChild(element("p", "muted small", `routes: ${service.routes.join(" ")}`));
  return card;
}

async function refreshServices() {
  const { json } = await call("GET", "/ops/api/overview");
  const windowMs = json.window_secs * 1000;
  $("window").textContent = json.collecting
    ? `last ${Math.round(json.window_secs / 60)} min, every ${json.interval_ms / 1000} s`
    : "(collector off)";
  const services = [...json.services].sort((a, b) =>
    `${a.service || "~"} ${a.instance}`.localeCompare(`${b.service || "~"} ${b.instance}`),
  );
  const cards = $("services");
  cards.replaceChildren(...services.map((service) => serviceCard(service, json.now, windowMs)));
  if (services.length === 0) cards.appendChild(element("p", "muted", "The gateway has no upstream instances."));
}

// --- Queues ----------------------------------------------------------------------------

/// The queues of a stats answer, as [name, figures] pairs, whatever its outer shape: an
/// array of queues, `{queues: [...]}` or `{queues: {name: figures}}`.
function queueRows(stats) {
  const queues = stats && stats.queues !== undefined ? stats.queues : stats;
  if (Array.isArray(queues)) return queues.map((q) => [q.queue || q.name || "", q]);
  if (queues && typeof queues === "object") return Object.entries(queues).filter(([, q]) => q && typeof q === "object");
  return [];
}

/// A queue's rates as text: each `rates.<what>_per_minute` as "what 1 m · 5 m", and any
/// other numeric field under `rates`.
function ratesText(figures) {
  const parts = [];
  const rates = figures.rates && typeof figures.rates === "object" ? figures.rates : {};
  for (const [name, value] of Object.entries(rates)) {
    if (value && typeof value.last_1m === "number") {
      parts.push(`${name.replace(/_per_minute$/, "").replace(/_/g, " ")} ${number(value.last_1m, 1)} · ${number(value.last_5m, 1)}`);
    }
  }
  if (parts.length) return parts.join("  |  ");
  const add = (name, value) => {
    if (typeof value === "number") parts.push(`${name.replace(/_/g, " ")} ${number(value, 2)}`);
    else if (value && typeof value === "object") for (const [inner, v] of Object.entries(value)) add(`${name} ${inner}`, v);
  };
  if (figures.rates && typeof figures.rates === "object") {
    for (const [name, value] of Object.entries(figures.rates)) add(name, value);
  }
  for (const [name, value] of Object.entries(figures)) if (name !== "rates" && /rate/.test(name)) add(name, value);
  return parts.join(" · ") || "–";
}

function figure(figures, ...names) {
  for (const name of names) if (typeof figures[name] === "number") return number(figures[name], 0);
  return "–";
}

async function refreshQueues() {
  const table = $("queues");
  const status = $("queues-status");
  try {
    const { json } = await call("GET", "/api/jobs/stats");
    const rows = queueRows(json).map(([name, q]) => {
      const row = element("tr");
      row.dataset.queue = name;
      for (const text of [
        name,
        figure(q, "waiting", "ready"),
        figure(q, "in_flight", "inflight", "unacked"),
        figure(q, "processed"),
        figure(q, "failed"),
        figure(q, "dead"),
        ratesText(q),
      ]) row.appendChild(element("td", "", text));
      return row;
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = false;
    status.textContent = rows.length ? "" : "No queue.";
  } catch (error) {
    if (error.message === "signed out") throw error;
    table.hidden = true;
    status.textContent = `The Jobs API did not answer: ${error.message}`;
  }
}

// --- Dead letters ----------------------------------------------------------------------

// The dead letters' pages loaded ("More" adds one): each refresh loads as many again, so the
// rows a user brought in stay.
let deadPages = 1;
// Bumped by each load of the list: only the latest one's rows are shown.
let deadVersion = 0;
// The dead letters whose replay or delete is under way: their buttons stay disabled, even on
// rows a refresh draws meanwhile, so a double click sends one call.
const deadBusy = new Set();

function deadItems(json) {
  if (Array.isArray(json)) return json;
  if (json && Array.isArray(json.items)) return json.items;
  if (json && Array.isArray(json.dead)) return json.dead;
  if (json && Array.isArray(json.dead_letters)) return json.dead_letters;
  return [];
}

/// The `rel="next"` target of a `Link` header, if any (a same-origin path only).
function nextLink(response) {
  const link = response.headers.get("Link");
  if (!link) return null;
  for (const part of link.split(",")) {
    const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(part);
    if (match) {
      const url = new URL(match[1], location.href);
      return url.origin === location.origin ? url.pathname + url.search : null;
    }
  }
  return null;
}

function pick(letter, ...names) {
  for (const name of names) if (letter[name] !== undefined && letter[name] !== null) return letter[name];
  return null;
}

function deadRow(letter) {
  const id = String(pick(letter, "id") ?? "");
  const row = element("tr");
  row.dataset.id = id;
  const cells = [
    id,
    pick(letter, "kind") ?? "–",
    pick(letter, "attempts") ?? "–",
    pick(letter, "last_error", "error") ?? "–",
    time(pick(letter, "first_failure", "first_failed_at", "first_failure_at")),
    time(pick(letter, "last_failure", "last_failed_at", "last_failure_at")),
    pick(letter, "request_id") ?? "–",
  ];
  cells.forEach((text, index) => row.appendChild(element("td", index === 3 ? "error-text" : "", text)));
  const actions = element("td", "actions");
  const replay = element("button", "replay", "Replay");
  replay.type = "button";
  const remove = element("button", "delete danger", "Delete");
  remove.type = "button";
  replay.disabled = remove.disabled = deadBusy.has(id);
  const once = (done, method, path) => async () => {
    if (deadBusy.has(id)) return;
    deadBusy.add(id);
    replay.disabled = remove.disabled = true;
    try {
      await act(done, method, path);
    } finally {
      deadBusy.delete(id);
      replay.disabled = remove.disabled = false;
    }
  };
  replay.addEventListener("click", once(`Replayed ${id}.`, "POST", `/api/jobs/dead/${encodeURIComponent(id)}/replay`));
  remove.addEventListener("click", once(`Deleted ${id}.`, "DELETE", `/api/jobs/dead/${encodeURIComponent(id)}`));
  actions.append(replay, remove);
  row.appendChild(actions);
  return row;
}

/// The list again, as many pages as are loaded; shown unless a later load started meanwhile.
async function refreshDead() {
  const body = $("dead").tBodies[0];
  const version = ++deadVersion;
  try {
    let { json, response } = await call("GET", `/api/jobs/dead?limit=${DEAD_PAGE}`);
    const items = deadItems(json);
    let next = nextLink(response);
    for (let page = 1; page < deadPages && next; page += 1) {
      ({ json, response } = await call("GET", next));
      items.push(...deadItems(json));
      next = nextLink(response);
    }
    if (version !== deadVersion) return;
    body.replaceChildren(...items.map(deadRow));
    if (items.length === 0) {
      const empty = element("tr", "empty");
      const cell = element("td", "muted", "No dead letter.");
      cell.colSpan = 8;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    $("dead-more").hidden = !next;
  } catch (error) {
    if (error.message === "signed out") throw error;
    if (version !== deadVersion) return;
    const row = element("tr", "empty");
    const cell = element("td", "muted", `The Jobs API did not answer: ${error.message}`);
    cell.colSpan = 8;
    row.appendChild(cell);
    body.replaceChildren(row);
    $("dead-more").hidden = true;
  }
}

$("dead-more").addEventListener("click", async () => {
  const more = $("dead-more");
  if (more.disabled) return;
  more.disabled = true;
  deadPages += 1;
  try {
    await refreshDead();
  } catch (error) {
    $("dead-status").textContent = `Loading more failed: ${error.message}`;
  } finally {
    more.disabled = false;
  }
});

async function act(done, method, path, body) {
  const status = $("dead-status");
  status.textContent = "Working…";
  try {
    const { json } = await call(method, path, body);
    const count = json && typeof json === "object" ? pick(json, "replayed", "deleted", "purged", "count") : null;
    status.textContent = count === null ? done : `${done} (${count})`;
  } catch (error) {
    status.textContent = `Failed: ${error.message}`;
  }
  await Promise.allSettled([refreshDead(), refreshQueues()]);
}

/// A bulk "all" action, one bounded call after another (the Jobs API replays or deletes at
/// most 1000 rows a call, of the rows there were at the first call: its `through`) until none
/// remains, or a call does nothing (rows another replay holds).
async function actAll(done, path, field) {
  const status = $("dead-status");
  status.textContent = "Working…";
  let total = 0;
  let through;
  try {
    for (;;) {
      const body = through === undefined ? { all: true } : { all: true, through };
      const { json } = await call("POST", path, body);
      const count = Number(json?.[field] ?? 0);
      const remaining = Number(json?.remaining ?? 0);
      through = json?.through;
      total += count;
      if (remaining <= 0) {
        status.textContent = `${done} (${total})`;
        break;
      }
      if (count <= 0) {
        status.textContent = `${done} (${total}; ${remaining} held by another replay: try again)`;
        break;
      }
      status.textContent = `Working… ${total} done, ${remaining} left`;
    }
  } catch (error) {
    status.textContent = `Failed after ${total}: ${error.message}`;
  }
  await Promise.allSettled([refreshDead(), refreshQueues()]);
}

// The bulk actions ask once more before they run.
let pending = null;

function ask(text, action) {
  pending = action;
  $("confirm-text").textContent = text;
  $("confirm").hidden = false;
}

$("replay-all").addEventListener("click", () =>
  ask("Replay every dead letter?", () => actAll("Replayed every dead letter.", "/api/jobs/dead/replay", "replayed")),
);
$("purge-all").addEventListener("click", () =>
  ask("Delete every dead letter for good?", () => actAll("Purged every dead letter.", "/api/jobs/dead/delete", "deleted")),
);
// While a bulk action runs, neither bulk button starts another.
$("confirm-yes").addEventListener("click", async () => {
  const action = pending;
  pending = null;
  $("confirm").hidden = true;
  if (!action) return;
  const bulk = [$("replay-all"), $("purge-all")];
  for (const button of bulk) button.disabled = true;
  try {
    await action();
  } finally {
    for (const button of bulk) button.disabled = false;
  }
});
$("confirm-no").addEventListener("click", () => {
  pending = null;
  $("confirm").hidden = true;
});

// --- Refresh ---------------------------------------------------------------------------

let timer = null;

async function refresh() {
  clearTimeout(timer);
  if (!token()) return;
  const results = await Promise.allSettled([refreshServices(), refreshQueues(), refreshDead()]);
  if (!token()) return;
  const failed = results.find((result) => result.status === "rejected");
  const problem = $("problem");
  if (failed && failed.reason && failed.reason.status === 403) {
    signOut("This page is for admins: sign in with an admin account.");
    return;
  }
  problem.hidden = !failed;
  problem.textContent = failed ? `The overview did not load: ${failed.reason.message}` : "";
  $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  timer = setTimeout(refresh, REFRESH_MS);
}

if (token()) signedIn(sessionStorage.getItem(`${TOKEN_KEY}-who`) || "");
else signOut("");
