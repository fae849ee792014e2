#!/usr/bin/env node
// The shipped templates in the real ComfyUI frontend (driven by tests/host/test_templates.py).
//
//   node web/tests/frontend/templates_frontend.mjs --url http://127.0.0.1:8188/ [--chromium /usr/bin/chromium]
//
// Needs a running stock ComfyUI with this pack under custom_nodes/, the stock input/example.png, and a file of
// the checkpoint name the templates use (validation only lists names). Loads each workflows/*.json through the
// frontend's own loader and presses Queue (app.queuePrompt): the server must accept the prompt as it is (HTTP 200,
// no node errors). In the real-image template, the point editor must show the picture in 512x512 pixels.
// Prints one JSON summary on stdout; exit status 0 when every check passed, 1 otherwise, 2 on a setup failure.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  NODE_CLASS, exposeEditorState, loadWorkflow, openComfy, queueFromPage, runSummaryScript, serverAndBrowser,
} from "./comfy_page.mjs";

const { url: URL_, chromium: CHROMIUM } = serverAndBrowser();
const WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "workflows");
const TEMPLATES = fs.readdirSync(WORKFLOWS).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
const DRAG_NODES = new Set([NODE_CLASS, "DragEdit_GoodDragLatentOptimize"]);

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

async function main() {
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM });
  const { page, errors } = session;
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
