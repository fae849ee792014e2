// ComfyUI glue: puts the point editor on "Drag Latent Optimize" nodes.
// The hidden `drag_points` STRING widget stays the source of truth (it is what
// workflow JSON and API prompts carry); the canvas only edits that string.
//
// Served from WEB_DIRECTORY = "./web/js", hence "../../scripts/...".

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { DragPointsCanvas } from "./drag_points_canvas.js";

// Both drag methods take the same drag_points and image inputs.
const NODE_CLASSES = new Set(["DragEdit_DragLatentOptimize", "DragEdit_GoodDragLatentOptimize"]);
const POINTS_WIDGET = "drag_points";
const IMAGE_INPUT = "image";
const MIN_HEIGHT = 260;
const MIN_WIDTH = 320;
// Polling catches every way the value or upstream image can change (paste,
// workflow undo, combo edits, Vue-rendered nodes) without patching frontend internals.
const POLL_MS = 400;
const MAX_REROUTE_HOPS = 16;
// Stock resize nodes the editor looks through: it shows the source picture, in the resized image's pixels
// (what the drag receives), when the aspect ratio is kept. The templates scale example.png to 512x512 this way.
const RESIZE_NODES = new Set(["ImageScale"]);

const editorStates = new WeakMap();

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
export function parseImageWidgetValue(value) {
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
}

function writeWidget(state, json) {
  state.widget.value = json;
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

// --- DOM ---------------------------------------------------------------------------

function button(label, title, onClick) {
  const el = document.createElement("button");
  el.textContent = label;
  el.title = title;
  el.style.cssText = "flex:0 0 auto;padding:2px 10px;font-size:12px;cursor:pointer;";
  el.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick();
  });
  return el;
}

function buildElement() {
  const root = document.createElement("div");
  root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;min-height:0;box-sizing:border-box;";
  // absolute canvas inside a flex child: the canvas' own pixel size can never feed back into the layout
  const frame = document.createElement("div");
  frame.style.cssText = "position:relative;flex:1 1 auto;min-height:120px;overflow:hidden;";
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "position:absolute;inset:0;width:100%;height:100%;display:block;";
  frame.appendChild(canvas);
  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:6px;flex:0 0 auto;";
  root.append(frame, row);
  return { root, canvas, row };
}

function hideWidget(widget) {
  widget.hidden = true; // current frontends
  widget.computeSize = () => [0, -4]; // legacy LiteGraph layout
  for (const el of [widget.element, widget.inputEl]) if (el?.style) el.style.display = "none";
}

// --- node lifecycle -------------------------------------------------------------

function setupNode(node) {
  const widget = node.widgets?.find((w) => w.name === POINTS_WIDGET);
  // without DOM widgets, leave the plain text widget usable rather than hiding it
  if (!widget || typeof node.addDOMWidget !== "function" || editorStates.has(node)) return;

  const { root, canvas, row } = buildElement();
  const state = { node, widget, editor: null, upstreamKey: undefined, loadToken: 0, knownSize: null, timer: null };
  state.editor = new DragPointsCanvas(canvas, { onChange: (json) => writeWidget(state, json) });
  row.append(
    button("Undo", "Undo the last point edit (Ctrl+Z)", () => state.editor.undo()),
    button("Clear", "Remove all pairs (undoable)", () => state.editor.clear()),
  );

  hideWidget(widget);
  const domWidget = node.addDOMWidget("drag_points_editor", "drag_points_editor", root, {
    serialize: false, // the hidden STRING widget carries the data
    hideOnZoom: false,
    getMinHeight: () => MIN_HEIGHT,
    getValue: () => state.editor.getValue(),
    setValue: () => {},
  });
  if (domWidget) domWidget.serialize = false; // also keep it out of widgets_values

  editorStates.set(node, state);
  syncFromWidget(state);
  refreshUpstream(state);

  let hadGraph = false;
  state.timer = setInterval(() => {
    if (node.graph) hadGraph = true;
    else if (hadGraph) return teardown(node); // removed without onRemoved
    syncFromWidget(state);
    refreshUpstream(state);
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
  state.editor.destroy();
  editorStates.delete(node);
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
    const proto = nodeType.prototype;

    chainAfter(proto, "onNodeCreated", function () {
      setupNode(this);
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
