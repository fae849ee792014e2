#!/usr/bin/env node
// The shipped templates in the real ComfyUI frontend (driven by tests/host/test_templates.py).
//
//   node web/tests/frontend/templates_frontend.mjs --url http://127.0.0.1:8188/ [--mode classic|nodes2]
//        [--chromium /usr/bin/chromium]
//
// Needs a running stock ComfyUI with this pack under custom_nodes/, the stock input/example.png, and a file of
// the checkpoint name the templates use (validation only lists names). Loads each workflows/*.json through the
// frontend's own loader and presses Queue (app.queuePrompt): the server must accept the prompt as it is (HTTP 200,
// no node errors). In the real-image template, the point editor must show the picture in 512x512 pixels. Every
// editor (Drag Latent Optimize, GoodDrag Latent Optimize, Drag Region Warp) keeps its picture at least
// MIN_PICTURE_HEIGHT tall as the template opens it.
// Prints one JSON summary on stdout; exit status 0 when every check passed, 1 otherwise, 2 on a setup failure.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  MIN_PICTURE_HEIGHT, MODES, NODE_CLASS, WARP_CLASS, exposeEditorState, focusNodes, loadWorkflow, openComfy,
  queueFromPage, runSummaryScript, serverAndBrowser, settledEditor,
} from "./comfy_page.mjs";

const { url: URL_, chromium: CHROMIUM, mode: MODE } = serverAndBrowser();
const WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "workflows");
const TEMPLATES = fs.readdirSync(WORKFLOWS).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
const DRAG_NODES = new Set([NODE_CLASS, "DragEdit_GoodDragLatentOptimize"]);
const EDITOR_NODES = new Set([...DRAG_NODES, WARP_CLASS]);

const summary = { url: URL_, ok: false, checks: {}, failures: [] };
const check = (name, ok, detail) => {
  summary.checks[name] = { ok: Boolean(ok), ...(detail === undefined ? {} : { detail }) };
  if (!ok) summary.failures.push(name);
};

async function queueAsOpened(page) {
  const response = page.waitForResponse((r) => /\/prompt(\?|$)/.test(r.url()) && r.request().method() === "POST",
    { timeout: 20000 });
  const queueError = await queueFromPage(page);
  const res = await response;
  return { status: res.status(), body: await res.json().catch(() => null), queueError };
}

/** The picture height (CSS px) of each editor in the open graph, each node brought into view first. */
async function editorHeights(page) {
  const ids = await page.evaluate((types) => window.app.graph.nodes.filter((n) => types.includes(n.type))
    .map((n) => n.id), [...EDITOR_NODES]);
  const heights = {};
  for (const id of ids) {
    await focusNodes(page, [id]); // nodes rendered by Vue are laid out once in view
    const info = await settledEditor(page, id);
    const type = await page.evaluate((nodeId) => window.app.graph.getNodeById(nodeId).type, id);
    heights[`${type}#${id}`] = info.client?.height ?? null;
  }
  return heights;
}

async function main() {
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM, mode: MODE });
  const { page, errors } = session;
  summary.frontend = session.frontend;
  check("mode_applied", session.frontend.vueNodes === MODES[MODE], session.frontend);
  summary.editor_heights = {};
  try {
    await exposeEditorState(page);
    for (const name of TEMPLATES) {
      session.setPhase(name);
      const workflow = JSON.parse(fs.readFileSync(path.join(WORKFLOWS, `${name}.json`), "utf8"));
      check(`${name}_loads`, (await loadWorkflow(page, workflow, `${name}.json`)) === null);
      const missing = await page.evaluate(() => window.app.graph.nodes.filter((n) => n.has_errors).map((n) => n.type));
      check(`${name}_no_broken_nodes`, missing.length === 0, missing);
      if (name.endsWith("real_image")) {
        let size = null;
        for (let i = 0; i < 50 && !size?.width; i++) {
          await page.waitForTimeout(200);
          size = await page.evaluate((types) => {
            const node = window.app.graph.nodes.find((n) => types.includes(n.type));
            return window.__dragEdit.state(node.id)?.editor?.imageSize ?? null;
          }, [...DRAG_NODES]);
        }
        check(`${name}_editor_shows_512px`, size?.width === 512 && size?.height === 512, size);
      }
      const heights = await editorHeights(page);
      summary.editor_heights[name] = heights;
      check(`${name}_editor_heights`, Object.values(heights).every((h) => h >= MIN_PICTURE_HEIGHT), heights);
      const queued = await queueAsOpened(page);
      check(`${name}_queued_as_opened`, queued.status === 200 && !queued.queueError &&
        Object.keys(queued.body?.node_errors ?? {}).length === 0, queued);
    }
  } catch (e) {
    summary.failures.push("exception");
    summary.exception = String(e?.stack || e);
  } finally {
    summary.errors = errors.filter((e) => e.ours);
    check("no_errors_from_pack", summary.errors.length === 0);
    summary.ok = summary.failures.length === 0;
    await session.close();
  }
  return summary;
}

runSummaryScript(main);
