// The point editor's DOM around its canvas: the tool row (points, brush, eraser, radius), the
// status line under the picture and the action row (undo, redo, clears, original/warped).
// Plain elements, no ComfyUI imports.
//
// Keyboard: the host's graph shortcuts (its undo/redo, delete, ...) leave text fields alone, so every
// focusable part of the editor is a form control: the picture's keys go to a transparent read-only
// <textarea> over it, and the buttons are <input type="button">. The editor handles its own keys
// there and lets the others (Ctrl+S, ...) on to the host.
//
// Colours are the editor's own (a dark panel like the canvas), not the host's theme, so the text
// stays legible whatever the node around it looks like.

import { COLORS } from "./canvas_draw.js";
import { RADIUS_RANGE } from "./region_model.js";

/** The picture's height never goes below this (CSS px at 100% zoom), in classic and in Vue-rendered nodes. */
const MIN_PICTURE_HEIGHT = 300;
const CHROME_ESTIMATE = 100; // rows, status line, gaps and padding, until the element is laid out
const FOCUS_RING = "0 0 0 1px #8ab4f8";
const BUTTON_CSS = `flex:0 0 auto;margin:0;padding:2px 8px;font:inherit;font-size:12px;line-height:16px;cursor:pointer;
  color:${COLORS.text};background:#3a3a3a;border:1px solid #5c5c5c;border-radius:4px;`;
const ACTIVE_CSS = `outline:2px solid ${COLORS.hover};outline-offset:-2px;`;
const DISABLED_CSS = "opacity:0.5;cursor:default;";

// the graph canvas under a DOM widget must not take these as node drags or clicks
function keepFromHost(el) {
  for (const type of ["pointerdown", "click"]) el.addEventListener(type, (e) => e.stopPropagation());
}

function button(label, title) {
  const el = document.createElement("input");
  Object.assign(el, { type: "button", value: label, title });
  el.style.cssText = BUTTON_CSS;
  keepFromHost(el);
  return el;
}

function row() {
  const el = document.createElement("div");
  el.style.cssText = "display:flex;gap:6px;flex:0 0 auto;align-items:center;flex-wrap:wrap;";
  return el;
}

/** The element that holds the editor's keyboard focus, over the picture and invisible. */
function keyField() {
  const el = document.createElement("textarea");
  Object.assign(el, { readOnly: true, tabIndex: 0, spellcheck: false });
  el.setAttribute("inputmode", "none"); // no on-screen keyboard on touch devices
  el.setAttribute("aria-label", "Point editor: P, B, E choose the tool; Ctrl+Z undo, Ctrl+Shift+Z or Ctrl+Y redo; " +
    "Delete removes the pair under the cursor; Esc cancels; + and - set the brush radius");
  el.style.cssText = "position:absolute;inset:0;width:100%;height:100%;margin:0;padding:0;border:0;opacity:0;" +
    "resize:none;pointer-events:none;caret-color:transparent;";
  return el;
}

/**
 * @param {{region: boolean, preview: boolean}} features region: painting tools; preview: the original/warped toggle
 * Returns { root, canvas, keys, status, bind(editor), ... } ; bind() wires the controls to a DragPointsCanvas,
 * which takes `keys` as its keyTarget.
 */
export function buildElement({ region = true, preview = false } = {}) {
  const root = document.createElement("div");
  root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;box-sizing:border-box;" +
    `padding:4px;border-radius:6px;background:${COLORS.background};color:${COLORS.text};font-size:12px;`;
  // absolute canvas inside a flex child: the canvas' own pixel size can never feed back into the layout
  const frame = document.createElement("div");
  frame.style.cssText = `position:relative;flex:1 1 auto;min-height:${MIN_PICTURE_HEIGHT}px;overflow:hidden;`;
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "position:absolute;inset:0;width:100%;height:100%;display:block;";
  const keys = keyField();
  keys.addEventListener("focus", () => { frame.style.boxShadow = FOCUS_RING; });
  keys.addEventListener("blur", () => { frame.style.boxShadow = ""; });
  frame.append(canvas, keys);
  const status = document.createElement("div");
  status.style.cssText = "flex:0 0 auto;height:16px;line-height:16px;white-space:nowrap;overflow:hidden;" +
    "text-overflow:ellipsis;";
  const dom = { root, frame, canvas, keys, status, tools: {}, radius: null, radiusLabel: null, toggle: null };

  const actions = row();
  const undo = button("Undo", "Undo the last edit, a point or a stroke (Ctrl+Z)");
  const redo = button("Redo", "Redo what Undo took back (Ctrl+Shift+Z or Ctrl+Y)");
  const clear = button("Clear", "Remove all pairs (undoable)");
  actions.append(undo, redo, clear);
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
    dom.radius.style.cssText = "flex:1 1 60px;min-width:50px;max-width:160px;margin:0;";
    keepFromHost(dom.radius);
    dom.radiusLabel = document.createElement("span");
    dom.radiusLabel.style.cssText = "min-width:44px;";
    tools.append(dom.radius, dom.radiusLabel);
  }
  root.append(...[tools, frame, dom.status, actions].filter(Boolean));

  dom.bind = (editor) => {
    const actions = [[undo, () => editor.undo()], [redo, () => editor.redo()], [clear, () => editor.clear()],
      [clearRegion, () => editor.clearRegion()], [dom.toggle, () => editor.setShowPreview(!editor.showPreview)],
      ...Object.entries(dom.tools).map(([tool, el]) => [el, () => editor.setTool(tool)])].filter(([el]) => el);
    for (const [el, action] of actions) {
      el.addEventListener("click", () => {
        action();
        // after a mouse click the keys belong to the picture again; a keyboard user's focus stays on the button
        if (!el.matches(":focus-visible")) keys.focus({ preventScroll: true });
      });
    }
    dom.radius?.addEventListener("input", () => editor.setRadius(dom.radius.value));
    dom.radius?.addEventListener("pointerup", () => keys.focus({ preventScroll: true }));
    // the editor's keys work from its controls too (form controls: the host leaves their keys alone)
    for (const el of [...actions.map(([el]) => el), dom.radius].filter(Boolean)) {
      el.addEventListener("keydown", (e) => editor.handleKey(e));
    }
  };
  return dom;
}

/** The height the node must give the editor: the minimum picture plus the rows around it. */
export function minimumHeight(dom) {
  const chrome = dom.root.offsetHeight > 0 ? dom.root.offsetHeight - dom.frame.offsetHeight : CHROME_ESTIMATE;
  return MIN_PICTURE_HEIGHT + chrome;
}

/** The editor's status line ({ text, problem }) under the picture. */
export function showStatus(dom, { text, problem }) {
  dom.status.textContent = text;
  dom.status.title = text; // the whole line when it is cut off
  dom.status.style.color = problem ? COLORS.error : COLORS.text;
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
    dom.toggle.style.cssText = BUTTON_CSS + (dom.toggle.disabled ? DISABLED_CSS : "");
    dom.toggle.value = editor.showPreview ? "Show original" : "Show warped";
  }
}

export function hideWidget(widget) {
  widget.hidden = true; // current frontends
  widget.computeSize = () => [0, -4]; // legacy LiteGraph layout
  for (const el of [widget.element, widget.inputEl]) if (el?.style) el.style.display = "none";
}
