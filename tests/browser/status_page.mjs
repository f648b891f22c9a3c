// Drives Debian's chromium headless through the engine's status page for tests/e2e/test_status_page.py.
// Protocol on stdin/stdout, one line each: prints "ready" once node NODE shows online; reads a task
// id and waits for the page to show that task done, by tenant acme, whose row shows the 2 URLs
// against its quota of 100; checks the fleet (FLEET nodes online, NODE's group, a page of 100
// rows with a next page, and a search that finds the 10 nodes sim-0199*); prints "done"; reads
// "killed" and waits for the page (refreshing itself, never reloaded) to show NODE offline, first
// in the table, and its group's node offline; saves a screenshot; prints a JSON summary and exits
// 0. Any failure prints "error: ..." and exits 1.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url, node, screenshot, fleet] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => (await lines.next()).value.trim();

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("requestfailed", (request) => errors.push("request failed: " + request.url()));
  await page.goto(url);
  await page.waitForSelector(`tr[data-node="${node}"] td.online`, { timeout: 10000 });
  console.log("ready");

  const task = await nextLine();
  await page.waitForSelector(`tr[data-task="${task}"] td.done`, { timeout: 10000 });
  const progress = await page.$eval(`tr[data-task="${task}"] progress`, (bar) => [bar.value, bar.max]);
  if (progress[0] !== progress[1]) throw new Error(`progress bar at ${progress[0]}/${progress[1]}`);
  const tenant = await page.$eval(`tr[data-task="${task}"] td:nth-child(2)`, (td) => td.textContent);
  if (tenant !== "acme") throw new Error(`task shown for tenant '${tenant}'`);
  await page.waitForFunction(() => {
    const td = document.querySelector('tr[data-tenant="acme"] td.purge-urls');
    return td && td.textContent === "2 / 100";
  }, null, { timeout: 5000 });
  if (!(await page.$('tr[data-tenant="other"]'))) throw new Error("tenant 'other' not listed");
  await page.waitForFunction((n) => document.getElementById("nodes-online").textContent === `${n} online`,
                             fleet, { timeout: 10000 });
  const rows = await page.$$eval("#nodes tbody tr", (trs) => trs.length);
  if (rows !== 100) throw new Error(`${rows} node rows on a page, not 100`);
  if (await page.$eval("#nodes-next", (b) => b.disabled)) throw new Error("no next page of nodes");
  const group = await page.$eval('tr[data-group="eu"]', (tr) => [...tr.cells].map((td) => td.textContent));
  if (group[1] !== "1" || group[2] !== "0") throw new Error(`group eu shows ${group}`);
  await page.fill("#node-search", "sim-0199");
  await page.waitForFunction(() => {
    const ids = [...document.querySelectorAll("#nodes tbody tr")].map((tr) => tr.dataset.node);
    return ids.length === 10 && ids.every((id) => id.startsWith("sim-0199"));
  }, null, { timeout: 5000 });
  await page.fill("#node-search", "");
  console.log("done");

  if ((await nextLine()) !== "killed") throw new Error("unexpected input");
  const killedAt = Date.now();
  await page.waitForSelector(`tr[data-node="${node}"] td.offline`, { timeout: 5000 });
  const offlineAfterMs = Date.now() - killedAt;
  const first = await page.$eval("#nodes tbody tr", (tr) => tr.dataset.node);
  if (first !== node) throw new Error(`the first node row is ${first}, not the offline ${node}`);
  await page.waitForFunction(() => document.querySelector('tr[data-group="eu"] td:nth-child(3)').textContent === "1",
                             null, { timeout: 5000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("console errors: " + errors.join("; "));
  console.log(JSON.stringify({ offlineAfterMs, progress }));
} catch (error) {
  console.log("error: " + error.message + (errors.length ? " | console: " + errors.join("; ") : ""));
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit();
}
