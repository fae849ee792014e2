// ComfyUI glue: puts the point editor on the drag nodes and on Drag Region Warp.
// The hidden `drag_points` and `region` STRING widgets stay the source of truth (they are what
// workflow JSON and API prompts carry); the canvas only edits those strings.
//
// Served from WEB_DIRECTORY = "./web/js", hence "../../scripts/...".

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { DragPointsCanvas } from "./drag_points_canvas.js";
import { WarpPreview } from "./region_preview.js";
import { setRegionLimits } from "./region_model.js";
import { buildElement, hideWidget, minimumHeight, showStatus, syncToolbar } from "./editor_dom.js";

// The drag methods and the instant drag take the same drag_points, region and image inputs.
const NODE_CLASSES = new Set(["DragEdit_DragLatentOptimize", "DragEdit_GoodDragLatentOptimize", "DragEdit_RegionWarp"]);
// Nodes whose warp is cheap enough to preview live (through the pack's route).
const PREVIEW_CLASSES = new Set(["DragEdit_RegionWarp"]);
const POINTS_WIDGET = "drag_points";
const REGION_WIDGET = "region";
const KERNEL_WIDGET = "kernel";
const IMAGE_INPUT = "image";
const MIN_WIDTH = 360;
// Polling catches every way the value or upstream image can change (paste,
// workflow undo, combo edits, Vue-rendered nodes) without patching frontend internals.
const POLL_MS = 400;
const MAX_REROUTE_HOPS = 16;
// Stock resize nodes the editor looks through: it shows the source picture, in the resized image's pixels
// (what the drag receives), when the aspect ratio is kept. The templates scale example.png to 512x512 this way.
const RESIZE_NODES = new Set(["ImageScale"]);

const editorStates = new WeakMap();
// Editors of removed nodes, by node id, whose element may still be on the page: see takeOverStaleElement.
const removedRoots = new Map();

/** For tests and debugging: the editor state attached to a node, if any. */
export function getEditorState(node) {
  return editorStates.get(node);
}

// --- image sources -------------------------------------------------------------

function viewURL({ filename, subfolder = "", type = "input" }) {
  const path = `/view?${new URLSearchParams({ filename, type, subfolder })}`;
  return typeof api?.apiURL === "function" ? api.apiURL(path) : path;
}

/** LoadImage combo value "sub/dir/name.png [input]" -> { filename, subfolder, type }. */
function parseImageWidgetValue(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  let name = value.trim();
  let type = "input";
  const annotated = name.match(/^(.*?)\s*\[(input|output|temp)\]$/);
  if (annotated) [, name, type] = annotated;
  const slash = name.lastIndexOf("/");
  return { filename: name.slice(slash + 1), subfolder: slash >= 0 ? name.slice(0, slash) : "", type };
}

function linkedNode(node, slot) {
  if (slot < 0 || node.inputs?.[slot]?.link == null) return null;
  if (typeof node.getInputNode === "function") {
    try {
      return node.getInputNode(slot) ?? null;
    } catch {
      // fall through to the raw link table
    }
  }
  const links = node.graph?.links;
  const link = links?.get?.(node.inputs[slot].link) ?? links?.[node.inputs[slot].link];
  return link ? node.graph.getNodeById?.(link.origin_id) ?? null : null;
}

/** Node feeding `node`'s input called `name`, looking through legacy Reroute nodes. */
function upstreamNode(node, name = IMAGE_INPUT) {
  let source = linkedNode(node, node.inputs?.findIndex((input) => input.name === name) ?? -1);
  for (let hop = 0; source && source.type === "Reroute" && hop < MAX_REROUTE_HOPS; hop++) {
    source = linkedNode(source, 0);
  }
  return source;
}

function widgetValue(node, name) {
  return node.widgets?.find((w) => w.name === name)?.value;
}

/** The size a resize node makes of a picture of `size` (0 keeps the aspect, as ImageScale does). */
function resizedSize(resize, size) {
  let width = Number(widgetValue(resize, "width")) || 0;
  let height = Number(widgetValue(resize, "height")) || 0;
  if (!width && !height) return size;
  if (!width) width = Math.round((size.width * height) / size.height);
  if (!height) height = Math.round((size.height * width) / size.width);
  return { width, height };
}

/** Where the upstream picture can be found: { key, url, resize? } or { key, element } or null. */
function upstreamImage(node) {
  let source = upstreamNode(node);
  let resize = null;
  if (source && RESIZE_NODES.has(source.type)) {
    resize = source;
    source = upstreamNode(resize);
  }
  if (!source) return null;
  const file = parseImageWidgetValue(source.widgets?.find((w) => w.name === "image")?.value);
  if (file) {
    const scaled = resize ? `@${widgetValue(resize, "width")}x${widgetValue(resize, "height")}` : "";
    return { key: `file:${file.type}/${file.subfolder}/${file.filename}${scaled}`, url: viewURL(file), resize };
  }
  if (resize) return null; // a generated picture behind a resize: shown after a run, from the backend
  const element = source.imgs?.[source.imageIndex ?? 0] ?? source.imgs?.[0];
  if (element?.src) return { key: `img:${element.src}`, element };
  return null;
}

function sameAspect(a, b) {
  return Math.abs(a.width / a.height - b.width / b.height) < 0.01;
}

function loadPicture(state, url, { keepKnownSize = false, resize = null } = {}) {
  const token = ++state.loadToken; // a newer request makes older loads stale
  const img = new Image();
  img.onload = () => {
    if (token !== state.loadToken) return;
    let size = { width: img.naturalWidth, height: img.naturalHeight };
    if (resize) {
      const target = resizedSize(resize, size);
      // A stretched or cropped picture would put the points elsewhere: show it after a run instead.
      if (!sameAspect(target, size)) return state.editor.setImage(null);
      size = target;
    }
    // a backend preview may be downscaled: keep the coordinate space of the input image
    const space = keepKnownSize && state.knownSize && sameAspect(size, state.knownSize) ? state.knownSize : size;
    if (!keepKnownSize) state.knownSize = size;
    state.editor.setImage(img, space);
  };
  img.onerror = () => {
    if (token === state.loadToken) state.editor.setImage(null);
  };
  img.src = url;
}

function refreshUpstream(state) {
  const found = upstreamImage(state.node);
  const key = found?.key ?? null;
  if (key === state.upstreamKey) return;
  state.upstreamKey = key;
  if (!found) return; // disconnected: keep the last picture, the pairs still refer to it
  if (found.url) return loadPicture(state, found.url, { resize: found.resize });
  showElement(state, found.element, ++state.loadToken);
}

function showElement(state, element, token) {
  if (element.complete === false) {
    element.addEventListener("load", () => token === state.loadToken && showElement(state, element, token), { once: true });
    return;
  }
  const size = { width: element.naturalWidth, height: element.naturalHeight };
  if (size.width > 0 && size.height > 0) state.knownSize = size;
  state.editor.setImage(element);
}

// --- value sync -----------------------------------------------------------------

function syncFromWidget(state) {
  const value = String(state.widget.value ?? "");
  if (value !== state.editor.getValue()) state.editor.setValue(value);
  if (!state.regionWidget) return;
  const region = String(state.regionWidget.value ?? "");
  if (region !== state.editor.getRegionValue()) state.editor.setRegionValue(region);
}

function writeWidget(state, widget, text) {
  widget.value = text;
  state.node.setDirtyCanvas?.(true, true);
  state.node.graph?.setDirtyCanvas?.(true, true);
}

function parseTrackedPoints(raw) {
  let data = raw;
  if (typeof raw === "string") {
    try {
      data = JSON.parse(raw);
    } catch {
      return [];
    }
  }
  if (!Array.isArray(data)) return [];
  // accept [[x,y], ...] or [{handle:[x,y]}, ...]
  return data.map((item) => (Array.isArray(item) ? item : item?.handle)).filter(Array.isArray);
}

function applyExecuted(state, message) {
  const preview = message?.drag_preview?.[0];
  if (preview?.filename) {
    loadPicture(state, viewURL({ type: "temp", ...preview }), { keepKnownSize: true });
  }
  const tracked = message?.tracked_points?.[0];
  if (tracked !== undefined) state.editor.setTrackedPoints(parseTrackedPoints(tracked));
}

// --- node lifecycle -------------------------------------------------------------

function setupNode(node, nodeClass) {
  const widget = node.widgets?.find((w) => w.name === POINTS_WIDGET);
  // without DOM widgets, leave the plain text widget usable rather than hiding it
  if (!widget || typeof node.addDOMWidget !== "function" || editorStates.has(node)) return;
  // a server from before the painted region has no `region` input: the editor then only places points
  const regionWidget = node.widgets.find((w) => w.name === REGION_WIDGET) ?? null;
  const previewed = PREVIEW_CLASSES.has(nodeClass);

  const state = { node, widget, regionWidget, editor: null, preview: null, dom: null, upstreamKey: undefined,
    loadToken: 0, knownSize: null, timer: null };
  const dom = buildElement({ region: Boolean(regionWidget), preview: previewed });
  state.dom = dom;
  // The frontend's graph undo/redo (a window keydown listener in the capture phase, before any of ours) skips
  // keys typed in text fields: the editor's keys are typed in one (dom.keys), so Ctrl+Z is the editor's alone.
  state.editor = new DragPointsCanvas(dom.canvas, {
    keyTarget: dom.keys,
    onChange: (json) => writeWidget(state, widget, json),
    onRegionChange: (text) => regionWidget && writeWidget(state, regionWidget, text),
    onLiveEdit: () => state.preview?.update(),
    onControlsChange: () => syncToolbar(dom, state.editor),
    onStatus: (status) => showStatus(dom, status),
  });
  if (previewed) {
    state.preview = new WarpPreview(state.editor, {
      fetchApi: (route, options) => api.fetchApi(route, options),
      kernel: () => widgetValue(node, KERNEL_WIDGET),
      maskLinked: () => node.inputs?.find((input) => input.name === "mask")?.link != null,
    });
  }
  dom.bind(state.editor);

  hideWidget(widget);
  if (regionWidget) hideWidget(regionWidget);
  const domWidget = node.addDOMWidget("drag_points_editor", "drag_points_editor", dom.root, {
    serialize: false, // the hidden STRING widgets carry the data
    hideOnZoom: false,
    getMinHeight: () => minimumHeight(dom), // classic nodes; Vue-rendered ones follow the element's CSS
    getValue: () => state.editor.getValue(),
    setValue: () => {},
  });
  if (domWidget) domWidget.serialize = false; // also keep it out of widgets_values

  editorStates.set(node, state);
  syncFromWidget(state);
  refreshUpstream(state);
  syncToolbar(dom, state.editor);

  let hadGraph = false;
  state.timer = setInterval(() => {
    if (node.graph) hadGraph = true;
    else if (hadGraph) return teardown(node); // removed without onRemoved
    takeOverStaleElement(state);
    syncFromWidget(state);
    refreshUpstream(state);
    state.preview?.update(); // the kernel, a new picture, outside edits
    syncToolbar(dom, state.editor);
  }, POLL_MS);

  const size = node.computeSize?.();
  if (size && node.setSize) {
    node.setSize([Math.max(node.size?.[0] ?? 0, size[0], MIN_WIDTH), Math.max(node.size?.[1] ?? 0, size[1])]);
  }
}

function teardown(node) {
  const state = editorStates.get(node);
  if (!state) return;
  clearInterval(state.timer);
  state.preview?.destroy();
  state.editor.destroy();
  editorStates.delete(node);
  removedRoots.set(node.id, state.dom.root);
}

/**
 * A graph reloaded in place (the frontend's graph undo) replaces every node by a new one of the same id. Nodes
 * rendered by Vue keep their component, which keeps showing the removed node's editor, now inert. While that
 * element is on the page and this node's is not, this one takes its place.
 */
function takeOverStaleElement(state) {
  const stale = removedRoots.get(state.node.id);
  if (stale?.isConnected && !state.dom.root.isConnected) stale.replaceWith(state.dom.root);
  for (const [id, root] of removedRoots) if (!root.isConnected) removedRoots.delete(id); // off the page for good
}

/** Wrap a prototype method so ours runs after the original (which may be absent). */
function chainAfter(proto, name, after) {
  const original = proto[name];
  proto[name] = function (...args) {
    const result = original?.apply(this, args);
    try {
      after.apply(this, args);
    } catch (err) {
      console.error(`[DragEdit.PointEditor] ${name} failed`, err);
    }
    return result;
  };
}

app.registerExtension({
  name: "DragEdit.PointEditor",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_CLASSES.has(nodeData?.name)) return;
    // core/regions.py's limits, sent with the `region` input's definition (the editor keeps no copy)
    const regionLimits = nodeData.input?.optional?.[REGION_WIDGET]?.[1]?.region_limits;
    if (regionLimits) setRegionLimits(regionLimits);
    const proto = nodeType.prototype;

    chainAfter(proto, "onNodeCreated", function () {
      setupNode(this, nodeData.name);
    });
    chainAfter(proto, "onConfigure", function () {
      const state = editorStates.get(this);
      if (!state) return;
      syncFromWidget(state);
      state.upstreamKey = undefined; // links are restored by now: look again
      refreshUpstream(state);
    });
    chainAfter(proto, "onExecuted", function (message) {
      const state = editorStates.get(this);
      if (state) applyExecuted(state, message);
    });
    chainAfter(proto, "onConnectionsChange", function () {
      const state = editorStates.get(this);
      // the link table is updated after this callback in some versions
      if (state) setTimeout(() => refreshUpstream(state), 0);
    });
    chainAfter(proto, "onRemoved", function () {
      teardown(this);
    });
  },
});
