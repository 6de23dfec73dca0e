// kubus explorer: builds a cube question by clicks and shows the answer as the API gives it to the logged-in user.
// Everything it shows comes from /api/v1 as the logged-in user (a session the login opens: an HttpOnly cookie the
// browser sends from every tab), so the role's cubes, levels and disclosure control apply as to any client; it
// computes no number of its own. The question lives in the URL (a link is a
// view one can send). No framework and no build step: the file is served as written.

const API = "/api/v1";
// Sent with every request: the server takes a session's changes only from the browser tool.
const SCRIPT = { "X-Requested-With": "kubus-explorer" };
const $ = (id) => document.getElementById(id);

const numbers = {
  whole: new Intl.NumberFormat("de-DE", { maximumFractionDigits: 0 }),
  decimal: new Intl.NumberFormat("de-DE", { minimumFractionDigits: 2, maximumFractionDigits: 2 }),
};

/** The format names the server offers, with what a person calls them; others show their own name. */
const FORMAT_LABELS = {
  xlsx: "Excel (XLSX)",
  csv: "CSV",
  "csv-de": "CSV (Excel, deutsch)",
  json: "JSON",
  "json-stat": "JSON-stat",
  parquet: "Parquet",
};

/** What the page knows: who asks, the cubes they may see, the question, and the last answer. */
const app = {
  me: null,
  cubes: [],
  question: null,
  answer: null,
  members: new Map(), // "role.level" → Map(key → label), filled as levels are listed
};

class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.rule = body.rule;
    // A refused ingest: the line accounting of the files it read.
    this.files = body.files;
  }
}

// ---- credentials and requests ----

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** A request to the API as the logged-in user (or as the single sign-on in front of the server says). */
async function api(path, accept) {
  const headers = { ...SCRIPT };
  if (accept) headers.Accept = accept;
  const response = await fetch(API + path, { headers });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText }));
    throw new ApiError(response.status, body);
  }
  return response;
}

async function json(path) {
  return (await api(path)).json();
}

function say(text, error = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

function sayError(e) {
  if (e instanceof ApiError && e.status === 401) {
    showLogin(e.message);
    return;
  }
  say(e.rule ? `Abgelehnt: ${e.message} (Regel: ${e.rule})` : `Fehler: ${e.message}`, true);
}

/** The formats `GET /query` answers in, as its OpenAPI document lists them (the server's own list). */
function formatsOf(doc) {
  const param = doc.paths["/query"].get.parameters.find((p) => p.name === "format");
  const enums = [];
  const walk = (schema) => {
    if (!schema || typeof schema !== "object") return;
    if (Array.isArray(schema.enum)) enums.push(...schema.enum.filter((v) => typeof v === "string"));
    Object.values(schema).forEach(walk);
  };
  walk(param.schema);
  return enums.length ? enums : Object.keys(FORMAT_LABELS);
}

// ---- login ----

function showLogin(message = "") {
  $("explorer").hidden = true;
  $("deliver").hidden = true;
  $("dashboards").hidden = true;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("title").textContent = "Auswertung – Anmeldung";
  $("login-user").focus();
}

/** Opens a session with the name and token typed in; the token itself stays in no storage of the page. */
async function login(event) {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const token = $("login-token").value.trim();
  $("login-token").value = "";
  const headers = { ...SCRIPT, Authorization: "Basic " + base64(`${user}:${token}`) };
  let response;
  try {
    response = await fetch(API + "/session", { method: "POST", headers });
  } catch {
    showLogin("Der Server antwortet nicht.");
    return;
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText }));
    showLogin(body.error || `HTTP ${response.status}`);
    return;
  }
  await start();
}

/** Closes the session: every tab of the browser is logged out. */
async function logout() {
  await fetch(API + "/session", { method: "DELETE", headers: SCRIPT }).catch(() => {});
  app.me = null;
  showLogin("Abgemeldet.");
}

/** Who is asking and what they may see; then the question of the URL. */
async function start() {
  try {
    app.me = await json("/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      // Without a session yet, the login asks; a session that ended says so.
      showLogin(e.message.startsWith("no credentials") ? "" : e.message);
      return;
    }
    sayError(e);
    return;
  }
  const formats = await json("/openapi.json").then(formatsOf, () => Object.keys(FORMAT_LABELS));
  $("download-format").replaceChildren(...formats.map((f) => option(f, FORMAT_LABELS[f] || f)));
  app.cubes = await json("/cubes");
  $("login").hidden = true;
  $("who").hidden = false;
  $("nav").hidden = false;
  const page = new URLSearchParams(location.search).get("page");
  if (page === "deliver") {
    await showDeliver();
    return;
  }
  if (page === "dashboards") {
    await showDashboards();
    return;
  }
  $("nav-explore").setAttribute("aria-current", "page");
  $("explorer").hidden = false;
  const role = app.me.role ? `Rolle ${app.me.role}` : "ohne Rolle";
  $("who-text").textContent = `${app.me.user || "anonym"} · ${role}`;
  $("title").textContent = "Auswertung";
  $("cube").replaceChildren(...app.cubes.map((c) => option(c.name, c.label)));
  app.question = questionFromUrl();
  const asked = new URLSearchParams(location.search).get("cube");
  await show(false);
  if (asked && asked !== app.question.cube) say(`Der Würfel ${asked} ist für Ihre Rolle nicht zu sehen.`, true);
}

// ---- the question ----

/** The question in the URL: cube, measures, rows, columns, cuts, totals, sort. */
function questionFromUrl() {
  const p = new URLSearchParams(location.search);
  const cube = app.cubes.find((c) => c.name === p.get("cube")) || app.cubes[0];
  const q = {
    cube: cube ? cube.name : null,
    measures: p.getAll("m"),
    rows: p.get("rows") || "",
    cols: p.get("cols") || "",
    cuts: p.getAll("c"),
    totals: p.get("totals") === "1",
    sort: p.get("sort") || "",
    view: p.get("view") || "table",
    breaks: p.get("breaks") || "",
    shown: p.get("shown") || "",
  };
  if (cube && q.measures.length === 0 && !p.has("cube")) {
    // A first visit: the cube's first measure by its first geographic (else first) dimension's coarsest level.
    q.measures = [cube.measures[0].name];
    const dim = cube.dimensions.find((d) => d.kind === "geo") || cube.dimensions[0];
    if (dim) q.rows = `${dim.name}.${dim.levels[0].name}`;
  }
  return q;
}

function urlOf(q) {
  const p = new URLSearchParams();
  p.set("cube", q.cube);
  q.measures.forEach((m) => p.append("m", m));
  if (q.rows) p.set("rows", q.rows);
  if (q.cols) p.set("cols", q.cols);
  q.cuts.forEach((c) => p.append("c", c));
  if (q.totals) p.set("totals", "1");
  if (q.sort) p.set("sort", q.sort);
  if (q.view && q.view !== "table") p.set("view", q.view);
  if (q.breaks) p.set("breaks", q.breaks);
  if (q.shown) p.set("shown", q.shown);
  return "?" + p.toString();
}

/** The API's parameters for the question (drilldowns rows first, then columns). */
function apiParams(q) {
  const p = new URLSearchParams();
  p.set("cube", q.cube);
  q.measures.forEach((m) => p.append("m", m));
  for (const axis of [q.rows, q.cols]) if (axis) p.append("d", axis);
  q.cuts.forEach((c) => p.append("c", c));
  if (q.totals) p.set("totals", "true");
  return p;
}

function cube() {
  return app.cubes.find((c) => c.name === app.question.cube);
}

/** The levels of the cube the role may see, as `role.level` with their labels. */
function levels(c) {
  return c.dimensions.flatMap((d) =>
    d.levels.map((l, i) => ({ id: `${d.name}.${l.name}`, dim: d, level: l, index: i, label: `${d.label}: ${l.label}` })),
  );
}

function levelOf(id) {
  return levels(cube()).find((l) => l.id === id);
}

function option(value, label, selected = false) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  o.selected = selected;
  return o;
}

/** Draws the question's controls from the question; those of a cube only when the cube changed, so that the
 *  control a keyboard user just changed keeps its focus. */
function drawQuestion() {
  const q = app.question;
  const c = cube();
  if (app.drawn !== c.name) drawCube(c);
  $("cube").value = q.cube;
  for (const m of c.measures) $(`measure-${m.name}`).checked = q.measures.includes(m.name);
  const all = levels(c);
  for (const axis of ["rows", "cols"]) {
    const other = axis === "rows" ? q.cols : q.rows;
    const otherRole = other.split(".")[0];
    $(axis).replaceChildren(
      option("", "—"),
      ...all.filter((l) => l.dim.name !== otherRole).map((l) => option(l.id, l.label, l.id === q[axis])),
    );
  }
  drawCuts();
  $("totals").checked = q.totals;
}

/** The controls that depend on the cube only: its description, measures and the levels to cut on. */
function drawCube(c) {
  app.drawn = c.name;
  $("cube-description").textContent = c.description || "";
  $("measure-list").replaceChildren(
    ...c.measures.map((m) => {
      const id = `measure-${m.name}`;
      const box = Object.assign(document.createElement("input"), { type: "checkbox", id, value: m.name });
      box.addEventListener("change", () => {
        app.question.measures = c.measures.map((x) => x.name).filter((n) => $(`measure-${n}`).checked);
        changed();
      });
      const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: m.label });
      label.title = m.computed;
      const line = document.createElement("div");
      line.append(box, " ", label);
      return line;
    }),
  );
  $("cut-level").replaceChildren(option("", "— Ebene wählen —"), ...levels(c).map((l) => option(l.id, l.label)));
  $("cut-picker").hidden = true;
}

function drawCuts() {
  const q = app.question;
  $("cuts").replaceChildren(
    ...q.cuts.map((text) => {
      const li = document.createElement("li");
      li.append(describeCut(text));
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×" });
      remove.setAttribute("aria-label", `Einschränkung ${describeCut(text)} entfernen`);
      remove.addEventListener("click", () => {
        q.cuts = q.cuts.filter((c) => c !== text);
        changed();
      });
      li.append(" ", remove);
      return li;
    }),
  );
}

/** A cut in words: the level's label and the members' labels where known. */
function describeCut(text) {
  const [target, keys] = text.split("=");
  const level = levelOf(target);
  const known = app.members.get(target);
  if (!level) return text;
  if (!known) loadMembers(target).then(drawCuts, () => {});
  const names = keys.split(",").map((k) => (known && known.get(k)) || k);
  return `${level.label} = ${names.join(", ")}`;
}

/** The members of a level the role may see (with a search), remembering their labels. */
async function loadMembers(target, search = "") {
  const level = levelOf(target);
  const p = new URLSearchParams({ level: level.level.name });
  if (search) p.set("q", search);
  const found = await json(`/cubes/${encodeURIComponent(cube().name)}/dimensions/${encodeURIComponent(level.dim.name)}/members?${p}`);
  const labels = app.members.get(target) || new Map();
  found.forEach((m) => labels.set(m.key, m.label));
  app.members.set(target, labels);
  return found;
}

async function pickCutLevel() {
  const target = $("cut-level").value;
  $("cut-picker").hidden = !target;
  $("cut-search").value = "";
  if (target) await listCutMembers();
}

/** At most this many members are listed to pick from at once. */
const LISTED = 200;

async function listCutMembers() {
  const target = $("cut-level").value;
  const asked = (app.listing = (app.listing || 0) + 1);
  try {
    const found = await loadMembers(target, $("cut-search").value.trim());
    // An earlier, slower search must not overwrite a later one.
    if (asked !== app.listing) return;
    $("cut-members-legend").textContent = `${levelOf(target).label} (${found.length})`;
    const lines = found.slice(0, LISTED).map((m, i) => {
      const id = `cut-member-${i}`;
      const box = Object.assign(document.createElement("input"), { type: "checkbox", id, value: m.key });
      const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: m.label });
      const line = document.createElement("div");
      line.append(box, " ", label);
      return line;
    });
    // The list is never cut short without saying so.
    if (found.length > LISTED) {
      const more = found.length - LISTED;
      lines.push(Object.assign(document.createElement("p"), { textContent: `… und ${more} weitere: bitte die Suche eingrenzen.` }));
    }
    $("cut-members").replaceChildren(...lines);
  } catch (e) {
    sayError(e);
  }
}

function addCut() {
  const target = $("cut-level").value;
  const keys = [...$("cut-members").querySelectorAll("input:checked")].map((b) => b.value);
  if (!target || keys.length === 0) {
    say("Bitte mindestens eine Ausprägung ankreuzen.", true);
    return;
  }
  const q = app.question;
  q.cuts = q.cuts.filter((c) => c.split("=")[0] !== target).concat(`${target}=${keys.join(",")}`);
  $("cut-level").value = "";
  $("cut-picker").hidden = true;
  changed();
}

/** The question changed by the user: a new entry in the history, then the answer. */
function changed() {
  // From the user's action to the drawn answer, for the Performance API (benches/browser measures it).
  performance.clearMarks("kubus-asked");
  performance.mark("kubus-asked");
  history.pushState(null, "", urlOf(app.question));
  show(true);
}

async function show(focusAnswer) {
  drawQuestion();
  history.replaceState(null, "", urlOf(app.question));
  await ask(focusAnswer);
}

// ---- the answer ----

async function ask(focusAnswer) {
  const q = app.question;
  drawRollups();
  if (q.measures.length === 0) {
    $("table-wrap").replaceChildren();
    say("Bitte mindestens eine Kennzahl wählen.");
    return;
  }
  say("Wird berechnet …");
  const params = apiParams(q);
  const started = performance.now();
  try {
    const answer = await json(`/query?${params}&format=json-stat`);
    app.answer = answer;
    drawTable(answer);
    $("explain-text").textContent = "";
    explainAnswer();
    const took = Math.round(performance.now() - started);
    say(`Ergebnis: ${answer.value.length} Werte (${took} ms).`);
    // After the result's line: a map that cannot be drawn says why in its place.
    await drawFigure();
    if (performance.getEntriesByName("kubus-asked", "mark").length) performance.measure("kubus-answer", "kubus-asked");
    document.body.dataset.answered = String(Date.now());
    if (focusAnswer) $("answer").focus();
  } catch (e) {
    $("table-wrap").replaceChildren();
    sayError(e);
  }
}

/** "Wie wurde gerechnet?": asked only while the panel is open, for the question shown (not on every click). */
async function explainAnswer() {
  if (!$("explain").open || !app.answer) return;
  const params = apiParams(app.question).toString();
  $("explain-text").textContent = "Wird ermittelt …";
  let text;
  try {
    text = await api(`/explain?${params}`).then((r) => r.text());
  } catch (e) {
    text = e.message || String(e);
  }
  // A question changed meanwhile is explained by its own request.
  if (params === apiParams(app.question).toString()) $("explain-text").textContent = text;
}

/** A JSON-stat dataset as dimensions with ordered categories and a way to read a cell. */
function dataset(ds) {
  const dims = ds.id.map((id) => {
    const cat = ds.dimension[id].category;
    // In the dataset's order, the total last (a subtotal may come first in the rows the server sent).
    const keys = Object.keys(cat.index).sort((a, b) => (a === "_T") - (b === "_T") || cat.index[a] - cat.index[b]);
    return { id, label: ds.dimension[id].label, keys, labels: cat.label || {}, index: cat.index };
  });
  const strides = ds.size.map((_, i) => ds.size.slice(i + 1).reduce((a, b) => a * b, 1));
  // A cell's place in the values is by the categories' indexes in the dataset, not by the order they are shown in.
  const at = (coords) => {
    const i = coords.reduce((sum, c, d) => sum + dims[d].index[c] * strides[d], 0);
    return { value: ds.value[i], status: ds.status ? ds.status[i] : undefined };
  };
  return { dims, at };
}

function formatted(cell) {
  if (cell.value === null || cell.value === undefined) return cell.status || "";
  return Number.isInteger(cell.value) ? numbers.whole.format(cell.value) : numbers.decimal.format(cell.value);
}

function drawTable(ds) {
  const q = app.question;
  const { dims, at } = dataset(ds);
  const measureDim = dims[dims.length - 1];
  const rowDim = q.rows ? dims[0] : null;
  const colDim = q.cols ? dims[q.rows ? 1 : 0] : null;
  const rowKeys = rowDim ? rowDim.keys : [null];
  const colKeys = colDim ? colDim.keys : [null];
  // The value columns: each column member by each measure.
  const columns = colKeys.flatMap((ck) => measureDim.keys.map((mk) => ({ ck, mk })));
  const cellOf = (rk, col) => {
    const coords = [];
    if (rowDim) coords.push(rk);
    if (colDim) coords.push(col.ck);
    coords.push(col.mk);
    return at(coords);
  };
  let rows = rowKeys.map((rk) => ({ rk, cells: columns.map((col) => cellOf(rk, col)) }));
  const [sortColumn, direction] = q.sort.split(":");
  const by = Number.parseInt(sortColumn, 10);
  if (Number.isInteger(by) && by < columns.length) {
    const sign = direction === "desc" ? -1 : 1;
    const value = (r) => r.cells[by].value;
    rows = rows.slice().sort((a, b) => {
      if ((a.rk === "_T") !== (b.rk === "_T")) return a.rk === "_T" ? 1 : -1;
      if (value(a) === null || value(a) === undefined) return 1;
      if (value(b) === null || value(b) === undefined) return -1;
      return sign * (value(a) - value(b));
    });
  }

  const table = document.createElement("table");
  const measureNames = measureDim.keys.map((k) => measureDim.labels[k]);
  const caption = document.createElement("caption");
  const by_ = [rowDim, colDim].filter(Boolean).map((d) => d.label);
  caption.textContent = `${measureNames.join(", ")}${by_.length ? " nach " + by_.join(" und ") : ""} – ${cube().label}`;
  table.append(caption);
  const thead = table.createTHead();
  const corner = () => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = rowDim ? rowDim.label : "";
    return th;
  };
  const sortButton = (index, text) => {
    const button = Object.assign(document.createElement("button"), { type: "button", className: "sort" });
    const current = by === index ? direction : "";
    button.textContent = text + (current === "asc" ? " ▲" : current === "desc" ? " ▼" : "");
    button.setAttribute("aria-label", `${text}: sortieren ${current === "desc" ? "aufsteigend" : "absteigend"}`);
    button.addEventListener("click", () => {
      q.sort = `${index}:${current === "desc" ? "asc" : "desc"}`;
      history.pushState(null, "", urlOf(q));
      drawTable(app.answer);
      history.replaceState(null, "", urlOf(q));
    });
    return button;
  };
  if (colDim) {
    const top = thead.insertRow();
    const first = corner();
    if (measureDim.keys.length > 1) first.rowSpan = 2;
    top.append(first);
    colKeys.forEach((ck, ci) => {
      const th = document.createElement("th");
      th.scope = measureDim.keys.length > 1 ? "colgroup" : "col";
      th.colSpan = measureDim.keys.length;
      if (measureDim.keys.length > 1) th.append(memberHeading(colDim, q.cols, ck));
      else th.append(sortButton(ci, colDim.labels[ck]));
      top.append(th);
    });
    if (measureDim.keys.length > 1) {
      const second = thead.insertRow();
      columns.forEach((col, i) => {
        const th = document.createElement("th");
        th.scope = "col";
        th.append(sortButton(i, measureDim.labels[col.mk]));
        second.append(th);
      });
    }
  } else {
    const top = thead.insertRow();
    top.append(corner());
    columns.forEach((col, i) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.append(sortButton(i, measureDim.labels[col.mk]));
      top.append(th);
    });
  }
  const body = table.createTBody();
  const symbols = new Set();
  for (const r of rows) {
    const tr = body.insertRow();
    if (r.rk === "_T") tr.className = "total";
    const th = document.createElement("th");
    th.scope = "row";
    if (rowDim) th.append(memberHeading(rowDim, q.rows, r.rk));
    else th.textContent = "Insgesamt";
    tr.append(th);
    for (const cell of r.cells) {
      const td = tr.insertCell();
      td.textContent = formatted(cell);
      if (cell.value === null || cell.value === undefined) symbols.add(cell.status);
    }
  }
  $("table-wrap").replaceChildren(table);
  drawLegend(ds, symbols);
}

/** A member's heading; a button that drills into it where the role may see a finer level of its dimension. */
function memberHeading(dim, axisLevel, key) {
  const label = dim.labels[key] ?? key;
  const level = levelOf(axisLevel);
  const finer = level && level.dim.levels[level.index + 1];
  if (!finer || key === "_T") return document.createTextNode(label);
  const button = Object.assign(document.createElement("button"), { type: "button", className: "drill", textContent: label });
  button.setAttribute("aria-label", `${label}: aufgliedern nach ${finer.label}`);
  button.addEventListener("click", () => drill(axisLevel, key, `${level.dim.name}.${finer.name}`));
  return button;
}

/** Drills into one member: the axis goes one level finer, cut to that member. */
function drill(axisLevel, key, finer) {
  const q = app.question;
  const axis = q.rows === axisLevel ? "rows" : "cols";
  q.cuts = q.cuts.filter((c) => c.split("=")[0] !== axisLevel).concat(`${axisLevel}=${key}`);
  q[axis] = finer;
  q.sort = "";
  changed();
}

/** Buttons that roll an axis up one level, dropping the cut a drill made there. */
function drawRollups() {
  const q = app.question;
  const bar = $("rollup-bar");
  bar.replaceChildren();
  for (const axis of ["rows", "cols"]) {
    const level = q[axis] && levelOf(q[axis]);
    if (!level || level.index === 0) continue;
    const coarser = level.dim.levels[level.index - 1];
    const target = `${level.dim.name}.${coarser.name}`;
    const button = Object.assign(document.createElement("button"), { type: "button" });
    button.textContent = `Zusammenfassen nach ${coarser.label}`;
    button.addEventListener("click", () => {
      q[axis] = target;
      q.cuts = q.cuts.filter((c) => c.split("=")[0] !== target);
      q.sort = "";
      changed();
    });
    bar.append(button, " ");
  }
}

function drawLegend(ds, symbols) {
  const meanings = new Map([
    [app.me.suppressed_symbol, "geheim gehalten (zu wenige Fälle, oder daraus errechenbar)"],
    [app.me.zero_symbol, "nichts vorhanden"],
    ["-", "keine Fälle"],
    ["x", "nicht definiert (z. B. Anteil an 0)"],
  ]);
  const lines = [...symbols].filter(Boolean).map((s) => `${s} = ${meanings.get(s) || "kein Wert"}`);
  const legend = $("legend");
  legend.replaceChildren();
  if (lines.length) legend.append(Object.assign(document.createElement("p"), { textContent: "Zeichen: " + lines.join("; ") }));
  for (const note of ds.note || []) legend.append(Object.assign(document.createElement("p"), { textContent: note }));
}

// ---- charts and maps (d3) ----

/** The answer as series over the row members: one per column member (or one) of the measure chosen by `shown` (else
 *  the first), or with `shown` "*" and no column dimension one per measure. Without `axes`, the explorer's question
 *  says which dimensions are rows and columns; a report's dataset has its rows first. */
function seriesOf(ds, axes, shown) {
  const q = app.question;
  const { dims, at } = dataset(ds);
  const measureDim = dims[dims.length - 1];
  const { rows: hasRows, cols: hasCols } = axes || { rows: Boolean(q.rows), cols: Boolean(q.cols) };
  const rowDim = hasRows ? dims[0] : null;
  const colDim = hasCols ? dims[hasRows ? 1 : 0] : null;
  const everyMeasure = shown === "*" && !colDim && measureDim.keys.length > 1;
  const measure = measureDim.keys.includes(shown) ? shown : measureDim.keys[0];
  const rows = (rowDim ? rowDim.keys : [null]).filter((k) => k !== "_T");
  const pointAt = (rk, ck, m) => {
    const coords = [];
    if (rowDim) coords.push(rk);
    if (colDim) coords.push(ck);
    coords.push(m);
    const cell = at(coords);
    const point = { key: rk, label: rowDim ? rowDim.labels[rk] : "Insgesamt", value: cell.value, status: cell.status };
    if (cell.status !== "…") return point;
    // A forecast row ("…": not observed yet): the row's first forecast value ("P") stands in, marked.
    const forecast = measureDim.keys.map((k) => at([...coords.slice(0, -1), k])).find((c) => c.status === "P");
    return forecast ? { ...point, value: forecast.value, status: "P", forecast: true } : point;
  };
  const series = everyMeasure
    ? measureDim.keys.map((m) => ({ key: m, label: measureDim.labels[m], points: rows.map((rk) => pointAt(rk, null, m)) }))
    : (colDim ? colDim.keys : [null]).filter((k) => k !== "_T").map((ck) => ({
      key: ck,
      label: colDim ? colDim.labels[ck] : measureDim.labels[measure],
      points: rows.map((rk) => pointAt(rk, ck, measure)),
    }));
  const label = everyMeasure ? measureDim.keys.map((m) => measureDim.labels[m]).join(", ") : measureDim.labels[measure];
  return { measure: label, rowDim, colDim, series };
}

const svgNS = "http://www.w3.org/2000/svg";

function svgElement(width, height, label) {
  const svg = d3.create("svg").attr("viewBox", `0 0 ${width} ${height}`).attr("width", width).attr("height", height);
  svg.attr("role", "img").attr("aria-label", label);
  return svg;
}

/** Where the legend's entries go: in lines under the chart, from `left` to at most `right`; and its height. */
function legendLayout(series, left, right) {
  if (series.length < 2) return { at: [], height: 0 };
  const at = [];
  let [x, y] = [left, 0];
  for (const s of series) {
    // About 7 px per character of 12 px text, the square and room to the next.
    const width = 30 + 7 * String(s.label).length;
    if (x > left && x + width > right) [x, y] = [left, y + 18];
    at.push({ x, y });
    x += width;
  }
  return { at, height: y + 24 };
}

function seriesLegend(svg, series, colour, layout, top) {
  const legend = svg.append("g").attr("class", "legend").attr("transform", `translate(0,${top})`);
  series.forEach((s, i) => {
    const item = legend.append("g").attr("transform", `translate(${layout.at[i].x},${layout.at[i].y})`);
    item.append("rect").attr("width", 10).attr("height", 10).attr("fill", colour(s.key));
    item.append("text").attr("x", 14).attr("y", 9).attr("font-size", 12).text(s.label);
  });
}

/** Bars per row member: one per series side by side, or `stacked` one bar per row made of the series. */
function drawBars(data, stacked = false) {
  const rows = data.series[0].points.map((p) => p.label);
  const per = stacked ? 1 : data.series.length;
  const width = 760;
  // Room on the left for the longest member's name (about 6 px per character of the axis' 10 px text).
  const left = Math.min(320, 20 + 6 * d3.max(rows, (r) => String(r).length));
  const legend = legendLayout(data.series, left, width - 20);
  const plot = Math.max(120, rows.length * Math.max(16, per * 10) + 50);
  const height = plot + legend.height;
  const margin = { top: 10, right: 20, bottom: 30 + legend.height, left };
  const value = (p) => (p.value === null || p.value === undefined ? 0 : p.value);
  // Where each bar starts: after the series before it in a stack, else at 0.
  const starts = data.series.map((_, i) =>
    data.series[0].points.map((_, r) => (stacked ? d3.sum(data.series.slice(0, i), (s) => value(s.points[r])) : 0)),
  );
  const ends = data.series.flatMap((s, i) => s.points.map((p, r) => starts[i][r] + value(p)));
  // A bar runs from its start to its end: to the left for a value below zero.
  const x = d3.scaleLinear().domain([Math.min(0, d3.min(ends)), d3.max(ends) || 1]).nice()
    .range([margin.left, width - margin.right]);
  const y = d3.scaleBand().domain(rows).range([margin.top, height - margin.bottom]).padding(0.15);
  const inner = d3.scaleBand().domain(stacked ? ["all"] : data.series.map((s) => s.key)).range([0, y.bandwidth()]).padding(0.05);
  const colour = d3.scaleOrdinal(data.series.map((s) => s.key), d3.schemeTableau10);
  const svg = svgElement(width, height, `Balkendiagramm: ${data.measure}`);
  svg.append("g").attr("transform", `translate(0,${height - margin.bottom})`)
    .call(d3.axisBottom(x).ticks(6).tickFormat((v) => numbers.whole.format(v)));
  svg.append("g").attr("transform", `translate(${margin.left},0)`).call(d3.axisLeft(y));
  data.series.forEach((s, i) => {
    svg.append("g").attr("fill", colour(s.key)).attr("class", "series").selectAll("rect").data(s.points).join("rect")
      .attr("x", (p, r) => Math.min(x(starts[i][r]), x(starts[i][r] + value(p))))
      .attr("y", (p) => y(p.label) + inner(stacked ? "all" : s.key))
      .attr("width", (p) => Math.abs(x(value(p)) - x(0)))
      .attr("height", inner.bandwidth())
      .append("title").text((p) => `${p.label}${s.key ? ", " + s.label : ""}: ${formatted(p)}`);
  });
  if (legend.height) seriesLegend(svg, data.series, colour, legend, plot + 4);
  return svg.node();
}

function drawLines(data) {
  const rows = data.series[0].points.map((p) => p.label);
  const width = 760;
  const legend = legendLayout(data.series, 60, width - 20);
  const plot = 340;
  const height = plot + legend.height;
  const margin = { top: 10, right: 20, bottom: 60 + legend.height, left: 60 };
  const values = data.series.flatMap((s) => s.points.map((p) => p.value)).filter((v) => v !== null && v !== undefined);
  const x = d3.scalePoint().domain(rows).range([margin.left, width - margin.right]).padding(0.3);
  const y = d3.scaleLinear().domain([Math.min(0, d3.min(values) ?? 0), d3.max(values) || 1]).nice()
    .range([height - margin.bottom, margin.top]);
  const colour = d3.scaleOrdinal(data.series.map((s) => s.key), d3.schemeTableau10);
  const svg = svgElement(width, height, `Liniendiagramm: ${data.measure}`);
  const every = Math.ceil(rows.length / 12);
  svg.append("g").attr("transform", `translate(0,${height - margin.bottom})`)
    .call(d3.axisBottom(x).tickValues(rows.filter((_, i) => i % every === 0)))
    .selectAll("text").attr("transform", "rotate(-35)").attr("text-anchor", "end");
  svg.append("g").attr("transform", `translate(${margin.left},0)`)
    .call(d3.axisLeft(y).ticks(6).tickFormat((v) => numbers.whole.format(v)));
  const line = d3.line().defined((p) => !p.forecast && p.value !== null && p.value !== undefined)
    .x((p) => x(p.label)).y((p) => y(p.value));
  for (const s of data.series) {
    svg.append("path").attr("fill", "none").attr("stroke", colour(s.key)).attr("stroke-width", 2).attr("d", line(s.points));
    // A forecast continues the last observed point, dashed, its points hollow.
    const ahead = s.points.filter((p) => p.forecast);
    if (ahead.length) {
      const seen = s.points.filter(line.defined()).at(-1);
      svg.append("path").attr("class", "forecast").attr("fill", "none").attr("stroke", colour(s.key))
        .attr("stroke-width", 2).attr("stroke-dasharray", "5 4")
        .attr("d", d3.line().x((p) => x(p.label)).y((p) => y(p.value))(seen ? [seen, ...ahead] : ahead));
      svg.append("g").attr("fill", "#fff").attr("stroke", colour(s.key)).selectAll("circle").data(ahead).join("circle")
        .attr("cx", (p) => x(p.label)).attr("cy", (p) => y(p.value)).attr("r", 2.5)
        .append("title").text((p) => `${p.label}${s.key ? ", " + s.label : ""}: Prognose ${formatted(p)}`);
    }
    svg.append("g").attr("fill", colour(s.key)).selectAll("circle").data(s.points.filter(line.defined())).join("circle")
      .attr("cx", (p) => x(p.label)).attr("cy", (p) => y(p.value)).attr("r", 2.5)
      .append("title").text((p) => `${p.label}${s.key ? ", " + s.label : ""}: ${formatted(p)}`);
  }
  if (legend.height) seriesLegend(svg, data.series, colour, legend, plot + 4);
  return svg.node();
}

/** The class breaks of a choropleth: `count` classes with (about) equal numbers of areas. */
function equalCountBreaks(values, count) {
  const sorted = values.slice().sort((a, b) => a - b);
  const breaks = [];
  for (let i = 1; i < count; i++) breaks.push(d3.quantileSorted(sorted, i / count));
  return [...new Set(breaks)];
}

async function drawMap(data) {
  const q = app.question;
  const level = levelOf(q.rows);
  const cacheKey = `${q.cube}/${q.rows}`;
  app.maps = app.maps || new Map();
  if (!app.maps.has(cacheKey)) {
    const path = `/cubes/${encodeURIComponent(q.cube)}/dimensions/${encodeURIComponent(level.dim.name)}/geometry?level=${encodeURIComponent(level.level.name)}`;
    app.maps.set(cacheKey, await json(path));
  }
  const areas = app.maps.get(cacheKey);
  const s = data.series[0];
  const byKey = new Map(s.points.map((p) => [p.key, p]));
  const values = s.points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  // Chosen class limits (German numbers, ascending), else five classes of equal counts.
  const chosen = (q.breaks || "").split(";").map((t) => number(t)).filter((v) => v !== null);
  const breaks = chosen.length && chosen.every((v, i) => i === 0 || v > chosen[i - 1])
    ? chosen
    : equalCountBreaks(values, Math.min(5, Math.max(1, values.length)));
  // Blues without their lightest shade, which would look like the white of the hatching.
  const palette = d3.schemeBlues[Math.min(9, Math.max(3, breaks.length + 2))].slice(-(breaks.length + 1));
  const classOf = d3.scaleThreshold(breaks, palette);
  const width = 760;
  const height = 600;
  const projection = d3.geoMercator().fitExtent([[10, 10], [width - 10, height - 10]], areas);
  const path = d3.geoPath(projection);
  const svg = svgElement(width, height, `Karte: ${data.measure}${s.key ? ", " + s.label : ""} nach ${level.level.label}`);
  // Hatching for areas whose value is not shown (suppressed or none).
  const hatch = svg.append("defs").append("pattern").attr("id", "hatch").attr("patternUnits", "userSpaceOnUse")
    .attr("width", 6).attr("height", 6).attr("patternTransform", "rotate(45)");
  hatch.append("rect").attr("width", 6).attr("height", 6).attr("fill", "#fff");
  hatch.append("line").attr("x1", 0).attr("y1", 0).attr("x2", 0).attr("y2", 6).attr("stroke", "#666").attr("stroke-width", 2);
  // Each area says its name and value, to the mouse (title) and, reached with the tab key, to a screen reader.
  const said = (f) => {
    const p = byKey.get(f.properties.key);
    return `${f.properties.label}: ${p ? formatted(p) : "nicht im Ergebnis"}`;
  };
  svg.append("g").selectAll("path").data(areas.features).join("path")
    .attr("class", "area")
    .attr("d", path)
    .attr("data-key", (f) => f.properties.key)
    .attr("data-value", (f) => byKey.get(f.properties.key)?.value ?? "")
    .attr("fill", (f) => {
      const p = byKey.get(f.properties.key);
      return p && p.value !== null && p.value !== undefined ? classOf(p.value) : "url(#hatch)";
    })
    .attr("tabindex", 0)
    .attr("role", "img")
    .attr("aria-label", said)
    .append("title").text(said);
  const legend = document.createElement("ul");
  legend.className = "classes";
  const bounds = [d3.min(values), ...breaks, d3.max(values)];
  palette.forEach((colour, i) => {
    const li = document.createElement("li");
    li.dataset.colour = colour;
    li.dataset.lower = String(i === 0 ? -Infinity : bounds[i]);
    li.dataset.upper = String(i === palette.length - 1 ? Infinity : bounds[i + 1]);
    const swatch = document.createElementNS(svgNS, "svg");
    swatch.setAttribute("width", "14");
    swatch.setAttribute("height", "14");
    swatch.setAttribute("aria-hidden", "true");
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("width", "14");
    rect.setAttribute("height", "14");
    rect.setAttribute("fill", colour);
    swatch.append(rect);
    const last = i === palette.length - 1;
    li.append(swatch, last ? `${format(bounds[i])} bis ${format(bounds[i + 1])}` : `${format(bounds[i])} bis unter ${format(bounds[i + 1])}`);
    legend.append(li);
  });
  const hidden = document.createElement("li");
  hidden.textContent = "schraffiert: kein Wert gezeigt (geheim gehalten oder keine Fälle)";
  legend.append(hidden);
  const wrap = document.createElement("div");
  wrap.append(svg.node(), legend);
  return { node: wrap, note: areas.attribution ? `Kartengrundlage: ${areas.attribution}` : "" };
}

/** A number as a person types it in German ("1.234,5"); null for anything else. */
function number(text) {
  const t = text.trim().replace(/\./g, "").replace(",", ".");
  return t === "" || Number.isNaN(Number(t)) ? null : Number(t);
}

function format(v) {
  return Number.isInteger(v) ? numbers.whole.format(v) : numbers.decimal.format(v);
}

/** The chart or map of the answer under the current view; the table stays below as its accessible form. */
async function drawFigure() {
  const q = app.question;
  const level = q.rows && levelOf(q.rows);
  const mappable = Boolean(level && level.level.map);
  $("view-map").disabled = !mappable;
  $("view-hint").textContent = mappable ? "" : "(Karte: Zeilen nach einer Gebietsebene mit Karte)";
  const view = q.view === "map" && !mappable ? "table" : q.view || "table";
  for (const radio of document.querySelectorAll('input[name="view"]')) radio.checked = radio.value === view;
  $("breaks-line").hidden = view !== "map";
  $("breaks").value = q.breaks || "";
  const figure = $("figure");
  // With several measures, which one the chart or map shows (the table shows them all).
  const measures = app.answer ? dataset(app.answer).dims.at(-1) : null;
  $("shown-line").hidden = view === "table" || !measures || measures.keys.length < 2;
  // Bars and lines without a column dimension can show every measure side by side.
  const sideBySide = (view === "bars" || view === "lines") && !q.cols;
  const shownHere = q.shown === "*" && !sideBySide ? "" : q.shown;
  if (measures) {
    const every = sideBySide ? [option("*", "alle nebeneinander")] : [];
    $("shown").replaceChildren(...measures.keys.map((k) => option(k, measures.labels[k] || k)), ...every);
    $("shown").value = measures.keys.includes(shownHere) || (shownHere === "*") ? shownHere : measures.keys[0];
  }
  if (view === "table" || !app.answer) {
    figure.hidden = true;
    return;
  }
  const data = seriesOf(app.answer, undefined, shownHere);
  let node;
  let note = "";
  try {
    if (view === "bars" || view === "stacked") node = drawBars(data, view === "stacked");
    else if (view === "lines") node = drawLines(data);
    else ({ node, note } = await drawMap(data));
  } catch (e) {
    sayError(e);
    figure.hidden = true;
    return;
  }
  $("figure-body").replaceChildren(node);
  const by = [data.rowDim, data.colDim].filter(Boolean).map((d) => d.label).join(" und ");
  const shown = view === "map" && data.colDim ? ` (${data.colDim.label}: ${data.series[0].label})` : "";
  $("figure-caption").textContent = `${data.measure}${by ? " nach " + by : ""}${shown}. Die Werte stehen in der Tabelle darunter.${note ? " " + note : ""}`;
  figure.hidden = false;
}

async function download() {
  const format = $("download-format").value;
  try {
    const response = await api(`/query?${apiParams(app.question)}&format=${encodeURIComponent(format)}`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = named ? named[1] : `${app.question.cube}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    say(`Heruntergeladen: ${link.download}`);
  } catch (e) {
    sayError(e);
  }
}

// ---- live dashboards: the reports, answered now ----

async function showDashboards() {
  $("title").textContent = "Berichte";
  $("nav-dashboards").setAttribute("aria-current", "page");
  $("dashboards").hidden = false;
  const reports = await json("/reports");
  $("dashboard-report").replaceChildren(...reports.map((r) => option(r.name, r.title.replace("{period_label}", "…"))));
  const p = new URLSearchParams(location.search);
  if (reports.some((r) => r.name === p.get("report"))) $("dashboard-report").value = p.get("report");
  $("dashboard-period").value = p.get("period") || "";
  await drawDashboard();
}

/** One report for one month, as the report files would show it (the server runs it as the user's role). */
async function drawDashboard() {
  const name = $("dashboard-report").value;
  const period = $("dashboard-period").value;
  say("Wird berechnet …");
  try {
    const live = await json(`/reports/${encodeURIComponent(name)}/live${period ? `?period=${encodeURIComponent(period)}` : ""}`);
    $("dashboard-period").value = live.period;
    history.replaceState(null, "", `?page=dashboards&report=${encodeURIComponent(name)}&period=${encodeURIComponent(live.period)}`);
    $("dashboard-title").textContent = live.title;
    $("dashboard-meta").textContent = `${live.organisation} · Daten: ${live.provenance}`;
    $("dashboard-disclosure").textContent = live.disclosure;
    $("dashboard-parts").replaceChildren(...live.parts.map(drawPart));
    say(`Bericht für ${live.period_label}.`);
  } catch (e) {
    $("dashboard-parts").replaceChildren();
    sayError(e);
  }
  document.body.dataset.answered = String(Date.now());
}

/** A part of a report: a paragraph, tiles, a table, or a chart or map with its table. */
function drawPart(part) {
  const section = document.createElement("section");
  if (part.title) section.append(Object.assign(document.createElement("h3"), { textContent: part.title }));
  if (part.kind === "text") section.append(Object.assign(document.createElement("p"), { textContent: part.text }));
  if (part.kind === "tiles") {
    const tiles = Object.assign(document.createElement("dl"), { className: "tiles" });
    for (const t of part.tiles) {
      const tile = document.createElement("div");
      tile.append(Object.assign(document.createElement("dt"), { textContent: t.label }));
      tile.append(Object.assign(document.createElement("dd"), { textContent: t.value }));
      if (t.detail) tile.append(Object.assign(document.createElement("dd"), { className: "detail", textContent: t.detail }));
      tiles.append(tile);
    }
    section.append(tiles);
  }
  if (part.dataset) {
    const dims = part.dataset.id.length - 1;
    const rows = part.kind === "table" ? Math.min(part.rows ?? 1, dims) : Math.min(1, dims);
    const axes = { rows: rows > 0, cols: dims > rows };
    if (part.kind === "map") {
      // The report files' own picture of the map, drawn by the server: the same classes and colours.
      const drawn = new DOMParser().parseFromString(part.svg, "image/svg+xml").documentElement;
      section.append(document.importNode(drawn, true));
    } else if (part.kind !== "table") {
      const data = seriesOf(part.dataset, axes, part.by_measure ? "*" : undefined);
      section.append(part.kind === "line" ? drawLines(data) : drawBars(data, part.kind === "stacked"));
    }
    section.append(reportTable(part.dataset, axes, part.title));
  }
  if (part.note) section.append(Object.assign(document.createElement("p"), { className: "hint", textContent: part.note }));
  return section;
}

/** A report's dataset as a table: the row dimension down the side, the column dimension's members (by measure)
 *  across; a cell without a value shows its symbol. */
function reportTable(ds, axes, title) {
  const { dims, at } = dataset(ds);
  const measureDim = dims[dims.length - 1];
  const rowDim = axes.rows ? dims[0] : null;
  const colDim = axes.cols ? dims[axes.rows ? 1 : 0] : null;
  const heads = (colDim ? colDim.keys : [null]).flatMap((ck) => measureDim.keys.map((mk) => [ck, mk]));
  const table = document.createElement("table");
  table.append(Object.assign(document.createElement("caption"), { textContent: title || ds.label }));
  const top = table.createTHead().insertRow();
  top.append(Object.assign(document.createElement("th"), { scope: "col", textContent: rowDim ? rowDim.label : "" }));
  for (const [ck, mk] of heads) {
    const label = [colDim ? colDim.labels[ck] : null, measureDim.keys.length > 1 || !colDim ? measureDim.labels[mk] : null];
    top.append(Object.assign(document.createElement("th"), { scope: "col", textContent: label.filter(Boolean).join(" – ") }));
  }
  const body = table.createTBody();
  for (const rk of rowDim ? rowDim.keys : [null]) {
    const tr = body.insertRow();
    if (rk === "_T") tr.className = "total";
    tr.append(Object.assign(document.createElement("th"), { scope: "row", textContent: rowDim ? rowDim.labels[rk] : "Insgesamt" }));
    for (const [ck, mk] of heads) tr.insertCell().textContent = formatted(at([rk, ck, mk].filter((k) => k !== null)));
  }
  return table;
}

// ---- delivering data: uploads and forms ----

async function showDeliver() {
  $("title").textContent = "Daten liefern";
  $("nav-deliver").setAttribute("aria-current", "page");
  $("deliver").hidden = false;
  app.sources = await json("/sources");
  if (app.sources.length === 0) {
    say("Ihre Gruppen liefern an keine Quelle (kubus.toml, [groups] … ingest).", true);
    return;
  }
  $("deliver-source").replaceChildren(...app.sources.map((s) => option(s.name, `${s.description || s.name} → ${s.cube_label}`)));
  const wanted = new URLSearchParams(location.search).get("source");
  if (app.sources.some((s) => s.name === wanted)) $("deliver-source").value = wanted;
  await pickSource();
  document.body.dataset.answered = String(Date.now());
}

function source() {
  return app.sources.find((s) => s.name === $("deliver-source").value);
}

async function pickSource() {
  const s = source();
  $("deliver-description").textContent = s.form
    ? `Ein Eintrag je Absenden; er wird wie eine Zeile eines Exports geprüft und in den Würfel ${s.cube_label} übernommen.`
    : `Dateien dieser Quelle werden vollständig geprüft und in einem Schritt in den Würfel ${s.cube_label} übernommen.`;
  $("upload-form").hidden = s.form;
  $("entry-form").hidden = !s.form;
  $("delivery").hidden = true;
  const p = new URLSearchParams(location.search);
  p.set("source", s.name);
  history.replaceState(null, "", "?" + p.toString());
  drawGivenFields(s);
  if (s.form) await drawEntryFields(s);
}

/** The values an upload gives because its files do not hold them (`@set` in the mapping), one input each, named
 * by the level the field fills, the role's finest (the field's name where the user cannot see that cube). */
function drawGivenFields(s) {
  const roles = app.cubes.find((c) => c.name === s.cube)?.dimensions || [];
  const named = (name) => roles.find((d) => d.name === name)?.levels.at(-1)?.label;
  const fields = (s.form ? [] : s.given).map((name, i) => {
    const id = `given-${i}`;
    const line = Object.assign(document.createElement("p"), { className: "field" });
    const label = Object.assign(document.createElement("label"), {
      htmlFor: id,
      textContent: `${named(name) || name} (steht nicht in den Dateien; gilt für alle)`,
    });
    const input = Object.assign(document.createElement("input"), { id, type: "text", name, required: true });
    line.append(label, document.createElement("br"), input);
    return line;
  });
  $("upload-given").replaceChildren(...fields);
}

/** The form's inputs: a list of the members for a member, a date, a number or text otherwise. */
async function drawEntryFields(s) {
  const fields = await Promise.all(
    s.fields.map(async (f, i) => {
      const id = `entry-${i}`;
      const line = Object.assign(document.createElement("p"), { className: "field" });
      const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: f.label });
      let input;
      if (f.kind === "member") {
        input = document.createElement("select");
        const p = new URLSearchParams({ level: f.level });
        const members = await json(`/cubes/${encodeURIComponent(s.cube)}/dimensions/${encodeURIComponent(f.dimension)}/members?${p}`);
        input.append(option("", "— bitte wählen —"), ...members.map((m) => option(m.key, m.label)));
      } else {
        input = document.createElement("input");
        input.type = f.kind === "date" ? "date" : f.kind === "number" ? "number" : "text";
        if (f.kind === "number") input.step = "any";
      }
      input.id = id;
      input.name = f.input;
      input.required = !f.optional;
      const problem = Object.assign(document.createElement("span"), { className: "problem", id: `${id}-problem` });
      input.setAttribute("aria-describedby", problem.id);
      line.append(label, document.createElement("br"), input, problem);
      return line;
    }),
  );
  $("entry-fields").replaceChildren(...fields);
}

async function post(path, body, contentType) {
  const headers = { ...SCRIPT };
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(API + path, { method: "POST", headers, body });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

async function deliver(event, body, contentType, path) {
  event.preventDefault();
  say("Wird eingelesen …");
  try {
    const answer = await post(path, body, contentType);
    drawDelivery(answer);
    say(answer.rejected_lines ? `Eingelesen, ${answer.rejected_lines} Zeile(n) abgewiesen.` : "Eingelesen.");
  } catch (e) {
    sayError(e);
    if (e instanceof ApiError && e.files) drawRefusedFiles(e.files);
  }
  document.body.dataset.answered = String(Date.now());
}

function upload(event) {
  const body = new FormData();
  for (const file of $("upload-files").files) body.append("file", file, file.name);
  for (const input of $("upload-given").querySelectorAll("input")) body.append("set", `${input.name}=${input.value}`);
  return deliver(event, body, null, `/sources/${encodeURIComponent(source().name)}/files`);
}

function enter(event) {
  const values = {};
  for (const input of $("entry-fields").querySelectorAll("input, select")) values[input.name] = input.value;
  return deliver(event, JSON.stringify(values), "application/json", `/sources/${encodeURIComponent(source().name)}/form`);
}

/** The files of a refused delivery, each with its line accounting: nothing was committed. */
function drawRefusedFiles(files) {
  $("delivery").hidden = false;
  $("delivery-rejected").replaceChildren();
  const of = (f) =>
    f.outcome === "already_ingested"
      ? `${f.file}: schon eingelesen`
      : `${f.file}: Zeilen ${numbers.whole.format(f.lines)} = übernommen ${numbers.whole.format(f.accepted)} + ` +
        `abgewiesen ${numbers.whole.format(f.rejected)} + übersprungen ` +
        `${numbers.whole.format(f.skipped.reduce((n, s) => n + s.lines, 0))} → ${numbers.whole.format(f.facts)} Fakten`;
  $("delivery-summary").textContent = `Nichts übernommen. Gelesen: ${files.map(of).join("; ")}.`;
}

/** The line accounting of a delivery, and every rejected line with where and why. */
function drawDelivery(a) {
  $("delivery").hidden = false;
  const unchanged = a.files.filter((f) => f.outcome === "already_ingested").map((f) => f.file);
  $("delivery-summary").textContent =
    `Zeilen ${numbers.whole.format(a.lines)} = übernommen ${numbers.whole.format(a.accepted)} + abgewiesen ` +
    `${numbers.whole.format(a.rejected_lines)} + übersprungen ${numbers.whole.format(a.skipped)} → ` +
    `${numbers.whole.format(a.facts)} Fakten` +
    (a.version !== null && a.version !== undefined ? `, ${a.cube} Version ${a.version}.` : ", nichts geändert.") +
    (unchanged.length ? ` Schon eingelesen: ${unchanged.join(", ")}.` : "");
  for (const problem of document.querySelectorAll("#entry-fields .problem")) problem.textContent = "";
  if (a.rejected.length === 0) {
    $("delivery-rejected").replaceChildren();
    return;
  }
  const table = document.createElement("table");
  table.append(Object.assign(document.createElement("caption"), { textContent: "Abgewiesene Zeilen (in der Quarantäne)" }));
  const head = table.createTHead().insertRow();
  const withValues = a.rejected.some((r) => r.value !== undefined);
  for (const h of ["Datei", "Zeile", "Spalte", "Problem", ...(withValues ? ["Wert"] : [])]) {
    const th = Object.assign(document.createElement("th"), { scope: "col", textContent: h });
    head.append(th);
  }
  const body = table.createTBody();
  for (const r of a.rejected) {
    const tr = body.insertRow();
    tr.dataset.line = String(r.line);
    for (const v of [r.file, r.line, r.column, r.problem, ...(withValues ? [r.value ?? ""] : [])]) {
      tr.insertCell().textContent = String(v);
    }
    // On a form, the problem stands next to its field too.
    const input = [...$("entry-fields").querySelectorAll("input, select")].find((i) => i.name === r.column);
    if (input) $(`${input.id}-problem`).textContent = r.problem;
  }
  $("delivery-rejected").replaceChildren(table);
}

// ---- wiring ----

function wire() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("cube").addEventListener("change", () => {
    const c = app.cubes.find((x) => x.name === $("cube").value);
    const dim = c.dimensions.find((d) => d.kind === "geo") || c.dimensions[0];
    app.question = {
      cube: c.name,
      measures: [c.measures[0].name],
      rows: dim ? `${dim.name}.${dim.levels[0].name}` : "",
      cols: "",
      cuts: [],
      totals: false,
      sort: "",
      view: "table",
    };
    changed();
  });
  for (const axis of ["rows", "cols"]) {
    $(axis).addEventListener("change", () => {
      app.question[axis] = $(axis).value;
      app.question.sort = "";
      changed();
    });
  }
  $("swap").addEventListener("click", () => {
    const q = app.question;
    [q.rows, q.cols] = [q.cols, q.rows];
    q.sort = "";
    changed();
  });
  $("totals").addEventListener("change", () => {
    app.question.totals = $("totals").checked;
    changed();
  });
  $("cut-level").addEventListener("change", pickCutLevel);
  let typing;
  $("cut-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(listCutMembers, 200);
  });
  $("cut-add").addEventListener("click", addCut);
  $("download").addEventListener("click", download);
  $("explain").addEventListener("toggle", explainAnswer);
  $("deliver-source").addEventListener("change", pickSource);
  $("breaks").addEventListener("change", async () => {
    app.question.breaks = $("breaks").value.trim();
    history.pushState(null, "", urlOf(app.question));
    await drawFigure();
    document.body.dataset.drawn = String(Date.now());
  });
  $("shown").addEventListener("change", async () => {
    app.question.shown = $("shown").value;
    history.pushState(null, "", urlOf(app.question));
    await drawFigure();
    document.body.dataset.drawn = String(Date.now());
  });
  $("dashboard-report").addEventListener("change", () => {
    $("dashboard-period").value = "";
    drawDashboard();
  });
  $("dashboard-period").addEventListener("change", drawDashboard);
  $("upload-form").addEventListener("submit", upload);
  $("entry-form").addEventListener("submit", enter);
  for (const radio of document.querySelectorAll('input[name="view"]')) {
    radio.addEventListener("change", async () => {
      app.question.view = radio.value;
      history.pushState(null, "", urlOf(app.question));
      await drawFigure();
      document.body.dataset.drawn = String(Date.now());
    });
  }
  window.addEventListener("popstate", () => {
    if (!app.me) return;
    app.question = questionFromUrl();
    show(false);
  });
}

wire();
start();
