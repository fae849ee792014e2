// Draws the drag pairs and the painted region over a contain-fitted image on a <canvas> and
// turns pointer/keyboard input into model edits. Knows nothing about ComfyUI: the host passes
// the texts in with setValue()/setRegionValue() and gets them back through onChange/onRegionChange;
// the status line is the host's to show (onStatus), outside the picture.

import {
  COLORS,
  FONT,
  MARKER_RADIUS,
  drawArrow,
  drawBrushCursor,
  drawLabel,
  drawMarker,
  drawMessage,
  drawRing,
  wrapText,
} from "./canvas_draw.js";
import {
  DEFAULT_HIT_RADIUS,
  DragPointsModel,
  canvasToImage,
  containFit,
  formatPoint,
  imageToCanvas,
  isInsideFit,
  parsePairs,
  serializePairs,
  validateBounds,
} from "./drag_points_model.js";
import { EditHistory } from "./edit_history.js";
import { RegionLayer } from "./region_layer.js";
import { RADIUS_RANGE, RegionModel, emptyRegion, parseRegion } from "./region_model.js";

const TOOLS = ["points", "brush", "eraser"];
const DEFAULT_BRUSH_RADIUS = 16; // image px
const TOOL_KEYS = { p: "points", b: "brush", e: "eraser" };
const RADIUS_STEP = 1.25; // +/- keys: a quarter bigger or smaller

function imageSizeOf(source) {
  if (!source) return null;
  const width = source.naturalWidth || source.videoWidth || source.width;
  const height = source.naturalHeight || source.videoHeight || source.height;
  return width > 0 && height > 0 ? { width, height } : null;
}

export class DragPointsCanvas {
  /**
   * @param {HTMLCanvasElement} canvas sized by CSS; the backing store follows it.
   * @param {object} options
   *   onChange(json): the pairs changed (a completed edit)
   *   onRegionChange(text): the region changed (a completed stroke, clear, undo)
   *   onLiveEdit(): something that a live preview shows changed, finished or not (a drag, a stroke)
   *   onControlsChange(): the tool, the brush radius or the preview changed (so the controls can follow the keys)
   *   onStatus({text, problem}): the status line (hint, cursor position, warning) changed
   *   keyTarget: the element that takes the keyboard focus when the picture is clicked, and whose keys are the
   *     editor's (default: the canvas, made focusable)
   */
  constructor(canvas, { onChange = () => {}, onRegionChange = () => {}, onLiveEdit = () => {},
    onControlsChange = () => {}, onStatus = () => {}, keyTarget = canvas, hitRadius = DEFAULT_HIT_RADIUS } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    Object.assign(this, { onChange, onRegionChange, onLiveEdit, onControlsChange, onStatus, keyTarget, hitRadius });
    this.status = null; // the last { text, problem } reported
    // one history: Ctrl+Z undoes the last edit, a point edit or a stroke; Ctrl+Shift+Z redoes it
    this.history = new EditHistory();
    this.model = new DragPointsModel([], { onRecord: () => this.history.record("points") });
    this.region = new RegionModel({ onRecord: () => this.history.record("region") });
    this.regionLayer = new RegionLayer();
    this.value = "[]"; // last JSON loaded or emitted
    this.regionValue = ""; // last region text loaded or emitted
    this.error = null; // structural parse error: editing disabled until fixed/cleared
    this.regionError = null; // same for the region: painting disabled until Clear region
    this.paintError = null; // a stroke refused (past core's limits), until the next edit
    this.notice = null; // { text, error } from the host (the live preview), shown above the status line
    this.tool = "points";
    this.radius = DEFAULT_BRUSH_RADIUS;
    this.image = null;
    this.imageSize = null;
    this.preview = null; // a warped picture from the host, drawn instead of the image while showPreview
    this.showPreview = true;
    this.tracked = [];
    this.hover = null; // { ref, canvasPoint }
    this.dragRef = null;
    this.painting = false;
    this.cssSize = { width: 0, height: 0 };
    this.dpr = 1;
    this._listeners = [];
    this._attachEvents();
    this.resize();
  }

  // --- public API -------------------------------------------------------------

  /** Load JSON from outside (widget value). Does not call onChange. */
  setValue(text) {
    this.value = typeof text === "string" ? text : String(text ?? "");
    const parsed = parsePairs(this.value);
    this.error = parsed.ok ? null : parsed.error;
    this.model.load(parsed.ok ? parsed.pairs : []);
    this.history.forget("points");
    this.dragRef = null;
    this.render();
  }

  getValue() {
    return this.value;
  }

  /** Load the region text from outside (widget value). Does not call onRegionChange. */
  setRegionValue(text) {
    this.regionValue = typeof text === "string" ? text : String(text ?? "");
    const parsed = parseRegion(this.regionValue);
    this.regionError = parsed.ok ? null : parsed.error;
    this.region.load(parsed.ok ? parsed.region : emptyRegion());
    this.history.forget("region");
    this.painting = false;
    this.render();
  }

  getRegionValue() {
    return this.regionValue;
  }

  /** The pairs and region as a preview should show them now, mid-drag or mid-stroke included. */
  liveValues() {
    return {
      dragPoints: this.error ? this.value : serializePairs(this.model.pairs),
      region: this.regionError ? this.regionValue : this.region.serializeLive(),
    };
  }

  /**
   * @param source any drawable (img, canvas, ImageBitmap) or null
   * @param size coordinate space in image pixels; defaults to the source size
   */
  setImage(source, size = null) {
    this.image = source || null;
    this.imageSize = size || imageSizeOf(source);
    this.render();
  }

  /** A picture drawn instead of the image (same pixel space), or null. */
  setPreview(source) {
    this.preview = source || null;
    this.render();
    this.onControlsChange();
  }

  setShowPreview(show) {
    this.showPreview = Boolean(show);
    this.render();
    this.onControlsChange();
  }

  /** A line from the host above the status line (null removes it). */
  setNotice(text, { error = false } = {}) {
    const notice = text ? { text: String(text), error } : null;
    if (JSON.stringify(notice) === JSON.stringify(this.notice)) return;
    this.notice = notice;
    this.render();
  }

  setTool(tool) {
    if (!TOOLS.includes(tool) || tool === this.tool) return;
    this._finishGestures();
    this.tool = tool;
    if (this.hover) this.hover.ref = null;
    this._refreshHover();
    this.render();
    this.onControlsChange();
  }

  /** Brush and eraser radius in image pixels. */
  setRadius(radius) {
    const value = Math.round(Math.min(Math.max(Number(radius) || 0, RADIUS_RANGE.min), RADIUS_RANGE.max));
    if (value === this.radius) return;
    this.radius = value;
    this.render();
    this.onControlsChange();
  }

  /** Final handle positions reported by the backend, drawn as green rings. */
  setTrackedPoints(points) {
    this.tracked = Array.isArray(points) ? points.filter((p) => Array.isArray(p) && p.length === 2) : [];
    this.render();
  }

  /** Undo the last edit, pairs or region alike. */
  undo() {
    return this._travel("undo");
  }

  /** Redo the last undone edit (until the next edit). */
  redo() {
    return this._travel("redo");
  }

  _travel(direction) {
    if (this.error) return false;
    this._finishGestures();
    const kind = this.history[direction]({ points: this.model, region: this.region });
    if (kind === "region") this._afterRegionEdit(true);
    else this._afterEdit(kind === "points");
    return kind !== null;
  }

  /** Clear all pairs; also the way out of the malformed-JSON state. */
  clear() {
    if (this.error) {
      this.error = null;
      this.model.load([]);
      this._afterEdit(true);
      return true;
    }
    this._finishGestures();
    const changed = this.model.clear();
    this._afterEdit(changed);
    return changed;
  }

  /** Clear the region (undoable); also the way out of a malformed region. */
  clearRegion() {
    this._finishGestures();
    if (this.regionError) {
      this.regionError = null;
      this.region.load(emptyRegion());
      this._afterRegionEdit(true);
      return true;
    }
    const changed = this.region.clear();
    this._afterRegionEdit(changed);
    return changed;
  }

  /** Current image<->canvas mapping, or null without an image or layout. */
  get fit() {
    return containFit(this.imageSize, this.cssSize);
  }

  /** Match the backing store to the CSS size times devicePixelRatio. */
  resize() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    this.cssSize = { width, height };
    this.dpr = dpr;
    const deviceWidth = Math.max(1, Math.round(width * dpr));
    const deviceHeight = Math.max(1, Math.round(height * dpr));
    if (this.canvas.width !== deviceWidth) this.canvas.width = deviceWidth;
    if (this.canvas.height !== deviceHeight) this.canvas.height = deviceHeight;
    this.render();
  }

  destroy() {
    for (const [target, type, handler, opts] of this._listeners) target.removeEventListener(type, handler, opts);
    this._listeners = [];
    this._resizeObserver?.disconnect();
  }

  // --- drawing ------------------------------------------------------------------

  render() {
    const { ctx } = this;
    if (!ctx) return;
    // moving to a screen with another pixel ratio may not resize the element
    if (typeof window !== "undefined" && (window.devicePixelRatio || 1) !== this.dpr) return this.resize();
    const { width, height } = this.cssSize;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = COLORS.background;
    ctx.fillRect(0, 0, width, height);
    ctx.font = FONT;
    ctx.textBaseline = "alphabetic";

    if (this.error) {
      this._reportStatus("", false);
      return drawMessage(ctx, ["Cannot use the drag_points of this node:", this.error.message,
        "Press Clear to start again."], COLORS.error, this.cssSize);
    }
    const fit = this.fit;
    if (!fit) {
      this._reportStatus("", false); // the message on the canvas says it all
      const count = this.model.pairCount;
      const strokes = this.region.strokeCount;
      return drawMessage(ctx, [
        "No image yet: connect a Load Image node or run once.",
        count ? `${count} pair(s) stored.` : "",
        strokes ? `A region of ${strokes} stroke(s) stored.` : "",
      ], COLORS.text, this.cssSize);
    }
    const background = this.showPreview && this.preview ? this.preview : this.image;
    if (background) {
      try {
        ctx.drawImage(background, fit.offsetX, fit.offsetY, fit.width, fit.height);
      } catch {
        // a broken/unloaded image must not break the editor; keep the bare canvas
      }
    }
    if (!this.regionError) this.regionLayer.draw(ctx, this.region, fit, this.dpr);
    this.tracked.forEach((point) => drawRing(ctx, imageToCanvas(point, fit), COLORS.tracked));
    this.model.pairs.forEach((pair, index) => this._drawPair(pair, index, fit));
    const pending = this.model.pending;
    if (pending) this._drawPending(imageToCanvas(pending, fit));
    this._drawHover(fit);
    if (this.regionError) {
      drawMessage(ctx, ["Cannot use the region of this node:", this.regionError.message,
        "Press Clear region to start again."], COLORS.error, this.cssSize, { outlined: true });
    }
    this._drawNotice();
    this._reportStatus(...this._statusLine(fit));
  }

  _drawPair(pair, index, fit) {
    const from = imageToCanvas(pair.handle, fit);
    const to = imageToCanvas(pair.target, fit);
    drawArrow(this.ctx, from, to);
    drawMarker(this.ctx, from, COLORS.handle);
    drawMarker(this.ctx, to, COLORS.target);
    this._label(String(index + 1), [from[0] + MARKER_RADIUS + 2, from[1] - MARKER_RADIUS - 2]);
  }

  _drawPending(center) {
    drawMarker(this.ctx, center, COLORS.handle);
    this.ctx.setLineDash([3, 3]);
    drawRing(this.ctx, center, COLORS.handle, MARKER_RADIUS + 5);
    this.ctx.setLineDash([]);
  }

  _drawHover(fit) {
    if (this.tool !== "points") {
      const at = this.hover?.canvasPoint;
      if (at && !this.regionError) drawBrushCursor(this.ctx, at, this.radius * fit.scale, this.tool === "eraser");
      return;
    }
    if (!this.hover?.ref) return;
    const point = this.model.getPoint(this.hover.ref);
    if (!point) return;
    const center = imageToCanvas(point, fit);
    drawRing(this.ctx, center, COLORS.hover);
    const { index, end } = this.hover.ref;
    const name = end === "pending" ? "handle (pending)" : `#${index + 1} ${end}`;
    this._label(`${name} ${formatPoint(point)}`, [center[0] + MARKER_RADIUS + 4, center[1] + 16]);
  }

  /** [text, problem] of the status line: a warning, the next step, the cursor position or a hint. */
  _statusLine(fit) {
    const bounds = validateBounds(this.model.pairs, this.imageSize);
    const problem = bounds ? `Warning: ${bounds.message}` : this.paintError?.message;
    if (problem) return [problem, true];
    if (this.model.pending) return ["Click to place the target (Esc cancels)", false];
    if (this.hover?.canvasPoint && isInsideFit(this.hover.canvasPoint, fit)) {
      const at = `${formatPoint(canvasToImage(this.hover.canvasPoint, fit))} px`;
      return [this.tool === "points" ? at : `${at} · ${this.tool} ${this.radius} px`, false];
    }
    return [this._hint(), false];
  }

  _reportStatus(text, problem) {
    if (this.status?.text === text && this.status.problem === problem) return;
    this.status = { text, problem };
    this.onStatus(this.status);
  }

  /** The host's line (the preview's answer) at the bottom of the picture, just above the status line. */
  _drawNotice() {
    if (!this.notice) return;
    let y = this.cssSize.height - 6;
    const lines = wrapText(this.ctx, this.notice.text, this.cssSize.width - 12);
    for (const line of lines.reverse()) {
      this._label(line, [6, y], this.notice.error ? COLORS.error : COLORS.text);
      y -= 16;
    }
  }

  _hint() {
    const strokes = this.region.strokeCount ? ` · region: ${this.region.strokeCount} stroke(s)` : "";
    if (this.tool === "points") return `${this.model.pairCount} pair(s)${strokes} · click: handle, then target`;
    return `${this.tool} ${this.radius} px · drag to ${this.tool === "brush" ? "paint" : "erase"} · +/- size${strokes}`;
  }

  _label(text, at, color = COLORS.text) {
    drawLabel(this.ctx, text, at, color, this.cssSize);
  }

  // --- input ----------------------------------------------------------------------

  _attachEvents() {
    const { canvas, keyTarget } = this;
    // focusable so Delete / Ctrl+Z reach us instead of the page
    if (keyTarget === canvas && !canvas.hasAttribute("tabindex")) canvas.tabIndex = 0;
    canvas.style.touchAction = "none";
    canvas.style.outline = "none";
    this._on(canvas, "pointerdown", (e) => this._onPointerDown(e));
    this._on(canvas, "pointermove", (e) => this._onPointerMove(e));
    this._on(canvas, "pointerup", (e) => this._onPointerUp(e));
    this._on(canvas, "pointercancel", (e) => this._onPointerUp(e));
    this._on(canvas, "pointerleave", () => {
      if (!this.dragRef && !this.painting) this._setHover(null);
    });
    this._on(canvas, "contextmenu", (e) => this._onContextMenu(e));
    this._on(keyTarget, "keydown", (e) => this.handleKey(e));
    if (typeof ResizeObserver !== "undefined") {
      this._resizeObserver = new ResizeObserver(() => this.resize());
      this._resizeObserver.observe(canvas);
    }
    if (typeof window !== "undefined") this._on(window, "resize", () => this.resize());
  }

  _on(target, type, handler, opts) {
    target.addEventListener(type, handler, opts);
    this._listeners.push([target, type, handler, opts]);
  }

  /**
   * Event position in canvas CSS px. Uses the bounding rect so a CSS scale on
   * an ancestor (ComfyUI zooms DOM widgets with transforms) is undone.
   */
  _eventPoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    const sx = rect.width ? this.cssSize.width / rect.width : 1;
    const sy = rect.height ? this.cssSize.height / rect.height : 1;
    return [(event.clientX - rect.left) * sx, (event.clientY - rect.top) * sy];
  }

  _hitRadiusCss() {
    // keep the grab radius constant on screen even when the canvas is scaled
    const rect = this.canvas.getBoundingClientRect();
    return rect.width ? this.hitRadius * (this.cssSize.width / rect.width) : this.hitRadius;
  }

  _onPointerDown(event) {
    if (event.button !== 0) return;
    this.keyTarget.focus?.({ preventScroll: true });
    event.preventDefault();
    event.stopPropagation(); // keep the host (graph canvas) from starting a node drag
    const fit = this.fit;
    if (this.error || !fit) return;
    const point = this._eventPoint(event);
    if (this.tool !== "points") return this._startStroke(event, point, fit);
    const ref = this.model.hitTest(point, fit, this._hitRadiusCss());
    if (ref) {
      this.dragRef = ref;
      this.model.beginGesture();
      this.canvas.setPointerCapture?.(event.pointerId);
      return;
    }
    if (!isInsideFit(point, fit)) return; // clicks on the letterbox bars do nothing
    const added = this.model.addPoint(canvasToImage(point, fit));
    this.hover = { ref: null, canvasPoint: point };
    this._afterEdit(added.completed);
  }

  _startStroke(event, point, fit) {
    // like clicks, strokes start on the picture; once started they may run past its border
    if (this.regionError || !isInsideFit(point, fit)) return;
    this.paintError = null;
    this.region.beginStroke(canvasToImage(point, fit, { clamp: false }),
      { radius: this.radius, erase: this.tool === "eraser", imageSize: this.imageSize });
    this.painting = true;
    this.canvas.setPointerCapture?.(event.pointerId);
    this.hover = { ref: null, canvasPoint: point };
    this.render();
    this.onLiveEdit();
  }

  _onPointerMove(event) {
    const fit = this.fit;
    if (!fit || this.error) return;
    const point = this._eventPoint(event);
    if (this.painting) {
      event.preventDefault();
      const kept = this.region.extendStroke(canvasToImage(point, fit, { clamp: false }));
      this.hover = { ref: null, canvasPoint: point };
      this.render();
      if (kept) this.onLiveEdit();
      return;
    }
    if (this.dragRef) {
      event.preventDefault();
      this.model.movePoint(this.dragRef, canvasToImage(point, fit));
      this.hover = { ref: this.dragRef, canvasPoint: point };
      this.render();
      this.onLiveEdit();
      return;
    }
    const ref = this.tool === "points" ? this.model.hitTest(point, fit, this._hitRadiusCss()) : null;
    this._setHover({ ref, canvasPoint: point });
  }

  _onPointerUp(event) {
    if (!this.dragRef && !this.painting) return;
    this.canvas.releasePointerCapture?.(event.pointerId);
    this._finishGestures();
  }

  /** End a point drag or a stroke in progress (pointer up, and before undo, tool changes, clears). */
  _finishGestures() {
    if (this.painting) {
      this.painting = false;
      const result = this.region.endStroke();
      this.paintError = result.error ?? null;
      this._afterRegionEdit(result.changed);
    }
    if (this.dragRef) {
      const ref = this.dragRef;
      this.dragRef = null;
      // pending moves are not part of the JSON, so only pair moves are emitted
      const changed = this.model.endGesture();
      this._afterEdit(changed && ref.end !== "pending");
    }
  }

  _onContextMenu(event) {
    event.preventDefault(); // our right-click means delete, not a menu
    event.stopPropagation();
    const fit = this.fit;
    if (!fit || this.error) return;
    const ref = this.model.hitTest(this._eventPoint(event), fit, this._hitRadiusCss());
    if (ref) this._deleteAt(ref);
  }

  /** A keydown in the editor: handles its keys (returns true) and keeps them from the page; others pass. */
  handleKey(event) {
    const key = event.key;
    const command = (event.ctrlKey || event.metaKey) && !event.altKey;
    const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
    let handled = true;
    if (command && !event.shiftKey && key.toLowerCase() === "z") this.undo();
    else if (command && ((event.shiftKey && key.toLowerCase() === "z") || (!event.shiftKey && key.toLowerCase() === "y"))) {
      this.redo();
    } else if (key === "Delete" || key === "Backspace") {
      if (this.hover?.ref && !this.error) this._deleteAt(this.hover.ref);
    } else if (key === "Escape") {
      if (this.painting) {
        this.painting = false;
        this.region.cancelStroke();
        this.render();
        this.onLiveEdit();
      } else if (this.model.cancelPending()) this.render();
    } else if (plain && TOOL_KEYS[key.toLowerCase()]) this.setTool(TOOL_KEYS[key.toLowerCase()]);
    else if (plain && (key === "+" || key === "=" || key === "]")) this.setRadius(Math.max(this.radius + 1, this.radius * RADIUS_STEP));
    else if (plain && (key === "-" || key === "_" || key === "[")) this.setRadius(Math.min(this.radius - 1, this.radius / RADIUS_STEP));
    else handled = false;
    if (handled) {
      // stop the host app from treating these as graph shortcuts (delete node, graph undo)
      event.preventDefault();
      event.stopPropagation();
    }
    return handled;
  }

  _deleteAt(ref) {
    const pairDeleted = ref.end !== "pending";
    if (!this.model.deleteAt(ref)) return;
    this._afterEdit(pairDeleted);
  }

  /** Indices shift after edits/undo, so re-resolve what is under the cursor. */
  _refreshHover() {
    const fit = this.fit;
    if (!this.hover?.canvasPoint || !fit || this.dragRef) return;
    this.hover.ref = this.tool === "points" ? this.model.hitTest(this.hover.canvasPoint, fit, this._hitRadiusCss()) : null;
    this._updateCursor();
  }

  _setHover(hover) {
    this.hover = hover;
    this._updateCursor();
    this.render();
  }

  _updateCursor() {
    this.canvas.style.cursor = this.hover?.ref ? "grab" : "crosshair";
  }

  /** Re-render, and report the JSON when the pair list may have changed. */
  _afterEdit(changed) {
    this._refreshHover();
    this.render();
    this.onLiveEdit();
    if (!changed) return;
    const json = this.model.serialize();
    if (json === this.value) return;
    this.value = json;
    this.onChange(json);
  }

  /** Re-render, and report the region text when it changed. */
  _afterRegionEdit(changed) {
    this.render();
    this.onLiveEdit();
    if (!changed) return;
    const text = this.region.serialize();
    if (text === this.regionValue) return;
    this.regionValue = text;
    this.onRegionChange(text);
  }
}
