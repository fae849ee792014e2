// Shows a painted region over the picture: the strokes are drawn opaque on a layer the size
// of the displayed picture, then laid over it semi-transparent (overlapping strokes do not
// darken, and the eraser can clear the layer with destination-out).
//
// A round-capped, round-joined line of width 2r covers exactly the points within r of its
// polyline, which is the definition core/regions.py rasterises; the browser's antialiasing is
// the only difference on screen.

const REGION_COLOR = "#ff40d0";
const REGION_ALPHA = 0.42;

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

/**
 * Draw strokes onto `ctx`, whose pixels are `scale` [x, y] per pixel of the strokes' picture;
 * the radius scales by the geometric mean of the two, as in core/regions.py.
 */
function paintStrokes(ctx, strokes, scale) {
  const sx = scale[0];
  const sy = scale[1];
  const radiusScale = Math.sqrt(sx * sy);
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.fillStyle = REGION_COLOR;
  ctx.strokeStyle = REGION_COLOR;
  for (const stroke of strokes) {
    ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
    const radius = stroke.radius * radiusScale;
    const [first, ...rest] = stroke.points;
    ctx.beginPath();
    if (!rest.length) {
      // a lone point is a disc (zero-length lines are not drawn everywhere)
      ctx.arc(first[0] * sx, first[1] * sy, radius, 0, Math.PI * 2);
      ctx.fill();
      continue;
    }
    ctx.lineWidth = 2 * radius;
    ctx.moveTo(first[0] * sx, first[1] * sy);
    for (const point of rest) ctx.lineTo(point[0] * sx, point[1] * sy);
    ctx.stroke();
  }
  ctx.restore();
}

/** The committed strokes, cached at the displayed size, plus the stroke being painted. */
export class RegionLayer {
  constructor() {
    this._layer = null;
    this._scratch = null;
    this._key = null;
  }

  /**
   * @param ctx the editor's context (CSS px transform)
   * @param model a RegionModel
   * @param fit the picture's contain fit (drag_points_model.containFit)
   * @param dpr device pixels per CSS px
   */
  draw(ctx, model, fit, dpr) {
    const active = model.active;
    const size = model.size;
    if (!model.strokeCount && !active) return;
    const width = Math.max(1, Math.round(fit.width * dpr));
    const height = Math.max(1, Math.round(fit.height * dpr));
    // each stroke set scales from its own picture's size to the layer (they differ while a region painted on
    // another picture size gets its first new stroke)
    const scaleFor = (s) => [width / s.width, height / s.height];
    const key = `${model.version}|${width}x${height}`;
    if (key !== this._key) {
      this._layer = this._sized(this._layer, width, height);
      const layerCtx = this._layer.getContext("2d");
      layerCtx.clearRect(0, 0, width, height);
      if (size) paintStrokes(layerCtx, model.strokes, scaleFor(size));
      this._key = key;
    }
    let shown = this._layer;
    if (active?.points.length) {
      // the stroke in progress goes on a copy, so the cache stays the committed strokes
      this._scratch = this._sized(this._scratch, width, height);
      const scratchCtx = this._scratch.getContext("2d");
      scratchCtx.clearRect(0, 0, width, height);
      scratchCtx.drawImage(this._layer, 0, 0);
      paintStrokes(scratchCtx, [active], scaleFor(active.size));
      shown = this._scratch;
    }
    ctx.save();
    ctx.globalAlpha = REGION_ALPHA;
    ctx.drawImage(shown, fit.offsetX, fit.offsetY, fit.width, fit.height);
    ctx.restore();
  }

  _sized(canvas, width, height) {
    if (canvas && canvas.width === width && canvas.height === height) return canvas;
    return makeCanvas(width, height);
  }
}
