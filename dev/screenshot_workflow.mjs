#!/usr/bin/env node
// Loads workflows/diffedit.json into a running ComfyUI frontend, checks that it
// loads cleanly (no missing node types, no console/page errors about our nodes),
// prints the API prompt the frontend would queue for the DragEdit_* nodes, and
// saves a screenshot to docs/images/diffedit_workflow.png.
//
// Usage (a ComfyUI server with this pack under custom_nodes/ must be running):
//   node dev/screenshot_workflow.mjs [--url http://127.0.0.1:8199/]
//        [--workflow workflows/diffedit.json] [--out docs/images/diffedit_workflow.png]
//        [--chromium /usr/bin/chromium]
// Note: frontend 1.27.x fails to build CheckpointLoaderSimple (red node, missing
// from the prompt) when the server lacks UpscaleModelLoader, i.e. when ComfyUI's
// `spandrel` requirement is not importable; start the server with it available.
// Exit status: 0 ok, 1 load problem / error mentioning our nodes, 2 setup failure.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { OURS, arg, closeDialogs, quietSettings, serverAndBrowser } from "../web/tests/frontend/comfy_page.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const require = createRequire(path.join(repo, "web", "package.json"));
const { chromium } = require("playwright-core");

const { url: URL_, chromium: CHROMIUM } = serverAndBrowser("http://127.0.0.1:8199/");
const WORKFLOW = path.resolve(repo, arg("workflow", "workflows/diffedit.json"));
const OUT = path.resolve(repo, arg("out", "docs/images/diffedit_workflow.png"));

const workflow = JSON.parse(fs.readFileSync(WORKFLOW, "utf8"));
const ourIds = workflow.nodes.filter((n) => n.type.startsWith("DragEdit_")).map((n) => String(n.id));

async function main() {
  try {
    await quietSettings(URL_);
  } catch (e) {
    console.error(`could not reach ${URL_}: ${e.message}`);
    process.exit(2);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "comfy-shot-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1800, height: 900 },
    deviceScaleFactor: 1,
  });
  const errors = [];   // {kind, text}
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() === "error") {
      const loc = msg.location();
      errors.push({ kind: "console.error", text: msg.text() + (loc?.url ? `  [${loc.url}:${loc.lineNumber}]` : "") });
    }
  });
  page.on("pageerror", (err) => errors.push({ kind: "pageerror", text: String(err.stack || err) }));
  page.on("requestfailed", (req) =>
    errors.push({ kind: "requestfailed", text: `${req.url()} ${req.failure()?.errorText}` }));
  page.on("response", (res) => {
    if (res.status() >= 400) errors.push({ kind: `http ${res.status()}`, text: res.url() });
  });

  let failed = false;
  try {
    await page.goto(URL_, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(
      () => window.app?.graph && window.app?.canvas && window.LiteGraph && window.comfyAPI,
      null, { timeout: 60000 });
    // Let extensions finish registering and any startup dialog appear.
    await page.waitForTimeout(2500);
    await page.keyboard.press("Escape");
    await closeDialogs(page);

    const report = await page.evaluate(async (wf) => {
      const app = window.app;
      const registered = window.LiteGraph.registered_node_types;
      const missingTypes = [...new Set(wf.nodes.map((n) => n.type).filter((t) => !registered[t]))];
      let loadError = null;
      try {
        await app.loadGraphData(structuredClone(wf), true, true, "diffedit.json");
      } catch (e) {
        loadError = String(e?.stack || e);
      }
      const nodes = app.graph._nodes || app.graph.nodes;
      const loadedTypes = nodes.map((n) => n.type);
      const brokenNodes = nodes
        .filter((n) => n.has_errors || n.constructor?.name === "LGraphNode" && !registered[n.type])
        .map((n) => `${n.id}:${n.type}`);
      const t = window.LiteGraph.NODE_TITLE_HEIGHT;
      const box = (n) => [n.pos[0], n.pos[1] - t, n.size[0], n.size[1] + t];
      const overlaps = [];
      for (const a of nodes) for (const b of nodes) {
        if (a.id >= b.id) continue;
        const [ax, ay, aw, ah] = box(a), [bx, by, bw, bh] = box(b);
        if (ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah)
          overlaps.push(`${a.id} "${a.title}" / ${b.id} "${b.title}"`);
      }
      return { missingTypes, loadError, nodeCount: nodes.length, loadedTypes, brokenNodes, overlaps,
               linkCount: Object.keys(app.graph.links ?? {}).length || app.graph.links?.size || 0 };
    }, workflow);
    await page.waitForTimeout(1000);

    // The frontend reports missing node types in a dialog; look for it.
    const dialogText = await page.evaluate(() =>
      [...document.querySelectorAll(".p-dialog, [role=dialog]")].map((d) => d.innerText).join("\n---\n"));
    const missingDialog = /missing/i.test(dialogText);
    await closeDialogs(page);

    // Fit the whole graph into the canvas (tighter than the built-in Fit View,
    // leaving room for the canvas toolbar at the bottom right).
    const zoom = await page.evaluate(() => {
      const app = window.app;
      const t = window.LiteGraph.NODE_TITLE_HEIGHT;
      let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
      for (const n of app.graph._nodes) {
        let [x, y, w, h] = n.boundingRect ?? [0, 0, 0, 0];   // [0,0,0,0] until first drawn
        if (!w || !h) [x, y, w, h] = [n.pos[0], n.pos[1] - t, n.size[0], n.size[1] + t];
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
      }
      const el = app.canvas.canvas.getBoundingClientRect();
      const [ml, mr, mt, mb] = [24, 24, 24, 64];
      const aw = el.width - ml - mr, ah = el.height - mt - mb;
      const s = Math.min(aw / (x1 - x0), ah / (y1 - y0), 1.5);
      app.canvas.ds.scale = s;
      app.canvas.ds.offset = [(ml + (aw - s * (x1 - x0)) / 2) / s - x0, (mt + (ah - s * (y1 - y0)) / 2) / s - y0];
      app.canvas.deselectAll?.();
      app.canvas.setDirty(true, true);
      return s;
    });
    await page.waitForTimeout(1500);
    await page.mouse.move(1790, 890);

    const prompt = await page.evaluate(async (ids) => {
      const p = await window.app.graphToPrompt();
      const out = {};
      for (const id of ids) out[id] = p.output[id];
      return { ours: out, all: Object.fromEntries(Object.entries(p.output).map(([k, v]) => [k, v.class_type])) };
    }, ourIds);

    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    await page.screenshot({ path: OUT });

    console.log(`graph: ${report.nodeCount} nodes, ${report.linkCount} links (workflow has ${workflow.nodes.length} nodes, ${workflow.links.length} links)`);
    console.log(`missing node types (not registered): ${JSON.stringify(report.missingTypes)}`);
    console.log(`missing-nodes dialog shown: ${missingDialog}`);
    if (dialogText.trim()) console.log(`dialog text:\n${dialogText}`);
    if (report.loadError) console.log(`loadGraphData threw:\n${report.loadError}`);
    if (report.brokenNodes.length) console.log(`nodes with errors: ${report.brokenNodes.join(", ")}`);
    if (report.overlaps.length) console.log(`overlapping nodes (layout only): ${report.overlaps.join("; ")}`);
    console.log(`API prompt node classes: ${JSON.stringify(prompt.all)}`);
    console.log("API prompt for DragEdit nodes:");
    console.log(JSON.stringify(prompt.ours, null, 2));
    console.log(`zoom: ${zoom.toFixed(3)}`);
    console.log(`screenshot: ${OUT} (${fs.statSync(OUT).size} bytes)`);

    const ourErrors = errors.filter((e) => OURS.test(e.text));
    console.log(`errors seen (${errors.length}, ${ourErrors.length} mentioning DragEdit / this pack):`);
    for (const e of errors) console.log(`  ${OURS.test(e.text) ? "OURS " : ""}[${e.kind}] ${e.text}`);

    if (report.missingTypes.length || missingDialog || report.loadError || report.brokenNodes.length
        || report.nodeCount !== workflow.nodes.length || ourErrors.length
        || ourIds.some((id) => !prompt.ours[id])) {
      failed = true;
      console.log(`FAIL: ${ourErrors.length} error(s) mention our nodes, ${report.missingTypes.length} missing type(s), `
        + `${report.brokenNodes.length} node(s) with errors; see above`);
    } else {
      console.log("OK: workflow loaded with no missing nodes and no errors mentioning DragEdit");
    }
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
