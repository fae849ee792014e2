// Pure state + geometry for the handle->target point editor.
// No DOM or ComfyUI imports so it can be unit-tested under plain Node.
//
// Points are [x, y] in IMAGE pixels (origin top-left, x right, y down).
// A pair is { handle: [x, y], target: [x, y] }.

export const DEFAULT_HIT_RADIUS = 10; // screen (CSS) px
const MAX_UNDO = 200;

// ---------------------------------------------------------------------------
// Numbers and points

/** Round to 0.1 px; also turns -0 into 0 so serialization is stable. */
export function roundCoord(value) {
  return Math.round(value * 10) / 10 + 0;
}

function copyPoint(point) {
  return [point[0], point[1]];
}

function copyPair(pair) {
  return { handle: copyPoint(pair.handle), target: copyPoint(pair.target) };
}

/**
 * Push onto an undo or redo stack of at most MAX_UNDO snapshots. With a shared history, another model's edit
 * leaves this model's redo snapshots unreachable without clearing them; the cap drops those, the oldest, first.
 */
function keep(stack, snapshot) {
  stack.push(snapshot);
  if (stack.length > MAX_UNDO) stack.shift();
}

function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

function isPositiveSize(size) {
  return Boolean(size) && size.width > 0 && size.height > 0 &&
    Number.isFinite(size.width) && Number.isFinite(size.height);
}

/**
 * Clamp to the pixel grid [0, width-1] x [0, height-1]: whatever the consumer
 * does (floor, round, bilinear sampling), a clamped point stays inside.
 */
export function clampToImage(point, size) {
  const clamp = (v, hi) => Math.min(Math.max(v, 0), Math.max(hi, 0));
  return [clamp(point[0], size.width - 1), clamp(point[1], size.height - 1)];
}

// ---------------------------------------------------------------------------
// Letterboxed "contain" fit between image pixels and canvas (CSS) pixels

/**
 * Largest uniform scale that fits the image inside the canvas, centred.
 * Returns null when either size is unusable (e.g. canvas not laid out yet).
 */
export function containFit(imageSize, canvasSize) {
  if (!isPositiveSize(imageSize) || !isPositiveSize(canvasSize)) return null;
  const scale = Math.min(canvasSize.width / imageSize.width, canvasSize.height / imageSize.height);
  const width = imageSize.width * scale;
  const height = imageSize.height * scale;
  return {
    scale,
    offsetX: (canvasSize.width - width) / 2,
    offsetY: (canvasSize.height - height) / 2,
    width,
    height,
    imageWidth: imageSize.width,
    imageHeight: imageSize.height,
  };
}

export function imageToCanvas(point, fit) {
  return [fit.offsetX + point[0] * fit.scale, fit.offsetY + point[1] * fit.scale];
}

/** Inverse of imageToCanvas; clamps into the image unless clamp is false. */
export function canvasToImage(point, fit, { clamp = true } = {}) {
  const raw = [(point[0] - fit.offsetX) / fit.scale, (point[1] - fit.offsetY) / fit.scale];
  return clamp ? clampToImage(raw, { width: fit.imageWidth, height: fit.imageHeight }) : raw;
}

/** True when a canvas point lies on the drawn image (not in the letterbox bars). */
export function isInsideFit(point, fit) {
  return point[0] >= fit.offsetX && point[0] <= fit.offsetX + fit.width &&
    point[1] >= fit.offsetY && point[1] <= fit.offsetY + fit.height;
}

// ---------------------------------------------------------------------------
// JSON parsing / validation / serialization

function fail(code, message, extra = {}) {
  return { ok: false, error: { code, message, ...extra } };
}

function checkPoint(value, index, field) {
  const where = `pair ${index + 1} ${field}`;
  if (!Array.isArray(value) || value.length !== 2) {
    return fail("bad_point", `${where} must be an [x, y] array`, { index, field });
  }
  if (!value.every((v) => typeof v === "number" && Number.isFinite(v))) {
    return fail("non_finite", `${where} must contain two finite numbers`, { index, field });
  }
  return null;
}

/**
 * Check that every point is inside the image. Bounds are the continuous
 * extent [0, width] x [0, height], more lenient than clampToImage, so JSON
 * written by hand or by API clients with edge coordinates is not rejected.
 * Returns an error object or null.
 */
export function validateBounds(pairs, imageSize) {
  if (!isPositiveSize(imageSize)) return null;
  for (let index = 0; index < pairs.length; index++) {
    for (const field of ["handle", "target"]) {
      const [x, y] = pairs[index][field];
      if (x < 0 || y < 0 || x > imageSize.width || y > imageSize.height) {
        return {
          code: "out_of_bounds",
          message: `pair ${index + 1} ${field} (${x}, ${y}) is outside the ` +
            `${imageSize.width}x${imageSize.height} image`,
          index,
          field,
        };
      }
    }
  }
  return null;
}

/**
 * Parse the drag_points widget string. Never throws.
 * Returns { ok: true, pairs } or { ok: false, error: { code, message, index?, field? } }.
 * Empty/whitespace text counts as no pairs. Extra keys in a pair are ignored.
 */
export function parsePairs(text, imageSize = null) {
  if (typeof text !== "string") return fail("not_string", "drag_points must be a JSON string");
  if (text.trim() === "") return { ok: true, pairs: [] };
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return fail("invalid_json", `invalid JSON: ${err.message}`);
  }
  if (!Array.isArray(data)) return fail("not_array", "drag_points must be a JSON array of pairs");
  const pairs = [];
  for (let index = 0; index < data.length; index++) {
    const item = data[index];
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      return fail("bad_pair", `pair ${index + 1} must be an object {"handle":[x,y],"target":[x,y]}`, { index });
    }
    for (const field of ["handle", "target"]) {
      const problem = checkPoint(item[field], index, field);
      if (problem) return problem;
    }
    pairs.push(copyPair(item));
  }
  const boundsError = validateBounds(pairs, imageSize);
  if (boundsError) return { ok: false, error: boundsError };
  return { ok: true, pairs };
}

/** Compact, key-ordered JSON with coordinates rounded to 0.1 px. */
export function serializePairs(pairs) {
  const rounded = pairs.map((pair) => ({
    handle: pair.handle.map(roundCoord),
    target: pair.target.map(roundCoord),
  }));
  return JSON.stringify(rounded);
}

export function formatPoint(point) {
  return `(${roundCoord(point[0])}, ${roundCoord(point[1])})`;
}

// ---------------------------------------------------------------------------
// Editable state with undo and redo

/**
 * An endpoint reference is { index, end } with end "handle" | "target", or
 * { index: null, end: "pending" } for a handle still waiting for its target.
 */
export class DragPointsModel {
  /** @param {{onRecord?: () => void}} options onRecord runs whenever an undo step is stored (shared history). */
  constructor(pairs = [], { onRecord = () => {} } = {}) {
    this._pairs = pairs.map(copyPair);
    this._pending = null;
    this._undo = [];
    this._redo = []; // states undone, until the next edit
    this._gestureStart = null; // snapshot taken by beginGesture()
    this._onRecord = onRecord;
  }

  get pairs() {
    return this._pairs.map(copyPair);
  }

  get pairCount() {
    return this._pairs.length;
  }

  get pending() {
    return this._pending ? copyPoint(this._pending) : null;
  }

  get canUndo() {
    return this._undo.length > 0;
  }

  get canRedo() {
    return this._redo.length > 0;
  }

  /** Replace the whole state from outside (load/paste); history no longer applies. */
  load(pairs) {
    this._pairs = pairs.map(copyPair);
    this._pending = null;
    this._undo = [];
    this._redo = [];
    this._gestureStart = null;
  }

  serialize() {
    return serializePairs(this._pairs);
  }

  // --- edits -------------------------------------------------------------

  /** First call stores a pending handle, the second completes the pair. */
  addPoint(point) {
    this._record();
    if (this._pending) {
      this._pairs.push({ handle: this._pending, target: copyPoint(point) });
      this._pending = null;
      return { completed: true, index: this._pairs.length - 1 };
    }
    this._pending = copyPoint(point);
    return { completed: false, index: null };
  }

  cancelPending() {
    if (!this._pending) return false;
    this._record();
    this._pending = null;
    return true;
  }

  getPoint(ref) {
    if (ref.end === "pending") return this._pending ? copyPoint(this._pending) : null;
    const pair = this._pairs[ref.index];
    return pair ? copyPoint(pair[ref.end]) : null;
  }

  movePoint(ref, point) {
    if (!this.getPoint(ref)) return false;
    this._record();
    if (ref.end === "pending") this._pending = copyPoint(point);
    else this._pairs[ref.index][ref.end] = copyPoint(point);
    return true;
  }

  /** Delete the pair owning the endpoint (or drop the pending handle). */
  deleteAt(ref) {
    if (!this.getPoint(ref)) return false;
    if (ref.end === "pending") return this.cancelPending();
    this._record();
    this._pairs.splice(ref.index, 1);
    return true;
  }

  clear() {
    if (this._pairs.length === 0 && !this._pending) return false;
    this._record();
    this._pairs = [];
    this._pending = null;
    return true;
  }

  undo() {
    if (this._gestureStart) this.endGesture();
    const previous = this._undo.pop();
    if (!previous) return false;
    keep(this._redo, this._snapshot());
    this._restore(previous);
    return true;
  }

  /** Take back the last undo; nothing to redo after a new edit. */
  redo() {
    if (this._gestureStart) this.endGesture(); // a drag in progress is a new edit
    const next = this._redo.pop();
    if (!next) return false;
    keep(this._undo, this._snapshot());
    this._restore(next);
    return true;
  }

  // --- gestures: a drag of many moves is one undo step ----------------------

  beginGesture() {
    this._gestureStart = this._snapshot();
  }

  /** Returns true when the gesture changed anything. */
  endGesture() {
    const start = this._gestureStart;
    this._gestureStart = null;
    if (!start || this._sameAs(start)) return false;
    this._push(start);
    return true;
  }

  // --- hit testing ----------------------------------------------------------

  /**
   * Nearest endpoint to a canvas point within radius (canvas px), or null.
   * Later pairs win ties because they are drawn on top.
   */
  hitTest(canvasPoint, fit, radius = DEFAULT_HIT_RADIUS) {
    if (!fit) return null;
    let best = null;
    let bestDistance = radius;
    const consider = (ref, imagePoint) => {
      const d = distance(imageToCanvas(imagePoint, fit), canvasPoint);
      if (d <= bestDistance) {
        best = ref;
        bestDistance = d;
      }
    };
    this._pairs.forEach((pair, index) => {
      consider({ index, end: "handle" }, pair.handle);
      consider({ index, end: "target" }, pair.target);
    });
    if (this._pending) consider({ index: null, end: "pending" }, this._pending);
    return best;
  }

  // --- internals ------------------------------------------------------------

  _snapshot() {
    return { pairs: this._pairs.map(copyPair), pending: this._pending ? copyPoint(this._pending) : null };
  }

  _restore(snapshot) {
    this._pairs = snapshot.pairs.map(copyPair);
    this._pending = snapshot.pending ? copyPoint(snapshot.pending) : null;
  }

  _sameAs(snapshot) {
    return JSON.stringify(snapshot) === JSON.stringify(this._snapshot());
  }

  _record() {
    if (!this._gestureStart) this._push(this._snapshot());
  }

  /** A new edit: its undo step, and what was undone before can no longer be redone. */
  _push(snapshot) {
    keep(this._undo, snapshot);
    this._redo = [];
    this._onRecord();
  }
}
