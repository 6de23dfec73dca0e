// The explorer in a real headless Chromium (Debian's, driven by playwright-core) against a running `kubus serve`.
// What the explorer shows is compared with what the API answers the same user in another format (CSV), so the
// expected numbers come from the server's API, not from the page. axe-core checks accessibility; screenshots land
// in target/browser/. Run by tests/browser/run.sh (which starts the server and makes the users).
//
// Usage: node explorer.mjs BASE_URL   with STAT, YOUTH, ANALYST = "user:token" in the environment.

import { chromium } from "playwright-core";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const base = process.argv[2];
const shots = new URL("../../target/browser/", import.meta.url).pathname;
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const users = Object.fromEntries(
  ["STAT", "YOUTH", "ANALYST"].map((v) => {
    const [user, token] = (process.env[v] || "").split(":");
    assert.ok(user && token, `${v}=user:token is needed`);
    return [v, { user, token }];
  }),
);

let failures = 0;
async function check(name, body) {
  try {
    await body();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures += 1;
    const status = await page.locator("#status").textContent().catch(() => "");
    console.log(`FAIL ${name}\n     ${e.stack.split("\n").slice(0, 4).join("\n     ")}\n     the page says: ${status}`);
  }
}

/** German number text as shown ("1.234", "0,67") to a number; a symbol to null. */
function number(text) {
  const t = text.trim().replace(/\./g, "").replace(",", ".");
  return t === "" || Number.isNaN(Number(t)) ? null : Number(t);
}

/** CSV text as rows of fields (quoted fields may hold commas, quotes and line breaks). */
function csv(text) {
  const rows = [[]];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') field += text[++i];
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") rows.at(-1).push(field), (field = "");
    else if (ch === "\n") rows.at(-1).push(field), (field = ""), rows.push([]);
    else if (ch !== "\r") field += ch;
  }
  if (field !== "" || rows.at(-1).length) rows.at(-1).push(field);
  return rows.filter((r) => r.length > 0);
}

/** The API's answer as CSV for the same user: (row label, column label) → value. */
async function apiCells(who, params, rowLabel, colLabel, measure) {
  const url = `${base}/api/v1/query?${params}&format=csv`;
  const auth = Buffer.from(`${who.user}:${who.token}`).toString("base64");
  const response = await fetch(url, { headers: { Authorization: `Basic ${auth}` } });
  assert.equal(response.status, 200, await response.clone().text());
  const [header, ...lines] = csv(await response.text());
  const col = (name) => header.indexOf(name);
  const cells = new Map();
  for (const line of lines) {
    const value = line[col(measure)] === "" ? null : Number(line[col(measure)]);
    cells.set(`${line[col(rowLabel)]}|${colLabel ? line[col(colLabel)] : ""}`, value);
  }
  return cells;
}

/** The explorer's table: (row heading, column heading) → value, for a one-measure table. */
async function shownCells(page) {
  return page.evaluate(() => {
    const table = document.querySelector("#table-wrap table");
    const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent.replace(/ [▲▼]$/, "").trim());
    const cells = [];
    for (const row of table.tBodies[0].rows) {
      const [head, ...values] = [...row.cells].map((c) => c.textContent.trim());
      values.forEach((v, i) => cells.push([head, heads.length > 2 ? heads[i + 1] : "", v]));
    }
    return cells;
  });
}

async function answered(page, action) {
  const before = await page.evaluate(() => document.body.dataset.answered || "");
  await action();
  // A new document starts without the mark: wait for its own answer, not for the mark to be gone.
  await page.waitForFunction((b) => (document.body.dataset.answered || b) !== b, before || "-", { timeout: 20000 });
}

/** Opens a view (the explorer's start without one) and logs in on the form it shows. */
async function login(page, who, view = "/") {
  await page.goto(`${base}${view}`);
  await page.getByLabel("Benutzername").fill(who.user);
  await page.getByLabel("Zugangsschlüssel").fill(who.token);
  await answered(page, () => page.getByRole("button", { name: "Anmelden" }).click());
}

async function accessible(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }));
  const serious = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(" ")})`),
    [],
    `${name}: serious or critical accessibility violations`,
  );
  return result.violations.length;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ acceptDownloads: true, locale: "de-DE", viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const violations = [];
if (process.env.DEBUG) page.on("pageerror", (e) => console.log(`page error: ${e.stack}`));
page.on("pageerror", (e) => violations.push(`script error: ${e.message}`));
page.on("console", (m) => {
  // Chromium logs every answer over 399 as an error; a refusal the page shows is not one of the page's.
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) violations.push(m.text());
  if (process.env.DEBUG) console.log(`console ${m.type()}: ${m.text()} ${JSON.stringify(m.location())}`);
});

// The statistics office builds "persons by area and language level, June 2024" by clicks.
const june = "cube=newcomers&m=persons&d=district.area&d=language_level.level&c=month.month%3D2024-06";
await check("the statistics office logs in and builds a table by clicks; it shows what the API answers", async () => {
  await login(page, users.STAT);
  await page.getByLabel("Würfel").selectOption("newcomers");
  await page.waitForSelector("#table-wrap table");
  const persons = page.getByLabel("Personen", { exact: true });
  if (!(await persons.isChecked())) await answered(page, () => persons.check());
  for (const box of await page.locator("#measure-list input:checked:not(#measure-persons)").all()) {
    await answered(page, () => box.uncheck());
  }
  await answered(page, () => page.getByLabel("Zeilen").selectOption("district.area"));
  await answered(page, () => page.getByLabel("Spalten").selectOption("language_level.level"));
  await page.getByLabel("Einschränken nach").selectOption("month.month");
  await page.getByLabel(/Ausprägung suchen/).fill("2024-06");
  await page.waitForFunction(() => document.querySelectorAll("#cut-members input").length === 1, null, { timeout: 10000 });
  await page.locator("#cut-members input").first().check();
  await answered(page, () => page.getByRole("button", { name: "Einschränkung übernehmen" }).click());
  const expected = await apiCells(users.STAT, june, "area_label", "language_level_label", "persons");
  const shown = await shownCells(page);
  assert.ok(shown.length >= 6, `${shown.length} cells`);
  for (const [row, col, text] of shown) {
    assert.equal(number(text), expected.get(`${row}|${col}`) ?? null, `${row} × ${col}: shown ${text}`);
  }
  // Every row of the API's answer is a cell with a number; a cell without one is a combination the API has no row for.
  assert.equal(shown.filter(([, , text]) => number(text) !== null).length, expected.size, "every cell of the API's answer is shown");
  assert.match(page.url(), /rows=district\.area/, "the question is in the URL");
  // With totals: the totals row and column hold the API's totals (shown last, read by their own index).
  await answered(page, () => page.getByLabel("Summen und Zwischensummen").check());
  const totals = await apiCells(users.STAT, `${june}&totals=true`, "area_label", "language_level_label", "persons");
  const withTotals = await shownCells(page);
  assert.ok(withTotals.some(([row, col]) => row === "Insgesamt" && col === "Insgesamt"), "a grand total");
  for (const [row, col, text] of withTotals) {
    assert.equal(number(text), totals.get(`${row}|${col}`) ?? null, `with totals: ${row} × ${col}: shown ${text}`);
  }
  await answered(page, () => page.getByLabel("Summen und Zwischensummen").uncheck());
  // As stacked bars: one series per language level, each with a bar per area.
  await page.getByLabel("Gestapelt").check();
  await page.locator("#figure svg g.series").first().waitFor();
  const levels = new Set([...expected.keys()].map((k) => k.split("|")[1]));
  assert.equal(await page.locator("#figure svg g.series").count(), levels.size, "a series per language level");
  assert.equal(await page.locator("#figure svg g.series").first().locator("rect").count(), 2, "a bar per area");
  await page.screenshot({ path: `${shots}explorer-persons-by-area-and-level.png`, fullPage: true });
});

await check("a link is the view: the URL alone rebuilds the same table", async () => {
  const url = page.url();
  const before = await shownCells(page);
  // Another tab shares the browser's session: the link alone shows the view, without a second login.
  const other = await context.newPage();
  await answered(other, () => other.goto(url));
  assert.equal(await other.locator("#login").isHidden(), true, "no login in the second tab");
  assert.deepEqual(await shownCells(other), before);
  await other.close();
});

await check("clicking an area drills into its districts, as the API answers them", async () => {
  const area = await page.locator("#table-wrap tbody th button.drill").first();
  const name = (await area.textContent()).trim();
  await answered(page, () => area.click());
  const rowsLevel = await page.getByLabel("Zeilen").inputValue();
  assert.equal(rowsLevel, "district.district");
  const cut = new URL(page.url()).searchParams.getAll("c").find((c) => c.startsWith("district.area="));
  assert.ok(cut, `the drill cuts the area: ${page.url()}`);
  const params = `cube=newcomers&m=persons&d=district.district&d=language_level.level&c=month.month%3D2024-06&c=${encodeURIComponent(cut)}`;
  const expected = await apiCells(users.STAT, params, "district_label", "language_level_label", "persons");
  const shown = await shownCells(page);
  assert.ok(shown.length > 0);
  for (const [row, col, text] of shown) {
    assert.equal(number(text), expected.get(`${row}|${col}`) ?? null, `${name}: ${row} × ${col}: shown ${text}`);
  }
  await answered(page, () => page.getByRole("button", { name: /Zusammenfassen nach/ }).click());
  assert.equal(await page.getByLabel("Zeilen").inputValue(), "district.area");
});

await check("'Wie wurde gerechnet?' asks the server only while it is open, for the question shown", async () => {
  const asked = [];
  const listen = (request) => {
    if (request.url().includes("/api/v1/explain")) asked.push(request.url());
  };
  const explained = () =>
    page.waitForFunction(() => document.getElementById("explain-text").textContent.startsWith("reads newcomers at version"), null, {
      timeout: 10000,
    });
  page.on("request", listen);
  try {
    await answered(page, () => page.getByLabel("Summen und Zwischensummen").check());
    assert.equal(asked.length, 0, "no explain is asked while the panel is closed");
    await page.locator("#explain summary").click();
    await explained();
    assert.equal(asked.length, 1);
    assert.match(asked[0], /totals=true/);
    await answered(page, () => page.getByLabel("Summen und Zwischensummen").uncheck());
    await explained();
    assert.equal(asked.length, 2, "an open panel follows the question");
    assert.doesNotMatch(asked[1], /totals=true/);
    await page.locator("#explain summary").click();
  } finally {
    page.off("request", listen);
  }
});

await check("the current view downloads as XLSX with the shown numbers", async () => {
  await page.getByLabel("Herunterladen als").selectOption("xlsx");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Herunterladen" }).click()]);
  const path = `${shots}${download.suggestedFilename()}`;
  await download.saveAs(path);
  assert.match(download.suggestedFilename(), /\.xlsx$/);
  const sheets = execFileSync("unzip", ["-p", path, "xl/worksheets/*.xml"], { encoding: "utf8" });
  const numbersInSheet = new Set([...sheets.matchAll(/<v>([0-9.]+)<\/v>/g)].map((m) => Number(m[1])));
  const shown = (await shownCells(page)).map(([, , text]) => number(text)).filter((n) => n !== null);
  for (const n of shown) assert.ok(numbersInSheet.has(n), `${n} is in the workbook`);
});

await check("the explorer passes axe-core without serious or critical violations", async () => {
  const count = await accessible(page, "explorer");
  console.log(`     axe-core: ${count} minor or moderate findings on the explorer`);
});

await check("the page keeps its Content-Security-Policy and no script error", async () => {
  const response = await page.goto(`${base}/`);
  assert.match(response.headers()["content-security-policy"], /default-src 'self'/);
  assert.deepEqual(violations, []);
});

await check("the Köln population map colours named Stadtteile by the API's figures and the map's classes", async () => {
  const question = "cube=koeln_population&m=value&c=year.year%3D2012&c=topic.category%3D005.10";
  await answered(page, () => page.goto(`${base}/?${question}&rows=area.stadtteil&view=map`));
  await page.locator("#figure svg path.area").first().waitFor();
  assert.equal(await page.locator("#figure svg path.area").count(), 86, "86 Stadtteile");
  const expected = await apiCells(users.STAT, `${question}&d=area.stadtteil`, "area_label", null, "value");
  const keys = await apiCells(users.STAT, `${question}&d=area.stadtteil`, "area_label", null, "area");
  const fills = async () => {
    const classes = await page.locator("#figure .classes li[data-colour]").evaluateAll((items) =>
      items.map((li) => ({ colour: li.dataset.colour, lower: Number(li.dataset.lower), upper: Number(li.dataset.upper) })),
    );
    assert.ok(classes.length >= 3, `${classes.length} classes`);
    for (const name of ["Altstadt/Süd", "Ehrenfeld", "Chorweiler"]) {
      const value = expected.get(`${name}|`);
      assert.ok(value > 0, `${name} has inhabitants in the API's answer`);
      const key = String(keys.get(`${name}|`)).padStart(3, "0");
      const area = page.locator(`#figure path.area[data-key="${key}"]`);
      assert.equal(Number(await area.getAttribute("data-value")), value, `${name} (${key})`);
      const wanted = classes.find((c, i) => value >= c.lower && (value < c.upper || (i === classes.length - 1 && value <= c.upper)));
      assert.ok(wanted, `${name}: ${value} falls in a class`);
      assert.equal(await area.getAttribute("fill"), wanted.colour, `${name}: ${value} is filled as its class`);
    }
    return classes;
  };
  await fills();
  // Reached with the keyboard, an area says its name and the API's value.
  await page.locator("#figure path.area").first().focus();
  const focused = await page.evaluate(() => document.activeElement.getAttribute("aria-label") || "");
  const [name] = focused.split(":");
  assert.ok(expected.has(`${name}|`), `the focused area names a Stadtteil: ${focused}`);
  assert.equal(number(focused.slice(name.length + 1).trim()), expected.get(`${name}|`), focused);
  await accessible(page, "the map");
  // Chosen class limits instead of equal counts: the legend has them, and the areas follow.
  const before = await page.evaluate(() => document.body.dataset.drawn || "");
  await page.getByLabel(/Klassengrenzen/).fill("10.000;20.000;30.000");
  await page.getByLabel(/Klassengrenzen/).press("Enter");
  await page.waitForFunction((b) => (document.body.dataset.drawn || "") !== b, before);
  const chosen = await fills();
  assert.deepEqual(chosen.slice(1).map((c) => c.lower), [10000, 20000, 30000]);
  assert.match(page.url(), /breaks=/, "the limits are part of the view's URL");
  assert.match(await page.locator("#figure-caption").textContent(), /Offene Daten Köln/, "the boundaries' attribution");
  await page.locator("#figure").screenshot({ path: `${shots}explorer-koeln-map.png` });
  await page.screenshot({ path: `${shots}explorer-koeln-map-page.png`, fullPage: true });
});

await check("with two measures, the map shows the one chosen for it, with the API's values", async () => {
  const question = "cube=newcomers&m=persons&m=share_below_b1&c=month%3D2024-06";
  await answered(page, () => page.goto(`${base}/?${question}&rows=district.district&view=map`));
  await page.locator("#figure svg path.area").first().waitFor();
  const valuesOn = async () =>
    new Map(await page.locator("#figure path.area").evaluateAll((areas) => areas.map((a) => [a.dataset.key, a.dataset.value])));
  const api = async (measure) => apiCells(users.STAT, `${question}&d=district.district`, "district", null, measure);
  for (const measure of ["persons", "share_below_b1"]) {
    if (measure !== "persons") {
      const before = await page.evaluate(() => document.body.dataset.drawn || "");
      await page.getByLabel("Kennzahl in Diagramm und Karte").selectOption(measure);
      await page.waitForFunction((b) => (document.body.dataset.drawn || "") !== b, before);
      assert.match(page.url(), new RegExp(`shown=${measure}`), "the choice is part of the view's URL");
    }
    const shown = await valuesOn();
    const wanted = await api(measure);
    assert.equal(shown.size, 18);
    for (const [key, value] of wanted) {
      const district = key.split("|")[0];
      assert.equal(shown.get(district) === "" ? null : Number(shown.get(district)), value, `${measure} of ${district}`);
    }
  }
});

await check("bars show two measures side by side when asked, from zero also below it, with the API's values", async () => {
  const question = "cube=language_demand&m=need&m=gap&c=month%3D2024-06&c=start_month.year%3D2024";
  await answered(page, () => page.goto(`${base}/?${question}&rows=district&view=bars&shown=*`));
  await page.locator("#figure svg g.series").first().waitFor();
  assert.equal(await page.getByLabel("Kennzahl in Diagramm und Karte").inputValue(), "*");
  assert.equal(await page.locator("#figure svg g.series").count(), 2, "a series per measure");
  const bars = await page.locator("#figure svg g.series rect").evaluateAll((rects) => rects.map((r) => ({
    title: r.querySelector("title").textContent, x: Number(r.getAttribute("x")), width: Number(r.getAttribute("width")),
  })));
  let below = 0;
  const zero = bars.find((b) => number(b.title.split(": ").at(-1)) > 0).x;
  for (const [measure, label] of [["need", "Bedarf: Personen unter B1 ohne Sprachkurs"], ["gap", "Plätze abzüglich Bedarf"]]) {
    const wanted = await apiCells(users.STAT, `${question}&d=district`, "district_label", null, measure);
    for (const [key, value] of wanted) {
      const prefix = `${key.split("|")[0]}, ${label}: `;
      const bar = bars.find((b) => b.title.startsWith(prefix));
      assert.ok(bar, `${prefix} in ${bars.map((b) => b.title)}`);
      assert.equal(number(bar.title.slice(prefix.length)), value, prefix);
      if (value === null) continue;
      assert.ok(bar.width >= 0, `${prefix} has a width`);
      // A bar starts at zero, or ends there when its value is below zero.
      assert.ok(Math.abs((value < 0 ? bar.x + bar.width : bar.x) - zero) < 0.5, `${prefix} at ${bar.x}+${bar.width}, zero at ${zero}`);
      if (value < 0) below += 1;
    }
  }
  assert.ok(below > 0, "some districts have fewer places than need");
  await page.locator("#figure").screenshot({ path: `${shots}explorer-two-measures.png` });
});

await check("a forecast is drawn dashed after the observed months, its values those of the API", async () => {
  const question = "cube=zuweisungen&m=persons&m=persons_forecast&c=month%3D2024-10..2025-06";
  await answered(page, () => page.goto(`${base}/?${question}&rows=month&view=lines`));
  const dashed = page.locator("#figure svg path.forecast");
  await dashed.waitFor();
  assert.equal(await dashed.getAttribute("stroke-dasharray"), "5 4");
  const api = await apiCells(users.STAT, `${question}&d=month`, "month_label", null, "persons_forecast");
  const ahead = [...api].filter(([, v]) => v !== null);
  assert.equal(ahead.length, 6, "six forecast months");
  const titles = await page.locator("#figure svg circle title").allTextContents();
  for (const [key, value] of ahead) {
    const month = key.split("|")[0];
    assert.ok(titles.some((t) => t.startsWith(`${month}: Prognose `) && number(t.split("Prognose ")[1]) === value), `${month}: ${value} in ${titles}`);
  }
});

await check("a course offer entered through the form is in the explorer's answer", async () => {
  const cell = "cube=course_offers&m=seats&c=district.district%3D06&c=language_level.level%3DB1&c=start_month.month%3D2025-09";
  const seats = async () => {
    const total = await apiCells(users.STAT, cell, "seats", null, "seats");
    return total.size ? ([...total.values()][0] ?? 0) : 0;
  };
  const before = await seats();
  await answered(page, () => page.goto(`${base}/?page=deliver&source=provider_form`));
  const provider = page.getByLabel("Träger");
  const first = await provider.locator("option").nth(1).getAttribute("value");
  await provider.selectOption(first);
  await page.getByLabel("Stadtteil").selectOption("06");
  await page.getByLabel("Niveau").selectOption("B1");
  await page.getByLabel("Kursart").selectOption({ index: 1 });
  await page.getByLabel("Kursbeginn").fill("2025-09-01");
  await page.getByLabel("Plätze").fill("17");
  await accessible(page, "form");
  await answered(page, () => page.getByRole("button", { name: "Eintragen" }).click());
  assert.match(await page.locator("#delivery-summary").textContent(), /übernommen 1 \+ abgewiesen 0/);
  const after = await seats();
  assert.equal(after - before, 17, `the API counts the entered seats: ${before} before, ${after} after`);
  await answered(page, () => page.goto(`${base}/?${cell}`));
  const shown = await shownCells(page);
  assert.equal(shown.length, 1);
  assert.equal(number(shown[0][2]), after, "the explorer shows the seats with the new offer");
});

await context.clearCookies();

// The youth welfare office sees areas, never a single district: no level to pick, no member to drill into.
await check("the youth welfare office finds no way to a district", async () => {
  await page.goto(`${base}/`);
  await page.getByLabel("Benutzername").fill(users.YOUTH.user);
  await page.getByLabel("Zugangsschlüssel").fill(users.YOUTH.token);
  await answered(page, () => page.getByRole("button", { name: "Anmelden" }).click());
  await answered(page, () => page.goto(`${base}/?cube=newcomers&m=persons&rows=district.area&c=month.month%3D2024-06`));
  const levels = await page.locator("#rows option, #cols option, #cut-level option").evaluateAll((os) => os.map((o) => o.value));
  assert.ok(levels.includes("district.area"));
  assert.ok(!levels.includes("district.district"), `offered: ${levels}`);
  assert.equal(await page.locator("#table-wrap tbody th button.drill").count(), 0, "no area drills into districts");
  // A link to districts, made by someone else, is refused with the rule, not answered.
  await page.goto(`${base}/?cube=newcomers&m=persons&rows=district.district`);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Abgelehnt"));
  assert.equal(await page.locator("#table-wrap table").count(), 0);
  await page.screenshot({ path: `${shots}explorer-youth-welfare-refused.png`, fullPage: true });
});

// An analyst gets the cell key method's published numbers: what the API answers the analyst, not the office's.
await check("an analyst sees the published (perturbed) numbers the API gives the analyst", async () => {
  await context.clearCookies();
  await login(page, users.ANALYST);
  await answered(page, () => page.goto(`${base}/?cube=newcomers&m=persons&rows=district.area&cols=language_level.level&c=month.month%3D2024-06`));
  const expected = await apiCells(users.ANALYST, june, "area_label", "language_level_label", "persons");
  const shown = await shownCells(page);
  for (const [row, col, text] of shown) {
    assert.equal(number(text), expected.get(`${row}|${col}`) ?? null, `${row} × ${col}: shown ${text}`);
  }
  const notes = await page.locator("#legend").textContent();
  assert.match(notes, /Cell-Key|Geheimhaltung/, "the answer says how it is protected");
});

await check("a dashboard shows a report's table cell for cell as the report's own file, suppression included", async () => {
  await answered(page, () => page.goto(`${base}/?page=dashboards&report=newcomers_monthly&period=2024-06`));
  await accessible(page, "dashboard");
  const auth = { Authorization: `Basic ${Buffer.from(`${users.ANALYST.user}:${users.ANALYST.token}`).toString("base64")}` };
  const run = await fetch(`${base}/api/v1/reports/newcomers_monthly/runs?period=2024-06`, { method: "POST", headers: auth });
  assert.equal(run.status, 200, await run.clone().text());
  const files = (await run.json()).files;
  const reportTable = async (number) => {
    const file = files.find((f) => new RegExp(`${number}_.*\\.csv$`).test(f));
    const text = await (await fetch(`${base}/api/v1/reports/newcomers_monthly/runs/2024-06/${file}`, { headers: auth })).text();
    return text.replace(/^\uFEFF/, "").trim().split("\n").map((l) => l.split(";"));
  };
  const [header, ...rows] = await reportTable("05");
  const col = (name) => header.indexOf(name);
  const table = page.locator("#dashboard-parts section", { hasText: "Personen nach Altersgruppe und Geschlecht" }).locator("table");
  const shown = await table.evaluate((t) => {
    const heads = [...t.tHead.rows[0].cells].map((c) => c.textContent.trim());
    const cells = {};
    for (const row of t.tBodies[0].rows) {
      const [head, ...values] = [...row.cells].map((c) => c.textContent.trim());
      values.forEach((v, i) => (cells[`${head}|${heads[i + 1]}`] = v));
    }
    return cells;
  });
  let suppressed = 0;
  for (const r of rows) {
    const key = `${r[col("age_band_label")]}|${r[col("sex_label")]}`;
    const expected = r[col("persons")];
    assert.ok(key in shown, `${key} is in the dashboard's table`);
    if (number(expected) === null) {
      suppressed += 1;
      assert.equal(shown[key], expected, `${key}: the file's symbol`);
    } else assert.equal(number(shown[key]), number(expected), key);
  }
  assert.ok(suppressed > 0, "the table has suppressed cells to compare");
  // Need beside seats: a series per measure, each bar titled with the report file's figure (or its symbol).
  const [demandHeader, ...demand] = await reportTable("07");
  const grouped = page.locator("#dashboard-parts section")
    .filter({ has: page.getByRole("heading", { name: "Bedarf und Angebot nach Stadtteil", exact: true }) });
  assert.equal(await grouped.locator("svg g.series").count(), 2, "need beside seats");
  const bars = await grouped.locator("svg g.series rect title").allTextContents();
  assert.equal(bars.length, 2 * demand.length, "a bar per district and measure");
  for (const r of demand) {
    for (const [measure, label] of [["need", "Bedarf: Personen unter B1 ohne Sprachkurs"], ["seats", "Plätze"]]) {
      const expected = r[demandHeader.indexOf(measure)];
      const prefix = `${r[demandHeader.indexOf("district_label")]}, ${label}: `;
      const bar = bars.find((t) => t.startsWith(prefix));
      assert.ok(bar, `${prefix} in ${bars}`);
      const shownValue = bar.slice(prefix.length);
      if (number(expected) === null) assert.equal(shownValue, expected, prefix);
      else assert.equal(number(shownValue), number(expected), prefix);
    }
  }
  const map = page.locator("#dashboard-parts section", { hasText: "Karte: Personen nach Stadtteil" });
  assert.equal(await map.locator("svg path.area").count(), 18, "the dashboard's map draws every district");
  await page.emulateMedia({ media: "print" });
  assert.equal(await page.locator("#nav").isVisible(), false, "printing shows the report, not the navigation");
  await page.pdf({ path: `${shots}dashboard-newcomers_monthly-2024-06.pdf`, format: "A4" });
  await page.emulateMedia({ media: "screen" });
  await page.screenshot({ path: `${shots}dashboard-newcomers_monthly.png`, fullPage: true });
});

await check("an upload with a bad line shows that line quarantined with its reason", async () => {
  const original = readFileSync(new URL("../../sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv", import.meta.url));
  const lines = original.toString("latin1").split("\r\n");
  const fields = lines[2].split(";");
  fields[3] = "31.02.1984"; // Geburtsdatum: no such day
  lines[2] = fields.join(";");
  const file = `${shots}neuzugewanderte_2024-06.csv`;
  writeFileSync(file, Buffer.from(lines.join("\r\n"), "latin1"));
  await answered(page, () => page.goto(`${base}/?page=deliver&source=abh_newcomers`));
  await accessible(page, "upload");
  await page.getByLabel(/Dateien/).setInputFiles(file);
  await answered(page, () => page.getByRole("button", { name: "Hochladen und einlesen" }).click());
  const row = page.locator('#delivery-rejected tr[data-line="3"]');
  assert.equal(await row.count(), 1, "line 3 is among the rejected lines");
  const cells = await row.locator("td").allTextContents();
  assert.equal(cells[2], "Geburtsdatum");
  const summary = await page.locator("#delivery-summary").textContent();
  const [total, accepted, rejected, skipped] = [...summary.matchAll(/(\d[\d.]*)/g)].slice(0, 4).map((m) => number(m[1]));
  assert.equal(total, accepted + rejected + skipped, summary);
  // The file ends with a line break: what follows the last one is no line.
  assert.equal(total, lines.length - (lines.at(-1) === "" ? 1 : 0), "every line of the file is accounted for");
  await page.screenshot({ path: `${shots}deliver-upload.png`, fullPage: true });
});

await check("an upload gives the year its file lacks; the API answers that year with the file's own figures", async () => {
  await context.clearCookies();
  await login(page, users.STAT);
  const original = readFileSync(new URL("../../sample-data/realdata/koeln_bevoelkerung_stadtteile_2005-2012.csv", import.meta.url), "utf8");
  const [header, ...rest] = original.split("\n").filter((l) => l !== "");
  const lines = rest.filter((l) => l.split(",")[3] === "2012");
  const file = `${shots}koeln_2012_ohne_jahr.csv`;
  writeFileSync(file, [header, ...lines].join("\n") + "\n");
  // The file's line for the whole city (area 000), Einwohner (topic 005.10): the sum of its Stadtteile.
  const city = lines.map((l) => l.split(",")).find((f) => f[4] === "000" && f[1] === "005" && f[6] === "10");
  await answered(page, () => page.goto(`${base}/?page=deliver&source=koeln_jahr`));
  await accessible(page, "upload with a value to give");
  await page.getByLabel(/steht nicht in den Dateien/).fill("2030");
  const given = await page.locator('label[for="given-0"]').textContent();
  assert.match(given, /^Jahr /, `named as the explorer names the role: ${given}`);
  await page.getByLabel(/^Dateien/).setInputFiles(file);
  await answered(page, () => page.getByRole("button", { name: "Hochladen und einlesen" }).click());
  const summary = await page.locator("#delivery-summary").textContent();
  const [total, , rejected] = [...summary.matchAll(/(\d[\d.]*)/g)].slice(0, 4).map((m) => number(m[1]));
  assert.equal(total, lines.length + 1, summary);
  assert.equal(rejected, 0, summary);
  const auth = { Authorization: `Basic ${Buffer.from(`${users.STAT.user}:${users.STAT.token}`).toString("base64")}` };
  const url = `${base}/api/v1/query?cube=koeln_population&m=value&c=year%3D2030&c=topic%3D005.10&format=csv`;
  const response = await fetch(url, { headers: auth });
  assert.equal(response.status, 200, await response.clone().text());
  const [head, row] = csv(await response.text());
  assert.equal(Number(row[head.indexOf("value")]), Number(city[8]), "the year given holds the file's figures");
  await page.screenshot({ path: `${shots}deliver-given-year.png`, fullPage: true });
  // Two files of one upload for the same year: refused, nothing committed, and still each file's lines accounted.
  const [first, second] = [`${shots}koeln_a.csv`, `${shots}koeln_b.csv`];
  writeFileSync(first, [header, ...lines].join("\n") + "\n");
  writeFileSync(second, [header, ...lines.slice(1)].join("\n") + "\n");
  await page.getByLabel(/steht nicht in den Dateien/).fill("2031");
  await page.getByLabel(/^Dateien/).setInputFiles([first, second]);
  await answered(page, () => page.getByRole("button", { name: "Hochladen und einlesen" }).click());
  assert.match(await page.locator("#status").textContent(), /koeln_a\.csv and koeln_b\.csv both hold facts for year=2031/);
  const refused = await page.locator("#delivery-summary").textContent();
  assert.match(refused, /^Nichts übernommen\. Gelesen: koeln_a\.csv: Zeilen .*; koeln_b\.csv: Zeilen /, refused);
  for (const [file, expected] of [["koeln_a", lines.length + 1], ["koeln_b", lines.length]]) {
    const part = refused.slice(refused.indexOf(file));
    const [total, accepted, rejected, skipped] = [...part.matchAll(/(\d[\d.]*)/g)].slice(0, 4).map((m) => number(m[1]));
    assert.equal(total, expected, part);
    assert.equal(total, accepted + rejected + skipped, part);
  }
  const byYear = await fetch(`${base}/api/v1/query?cube=koeln_population&m=value&d=year&c=topic%3D005.10&format=csv`, {
    headers: auth,
  });
  assert.equal(byYear.status, 200, await byYear.clone().text());
  const [yearHead, ...years] = csv(await byYear.text());
  const held = years.map((r) => r[yearHead.indexOf("year")]);
  assert.ok(held.includes("2030") && !held.includes("2031"), `nothing of the refused upload was committed: ${held}`);
});

await check("logging out in one tab ends the session in every tab", async () => {
  await context.clearCookies();
  await login(page, users.STAT);
  const other = await context.newPage();
  await answered(other, () => other.goto(`${base}/`));
  assert.equal(await other.locator("#login").isHidden(), true, "the second tab is logged in too");
  await page.getByRole("button", { name: "Abmelden" }).click();
  await page.getByLabel("Benutzername").waitFor();
  await other.reload();
  await other.getByLabel("Benutzername").waitFor();
  assert.equal(await other.locator("#explorer").isHidden(), true, "the second tab shows nothing after the logout");
  await other.close();
});

await check("the login page passes axe-core", async () => {
  await context.clearCookies();
  await page.goto(`${base}/`);
  await page.getByLabel("Benutzername").waitFor();
  await accessible(page, "login");
  await page.screenshot({ path: `${shots}login.png` });
});

await browser.close();
if (failures) {
  console.log(`${failures} browser check(s) failed`);
  process.exit(1);
}
console.log("all browser checks passed");
