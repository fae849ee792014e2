// Drawing primitives of the point editor (markers, arrows, outlined text), as plain
// functions of a 2D context, so the editor view keeps to state and input.

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

export const MARKER_RADIUS = 6;
export const FONT = "12px sans-serif";

export function drawArrow(ctx, from, to) {
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

export function drawMarker(ctx, center, color) {
  ctx.beginPath();
  ctx.arc(center[0], center[1], MARKER_RADIUS, 0, Math.PI * 2);
  ctx.fillStyle = color;
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#ffffff";
  ctx.stroke();
}

export function drawRing(ctx, center, color, radius = MARKER_RADIUS + 3, lineWidth = 2) {
  ctx.beginPath();
  ctx.arc(center[0], center[1], radius, 0, Math.PI * 2);
  ctx.lineWidth = lineWidth;
  ctx.strokeStyle = color;
  ctx.stroke();
}

/** The brush outline: a light ring inside a dark one, visible on any picture. */
export function drawBrushCursor(ctx, center, radius, erase) {
  drawRing(ctx, center, COLORS.outline, Math.max(radius, 1) + 1, 1);
  if (erase) ctx.setLineDash([4, 3]);
  drawRing(ctx, center, "#ffffff", Math.max(radius, 1), 1.2);
  ctx.setLineDash([]);
}

/** Text with a dark outline so it reads on any background; kept inside `area` (CSS px). */
export function drawLabel(ctx, text, [x, y], color, area) {
  const width = ctx.measureText(text).width;
  const left = Math.max(2, Math.min(x, area.width - width - 2));
  const baseline = Math.max(12, Math.min(y, area.height - 3));
  ctx.lineWidth = 3;
  ctx.strokeStyle = COLORS.outline;
  ctx.lineJoin = "round";
  ctx.strokeText(text, left, baseline);
  ctx.fillStyle = color;
  ctx.fillText(text, left, baseline);
}

/** Wrapped lines from the top left; `outlined` draws them as labels (over a picture). Returns the next free y. */
export function drawMessage(ctx, lines, color, area, { top = 20, outlined = false } = {}) {
  const maxWidth = Math.max(40, area.width - 16);
  let y = top;
  ctx.fillStyle = color;
  for (const line of lines) {
    for (const wrapped of wrapText(ctx, line, maxWidth)) {
      if (outlined) drawLabel(ctx, wrapped, [8, y], color, area);
      else ctx.fillText(wrapped, 8, y);
      y += 16;
    }
  }
  return y;
}

export function wrapText(ctx, text, maxWidth) {
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
