// Pure model of the painted region: brush and eraser strokes, their JSON (the node's
// hidden `region` text, read by core/regions.py, which defines what a region is), undo and redo.
// No DOM or ComfyUI imports so it can be unit-tested under plain Node.
//
//   {"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, "radius": r, ...}]}
//
// Points and radius are in pixels of the W x H picture the strokes were painted on, rounded
// to 0.1 px. A pixel belongs to a stroke when its centre is within `radius` of the polyline;
// strokes apply in order (brush sets, eraser clears). No strokes is no region: "".

import { roundCoord } from "./drag_points_model.js";

const FORMAT = '{"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, ...}]}';
/** The brush's slider, image px: the editor's own choice (the format bounds a radius by the picture instead). */
export const RADIUS_RANGE = Object.freeze({ min: 1, max: 256 });
const LIMIT_KEYS = ["chars", "strokes", "points", "side", "coord", "radius_sides"];
// What core/regions.py reads, as the server sends it with the node definition (the `region` input's
// `region_limits`; the glue hands it over): a region past them would be refused at queue time, so the editor
// refuses it first. Not copied here: until they arrive nothing is refused for its size, the server still checks.
let limits = null;

/** The limits in force, or null while the server has not sent them. */
export function regionLimits() {
  return limits;
}

/** Take the limits the server sent (null forgets them); false, and nothing changed, for anything else. */
export function setRegionLimits(value) {
  if (value === null) {
    limits = null;
    return true;
  }
  const valid = typeof value === "object" &&
    LIMIT_KEYS.every((key) => typeof value[key] === "number" && value[key] > 0);
  if (valid) limits = Object.freeze(Object.fromEntries(LIMIT_KEYS.map((key) => [key, value[key]])));
  return valid;
}

/** The largest radius a region of `size` takes (Infinity while no limits are known). */
function maxRadius(size) {
  return limits && size ? limits.radius_sides * Math.max(size.width, size.height) : Infinity;
}
// A point is kept only this fraction of the radius away from the last kept one: the painted
// area moves by far less than the brush, and a region stays a few KB instead of one point per mouse event.
export const SIMPLIFY_FRACTION = 0.25;
const MAX_UNDO = 200;

function fail(code, message, extra = {}) {
  return { ok: false, error: { code, message, ...extra } };
}

function isCoordinate(value) {
  return typeof value === "number" && Number.isFinite(value) && Math.abs(value) <= (limits?.coord ?? Infinity);
}

/** Push onto an undo or redo stack; the cap also drops redo states another model's edit left unreachable. */
function keep(stack, state) {
  stack.push(state);
  if (stack.length > MAX_UNDO) stack.shift();
}

function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/** A radius as stored: 0.1 px, never 0 (core refuses a radius of 0), at most what a region of `size` takes (a
 * larger one paints nothing more: the bound covers the whole picture from any point of it). */
function roundRadius(radius, size) {
  return Math.max(0.1, Math.min(roundCoord(radius), Math.floor(maxRadius(size) * 10) / 10));
}

// Committed strokes are frozen, so undo snapshots and copies handed out can share them.
function freezeStroke({ erase = false, radius, points }) {
  return Object.freeze({ erase: Boolean(erase), radius, points: Object.freeze(points.map((p) => Object.freeze([p[0], p[1]]))) });
}

export function emptyRegion() {
  return { size: null, strokes: [] };
}

/** The points a stroke keeps: the first, then each one at least radius/4 from the last kept. */
export function simplifyPoints(points, radius) {
  const minStep = radius * SIMPLIFY_FRACTION;
  const kept = [];
  for (const point of points) {
    if (!kept.length || distance(kept[kept.length - 1], point) >= minStep) kept.push([point[0], point[1]]);
  }
  return kept;
}

// ---------------------------------------------------------------------------
// Text <-> region

function parseStroke(data, index, size) {
  const where = `stroke ${index + 1}`;
  if (data === null || typeof data !== "object" || Array.isArray(data) || !Array.isArray(data.points) ||
      data.points.length === 0) {
    return fail("bad_stroke", `region: ${where} must be an object with a non-empty 'points' list`, { index });
  }
  if (!isCoordinate(data.radius) || data.radius <= 0) {
    return fail("bad_radius", `region: ${where}'s radius must be a number above 0`, { index });
  }
  if (data.radius > maxRadius(size)) {
    return fail("bad_radius", `region: ${where}'s radius ${data.radius} is more than ${limits.radius_sides} times ` +
      "the painted picture's longer side", { index });
  }
  if (data.erase !== undefined && typeof data.erase !== "boolean") {
    return fail("bad_erase", `region: ${where}'s 'erase' must be true or false`, { index });
  }
  for (const point of data.points) {
    if (!Array.isArray(point) || point.length !== 2 || !point.every(isCoordinate)) {
      return fail("bad_point", `region: ${where} has a point ${JSON.stringify(point)?.slice(0, 40)} that is not ` +
        "[x, y] of two finite numbers", { index });
    }
  }
  return { ok: true, stroke: freezeStroke(data) };
}

/**
 * Parse the region widget's text. Never throws.
 * Returns { ok: true, region: { size: {width, height} | null, strokes } } or
 * { ok: false, error: { code, message, index? } }. Empty text is no region.
 */
export function parseRegion(text) {
  if (typeof text !== "string") return fail("not_string", "region must be a JSON string");
  if (text.trim() === "") return { ok: true, region: emptyRegion() };
  if (limits && text.length > limits.chars) {
    return fail("too_long", `region is ${text.length} characters long; at most ${limits.chars} are read`);
  }
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return fail("invalid_json", `region is not valid JSON: ${err.message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data) || !Array.isArray(data.strokes) ||
      !("size" in data)) {
    return fail("bad_shape", `region must be an object with 'size' and 'strokes': ${FORMAT}`);
  }
  const { size } = data;
  if (!Array.isArray(size) || size.length !== 2 ||
      !size.every((v) => Number.isInteger(v) && v > 0 && v <= (limits?.side ?? Infinity))) {
    return fail("bad_size", "region: 'size' must be the painted picture's [width, height] in whole pixels");
  }
  const problem = checkCounts(data.strokes.length, data.strokes.reduce((n, s) => n + (s?.points?.length || 0), 0));
  if (problem) return { ok: false, error: problem };
  const strokes = [];
  for (let index = 0; index < data.strokes.length; index++) {
    const parsed = parseStroke(data.strokes[index], index, { width: size[0], height: size[1] });
    if (!parsed.ok) return parsed;
    strokes.push(parsed.stroke);
  }
  return { ok: true, region: { size: { width: size[0], height: size[1] }, strokes } };
}

function checkCounts(strokeCount, pointCount) {
  if (limits && strokeCount > limits.strokes) {
    return { code: "too_many_strokes", message: `region has ${strokeCount} strokes; at most ${limits.strokes} are ` +
      "read: clear it or paint fewer, longer strokes" };
  }
  if (limits && pointCount > limits.points) {
    return { code: "too_many_points", message: `region has more than ${limits.points} stroke points: clear it or ` +
      "paint fewer, longer strokes" };
  }
  return null;
}

/** The widget text: compact JSON in the format above, 0.1 px; "" for no strokes. */
export function serializeRegion({ size, strokes }) {
  if (!strokes.length || !size) return "";
  return JSON.stringify({
    size: [size.width, size.height],
    strokes: strokes.map((stroke) => {
      const points = stroke.points.map((p) => [roundCoord(p[0]), roundCoord(p[1])]);
      const radius = roundRadius(stroke.radius, size);
      return stroke.erase ? { erase: true, radius, points } : { radius, points };
    }),
  });
}

// ---------------------------------------------------------------------------
// Editable state with undo and redo

export class RegionModel {
  /** @param {{onRecord?: () => void}} options onRecord runs whenever an undo step is stored (shared history). */
  constructor({ onRecord = () => {} } = {}) {
    this._size = null; // {width, height} the strokes are in: the picture of the first stroke
    this._strokes = [];
    this._active = null; // the stroke being painted: { erase, radius, points, size, scale }
    this._undo = [];
    this._redo = []; // states undone, until the next edit
    this._onRecord = onRecord;
    this._version = 0; // changes with the committed strokes (drawing caches key on it)
  }

  get size() {
    return this._size ? { ...this._size } : null;
  }

  get strokes() {
    return this._strokes.slice();
  }

  get strokeCount() {
    return this._strokes.length;
  }

  get version() {
    return this._version;
  }

  /** The stroke being painted ({ erase, radius, points } in region pixels, and its size), or null. */
  get active() {
    const a = this._active;
    return a ? { erase: a.erase, radius: a.radius, points: a.points.map((p) => [p[0], p[1]]), size: { ...a.size } } : null;
  }

  /** Whether a brush stroke is there to erase from. */
  get hasBrush() {
    return this._strokes.some((stroke) => !stroke.erase);
  }

  get canUndo() {
    return this._undo.length > 0;
  }

  get canRedo() {
    return this._redo.length > 0;
  }

  /** Replace everything from outside (widget value); history no longer applies. */
  load(region) {
    this._size = region?.size && region.strokes?.length ? { ...region.size } : null;
    this._strokes = (region?.strokes ?? []).map(freezeStroke);
    this._active = null;
    this._undo = [];
    this._redo = [];
    this._version++;
  }

  serialize() {
    return serializeRegion({ size: this._size, strokes: this._strokes });
  }

  /** The text as it would be if the stroke being painted ended now (for a live preview). */
  serializeLive() {
    const stroke = this._committable();
    return stroke ? serializeRegion({ size: this._active.size, strokes: [...this._strokesAt(this._active.size), stroke] })
      : this.serialize();
  }

  // --- painting ------------------------------------------------------------

  /**
   * Start a stroke at `imagePoint`, in pixels of the picture shown, of `imageSize`. The region's size is
   * that picture's (the pixels drag_points are in); a region painted on a picture of another size is
   * rescaled to it when the stroke is committed.
   */
  beginStroke(imagePoint, { radius, erase = false, imageSize }) {
    const size = { width: Math.round(imageSize.width), height: Math.round(imageSize.height) };
    const scale = [size.width / imageSize.width, size.height / imageSize.height];
    this._active = { erase: Boolean(erase), radius: roundRadius(radius * Math.sqrt(scale[0] * scale[1]), size),
      points: [], size, scale };
    this.extendStroke(imagePoint);
  }

  /** Add a pointer position; true when it was kept (far enough from the last kept point). */
  extendStroke(imagePoint) {
    const a = this._active;
    if (!a) return false;
    // inside the picture's continuous extent: painting past the border paints up to it
    const clamp = (v, hi) => roundCoord(Math.min(Math.max(v, 0), hi));
    const point = [clamp(imagePoint[0] * a.scale[0], a.size.width), clamp(imagePoint[1] * a.scale[1], a.size.height)];
    const last = a.points[a.points.length - 1];
    if (last && distance(last, point) < a.radius * SIMPLIFY_FRACTION) return false;
    a.points.push(point);
    return true;
  }

  /**
   * Commit the stroke being painted. Returns { changed, error? }: an eraser with nothing to erase
   * changes nothing; a stroke past core's limits is refused with an error.
   */
  endStroke() {
    const stroke = this._committable();
    const size = this._active?.size;
    this._active = null;
    if (!stroke) return { changed: false };
    const strokes = [...this._strokesAt(size), stroke];
    const problem = checkCounts(strokes.length, strokes.reduce((n, s) => n + s.points.length, 0));
    if (problem) return { changed: false, error: problem };
    const text = serializeRegion({ size, strokes });
    if (limits && text.length > limits.chars) {
      return { changed: false, error: { code: "too_long", message: `the region would be ${text.length} ` +
        `characters long; at most ${limits.chars} are read: clear it or paint fewer strokes` } };
    }
    this._record();
    this._size = { ...size };
    this._strokes = strokes;
    this._version++;
    return { changed: true };
  }

  cancelStroke() {
    const had = Boolean(this._active);
    this._active = null;
    return had;
  }

  clear() {
    this._active = null;
    if (!this._strokes.length) return false;
    this._record();
    this._strokes = [];
    this._size = null; // the next painting takes the picture shown then
    this._version++;
    return true;
  }

  undo() {
    return this._step(this._undo, this._redo);
  }

  /** Take back the last undo; nothing to redo after a new stroke or clear. */
  redo() {
    return this._step(this._redo, this._undo);
  }

  // --- internals ------------------------------------------------------------

  /** The committed strokes in pixels of `size` (rescaled as core/regions.py would draw them there). */
  _strokesAt(size) {
    const from = this._size;
    if (!from || (from.width === size.width && from.height === size.height)) return this._strokes;
    const sx = size.width / from.width;
    const sy = size.height / from.height;
    return this._strokes.map((stroke) => freezeStroke({
      erase: stroke.erase,
      radius: roundRadius(stroke.radius * Math.sqrt(sx * sy), size),
      points: stroke.points.map((p) => [roundCoord(p[0] * sx), roundCoord(p[1] * sy)]),
    }));
  }

  _committable() {
    const a = this._active;
    if (!a || !a.points.length || (a.erase && !this.hasBrush)) return null;
    return freezeStroke(a);
  }

  /** Restore the latest state of `from`, keeping the current one on `to` (undo: from undo to redo). */
  _step(from, to) {
    this._active = null;
    const state = from.pop();
    if (!state) return false;
    keep(to, this._state());
    this._size = state.size;
    this._strokes = state.strokes;
    this._version++;
    return true;
  }

  _state() {
    return { size: this._size, strokes: this._strokes };
  }

  /** A new edit: its undo step, and what was undone before can no longer be redone. */
  _record() {
    keep(this._undo, this._state());
    this._redo = [];
    this._onRecord();
  }
}
