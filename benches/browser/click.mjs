// Click to rendered answer in the explorer, in Debian's headless Chromium (playwright-core from tests/browser):
// per question, the explorer opens the question's view, then the user clicks "Zeilen und Spalten tauschen" CLICKS
// times; each click asks the server anew and redraws. The explorer marks the click (`kubus-asked`) and measures to
// the drawn table and chart (`kubus-answer`, Performance API); this prints those durations as JSON lines.
// Usage: node click.mjs BASE_URL USER:TOKEN QUESTIONS.json [CLICKS]
import { chromium } from "../../tests/browser/node_modules/playwright-core/index.mjs";
import { readFileSync } from "node:fs";

const [base, credentials, file, clicks = "10"] = process.argv.slice(2);
const [user, token] = credentials.split(":");
const questions = JSON.parse(readFileSync(file, "utf8"));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${base}/`);
await page.getByLabel("Benutzername").fill(user);
await page.getByLabel("Zugangsschlüssel").fill(token);
await page.getByRole("button", { name: "Anmelden" }).click();
await page.waitForFunction(() => document.body.dataset.answered);
for (const [name, view] of Object.entries(questions)) {
  await page.goto(`${base}/${view}`);
  await page.waitForFunction(() => document.body.dataset.answered, null, { timeout: 60000 });
  const status = await page.locator("#status").textContent();
  if (!status.startsWith("Ergebnis")) throw new Error(`${name}: ${status}`);
  const times = [];
  for (let i = 0; i < Number(clicks); i++) {
    const before = await page.evaluate(() => document.body.dataset.answered);
    await page.getByRole("button", { name: "Zeilen und Spalten tauschen" }).click();
    await page.waitForFunction((b) => document.body.dataset.answered !== b, before, { timeout: 60000 });
    times.push(await page.evaluate(() => performance.getEntriesByName("kubus-answer").at(-1).duration));
  }
  console.log(JSON.stringify({ question: name, ms: times }));
}
await browser.close();
