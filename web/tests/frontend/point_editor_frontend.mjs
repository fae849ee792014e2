#!/usr/bin/env node
// The point editor inside the real ComfyUI frontend (driven by tests/host/test_frontend.py).
//
//   node web/tests/frontend/point_editor_frontend.mjs --url http://127.0.0.1:8188/ [--mode classic|nodes2] \
//        --image scene.png --width 512 --height 384 [--chromium /usr/bin/chromium]
//
// Needs a running ComfyUI with this pack under custom_nodes/ and the picture in its input/.
// Loads LoadImage -> Drag Latent Optimize, clicks two pairs on the editor canvas, checks the
// widget value, graphToPrompt() and a real queue request (POST /prompt intercepted, nothing
// runs), the editor's layout (picture height, the status line under the picture, legible
// controls), saves and reloads the workflow, then loads workflows with malformed drag_points.
// Prints one JSON summary on stdout; exit status 0 when every check passed, 1 otherwise,
// 2 when the page could not be driven at all.

import {
  NODE_CLASS, arg, checkLayout, clickEditorButton, closeDialogs, serverAndBrowser, editorInfo, editorLayout,
  exposeEditorState, finishSummary, focusNodes, imageToPage, isBlue, isRed, loadWorkflow, minimalWorkflow, newSummary,
  openComfy, queueFromPage, recordException, runSummaryScript, sampleEditor, settledEditor, waitForEditor,
} from "./comfy_page.mjs";

const { url: URL_, chromium: CHROMIUM, mode: MODE } = serverAndBrowser();
const IMAGE = arg("image", "scene.png");
const SIZE = { width: Number(arg("width", 512)), height: Number(arg("height", 384)) };
const NODE_ID = 2;
// Two pairs in image pixels, away from each other and from the borders.
const PAIRS = [
  { handle: [0.25, 0.55], target: [0.45, 0.4] },
  { handle: [0.7, 0.7], target: [0.85, 0.3] },
].map((p) => ({
  handle: [Math.round(p.handle[0] * SIZE.width), Math.round(p.handle[1] * SIZE.height)],
  target: [Math.round(p.target[0] * SIZE.width), Math.round(p.target[1] * SIZE.height)],
}));
const MALFORMED = [
  { label: "truncated JSON", value: '[{"handle": [100, 120], "target": [', expect: /invalid JSON/ },
  { label: "object instead of a list", value: '{"handle": [1, 2], "target": [3, 4]}', expect: /JSON array of pairs/ },
  // the frontend's text widget turns a non-string into its String() form ("[object Object]")
  { label: "non-string value", value: [{ handle: [1, 2], target: [3, 4] }], expect: /invalid JSON/ },
];

const results = newSummary(URL_);
const { summary, check } = results;

/** Pairs equal within `tol` image px (click positions land on fractional screen pixels). */
function samePairs(a, b, tol) {
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  return a.every((p, i) => ["handle", "target"].every((end) =>
    p[end].every((v, k) => Math.abs(v - b[i][end][k]) <= tol)));
}

const waitEditor = (page, predicate, what, timeout) => waitForEditor(page, NODE_ID, predicate, what, timeout);
const stableEditor = (page) => settledEditor(page, NODE_ID);

async function main() {
  const t0 = Date.now();
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM, mode: MODE });
  const { page, errors } = session;
  try {
    summary.pack_scripts = session.packScripts;
    check("extension_scripts_served", Object.keys(session.packScripts).length >= 3 &&
      Object.values(session.packScripts).every((s) => s === 200 || s === 304), session.packScripts);
    await exposeEditorState(page);

    // 1. load the workflow, wait for the picture
    session.setPhase("load");
    const loadError = await loadWorkflow(page, minimalWorkflow({ imageName: IMAGE }));
    check("workflow_loads", !loadError, loadError ?? undefined);
    await focusNodes(page, [NODE_ID]);
    const loaded = await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible && i.client.width > 50,
      "the editor to show the picture");
    check("editor_shows_picture", loaded.imageSize?.width === SIZE.width && loaded.imageSize?.height === SIZE.height,
      loaded.imageSize);
    check("text_widget_hidden", loaded.widgetHidden);

    // 2. click two pairs
    session.setPhase("click");
    const clicks = [];
    for (const pair of PAIRS) {
      for (const end of ["handle", "target"]) {
        const info = await stableEditor(page); // the graph may still be settling its layout
        const [x, y] = imageToPage(pair[end], info);
        clicks.push({ page: [Math.round(x * 10) / 10, Math.round(y * 10) / 10], rect: info.rect });
        await page.mouse.click(x, y);
        await page.waitForTimeout(60);
      }
    }
    summary.clicks = clicks;
    const clicked = await waitEditor(page, (i) => i.pairs.length === PAIRS.length, "two pairs");
    // one screen pixel is 1/scale image pixels; allow that plus the 0.1 px rounding
    const tol = (loaded.imageSize.width / loaded.rect.width) * 0.75 + 0.06;
    let widgetPairs = null;
    try {
      widgetPairs = JSON.parse(clicked.widgetValue);
    } catch { /* reported below */ }
    summary.widget_value = clicked.widgetValue;
    check("widget_holds_clicked_pairs", samePairs(widgetPairs, PAIRS, tol), { expected: PAIRS, tolerance: tol });
    const colors = await sampleEditor(page, NODE_ID, widgetPairs.flatMap((p) => [p.handle, p.target]));
    check("pairs_drawn", colors.every((c, i) => (i % 2 ? isBlue(c) : isRed(c))), colors);
    const layout = await editorLayout(page, NODE_ID);
    summary.layout = layout;
    checkLayout(check, "editor", layout);

    // 3. the API prompt carries exactly the widget's JSON
    session.setPhase("prompt");
    const api = await page.evaluate(async (id) => {
      const p = await window.app.graphToPrompt();
      return { node: p.output[String(id)], classes: Object.values(p.output).map((n) => n.class_type) };
    }, NODE_ID);
    summary.api_prompt_drag_points = api.node?.inputs?.drag_points;
    check("api_prompt_carries_pairs", api.node?.class_type === NODE_CLASS &&
      api.node.inputs.drag_points === clicked.widgetValue, api.node?.inputs);

    // the real queue path: POST /prompt is answered here, nothing is executed
    let queued = null;
    await page.route(/\/prompt(\?|$)/, async (route) => {
      const req = route.request();
      if (req.method() !== "POST") return route.continue();
      queued = req.postDataJSON();
      await route.fulfill({ status: 200, contentType: "application/json",
        body: JSON.stringify({ prompt_id: "00000000-0000-4000-8000-000000000000", number: 1, node_errors: {} }) });
    });
    const queueError = await queueFromPage(page);
    for (let i = 0; i < 50 && !queued; i++) await page.waitForTimeout(100);
    await page.unroute(/\/prompt(\?|$)/);
    const queuedPoints = queued?.prompt?.[String(NODE_ID)]?.inputs?.drag_points;
    summary.queued_drag_points = queuedPoints ?? null;
    check("queue_request_carries_pairs", !queueError && queuedPoints === clicked.widgetValue,
      queueError ?? (queued ? undefined : "no POST /prompt seen"));

    // 4. save (serialize + JSON text, as a file would be), clear, reload
    session.setPhase("reload");
    const saved = await page.evaluate(() => JSON.stringify(window.app.graph.serialize()));
    const savedNode = JSON.parse(saved).nodes.find((n) => n.id === NODE_ID);
    // drag_points, the seven numbers, and the (empty) painted region last
    check("saved_widgets_values", savedNode?.widgets_values?.[0] === clicked.widgetValue &&
      savedNode.widgets_values.length === 9 && savedNode.widgets_values[8] === "", savedNode?.widgets_values);
    await page.evaluate(() => window.app.graph.clear());
    await page.waitForTimeout(300);
    const reloadError = await loadWorkflow(page, JSON.parse(saved), "dragedit-saved.json");
    await focusNodes(page, [NODE_ID]);
    const reloaded = await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible && i.pairs.length > 0,
      "the reloaded editor");
    summary.reloaded_value = reloaded.widgetValue;
    check("reload_same_pairs", !reloadError && reloaded.widgetValue === clicked.widgetValue &&
      JSON.stringify(reloaded.pairs) === JSON.stringify(widgetPairs), reloadError ?? undefined);
    const colors2 = await sampleEditor(page, NODE_ID, widgetPairs.flatMap((p) => [p.handle, p.target]));
    check("reload_pairs_drawn", colors2.every((c, i) => (i % 2 ? isBlue(c) : isRed(c))), colors2);

    // 5. malformed drag_points in a shared workflow
    session.setPhase("malformed");
    summary.malformed = [];
    for (const bad of MALFORMED) {
      const before = errors.length;
      const err = await loadWorkflow(page, minimalWorkflow({ imageName: IMAGE, dragPoints: bad.value }), "bad.json");
      await focusNodes(page, [NODE_ID]);
      let info;
      try {
        info = await waitEditor(page, (i) => i.editor && i.error, `the error for ${bad.label}`, 5000);
      } catch (e) {
        info = await editorInfo(page, NODE_ID);
      }
      const drawable = await page.evaluate(() => {
        try {
          window.app.canvas.draw(true, true);
          return true;
        } catch {
          return false;
        }
      });
      // the broken text is kept as is (the backend reports it too), until Clear
      const rawKept = info.widgetValue === bad.value || info.widgetValue === String(bad.value);
      const entry = { label: bad.label, load_error: err, message: info.error?.message ?? null,
        new_errors: errors.slice(before).map((e) => e.text), canvas_draws: drawable, raw_kept: rawKept };
      summary.malformed.push(entry);
      check(`malformed_${bad.label.replace(/\W+/g, "_")}`, !err && info.present && bad.expect.test(info.error?.message) &&
        drawable && rawKept && errors.length === before, entry);
    }
    // Clear is the way out of the error state (the editor's own: the host has buttons of that name too)
    await clickEditorButton(page, NODE_ID, "Clear");
    const cleared = await waitEditor(page, (i) => !i.error, "Clear to reset", 3000).catch((e) => ({ failed: String(e) }));
    check("clear_resets_malformed", cleared.widgetValue === "[]" && !cleared.error, cleared.widgetValue);

    session.setPhase("end");
    await closeDialogs(page);
  } catch (e) {
    recordException(summary, e);
  } finally {
    await finishSummary(results, session, t0);
  }
  return summary;
}

runSummaryScript(main);
