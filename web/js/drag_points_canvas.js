// Draws the drag pairs over a contain-fitted image on a <canvas> and turns
// pointer/keyboard input into model edits. Knows nothing about ComfyUI: the
// host passes the JSON in with setValue() and gets it back through onChange.

import {
  DEFAULT_HIT_RADIUS,
  DragPointsModel,
  canvasToImage,
  containFit,
  formatPoint,
  imageToCanvas,
  isInsideFit,
  parsePairs,
  validateBounds,
} from "./drag_points_model.js";

export const COLORS = {
  background: "#1e1e1e",
  handle: "#e53935",
  target: "#1e88e5",
  arrow: "#ffffff",
  outline: "rgba(0, 0, 0, 0.8)",
  hover: "#ffd54f",
  tracked: "#43a047",
  text: "#f0f0f0",
  error: "#ff6b6b",
};

const MARKER_RADIUS = 6;
const FONT = "12px sans-serif";

function imageSizeOf(source) {
  if (!source) return null;
  const width = source.naturalWidth || source.videoWidth || source.width;
  const height = source.naturalHeight || source.videoHeight || source.height;
  return width > 0 && height > 0 ? { width, height } : null;
}

export class DragPointsCanvas {
  /**
   * @param {HTMLCanvasElement} canvas sized by CSS; the backing store follows it.
   * @param {{onChange?: (json: string) => void, hitRadius?: number}} options
   */
  constructor(canvas, { onChange = () => {}, hitRadius = DEFAULT_HIT_RADIUS } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.hitRadius = hitRadius;
    this.model = new DragPointsModel();
    this.value = "[]"; // last JSON loaded or emitted
    this.error = null; // structural parse error: editing disabled until fixed/cleared
    this.image = null;
    this.imageSize = null;
    this.tracked = [];
    this.hover = null; // { ref, canvasPoint }
    this.dragRef = null;
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
    this.dragRef = null;
    this.render();
  }

  getValue() {
    return this.value;
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

  /** Final handle positions reported by the backend, drawn as green rings. */
  setTrackedPoints(points) {
    this.tracked = Array.isArray(points) ? points.filter((p) => Array.isArray(p) && p.length === 2) : [];
    this.render();
  }

  undo() {
    if (this.error) return false;
    const changed = this.model.undo();
    this._afterEdit(changed);
    return changed;
  }

  /** Clear all pairs; also the way out of the malformed-JSON state. */
  clear() {
    if (this.error) {
      this.error = null;
      this.model.load([]);
      this._afterEdit(true);
      return true;
    }
    const changed = this.model.clear();
    this._afterEdit(changed);
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
      return this._drawMessage(["Cannot use the drag_points of this node:", this.error.message,
        "Press Clear to start again."], COLORS.error);
    }
    const fit = this.fit;
    if (!fit) {
      const count = this.model.pairCount;
      return this._drawMessage([
        "No image yet: connect a Load Image node or run once.",
        count ? `${count} pair(s) stored.` : "",
      ], COLORS.text);
    }
    if (this.image) {
      try {
        ctx.drawImage(this.image, fit.offsetX, fit.offsetY, fit.width, fit.height);
      } catch {
        // a broken/unloaded image must not break the editor; keep the bare canvas
      }
    }
    this.tracked.forEach((point) => this._drawRing(imageToCanvas(point, fit), COLORS.tracked));
    this.model.pairs.forEach((pair, index) => this._drawPair(pair, index, fit));
    const pending = this.model.pending;
    if (pending) this._drawPending(imageToCanvas(pending, fit));
    this._drawHover(fit);
    this._drawStatus(fit);
  }

  _drawPair(pair, index, fit) {
    const from = imageToCanvas(pair.handle, fit);
    const to = imageToCanvas(pair.target, fit);
    this._drawArrow(from, to);
    this._drawMarker(from, COLORS.handle);
    this._drawMarker(to, COLORS.target);
    this._drawLabel(String(index + 1), [from[0] + MARKER_RADIUS + 2, from[1] - MARKER_RADIUS - 2]);
  }

  _drawArrow(from, to) {
    const { ctx } = this;
    const length = Math.hypot(to[0] - from[0], to[1] - from[1]);
    if (length < 1e-6) return;
    const ux = (to[0] - from[0]) / length;
    const uy = (to[1] - from[1]) / length;
    // stop at the target marker's edge so the tip stays visible
    const tip = [to[0] - ux * MARKER_RADIUS, to[1] - uy * MARKER_RADIUS];
    const headLength = Math.min(12, length * 0.4);
    const base = [tip[0] - ux * headLength, tip[1] - uy * headLength];
    const side = [-uy * headLength * 0.5, ux * headLength * 0.5];

    ctx.lineCap = "round";
    for (const [style, widthPx] of [[COLORS.outline, 4.5], [COLORS.arrow, 2]]) {
      ctx.strokeStyle = style;
      ctx.lineWidth = widthPx;
      ctx.beginPath();
      ctx.moveTo(from[0], from[1]);
      ctx.lineTo(base[0], base[1]);
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.moveTo(tip[0], tip[1]);
    ctx.lineTo(base[0] + side[0], base[1] + side[1]);
    ctx.lineTo(base[0] - side[0], base[1] - side[1]);
    ctx.closePath();
    ctx.fillStyle = COLORS.arrow;
    ctx.strokeStyle = COLORS.outline;
    ctx.lineWidth = 1.5;
    ctx.fill();
    ctx.stroke();
  }

  _drawMarker(center, color) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.arc(center[0], center[1], MARKER_RADIUS, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
  }

  _drawRing(center, color, radius = MARKER_RADIUS + 3) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.arc(center[0], center[1], radius, 0, Math.PI * 2);
    ctx.lineWidth = 2;
    ctx.strokeStyle = color;
    ctx.stroke();
  }

  _drawPending(center) {
    this._drawMarker(center, COLORS.handle);
    this.ctx.setLineDash([3, 3]);
    this._drawRing(center, COLORS.handle, MARKER_RADIUS + 5);
    this.ctx.setLineDash([]);
  }

  _drawHover(fit) {
    if (!this.hover?.ref) return;
    const point = this.model.getPoint(this.hover.ref);
    if (!point) return;
    const center = imageToCanvas(point, fit);
    this._drawRing(center, COLORS.hover);
    const { index, end } = this.hover.ref;
    const name = end === "pending" ? "handle (pending)" : `#${index + 1} ${end}`;
    this._drawLabel(`${name} ${formatPoint(point)}`, [center[0] + MARKER_RADIUS + 4, center[1] + 16]);
  }

  _drawStatus(fit) {
    const bounds = validateBounds(this.model.pairs, this.imageSize);
    let text;
    if (bounds) text = `Warning: ${bounds.message}`;
    else if (this.model.pending) text = "Click to place the target (Esc cancels)";
    else if (this.hover?.canvasPoint && isInsideFit(this.hover.canvasPoint, fit)) {
      text = `${formatPoint(canvasToImage(this.hover.canvasPoint, fit))} px`;
    } else text = `${this.model.pairCount} pair(s) · click: handle, then target`;
    this._drawLabel(text, [6, this.cssSize.height - 6], bounds ? COLORS.error : COLORS.text);
  }

  /** Text with a dark outline so it reads on any background; kept inside the canvas. */
  _drawLabel(text, [x, y], color = COLORS.text) {
    const { ctx } = this;
    const width = ctx.measureText(text).width;
    const left = Math.max(2, Math.min(x, this.cssSize.width - width - 2));
    const baseline = Math.max(12, Math.min(y, this.cssSize.height - 3));
    ctx.lineWidth = 3;
    ctx.strokeStyle = COLORS.outline;
    ctx.lineJoin = "round";
    ctx.strokeText(text, left, baseline);
    ctx.fillStyle = color;
    ctx.fillText(text, left, baseline);
  }

  _drawMessage(lines, color) {
    const { ctx } = this;
    const maxWidth = Math.max(40, this.cssSize.width - 16);
    let y = 20;
    ctx.fillStyle = color;
    for (const line of lines) {
      for (const wrapped of wrapText(ctx, line, maxWidth)) {
        ctx.fillText(wrapped, 8, y);
        y += 16;
      }
    }
  }

  // --- input ----------------------------------------------------------------------

  _attachEvents() {
    const { canvas } = this;
    // focusable so Delete / Ctrl+Z reach us instead of the page
    if (!canvas.hasAttribute("tabindex")) canvas.tabIndex = 0;
    canvas.style.touchAction = "none";
    canvas.style.outline = "none";
    this._on(canvas, "pointerdown", (e) => this._onPointerDown(e));
    this._on(canvas, "pointermove", (e) => this._onPointerMove(e));
    this._on(canvas, "pointerup", (e) => this._onPointerUp(e));
    this._on(canvas, "pointercancel", (e) => this._onPointerUp(e));
    this._on(canvas, "pointerleave", () => {
      if (!this.dragRef) this._setHover(null);
    });
    this._on(canvas, "contextmenu", (e) => this._onContextMenu(e));
    this._on(canvas, "keydown", (e) => this._onKeyDown(e));
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
    this.canvas.focus?.({ preventScroll: true });
    event.preventDefault();
    event.stopPropagation(); // keep the host (graph canvas) from starting a node drag
    const fit = this.fit;
    if (this.error || !fit) return;
    const point = this._eventPoint(event);
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

  _onPointerMove(event) {
    const fit = this.fit;
    if (!fit || this.error) return;
    const point = this._eventPoint(event);
    if (this.dragRef) {
      event.preventDefault();
      this.model.movePoint(this.dragRef, canvasToImage(point, fit));
      this.hover = { ref: this.dragRef, canvasPoint: point };
      this.render();
      return;
    }
    this._setHover({ ref: this.model.hitTest(point, fit, this._hitRadiusCss()), canvasPoint: point });
  }

  _onPointerUp(event) {
    if (!this.dragRef) return;
    this.canvas.releasePointerCapture?.(event.pointerId);
    const ref = this.dragRef;
    this.dragRef = null;
    // pending moves are not part of the JSON, so only pair moves are emitted
    const changed = this.model.endGesture();
    this._afterEdit(changed && ref.end !== "pending");
  }

  _onContextMenu(event) {
    event.preventDefault(); // our right-click means delete, not a menu
    event.stopPropagation();
    const fit = this.fit;
    if (!fit || this.error) return;
    const ref = this.model.hitTest(this._eventPoint(event), fit, this._hitRadiusCss());
    if (ref) this._deleteAt(ref);
  }

  _onKeyDown(event) {
    const key = event.key;
    let handled = true;
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && key.toLowerCase() === "z") this.undo();
    else if (key === "Delete" || key === "Backspace") {
      if (this.hover?.ref && !this.error) this._deleteAt(this.hover.ref);
    } else if (key === "Escape") {
      if (this.model.cancelPending()) this.render();
    } else handled = false;
    if (handled) {
      // stop the host app from treating these as graph shortcuts (delete node, graph undo)
      event.preventDefault();
      event.stopPropagation();
    }
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
    this.hover.ref = this.model.hitTest(this.hover.canvasPoint, fit, this._hitRadiusCss());
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
    if (!changed) return;
    const json = this.model.serialize();
    if (json === this.value) return;
    this.value = json;
    this.onChange(json);
  }
}

function wrapText(ctx, text, maxWidth) {
  if (!text) return [];
  const lines = [];
  let line = "";
  for (const word of String(text).split(/\s+/)) {
    const candidate = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(candidate).width > maxWidth) {
      lines.push(line);
      line = word;
    } else line = candidate;
  }
  if (line) lines.push(line);
  return lines;
}
