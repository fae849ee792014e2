#!/usr/bin/env node
// The painted region and the live warp preview inside the real ComfyUI frontend (driven by
// tests/host/test_frontend.py).
//
//   node web/tests/frontend/region_editor_frontend.mjs --url http://127.0.0.1:8188/ [--mode classic|nodes2] \
//        --image scene.png --width 512 --height 384 [--chromium /usr/bin/chromium] [--screenshot file.png]
//
// Needs a running ComfyUI with this pack under custom_nodes/ and the picture in its input/.
// On Load Image -> Upscale Image (half size, aspect kept) -> Drag Region Warp -> Preview Image:
// paints a region with the Brush, places a pair with its handle on it, and waits for the pack's
// preview route to answer and the editor to show the warped picture; moves the handle off the
// region (the route's sentence in the status line) and undoes it; checks graphToPrompt(), runs
// the graph for real (the preview follows the run's picture), saves and reloads the workflow
// (same region and pairs), and loads a malformed region. On Drag Latent Optimize: paints and
// checks that graphToPrompt() carries `region`.
// Prints one JSON summary on stdout; exit status 0 when every check passed, 1 otherwise,
// 2 when the page could not be driven at all.

import {
  MIN_CONTRAST, NODE_CLASS, PACK_URL_PART, WARP_CLASS, arg, checkLayout, clickEditorButton, clickOnImage, closeDialogs, dragOnImage,
  editorInfo, editorLayout, exposeEditorState, finishSummary, focusNodes, freshCopyOfInput, loadWorkflow,
  minimalWorkflow, newSummary, nodesClip, openComfy, queueFromPage, recordException, regionWarpWorkflow,
  runSummaryScript, sampleEditor, serverAndBrowser, waitForEditor,
} from "./comfy_page.mjs";

const { url: URL_, chromium: CHROMIUM, mode: MODE } = serverAndBrowser();
const IMAGE = arg("image", "scene.png");
const SIZE = { width: Number(arg("width", 512)), height: Number(arg("height", 384)) };
// The warp works on the picture scaled to half size: the editor shows Load Image's file in those pixels.
const SCALED = { width: Math.round(SIZE.width / 2), height: Math.round(SIZE.height / 2) };
const NODE_ID = 2; // the warp node in regionWarpWorkflow, the drag node in minimalWorkflow
const ROUTE = "/drag_edit/region_warp_preview";
// In the scaled picture's pixels, relative to its size: a stroke over the house, a pair from it up to the sky.
const at = (fx, fy) => [Math.round(fx * SCALED.width), Math.round(fy * SCALED.height)];
const STROKE = [at(0.24, 0.69), at(0.35, 0.69)];
const PAIR = { handle: at(0.3, 0.69), target: at(0.62, 0.42) };
const OFF_REGION = at(0.08, 0.15);
const RADIUS = 16; // the editor's default brush radius, image px
const SCREENSHOT = arg("screenshot", null); // the warp node with its preview, when given

const results = newSummary(URL_);
const { summary, check } = results;

const waitEditor = (page, predicate, what, timeout) => waitForEditor(page, NODE_ID, predicate, what, timeout);
const near = (a, b, tol) => Array.isArray(a) && Math.hypot(a[0] - b[0], a[1] - b[1]) <= tol;
// the region's colour over the picture: red and blue well above a natural picture's balance
const isTinted = ([r, g, b]) => r - g > 40 && b - g > 25;

const clickButton = (page, label) => clickEditorButton(page, NODE_ID, label);
const dragImage = (page, from, to, steps) => dragOnImage(page, NODE_ID, from, to, steps);
const clickImage = (page, point) => clickOnImage(page, NODE_ID, point);

/** How far the shown preview is from the picture, over the whole picture and around `point` (mean |RGB| diff). */
async function previewDifference(page, point) {
  return page.evaluate(({ id, point }) => {
    const { preview, image, imageSize: { width, height } } = window.__dragEdit.state(id).editor;
    if (!preview || !image) return null;
    const pixels = (source) => {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(source, 0, 0, width, height);
      return ctx.getImageData(0, 0, width, height).data;
    };
    const a = pixels(image);
    const b = pixels(preview);
    let all = 0;
    let local = 0;
    let localCount = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        const d = Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
        all += d;
        if (Math.abs(x - point[0]) <= 12 && Math.abs(y - point[1]) <= 8) {
          local += d;
          localCount++;
        }
      }
    }
    return { size: [preview.naturalWidth, preview.naturalHeight], mean: all / (3 * width * height),
      aroundTarget: local / (3 * localCount) };
  }, { id: NODE_ID, point });
}

async function main() {
  const t0 = Date.now();
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM, mode: MODE });
  const { page, errors } = session;
  const routeCalls = []; // { status, body } of each preview request, in order
  page.on("request", (req) => {
    if (req.url().includes(ROUTE) && req.method() === "POST") routeCalls.push({ body: req.postDataJSON(), status: null });
  });
  page.on("response", (res) => {
    if (!res.url().includes(ROUTE)) return;
    const call = routeCalls.find((c) => c.status === null);
    if (call) call.status = res.status();
  });
  try {
    await exposeEditorState(page);

    // 1. Load Image -> Upscale Image -> Drag Region Warp: the editor shows the picture before any run
    session.setPhase("warp_load");
    // the run in step 6 must not be the server's cached one (a screenshot keeps the picture's plain name)
    const runImage = SCREENSHOT ? IMAGE : await freshCopyOfInput(URL_, IMAGE);
    const loadError = await loadWorkflow(page, regionWarpWorkflow({ imageName: runImage, ...SCALED }));
    check("warp_workflow_loads", !loadError, loadError ?? undefined);
    await focusNodes(page, [NODE_ID]);
    const loaded = await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible && i.client.width > 50,
      "the warp editor to show the picture");
    check("warp_editor_shows_scaled_picture", loaded.imageSize?.width === SCALED.width &&
      loaded.imageSize?.height === SCALED.height, loaded.imageSize);
    check("warp_text_widgets_hidden", loaded.widgetHidden && loaded.regionWidgetHidden);
    // core/regions.py's limits reach the editor through the node definition (it keeps no copy)
    const limits = await page.evaluate(async ({ url, warp }) => {
      const taken = (await import(url)).regionLimits();
      const info = await (await fetch(`/api/object_info/${warp}`)).json();
      return { taken, sent: info[warp]?.input?.optional?.region?.[1]?.region_limits ?? null };
    }, { url: `${PACK_URL_PART}region_model.js`, warp: WARP_CLASS });
    check("editor_takes_the_servers_region_limits", limits.sent?.side === 16384 && limits.taken !== null &&
      Object.keys(limits.sent).every((key) => limits.taken[key] === limits.sent[key]), limits);
    const hinted = await waitEditor(page, (i) => i.notice, "the preview's hint", 5000).catch(() => loaded);
    check("warp_hint_before_painting", /Live preview/.test(hinted.notice?.text ?? "") && routeCalls.length === 0,
      { notice: hinted.notice, requests: routeCalls.length });

    // 2. paint the region with the Brush
    session.setPhase("paint");
    await clickButton(page, "Brush");
    await waitEditor(page, (i) => i.tool === "brush", "the Brush tool", 5000);
    await dragImage(page, ...STROKE);
    const painted = await waitEditor(page, (i) => i.regionWidgetValue, "the region widget");
    let region = null;
    try {
      region = JSON.parse(painted.regionWidgetValue);
    } catch { /* reported below */ }
    summary.region = painted.regionWidgetValue;
    const stroke = region?.strokes?.[0];
    const tol = (SCALED.width / painted.rect.width) * 0.75 + 0.06;
    check("region_widget_holds_the_stroke", painted.tool === "brush" && region?.size?.[0] === SCALED.width &&
      region.size[1] === SCALED.height && region.strokes.length === 1 && stroke.radius === RADIUS && !stroke.erase &&
      near(stroke.points[0], STROKE[0], tol) && near(stroke.points.at(-1), STROKE[1], RADIUS / 4 + tol),
    { region, tolerance: tol });
    const mid = [(STROKE[0][0] + STROKE[1][0]) / 2, STROKE[0][1]];
    const tint = await sampleEditor(page, NODE_ID, [mid]);
    check("region_drawn", isTinted(tint[0]), tint);

    // 3. a pair with its handle on the region: the route answers, the editor shows the warp
    session.setPhase("pair");
    await clickButton(page, "Points");
    await waitEditor(page, (i) => i.tool === "points", "the Points tool", 5000);
    await clickImage(page, PAIR.handle);
    await clickImage(page, PAIR.target);
    const previewed = await waitEditor(page, (i) => i.pairs.length === 1 && i.previewShown, "the warp preview", 30000);
    summary.widget_value = previewed.widgetValue;
    const answered = routeCalls.filter((c) => c.status === 200);
    const last = answered.at(-1);
    check("preview_route_answered", answered.length >= 1, routeCalls.map((c) => c.status));
    const sentSize = last && await page.evaluate(async (url) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    }, last.body.image);
    check("preview_request_carries_the_editor_state", last?.body.image.startsWith("data:image/png;base64,") &&
      sentSize?.[0] === SCALED.width && sentSize[1] === SCALED.height &&
      last.body.drag_points === previewed.widgetValue && last.body.region === previewed.regionWidgetValue &&
      last.body.kernel === 5, { sentSize, drag_points: last?.body.drag_points, kernel: last?.body.kernel });
    const difference = await previewDifference(page, PAIR.target);
    summary.preview_difference = difference;
    check("preview_is_a_different_picture", difference?.size?.[0] === SCALED.width &&
      difference.size[1] === SCALED.height && difference.mean > 0.5 && difference.aroundTarget > 10, difference);
    // the editor's canvas shows it: around the target, the warped and the original backgrounds differ
    const probes = [[PAIR.target[0] + 5, PAIR.target[1] + 12], [PAIR.target[0] - 10, PAIR.target[1] - 10]];
    const warpedColors = await sampleEditor(page, NODE_ID, probes);
    await clickButton(page, "Show original");
    const originalColors = await sampleEditor(page, NODE_ID, probes);
    await clickButton(page, "Show warped");
    const changed = probes.filter((_, k) => warpedColors[k].slice(0, 3)
      .reduce((sum, v, c) => sum + Math.abs(v - originalColors[k][c]), 0) > 30).length;
    check("editor_toggles_warped_and_original", changed >= 1, { warpedColors, originalColors });
    const layout = await editorLayout(page, NODE_ID);
    summary.warp_layout = layout;
    checkLayout(check, "warp_editor", layout);
    check("warp_toggle_legible", layout.contrast["Show original"] >= MIN_CONTRAST, layout.contrast);
    if (SCREENSHOT) {
      await page.mouse.move(5, 995); // no hover ring, no cursor
      await page.evaluate(() => window.app.canvas.deselectAll?.()); // no selection outline and toolbox
      await page.waitForTimeout(300);
      await page.screenshot({ path: SCREENSHOT, clip: await nodesClip(page, [1, 3, NODE_ID, 4]) });
    }

    // 4. the handle off the region: the route's sentence in the status line; Ctrl+Z brings the preview back
    session.setPhase("preview_error");
    await dragImage(page, PAIR.handle, OFF_REGION, 6);
    const refused = await waitEditor(page, (i) => i.notice?.error, "the preview's error", 20000);
    check("preview_error_in_status_line", /lies in no region/.test(refused.notice.text) && !refused.previewShown,
      refused.notice);
    await page.keyboard.press("Control+z");
    const back = await waitEditor(page, (i) => i.previewShown && !i.notice, "the preview after undo", 20000);
    check("undo_restores_pair_and_preview", back.widgetValue === previewed.widgetValue, back.widgetValue);

    // 5. the API prompt carries both texts
    session.setPhase("prompt");
    const api = await page.evaluate(async (id) => (await window.app.graphToPrompt()).output[String(id)], NODE_ID);
    summary.api_prompt_region = api?.inputs?.region;
    check("api_prompt_carries_region_and_pairs", api?.class_type === WARP_CLASS &&
      api.inputs.region === previewed.regionWidgetValue && api.inputs.drag_points === previewed.widgetValue &&
      api.inputs.kernel === 5, api?.inputs);

    // 6. a real run: the node shows its picture from the run, and the preview follows it
    session.setPhase("run");
    const requestsBefore = back.previewRequests;
    const queueError = await queueFromPage(page);
    let ran;
    try {
      ran = await waitEditor(page, (i) => /type=temp/.test(i.imageSrc ?? "") && i.previewRequests > requestsBefore &&
        i.previewShown, "the run's picture and a new preview", 120000);
    } catch (e) {
      ran = { failed: String(e) };
    }
    check("preview_after_a_run", !queueError && ran.previewShown && ran.imageSize?.width === SCALED.width,
      queueError ?? ran.failed ?? { imageSrc: ran.imageSrc });

    // 7. save and reload: the same region and pairs
    session.setPhase("reload");
    const saved = await page.evaluate(() => JSON.stringify(window.app.graph.serialize()));
    const savedNode = JSON.parse(saved).nodes.find((n) => n.id === NODE_ID);
    check("saved_widgets_values", JSON.stringify(savedNode?.widgets_values) ===
      JSON.stringify([previewed.widgetValue, 5, previewed.regionWidgetValue]), savedNode?.widgets_values);
    await page.evaluate(() => window.app.graph.clear());
    await page.waitForTimeout(300);
    const reloadError = await loadWorkflow(page, JSON.parse(saved), "dragedit-region-saved.json");
    await focusNodes(page, [NODE_ID]);
    const reloaded = await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible && i.regionStrokes > 0 &&
      i.previewShown, "the reloaded editor and its preview", 30000);
    summary.reloaded_region = reloaded.regionWidgetValue;
    check("reload_same_region_and_pairs", !reloadError && reloaded.regionWidgetValue === previewed.regionWidgetValue &&
      reloaded.regionValue === previewed.regionWidgetValue && reloaded.widgetValue === previewed.widgetValue &&
      reloaded.pairs.length === 1, reloadError ?? undefined);

    // 8. a malformed region in a shared workflow: its error on the node, Clear region resets it
    session.setPhase("malformed_region");
    const before = errors.length;
    const badError = await loadWorkflow(page, regionWarpWorkflow({ imageName: IMAGE, ...SCALED, region: "{oops" }),
      "bad-region.json");
    await focusNodes(page, [NODE_ID]);
    const bad = await waitEditor(page, (i) => i.editor && i.regionError, "the region error", 10000)
      .catch(() => editorInfo(page, NODE_ID));
    check("malformed_region_shows_error", !badError && /not valid JSON/.test(bad.regionError?.message ?? "") &&
      bad.regionWidgetValue === "{oops" && errors.length === before, { badError, error: bad.regionError });
    await clickButton(page, "Clear region");
    const cleared = await waitEditor(page, (i) => !i.regionError, "Clear region", 5000).catch((e) => ({ failed: String(e) }));
    check("clear_region_resets_malformed", cleared.regionWidgetValue === "" && !cleared.regionError, cleared.failed);

    // 9. Drag Latent Optimize: the same painting, carried by the API prompt
    session.setPhase("drag_node");
    const dragError = await loadWorkflow(page, minimalWorkflow({ imageName: IMAGE }));
    await focusNodes(page, [NODE_ID]);
    const dragLoaded = await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible && i.client.width > 50,
      "the drag editor");
    check("drag_node_region_widget_hidden", !dragError && dragLoaded.regionWidgetHidden && dragLoaded.previewRequests === null,
      dragError ?? undefined);
    await clickButton(page, "Brush");
    await waitEditor(page, (i) => i.tool === "brush", "the Brush tool", 5000);
    const scale = SIZE.width / SCALED.width;
    await dragImage(page, STROKE[0].map((v) => v * scale), STROKE[1].map((v) => v * scale));
    const dragPainted = await waitEditor(page, (i) => i.regionWidgetValue, "the drag node's region");
    const dragApi = await page.evaluate(async (id) => (await window.app.graphToPrompt()).output[String(id)], NODE_ID);
    let dragRegion = null;
    try {
      dragRegion = JSON.parse(dragApi?.inputs?.region);
    } catch { /* reported below */ }
    summary.drag_api_region = dragApi?.inputs?.region;
    check("drag_node_prompt_carries_region", dragApi?.class_type === NODE_CLASS &&
      dragApi.inputs.region === dragPainted.regionWidgetValue && dragRegion?.size?.[0] === SIZE.width &&
      dragRegion.size[1] === SIZE.height && dragRegion.strokes.length === 1, dragApi?.inputs);

    session.setPhase("end");
    await closeDialogs(page);
  } catch (e) {
    recordException(summary, e);
  } finally {
    summary.route_statuses = routeCalls.map((c) => c.status);
    // the browser logs the route's deliberate 400 as a failed resource load
    await finishSummary(results, session, t0, (e) => e.phase === "preview_error" && /status of 400/.test(e.text));
  }
  return summary;
}

runSummaryScript(main);
