// Live preview of the instant drag for the point editor of Drag Region Warp nodes: after each
// change of the pairs, the region or the kernel (debounced), the picture and the texts go to the
// pack's route, which runs the node's own warp (nodes/preview_route.py); its answer, the warped
// picture with the area to inpaint drawn as a grid, becomes the editor's background. The warp is
// never reimplemented here, so the preview is what the node will compute from the painted region.
// A MASK connected to the node replaces that region when the node runs; the route cannot see it,
// so the status line says so while one is connected.
//
// Each editor sends its own id: the route keeps only an editor's newest waiting request and answers
// an older one 409 "superseded" (ignored here); 429 "busy" (other editors' previews waiting) is
// shown and retried at the next poll.

const PREVIEW_ROUTE = "/drag_edit/region_warp_preview";
const DEBOUNCE_MS = 150;
// a continuous drag or stroke still gets a preview this often, instead of only when it pauses
const MAX_WAIT_MS = 600;
const HINT = "Live preview: paint the region to move (B) and place a pair with its handle on it (P).";
const MASK_NOTE = "Preview of the painted region: the connected MASK moves instead when the node runs " +
  "(unless it is empty).";
const MASK_HINT = "A MASK is connected: the node moves it. The live preview needs a painted region (B) and a pair (P).";

const sourceIds = new WeakMap();
let nextSourceId = 1;

/** A stable id per picture object, so a new picture (another file, a run's result) is sent again. */
function sourceId(source) {
  if (!sourceIds.has(source)) sourceIds.set(source, nextSourceId++);
  return sourceIds.get(source);
}

/** The picture as a PNG data URL of exactly `size` (the pixels the points and strokes are in). */
function pictureDataURL(source, size) {
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  canvas.getContext("2d").drawImage(source, 0, 0, size.width, size.height);
  return canvas.toDataURL("image/png");
}

function newEditorId() {
  return globalThis.crypto?.randomUUID?.() ?? `editor-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the preview is not a picture"));
    img.src = url;
  });
}

export class WarpPreview {
  /**
   * @param editor a DragPointsCanvas
   * @param {{fetchApi: (route: string, options: object) => Promise<Response>, kernel: () => unknown,
   *          maskLinked?: () => boolean, delayMs?: number}} options fetchApi is ComfyUI's api.fetchApi (it knows
   *          the base URL); maskLinked tells whether the node's `mask` input is connected
   */
  constructor(editor, { fetchApi, kernel, maskLinked = () => false, delayMs = DEBOUNCE_MS }) {
    Object.assign(this, { editor, fetchApi, kernel, maskLinked, delayMs });
    this.editorId = newEditorId();
    this._signature = undefined; // of the inputs last scheduled
    this._timer = null;
    this._since = 0;
    this._inFlight = false;
    this._again = false;
    this._picture = null; // { id, width, height, url }: the PNG is encoded once per picture
    this._destroyed = false;
    this.requests = 0; // sent so far (tests read it)
  }

  /** Call after anything may have changed; sends (debounced) only when the inputs did. */
  update() {
    if (this._destroyed) return;
    const inputs = this._inputs();
    const signature = inputs && JSON.stringify(inputs);
    if (signature === this._signature) return;
    this._signature = signature;
    if (!inputs?.ready) {
      // nothing to warp yet: the original picture, and what is missing
      this._cancel();
      this.editor.setPreview(null);
      this.editor.setNotice(inputs ? (inputs.maskLinked ? MASK_HINT : HINT) : null);
      return;
    }
    this._schedule();
  }

  destroy() {
    this._destroyed = true;
    this._cancel();
  }

  _inputs() {
    const { image, imageSize } = this.editor;
    if (!image || !imageSize) return null;
    const { dragPoints, region } = this.editor.liveValues();
    const kernel = Number(this.kernel());
    const ready = dragPoints.trim() !== "[]" && region.trim() !== "";
    return { ready, picture: [sourceId(image), imageSize.width, imageSize.height], dragPoints, region,
      kernel: Number.isFinite(kernel) ? Math.round(kernel) : undefined, maskLinked: Boolean(this.maskLinked()) };
  }

  _schedule() {
    if (this._timer) {
      if (Date.now() - this._since >= MAX_WAIT_MS) return; // due soon: it will send the latest inputs
      clearTimeout(this._timer);
    } else this._since = Date.now();
    this._timer = setTimeout(() => {
      this._timer = null;
      this._send();
    }, this.delayMs);
  }

  _cancel() {
    clearTimeout(this._timer);
    this._timer = null;
    this._again = false;
  }

  async _send() {
    if (this._inFlight) {
      this._again = true; // one request at a time; the latest inputs go when it is answered
      return;
    }
    const inputs = this._inputs();
    if (!inputs?.ready || this._destroyed) return;
    const sent = JSON.stringify(inputs);
    this._inFlight = true;
    this.requests++;
    try {
      const body = { image: this._pictureURL(), drag_points: inputs.dragPoints, region: inputs.region };
      if (inputs.kernel !== undefined) body.kernel = inputs.kernel;
      const route = `${PREVIEW_ROUTE}?${new URLSearchParams({ editor: this.editorId })}`;
      const response = await this.fetchApi(route, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => null);
      if (!this._wanted(sent) || answer?.superseded) return; // a newer request of ours is on its way
      if (response.ok && typeof answer?.preview === "string") {
        const img = await loadImage(answer.preview);
        if (!this._wanted(sent)) return;
        this.editor.setPreview(img);
        this.editor.setNotice(inputs.maskLinked ? MASK_NOTE : null);
      } else if (answer?.busy) {
        this._signature = undefined; // the next poll sends again
        this.editor.setNotice(`Preview: ${answer.error}`);
      } else this._fail(answer?.error ?? `the preview route answered HTTP ${response.status}`);
    } catch (err) {
      if (this._wanted(sent)) this._fail(err?.message ?? String(err));
    } finally {
      this._inFlight = false;
      if (this._again && !this._destroyed) {
        this._again = false;
        this._send();
      }
    }
  }

  /** An answer is shown when it is for the current inputs, or while a newer one is on its way. */
  _wanted(sent) {
    return !this._destroyed && (sent === this._signature || this._again || this._timer !== null);
  }

  _fail(message) {
    this.editor.setPreview(null); // a stale warp next to an error would mislead
    this.editor.setNotice(`Preview: ${message}`, { error: true });
  }

  _pictureURL() {
    const { image, imageSize } = this.editor;
    const id = sourceId(image);
    const cached = this._picture;
    if (cached?.id === id && cached.width === imageSize.width && cached.height === imageSize.height) return cached.url;
    const url = pictureDataURL(image, imageSize);
    this._picture = { id, width: imageSize.width, height: imageSize.height, url };
    return url;
  }
}
