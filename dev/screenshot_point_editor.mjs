#!/usr/bin/env node
// Screenshot of the Drag Latent Optimize point editor in the real ComfyUI frontend,
// with pairs placed by real clicks, for the README (docs/images/drag_point_editor.png).
//
// Usage (a ComfyUI server with this pack under custom_nodes/ must be running):
//   node dev/screenshot_point_editor.mjs [--url http://127.0.0.1:8199/]
//        [--upload picture.png]            upload it (POST /upload/image) and show it
//        [--image name.png]                or use a file already in the server's input/
//        [--workflow workflows/drag_real_image.json]   default: that file if present,
//                                          else a minimal LoadImage -> Drag Latent Optimize graph
//        [--pairs "x,y>x,y;x,y>x,y"]       handle>target in image pixels (default: 3 pairs)
//        [--out docs/images/drag_point_editor.png] [--malformed-out file.png]
//        [--mode classic|nodes2] [--chromium /usr/bin/chromium]
// The README's picture is synthetic; make it with the host test's generator:
//   python -c "from tests.host.scene import write_picture; write_picture('/tmp/landscape.png')"
//   node dev/screenshot_point_editor.mjs --url ... --upload /tmp/landscape.png
// Exit status: 0 ok, 1 a check failed (pairs not stored as clicked, errors from the pack), 2 setup failure.

import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import fs from "node:fs";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
// resolve playwright-core from web/node_modules through the shared page helpers
createRequire(path.join(repo, "web", "package.json")).resolve("playwright-core");
const helpers = await import(pathToFileURL(path.join(repo, "web", "tests", "frontend", "comfy_page.mjs")).href);
const {
  NODE_CLASS, arg, editorInfo, exposeEditorState, focusNodes, imageToPage, loadWorkflow, minimalWorkflow, nodesClip,
  openComfy, serverAndBrowser,
} = helpers;

const { url: URL_, chromium: CHROMIUM, mode: MODE } = serverAndBrowser("http://127.0.0.1:8199/");
const UPLOAD = arg("upload", null);
const DEFAULT_WORKFLOW = path.join(repo, "workflows", "drag_real_image.json");
const WORKFLOW = arg("workflow", fs.existsSync(DEFAULT_WORKFLOW) ? DEFAULT_WORKFLOW : null);
const OUT = path.resolve(repo, arg("out", "docs/images/drag_point_editor.png"));
const MALFORMED_OUT = arg("malformed-out", null);
const PAIRS = arg("pairs", "150,262>232,200;345,300>395,330;412,92>350,64")
  .split(";")
  .map((s) => s.split(">").map((p) => p.split(",").map(Number)))
  .map(([handle, target]) => ({ handle, target }));

async function upload(file) {
  const form = new FormData();
  form.append("image", new Blob([fs.readFileSync(file)], { type: "image/png" }), path.basename(file));
  form.append("overwrite", "true");
  const res = await fetch(new URL("upload/image", URL_), { method: "POST", body: form });
  if (!res.ok) throw new Error(`upload failed: HTTP ${res.status}`);
  const { name, subfolder } = await res.json();
  return subfolder ? `${subfolder}/${name}` : name;
}

/** The workflow to show, with its LoadImage pointed at `imageName`; returns { workflow, nodeId }. */
function chooseWorkflow(imageName) {
  if (!WORKFLOW) return { workflow: minimalWorkflow({ imageName, dragNodeSize: [440, 640] }), nodeId: 2, file: null };
  const workflow = JSON.parse(fs.readFileSync(path.resolve(repo, WORKFLOW), "utf8"));
  const node = workflow.nodes.find((n) => n.type === NODE_CLASS);
  if (!node) throw new Error(`${WORKFLOW} has no ${NODE_CLASS} node`);
  node.widgets_values[0] = "[]"; // the screenshot's pairs are clicked below
  for (const n of workflow.nodes) if (n.type === "LoadImage") n.widgets_values[0] = imageName;
  return { workflow, nodeId: node.id, file: WORKFLOW };
}

async function main() {
  const imageName = UPLOAD ? await upload(UPLOAD) : arg("image", "scene.png");
  const { workflow, nodeId, file } = chooseWorkflow(imageName);
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM, mode: MODE,
    viewport: { width: 1400, height: 1000 } });
  const { page, errors } = session;
  let failed = false;
  try {
    await exposeEditorState(page);
    session.setPhase("load");
    const loadError = await loadWorkflow(page, workflow, file ? path.basename(file) : "drag_point_editor.json");
    if (loadError) throw new Error(`loadGraphData: ${loadError}`);
    await focusNodes(page, [nodeId], { margin: 90, maxScale: 1.3 }); // clear of the top bar
    let info;
    for (let i = 0; i < 100; i++) {
      await page.waitForTimeout(100);
      const next = await editorInfo(page, nodeId);
      if (next.imageLoaded && info && JSON.stringify(next.rect) === JSON.stringify(info.rect)) break;
      info = next;
    }
    if (!info?.imageLoaded) throw new Error(`the editor shows no picture: ${JSON.stringify(info)}`);

    session.setPhase("click");
    for (const pair of PAIRS) {
      for (const end of ["handle", "target"]) {
        await page.mouse.click(...imageToPage(pair[end], info));
        await page.waitForTimeout(60);
      }
    }
    const after = await editorInfo(page, nodeId);
    console.log(`drag_points: ${after.widgetValue}`);
    if (JSON.parse(after.widgetValue).length !== PAIRS.length) {
      failed = true;
      console.log(`FAIL: expected ${PAIRS.length} pairs`);
    }
    // park the mouse outside the editor (no hover ring), deselect (no selection toolbox), clip to the node
    await page.mouse.move(5, 995);
    await page.evaluate(() => {
      window.app.canvas.deselectAll?.();
      window.app.canvas.setDirty(true, true);
    });
    await page.waitForTimeout(400);
    const clip = await nodesClip(page, [nodeId]);
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    await page.screenshot({ path: OUT, clip });
    console.log(`screenshot: ${OUT} (${fs.statSync(OUT).size} bytes)`);

    if (MALFORMED_OUT) {
      session.setPhase("malformed");
      const bad = minimalWorkflow({ imageName, dragPoints: '[{"handle": [100, 120], "target": [' });
      await loadWorkflow(page, bad, "malformed.json");
      await focusNodes(page, [2], { margin: 30, maxScale: 1.4 });
      await page.waitForTimeout(1200);
      await page.screenshot({ path: path.resolve(MALFORMED_OUT) });
      console.log(`malformed screenshot: ${MALFORMED_OUT}; error: ${(await editorInfo(page, 2)).error?.message}`);
    }
  } finally {
    const ours = errors.filter((e) => e.ours || e.phase !== "startup");
    console.log(`console/page errors: ${errors.length} (${ours.length} from the pack or after startup)`);
    for (const e of ours) console.log(`  [${e.phase} ${e.kind}] ${e.text}`);
    if (ours.length) failed = true;
    await session.close();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
