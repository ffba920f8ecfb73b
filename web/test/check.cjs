// Drives the digit pad in headless Chromium (playwright-core, pointed at the system's
// chromium): draws each digit of strokes.cjs through pointer events (mouse strokes, and
// touch strokes through CDP for some), and for every model records what the page shows
// (the 28x28 image, the digit, the top three) with the canvas saved as PNG, so that
// .ci/steps/38-digit-pad.sh can check them against `softnet predict` on the same pixels.
//
// Usage: node web/test/check.cjs URL OUT_DIR
// Env:   CHROMIUM (default /usr/bin/chromium); NODE_PATH must find playwright-core.
// Writes OUT_DIR/results.json, OUT_DIR/png/NAME.png, OUT_DIR/digit-pad*.png.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");
const { digits } = require("./strokes.cjs");

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node check.cjs URL OUT_DIR");
  process.exit(2);
}
const MODELS = ["softmax", "mlp", "cnn"];
// Drawn with a finger (CDP touch events) instead of the mouse.
const TOUCH = new Set(["one", "four", "seven"]);

async function main() {
  fs.mkdirSync(path.join(out, "png"), { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const failures = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, deviceScaleFactor: 1, hasTouch: true });
    const page = await context.newPage();
    page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
    page.on("console", (m) => console.log(`  [page ${m.type()}] ${m.text()}`));
    const cdp = await context.newCDPSession(page);
    await page.goto(url);
    await page.waitForSelector('#status[data-ready="1"]', { timeout: 60000 });
    const status = await page.$eval("#status", (e) => ({ text: e.textContent, error: e.classList.contains("error") }));
    console.log(`page: ${status.text}`);
    if (status.error) throw new Error(`the page reports a problem: ${status.text}`);
    for (const m of MODELS) {
      if (await page.$eval(`#model-${m}`, (e) => e.disabled)) throw new Error(`model ${m} is not available in the page`);
    }

    const box = await page.$eval("#pad", (e) => {
      const r = e.getBoundingClientRect();
      return { x: r.left, y: r.top, w: r.width, h: r.height };
    });
    const at = ([x, y]) => ({ x: box.x + (x / 200) * box.w, y: box.y + (y / 200) * box.h });
    const updates = () => page.$eval("body", (b) => Number(b.dataset.updates));
    // Waits for the page to have recomputed after an action (at least one update after it).
    async function settled(before) {
      await page.waitForFunction((n) => Number(document.body.dataset.updates) > n, before);
    }

    async function mouseStroke(pts) {
      await page.mouse.move(at(pts[0]).x, at(pts[0]).y);
      await page.mouse.down();
      for (const p of pts.slice(1)) await page.mouse.move(at(p).x, at(p).y, { steps: 2 });
      await page.mouse.up();
    }
    async function touchStroke(pts) {
      const point = (p) => [{ x: at(p).x, y: at(p).y, id: 1, radiusX: 2, radiusY: 2, force: 1 }];
      await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: point(pts[0]) });
      for (const p of pts.slice(1)) await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: point(p) });
      await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    }

    const results = [];
    const correct = Object.fromEntries(MODELS.map((m) => [m, 0]));
    for (const d of digits()) {
      let before = await updates();
      await page.click("#clear");
      await settled(before);
      if ((await page.$eval("#seen", (e) => e.dataset.pixels)) !== "") {
        throw new Error("the 28x28 image is not empty after Clear");
      }
      before = await updates();
      for (const s of d.strokes) await (TOUCH.has(d.name) ? touchStroke(s) : mouseStroke(s));
      await settled(before);
      const pngUrl = await page.$eval("#pad", (c) => c.toDataURL("image/png"));
      const png = `png/${d.name}.png`;
      fs.writeFileSync(path.join(out, png), Buffer.from(pngUrl.split(",")[1], "base64"));
      const entry = { name: d.name, label: d.label, input: TOUCH.has(d.name) ? "touch" : "mouse", png, models: {} };
      for (const m of MODELS) {
        if (!(await page.isChecked(`#model-${m}`))) {
          before = await updates();
          await page.check(`#model-${m}`);
          await settled(before);
        }
        const seen = await page.evaluate(() => ({
          pixels: document.getElementById("seen").dataset.pixels,
          digit: document.getElementById("digit").dataset.class,
          shown: document.getElementById("digit").textContent,
          top3: JSON.parse(document.getElementById("top3").dataset.top3),
          rows: document.querySelectorAll("#top3 li").length,
        }));
        if (!seen.pixels) throw new Error(`${d.name}: no 28x28 image after drawing`);
        if (seen.digit === "" || seen.shown !== seen.digit || seen.rows !== 3) {
          throw new Error(`${d.name} (${m}): the page shows no complete prediction: ${JSON.stringify(seen)}`);
        }
        entry.pixels = seen.pixels.split(",").map(Number);
        entry.models[m] = { digit: Number(seen.digit), top3: seen.top3 };
        if (Number(seen.digit) === d.label) correct[m]++;
      }
      const line = MODELS.map((m) => `${m} ${entry.models[m].digit} (${(100 * entry.models[m].top3[0][1]).toFixed(1)}%)`);
      console.log(`${d.name} (${entry.input}): ${line.join(", ")}`);
      results.push(entry);
      if (d.name === "three") await page.screenshot({ path: path.join(out, "digit-pad-three.png") });
    }
    console.log(`drawn digits read right: ${MODELS.map((m) => `${m} ${correct[m]}/10`).join(", ")}`);
    await page.screenshot({ path: path.join(out, "digit-pad.png") });
    fs.writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 1));
  } finally {
    await browser.close();
  }
  if (failures.length) throw new Error(failures.join("\n"));
}

main().catch((e) => {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
});
