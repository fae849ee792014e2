// Helpers for driving the real ComfyUI frontend (served by a running ComfyUI
// with this pack under custom_nodes/) in Debian's chromium via playwright-core.
// Used by the *_frontend.mjs scripts (host tests) and dev/screenshot_point_editor.mjs.
// Every script takes --mode classic|nodes2: nodes drawn on the canvas, or rendered by Vue ("Nodes 2.0",
// the setting Comfy.VueNodes.Enabled), set through the settings API before the page opens.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const NODE_CLASS = "DragEdit_DragLatentOptimize";
export const WARP_CLASS = "DragEdit_RegionWarp";
export const EXTENSION_NAME = "DragEdit.PointEditor";
export const PACK_URL_PART = "/extensions/comfyui-drag-diffedit/";
/** Text that marks an error as coming from this pack rather than the host. */
export const OURS = /DragEdit|drag[-_ ]?diffedit|drag_points/i;
// The host's own errors when its frontend is newer than its server: 1.58 asks for the jobs API (GET /api/jobs),
// which ComfyUI 0.3.64 does not have, whenever the queue changes.
const FRONTEND_AHEAD_OF_SERVER = /\/api\/jobs\?|JobsApiError/;

/** The value after `--name` on the command line, else `dflt`. */
export function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

/** The value of Comfy.VueNodes.Enabled in each mode. */
export const MODES = { classic: false, nodes2: true };

/** The ComfyUI server (`--url`), Chromium (`--chromium`) and node rendering (`--mode`) a script drives. */
export function serverAndBrowser(defaultUrl = "http://127.0.0.1:8188/") {
  const mode = arg("mode", "classic");
  if (!(mode in MODES)) throw new Error(`--mode ${mode}: expected one of ${Object.keys(MODES).join(", ")}`);
  return { url: arg("url", process.env.COMFY_URL || defaultUrl),
           chromium: arg("chromium", process.env.CHROMIUM_PATH || "/usr/bin/chromium"), mode };
}

const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Settings that would otherwise open first-run UI (templates, release notes) over the graph, and `extra`. */
export async function quietSettings(baseURL, extra = {}) {
  const settings = {
    "Comfy.TutorialCompleted": true,
    "Comfy.Release.Version": "999.0.0",
    "Comfy.Release.Status": "skipped",
    "Comfy.Release.Timestamp": Date.now(),
    "Comfy.Minimap.Visible": false,
    "Comfy.Graph.CanvasInfo": false,
    ...extra,
  };
  for (const [key, value] of Object.entries(settings)) {
    const res = await fetch(new URL(`settings/${encodeURIComponent(key)}`, baseURL), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(value),
    });
    if (!res.ok) throw new Error(`POST settings/${key}: HTTP ${res.status}`);
  }
}

/**
 * Start chromium, open the frontend in `mode` (see MODES; `settings` are set too) and wait until the app and the
 * extensions are up. Returns { page, errors, frontend: {version, mode, vueNodes}, close }; `errors` keeps filling:
 * {kind, text, phase}.
 */
export async function openComfy({ url, chromiumPath, mode = "classic", settings = {},
  viewport = { width: 1600, height: 1000 }, deviceScaleFactor = 1 }) {
  await quietSettings(url, { "Comfy.VueNodes.Enabled": MODES[mode], ...settings });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "dragedit-frontend-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport,
    deviceScaleFactor,
  });
  const origin = new URL(url).origin;
  // nothing but the local server may be reached
  await context.route((u) => u.protocol.startsWith("http") && u.origin !== origin, (route) => route.abort());

  const errors = [];
  const state = { phase: "startup" };
  const page = context.pages()[0] || (await context.newPage());
  const push = (kind, text) => errors.push({ kind, text, phase: state.phase, ours: OURS.test(text) });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const loc = msg.location();
    push("console.error", msg.text() + (loc?.url ? `  [${loc.url}:${loc.lineNumber}]` : ""));
  });
  page.on("pageerror", (err) => push("pageerror", String(err.stack || err)));
  const packScripts = {};
  page.on("response", (res) => {
    if (res.url().includes(PACK_URL_PART)) packScripts[res.url().split(PACK_URL_PART)[1]] = res.status();
  });

  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(
    (name) => window.app?.graph && window.app?.canvas && window.LiteGraph &&
      (window.app.extensions ?? []).some((e) => e.name === name),
    EXTENSION_NAME, { timeout: 45000, polling: 100 });
  await page.waitForTimeout(1500); // startup dialogs, late extension setup
  await page.keyboard.press("Escape");
  await closeDialogs(page);
  const frontend = await page.evaluate((m) => ({ version: window.__COMFYUI_FRONTEND_VERSION__ ?? null, mode: m,
    vueNodes: Boolean(window.LiteGraph.vueNodesMode) }), mode);

  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, errors, packScripts, frontend, setPhase: (p) => { state.phase = p; }, close };
}

export async function closeDialogs(page) {
  for (let i = 0; i < 3; i++) {
    const closers = page.locator(".p-dialog .p-dialog-close-button, .p-dialog-header-close");
    const n = await closers.count();
    if (!n) break;
    for (let j = 0; j < n; j++) await closers.nth(j).click({ timeout: 2000 }).catch(() => {});
    await page.waitForTimeout(300);
  }
}

/**
 * A minimal UI-format workflow: LoadImage -> Drag Latent Optimize `image`;
 * the other inputs stay unlinked. `dragPoints` goes into widgets_values as is
 * (a string normally; anything for the malformed-workflow checks).
 */
export function minimalWorkflow({ imageName, dragPoints = "[]", dragNodeSize = [420, 620] }) {
  const slot = (name, type, link = null) => ({ name, type, link });
  return {
    last_node_id: 2,
    last_link_id: 1,
    nodes: [
      {
        id: 1, type: "LoadImage", pos: [40, 80], size: [320, 420], flags: {}, order: 0, mode: 0,
        inputs: [], properties: { "Node name for S&R": "LoadImage" },
        outputs: [
          { name: "IMAGE", type: "IMAGE", links: [1], slot_index: 0 },
          { name: "MASK", type: "MASK", links: [], slot_index: 1 },
        ],
        widgets_values: [imageName, "image"],
      },
      {
        id: 2, type: NODE_CLASS, pos: [420, 80], size: dragNodeSize, flags: {}, order: 1, mode: 0,
        inputs: [
          slot("model", "MODEL"), slot("positive", "CONDITIONING"), slot("trajectory", "INVERSION_TRAJECTORY"),
          slot("image", "IMAGE", 1), slot("negative", "CONDITIONING"), slot("mask", "MASK"), slot("latent", "LATENT"),
        ],
        outputs: [
          { name: "latent", type: "LATENT", links: [], slot_index: 0 },
          { name: "tracked_points", type: "STRING", links: [], slot_index: 1 },
        ],
        properties: { "Node name for S&R": NODE_CLASS },
        // drag_points, steps, learning_rate, mask_weight, cfg, feature_block, motion_radius, track_radius
        widgets_values: [dragPoints, 80, 0.01, 0.1, 1.0, -1, 1, 3],
      },
    ],
    links: [[1, 1, 0, 2, 3, "IMAGE"]],
    groups: [],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}

/**
 * LoadImage -> ImageScale (width x height; keep the picture's aspect so the editor shows it before a run) ->
 * Drag Region Warp `image`, its `warped` output into a Preview Image (a prompt needs an output node).
 * Node ids: 1 LoadImage, 2 the warp, 3 ImageScale, 4 Preview Image.
 */
export function regionWarpWorkflow({ imageName, width, height, dragPoints = "[]", region = "", kernel = 5 }) {
  const node = (id, type, pos, size, inputs, outputs, widgets_values, order) => ({
    id, type, pos, size, flags: {}, order, mode: 0, inputs, outputs, properties: { "Node name for S&R": type },
    widgets_values,
  });
  return {
    last_node_id: 4,
    last_link_id: 3,
    nodes: [
      node(1, "LoadImage", [20, 80], [300, 380], [], [
        { name: "IMAGE", type: "IMAGE", links: [1], slot_index: 0 },
        { name: "MASK", type: "MASK", links: [], slot_index: 1 }], [imageName, "image"], 0),
      node(3, "ImageScale", [20, 500], [300, 130], [{ name: "image", type: "IMAGE", link: 1 }],
        [{ name: "IMAGE", type: "IMAGE", links: [2], slot_index: 0 }], ["lanczos", width, height, "disabled"], 1),
      node(2, WARP_CLASS, [360, 80], [440, 600],
        [{ name: "image", type: "IMAGE", link: 2 }, { name: "mask", type: "MASK", link: null }], [
          { name: "warped", type: "IMAGE", links: [3], slot_index: 0 },
          { name: "inpaint_mask", type: "MASK", links: [], slot_index: 1 },
          { name: "moved_region", type: "MASK", links: [], slot_index: 2 },
          { name: "region", type: "MASK", links: [], slot_index: 3 }],
        // drag_points, kernel, region
        [dragPoints, kernel, region], 2),
      node(4, "PreviewImage", [840, 80], [300, 300], [{ name: "images", type: "IMAGE", link: 3 }], [], [], 3),
    ],
    links: [[1, 1, 0, 3, 0, "IMAGE"], [2, 3, 0, 2, 0, "IMAGE"], [3, 2, 0, 4, 0, "IMAGE"]],
    groups: [],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}

/**
 * A copy of the server's input picture `name` under a new name, for a script that runs its graph: the server
 * caches what it ran, and a graph it ran before (another mode's run of the same script) would send no new
 * pictures. Returns the copy's name.
 */
export async function freshCopyOfInput(baseURL, name) {
  const res = await fetch(new URL(`view?${new URLSearchParams({ filename: name, type: "input" })}`, baseURL));
  if (!res.ok) throw new Error(`GET view ${name}: HTTP ${res.status}`);
  const copy = name.replace(/(\.\w+)?$/, (ext) => `-${Date.now()}${ext}`);
  const form = new FormData();
  form.append("image", new Blob([await res.arrayBuffer()], { type: res.headers.get("content-type") ?? "image/png" }), copy);
  const up = await fetch(new URL("upload/image", baseURL), { method: "POST", body: form });
  if (!up.ok) throw new Error(`POST upload/image ${copy}: HTTP ${up.status}`);
  return (await up.json()).name;
}

/** Load a UI workflow through the frontend's own loader; returns an error string or null. */
export async function loadWorkflow(page, workflow, name = "dragedit-test.json") {
  const error = await page.evaluate(async ({ wf, name }) => {
    try {
      await window.app.loadGraphData(wf, true, true, name);
      return null;
    } catch (e) {
      return String(e?.stack || e);
    }
  }, { wf: workflow, name });
  await closeDialogs(page);
  return error;
}

/**
 * Install window.__dragEdit = { state(nodeId) } in the page: the editor state
 * the extension keeps for a node, read through the extension's own module
 * (same URL, so the same module instance the frontend imported).
 */
export async function exposeEditorState(page) {
  await page.evaluate(async (url) => {
    const mod = await import(url);
    window.__dragEdit = {
      state: (id) => {
        const node = window.app.graph.getNodeById(id);
        return node ? mod.getEditorState(node) : undefined;
      },
    };
  }, `${PACK_URL_PART}drag_points_editor.js`);
}

/** Snapshot of one editor: canvas rect (CSS px on the page), its layout size, image size, value, error. */
export async function editorInfo(page, nodeId) {
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const st = window.__dragEdit.state(id);
    if (!node || !st) return { present: Boolean(node), editor: false };
    const canvas = st.editor.canvas;
    const r = canvas.getBoundingClientRect();
    const widget = node.widgets.find((w) => w.name === "drag_points");
    const regionWidget = node.widgets.find((w) => w.name === "region");
    return {
      present: true,
      editor: true,
      rect: { x: r.x, y: r.y, width: r.width, height: r.height },
      client: { width: canvas.clientWidth, height: canvas.clientHeight },
      visible: r.width > 0 && r.height > 0 && canvas.isConnected,
      imageLoaded: Boolean(st.editor.image && st.editor.imageSize),
      imageSize: st.editor.imageSize,
      value: st.editor.getValue(),
      pairs: st.editor.model.pairs,
      error: st.editor.error ? { ...st.editor.error } : null,
      widgetValue: widget?.value,
      widgetHidden: Boolean(widget?.hidden),
      tool: st.editor.tool,
      regionValue: st.editor.getRegionValue(),
      regionStrokes: st.editor.region.strokeCount,
      regionError: st.editor.regionError ? { ...st.editor.regionError } : null,
      regionWidgetValue: regionWidget?.value,
      regionWidgetHidden: Boolean(regionWidget?.hidden),
      previewShown: Boolean(st.editor.preview && st.editor.showPreview),
      previewRequests: st.preview?.requests ?? null,
      notice: st.editor.notice,
      status: st.dom.status.textContent,
      keysFocused: document.activeElement === st.dom.keys,
      imageSrc: st.editor.image?.src ?? null,
    };
  }, nodeId);
}

/** Poll editorInfo until `predicate` holds; throws with the last info after `timeout` ms. */
export async function waitForEditor(page, nodeId, predicate, what, timeout = 10000) {
  const t0 = Date.now();
  let info;
  while (Date.now() - t0 < timeout) {
    info = await editorInfo(page, nodeId);
    if (predicate(info)) return info;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(info)}`);
}

/** Editor info once its canvas rect has stopped moving for a few frames. */
export async function settledEditor(page, nodeId) {
  let last = null;
  for (let i = 0; i < 60; i++) {
    const info = await editorInfo(page, nodeId);
    if (last && JSON.stringify(info.rect) === JSON.stringify(last.rect) &&
        JSON.stringify(info.client) === JSON.stringify(last.client)) return info;
    last = info;
    await page.waitForTimeout(80);
  }
  return last;
}

/**
 * Page coordinates of an image pixel, derived independently of the widget code:
 * the picture is contain-fitted (centred, uniform scale) in the canvas' layout
 * box, and the layout box is mapped onto its bounding rect (graph zoom).
 */
export function imageToPage([x, y], info) {
  const { width: cw, height: ch } = info.client;
  const { width: iw, height: ih } = info.imageSize;
  const scale = Math.min(cw / iw, ch / ih);
  const ox = (cw - iw * scale) / 2;
  const oy = (ch - ih * scale) / 2;
  const sx = info.rect.width / cw;
  const sy = info.rect.height / ch;
  return [info.rect.x + (ox + x * scale) * sx, info.rect.y + (oy + y * scale) * sy];
}

/** RGBA of the editor canvas' backing store at image pixels (device px, after the widget's own drawing). */
export async function sampleEditor(page, nodeId, imagePoints) {
  return page.evaluate(({ id, points }) => {
    const st = window.__dragEdit.state(id);
    const { canvas, dpr } = st.editor;
    const fit = st.editor.fit;
    const ctx = canvas.getContext("2d");
    return points.map(([x, y]) => {
      const cx = Math.round((fit.offsetX + x * fit.scale) * dpr);
      const cy = Math.round((fit.offsetY + y * fit.scale) * dpr);
      return Array.from(ctx.getImageData(cx, cy, 1, 1).data);
    });
  }, { id: nodeId, points: imagePoints });
}

/**
 * Click one of the editor's own controls (found by its label inside the node's editor, never elsewhere on the
 * page), once the node's layout settled; throws when it is missing, disabled, or covered by something of the host.
 */
export async function clickEditorButton(page, nodeId, label) {
  await settledEditor(page, nodeId);
  const found = await page.evaluate(({ id, text }) => {
    const root = window.__dragEdit.state(id).dom.root;
    const button = [...root.querySelectorAll("input[type=button]")].find((b) => b.value === text);
    if (!button || button.disabled) return { error: "no enabled button" };
    const r = button.getBoundingClientRect();
    const x = r.x + r.width / 2;
    const y = r.y + r.height / 2;
    const top = document.elementFromPoint(x, y);
    if (top !== button) return { error: `covered by ${top?.outerHTML?.slice(0, 160)}` };
    return { x, y };
  }, { id: nodeId, text: label });
  if (found.error) throw new Error(`cannot click "${label}" in the editor: ${found.error}`);
  await page.mouse.click(found.x, found.y);
}

/**
 * How the editor looks on the page: the picture's height (CSS px, the graph's zoom undone), where the status line
 * is against the picture, and the WCAG contrast of each enabled control's, the status line's and the radius label's
 * text against the background it is drawn on (composited from the computed styles of the element and its
 * ancestors).
 */
export async function editorLayout(page, nodeId) {
  return page.evaluate((id) => {
    const { dom, editor } = window.__dragEdit.state(id);
    const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    const rgba = (css) => { // any CSS colour (rgb, oklch, ...) through the canvas
      probe.clearRect(0, 0, 1, 1);
      probe.fillStyle = css;
      probe.fillRect(0, 0, 1, 1);
      const [r, g, b, a] = probe.getImageData(0, 0, 1, 1).data;
      return [r, g, b, a / 255];
    };
    const over = (top, bottom) => top.slice(0, 3).map((v, i) => v * top[3] + bottom[i] * (1 - top[3]));
    const backgroundOf = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const color = rgba(getComputedStyle(e).backgroundColor);
        if (color[3] > 0) layers.push(color);
        if (color[3] >= 1) break;
      }
      return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255]);
    };
    const luminance = (rgb) => {
      const [r, g, b] = rgb.map((v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const contrastOf = (el) => {
      const background = backgroundOf(el);
      const text = over(rgba(getComputedStyle(el).color), background);
      const [hi, lo] = [luminance(text), luminance(background)].sort((a, b) => b - a);
      return Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100;
    };
    const rect = (el) => {
      const r = el.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height };
    };
    const controls = [...dom.root.querySelectorAll("input[type=button]")].filter((b) => !b.disabled);
    const canvas = rect(dom.canvas);
    const scale = canvas.height / dom.canvas.clientHeight; // the graph's zoom
    const fit = editor.fit;
    return {
      pictureHeight: dom.canvas.clientHeight,
      canvas,
      picture: fit && { top: canvas.top + fit.offsetY * scale, bottom: canvas.top + (fit.offsetY + fit.height) * scale },
      status: { ...rect(dom.status), text: dom.status.textContent },
      contrast: Object.fromEntries([...controls.map((b) => [b.value, contrastOf(b)]),
        ["status line", contrastOf(dom.status)], ...(dom.radiusLabel ? [["radius label", contrastOf(dom.radiusLabel)]] : [])]),
    };
  }, nodeId);
}

/** What the README promises: the picture at least this tall (CSS px), text at least WCAG AA's contrast. */
export const MIN_PICTURE_HEIGHT = 300;
export const MIN_CONTRAST = 4.5;

/** Checks an editorLayout() against the promises above; the status line must lie under the picture. */
export function checkLayout(check, prefix, layout) {
  check(`${prefix}_picture_height`, layout.pictureHeight >= MIN_PICTURE_HEIGHT, layout.pictureHeight);
  check(`${prefix}_status_under_picture`, layout.status.text.length > 0 && layout.status.height > 0 &&
    layout.status.top >= layout.canvas.bottom - 0.5, { status: layout.status, canvas: layout.canvas });
  check(`${prefix}_legible`, Object.keys(layout.contrast).length > 2 &&
    Object.values(layout.contrast).every((c) => c >= MIN_CONTRAST), layout.contrast);
}

/** Click an image pixel of the editor, once its layout settled. */
export async function clickOnImage(page, nodeId, point) {
  const info = await settledEditor(page, nodeId);
  await page.mouse.click(...imageToPage(point, info));
  await page.waitForTimeout(60);
}

/** Press, move in steps, release, from one image pixel of the editor to another. */
export async function dragOnImage(page, nodeId, from, to, steps = 12) {
  const info = await settledEditor(page, nodeId);
  await page.mouse.move(...imageToPage(from, info));
  await page.mouse.down();
  await page.mouse.move(...imageToPage(to, info), { steps });
  await page.mouse.up();
}

export const isRed = ([r, g, b]) => r > 180 && g < 100 && b < 100;
export const isBlue = ([r, g, b]) => b > 180 && r < 100 && g < 180;

/** Pan/zoom the graph so a node (title bar included) fills the canvas area with a margin. */
export async function focusNodes(page, nodeIds, { margin = 40, maxScale = 1.5 } = {}) {
  return page.evaluate(({ ids, margin, maxScale }) => {
    const app = window.app;
    const t = window.LiteGraph.NODE_TITLE_HEIGHT;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const id of ids) {
      const n = app.graph.getNodeById(id);
      x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - t);
      x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    const el = app.canvas.canvas.getBoundingClientRect();
    const aw = el.width - 2 * margin;
    const ah = el.height - 2 * margin - 40; // leave the bottom toolbar free
    const s = Math.min(aw / (x1 - x0), ah / (y1 - y0), maxScale);
    app.canvas.ds.scale = s;
    app.canvas.ds.offset = [(margin + (aw - s * (x1 - x0)) / 2) / s - x0, (margin + (ah - s * (y1 - y0)) / 2) / s - y0];
    app.canvas.deselectAll?.();
    app.canvas.setDirty(true, true);
    return s;
  }, { ids: nodeIds, margin, maxScale });
}

/**
 * The page rectangle around some nodes (title bars included), `pad` px wider on each side and `top` px higher (the
 * pack's badge above a title bar), for screenshots. Nodes rendered by Vue are measured on the page.
 */
export async function nodesClip(page, nodeIds, { pad = 12, top = 36 } = {}) {
  return page.evaluate(({ ids, pad, top }) => {
    const { canvas, graph } = window.app;
    const r = canvas.canvas.getBoundingClientRect();
    const t = window.LiteGraph.NODE_TITLE_HEIGHT;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const id of ids) {
      const element = document.querySelector(`[data-node-id="${id}"]`);
      let box = element?.getBoundingClientRect();
      if (!box?.width) {
        const n = graph.getNodeById(id);
        const [left, up] = canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - t]);
        const s = canvas.ds.scale;
        box = { left: r.left + left, top: r.top + up, right: r.left + left + n.size[0] * s,
          bottom: r.top + up + (n.size[1] + t) * s };
      }
      [x0, y0, x1, y1] = [Math.min(x0, box.left), Math.min(y0, box.top), Math.max(x1, box.right), Math.max(y1, box.bottom)];
    }
    const x = Math.max(0, x0 - pad);
    const y = Math.max(0, y0 - top);
    return { x, y, width: x1 + pad - x, height: y1 + pad - y };
  }, { ids: nodeIds, pad, top });
}

/** Queue the open graph as the Queue button does; the error it threw, or null. */
export async function queueFromPage(page) {
  return page.evaluate(async () => {
    try {
      await window.app.queuePrompt(0, 1);
      return null;
    } catch (e) {
      return String(e?.stack || e);
    }
  });
}

/**
 * Run a check script's `main()`, which resolves to its summary: print it as one JSON line and exit 0 when
 * `summary.ok`, else 1; a failure before any summary prints `{ok: false, failures: ["setup"]}` and exits 2.
 */
/** A script's summary and its `check(name, ok, detail)`, which records each check and lists the failures. */
export function newSummary(url) {
  const summary = { url, ok: false, checks: {}, failures: [] };
  const check = (name, ok, detail) => {
    summary.checks[name] = { ok: Boolean(ok), ...(detail === undefined ? {} : { detail }) };
    if (!ok) summary.failures.push(name);
  };
  return { summary, check };
}

/** A script's run stopped by an exception: recorded as the failure "exception". */
export function recordException(summary, e) {
  summary.failures.push("exception");
  summary.exception = String(e?.stack || e);
}

/** Ends a script's run: the frontend and mode it ran on (checked: the mode was applied), the console errors it saw
 * (after startup, those `expected` accepts not counted), the checks that none came from the pack and none after
 * startup, the time since `startedAt`, the verdict. */
export async function finishSummary({ summary, check }, session, startedAt, expected = () => false) {
  const { errors, frontend } = session;
  summary.frontend = frontend;
  check("mode_applied", frontend.vueNodes === MODES[frontend.mode], frontend);
  summary.errors = errors;
  summary.error_counts = {
    total: errors.length,
    ours: errors.filter((e) => e.ours).length,
    after_startup: errors.filter((e) => e.phase !== "startup" && !expected(e) &&
      !FRONTEND_AHEAD_OF_SERVER.test(e.text)).length,
  };
  check("no_errors_from_pack", summary.error_counts.ours === 0);
  check("no_errors_after_startup", summary.error_counts.after_startup === 0);
  summary.seconds = Math.round((Date.now() - startedAt) / 100) / 10;
  summary.ok = summary.failures.length === 0;
  await session.close();
}

export function runSummaryScript(main) {
  main().then(
    (summary) => {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      process.exit(summary.ok ? 0 : 1);
    },
    (e) => {
      process.stdout.write(`${JSON.stringify({ ok: false, failures: ["setup"], exception: String(e?.stack || e) })}\n`);
      process.exit(2);
    },
  );
}
