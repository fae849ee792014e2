// The point editor's DOM around its canvas: the tool row (points, brush, eraser, radius)
// and the action row (undo, clears, original/warped). Plain elements, no ComfyUI imports.

import { RADIUS_RANGE } from "./region_model.js";

const BUTTON_CSS = "flex:0 0 auto;padding:2px 8px;font-size:12px;cursor:pointer;";
const ACTIVE_CSS = "outline:2px solid #ffd54f;outline-offset:-2px;";

// the graph canvas under a DOM widget must not take these as node drags or graph shortcuts
function keepFromHost(el) {
  for (const type of ["pointerdown", "click", "keydown"]) el.addEventListener(type, (e) => e.stopPropagation());
}

function button(label, title) {
  const el = document.createElement("button");
  el.textContent = label;
  el.title = title;
  el.style.cssText = BUTTON_CSS;
  keepFromHost(el);
  return el;
}

function row() {
  const el = document.createElement("div");
  el.style.cssText = "display:flex;gap:6px;flex:0 0 auto;align-items:center;flex-wrap:wrap;";
  return el;
}

/**
 * @param {{region: boolean, preview: boolean}} features region: painting tools; preview: the original/warped toggle
 * Returns { root, canvas, bind(editor), ... } ; bind() wires the controls to a DragPointsCanvas.
 */
export function buildElement({ region = true, preview = false } = {}) {
  const root = document.createElement("div");
  root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;min-height:0;box-sizing:border-box;";
  // absolute canvas inside a flex child: the canvas' own pixel size can never feed back into the layout
  const frame = document.createElement("div");
  frame.style.cssText = "position:relative;flex:1 1 auto;min-height:120px;overflow:hidden;";
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "position:absolute;inset:0;width:100%;height:100%;display:block;";
  frame.appendChild(canvas);
  const dom = { root, canvas, tools: {}, radius: null, radiusLabel: null, toggle: null };

  const actions = row();
  const undo = button("Undo", "Undo the last edit, a point or a stroke (Ctrl+Z)");
  const clear = button("Clear", "Remove all pairs (undoable)");
  actions.append(undo, clear);
  let clearRegion = null;
  if (region) {
    clearRegion = button("Clear region", "Remove the painted region (undoable)");
    actions.append(clearRegion);
  }
  if (preview) {
    dom.toggle = button("Show original", "Switch between the live warp preview and the original picture");
    actions.append(dom.toggle);
  }

  let tools = null;
  if (region) {
    tools = row();
    for (const [tool, label, title] of [["points", "Points", "Place and move handle->target pairs (P)"],
      ["brush", "Brush", "Paint the region (B)"], ["eraser", "Eraser", "Erase from the region (E)"]]) {
      dom.tools[tool] = button(label, title);
      tools.append(dom.tools[tool]);
    }
    dom.radius = document.createElement("input");
    Object.assign(dom.radius, { type: "range", min: RADIUS_RANGE.min, max: RADIUS_RANGE.max, step: 1,
      title: "Brush and eraser radius in image pixels (+/- keys)" });
    dom.radius.style.cssText = "flex:1 1 60px;min-width:50px;max-width:160px;";
    keepFromHost(dom.radius);
    dom.radiusLabel = document.createElement("span");
    dom.radiusLabel.style.cssText = "font-size:12px;min-width:44px;";
    tools.append(dom.radius, dom.radiusLabel);
  }
  root.append(...[tools, frame, actions].filter(Boolean));

  dom.bind = (editor) => {
    undo.addEventListener("click", () => editor.undo());
    clear.addEventListener("click", () => editor.clear());
    clearRegion?.addEventListener("click", () => editor.clearRegion());
    dom.toggle?.addEventListener("click", () => editor.setShowPreview(!editor.showPreview));
    for (const [tool, el] of Object.entries(dom.tools)) el.addEventListener("click", () => editor.setTool(tool));
    dom.radius?.addEventListener("input", () => editor.setRadius(dom.radius.value));
  };
  return dom;
}

/** Show the editor's tool, radius and background choice on the controls. */
export function syncToolbar(dom, editor) {
  for (const [tool, el] of Object.entries(dom.tools)) {
    const active = tool === editor.tool;
    el.style.cssText = BUTTON_CSS + (active ? ACTIVE_CSS : "");
    el.setAttribute("aria-pressed", String(active));
  }
  if (dom.radius && Number(dom.radius.value) !== editor.radius) dom.radius.value = String(editor.radius);
  if (dom.radiusLabel) dom.radiusLabel.textContent = `${editor.radius} px`;
  if (dom.toggle) {
    dom.toggle.disabled = !editor.preview;
    dom.toggle.textContent = editor.showPreview ? "Show original" : "Show warped";
  }
}

export function hideWidget(widget) {
  widget.hidden = true; // current frontends
  widget.computeSize = () => [0, -4]; // legacy LiteGraph layout
  for (const el of [widget.element, widget.inputEl]) if (el?.style) el.style.display = "none";
}
