// Browser test of the point editor in Debian's headless chromium via playwright-core.
// Run: node --test tests/browser/widget.browser.mjs   (from web/; see package.json)
// Nothing is downloaded: chromium comes from apt, pages and images from a local server.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { startStaticServer } from "./static_server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const WEB_ROOT = join(HERE, "..", "..");
const OUT_DIR = join(HERE, "out");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DPR = 2; // exercise the devicePixelRatio path

// Page geometry (see index.html): a 512x384 picture contain-fitted in a 400x400 canvas.
const IMAGE = { width: 512, height: 384 };
const CANVAS = { width: 400, height: 400 };

let server;
let context;
let userDataDir;
const pageErrors = [];

/** Independent re-derivation of the contain fit (not imported from the model on purpose). */
function toImage([x, y], image = IMAGE, canvas = CANVAS) {
  const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
  const offsetX = (canvas.width - image.width * scale) / 2;
  const offsetY = (canvas.height - image.height * scale) / 2;
  return [(x - offsetX) / scale, (y - offsetY) / scale];
}

function assertPoint(actual, expected, label) {
  const ok = Math.abs(actual[0] - expected[0]) <= 0.051 && Math.abs(actual[1] - expected[1]) <= 0.051;
  assert.ok(ok, `${label}: got [${actual}] expected ~[${expected.map((v) => v.toFixed(2))}]`);
}

function assertPairs(json, expectedCanvasPairs, canvas = CANVAS) {
  const pairs = JSON.parse(json);
  assert.equal(pairs.length, expectedCanvasPairs.length, `pair count in ${json}`);
  expectedCanvasPairs.forEach(([handle, target], i) => {
    assertPoint(pairs[i].handle, toImage(handle, IMAGE, canvas), `pair ${i + 1} handle`);
    assertPoint(pairs[i].target, toImage(target, IMAGE, canvas), `pair ${i + 1} target`);
  });
}

async function waitFor(page, predicate, arg, what) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: 5000, polling: 50 });
  } catch {
    assert.fail(`timed out waiting for ${what}`);
  }
}

async function openPage(path) {
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${path}: ${err.message}`));
  page.on("console", (msg) => msg.type() === "error" && pageErrors.push(`${path}: ${msg.text()}`));
  await page.goto(`${server.origin}${path}`);
  await waitFor(page, () => window.harness?.ready, undefined, `${path} to load`);
  return page;
}

/** Decode a PNG in the page (no PNG library in Node) and read RGBA at CSS points. */
async function samplePixels(page, png, cssPoints) {
  return page.evaluate(
    async ({ base64, points }) => {
      const blob = await (await fetch(`data:image/png;base64,${base64}`)).blob();
      const bitmap = await createImageBitmap(blob);
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      return {
        width: bitmap.width,
        height: bitmap.height,
        colors: points.map(([x, y]) => Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data)),
      };
    },
    { base64: png.toString("base64"), points: cssPoints.map(([x, y]) => [x * DPR, y * DPR]) },
  );
}

const isRed = ([r, g, b]) => r > 180 && g < 100 && b < 100;
const isBlue = ([r, g, b]) => b > 180 && r < 100 && g < 180;
const isWhite = ([r, g, b]) => r > 215 && g > 215 && b > 215;
const isBackground = ([r, g, b]) => r < 45 && g < 45 && b < 45; // letterbox colour #1e1e1e

// Fake /view endpoint for the glue test: an SVG picture whose size depends on the name.
function viewRoute(url) {
  const [width, height] = url.searchParams.get("filename").startsWith("prev") ? [150, 100] : [300, 200];
  const body = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<defs><linearGradient id="g"><stop offset="0" stop-color="#444"/><stop offset="1" stop-color="#ccc"/></linearGradient></defs>` +
    `<rect width="100%" height="100%" fill="url(#g)"/></svg>`;
  return { type: "image/svg+xml", body };
}

before(async () => {
  server = await startStaticServer(WEB_ROOT, {
    mounts: { "/scripts/": join(HERE, "fake_comfy") },
    routes: { "/api/view": viewRoute },
  });
  userDataDir = await mkdtemp(join(tmpdir(), "dragedit-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 800, height: 600 },
    deviceScaleFactor: DPR,
  });
  // only our local server may be reached
  await context.route(
    (url) => url.protocol.startsWith("http") && url.origin !== server.origin,
    (route) => route.abort(),
  );
  await mkdir(OUT_DIR, { recursive: true });
});

after(async () => {
  await context?.close();
  await server?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

describe("drag points canvas (index.html)", () => {
  let page;
  let box;
  const value = () => page.evaluate(() => window.harness.editor.getValue());
  const at = ([x, y]) => [box.x + x, box.y + y];
  const click = (point, options) => page.mouse.click(...at(point), options);

  // canvas (CSS px) positions chosen to land on round image coordinates
  const P1 = [[100, 150], [300, 250]]; // image (128,128) -> (384,256)
  const P2 = [[60, 300], [200, 320]]; // image (76.8,320) -> (256,345.6)
  const P1_MOVED_TARGET = [340, 330]; // image (435.2,358.4)

  before(async () => {
    page = await openPage("/tests/browser/index.html");
    box = await page.locator("#editor").boundingBox();
  });

  test("backing store follows devicePixelRatio", async () => {
    const size = await page.evaluate(() => [document.getElementById("editor").width, document.getElementById("editor").height]);
    assert.deepEqual(size, [CANVAS.width * DPR, CANVAS.height * DPR]);
  });

  test("clicks place a handle, then a target completes the pair", async () => {
    await click(P1[0]);
    assert.equal(await value(), "[]", "a lone handle is pending, not serialized");
    assert.ok(await page.evaluate(() => window.harness.editor.model.pending !== null));
    await click(P1[1]);
    assertPairs(await value(), [P1]);
    await click(P2[0]);
    await click(P2[1]);
    assertPairs(await value(), [P1, P2]);
    assert.equal(await page.evaluate(() => window.harness.changes.length), 2, "one onChange per completed pair");
  });

  test("clicks on the letterbox bars are ignored", async () => {
    await click([200, 20]);
    assert.equal(await page.evaluate(() => window.harness.editor.model.pending), null);
  });

  test("dragging a target moves it (one onChange at release)", async () => {
    const before = await page.evaluate(() => window.harness.changes.length);
    await page.mouse.move(...at(P1[1]));
    await page.mouse.down();
    await page.mouse.move(...at(P1_MOVED_TARGET), { steps: 8 });
    await page.mouse.up();
    assertPairs(await value(), [[P1[0], P1_MOVED_TARGET], P2]);
    assert.equal(await page.evaluate(() => window.harness.changes.length), before + 1);
  });

  test("hovering shows the point's image coordinates", async () => {
    await page.mouse.move(...at(P1[0]));
    const hover = await page.evaluate(() => window.harness.editor.hover?.ref);
    assert.deepEqual(hover, { index: 0, end: "handle" });
  });

  test("screenshot shows red handles, blue targets and white arrows", async () => {
    await page.mouse.move(...at([390, 390])); // park the cursor away from the markers
    const png = await page.locator("#editor").screenshot();
    await writeFile(join(OUT_DIR, "widget.png"), png);
    const midpoint = (a, b) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    const probes = {
      handle1: P1[0],
      target1: P1_MOVED_TARGET,
      handle2: P2[0],
      target2: P2[1],
      arrow1: midpoint(P1[0], P1_MOVED_TARGET),
      arrow2: midpoint(P2[0], P2[1]),
      letterbox: [200, 20],
    };
    const { width, height, colors } = await samplePixels(page, png, Object.values(probes));
    assert.deepEqual([width, height], [CANVAS.width * DPR, CANVAS.height * DPR]);
    const color = Object.fromEntries(Object.keys(probes).map((name, i) => [name, colors[i]]));
    assert.ok(isRed(color.handle1), `handle1 ${color.handle1}`);
    assert.ok(isRed(color.handle2), `handle2 ${color.handle2}`);
    assert.ok(isBlue(color.target1), `target1 ${color.target1}`);
    assert.ok(isBlue(color.target2), `target2 ${color.target2}`);
    assert.ok(isWhite(color.arrow1), `arrow1 ${color.arrow1}`);
    assert.ok(isWhite(color.arrow2), `arrow2 ${color.arrow2}`);
    assert.ok(isBackground(color.letterbox), `letterbox ${color.letterbox}`);
  });

  test("right-click deletes the pair under the cursor", async () => {
    await click(P2[0], { button: "right" });
    assertPairs(await value(), [[P1[0], P1_MOVED_TARGET]]);
  });

  test("Delete key removes the hovered pair; Ctrl+Z undoes deletes in order", async () => {
    await page.mouse.move(...at(P1_MOVED_TARGET));
    await page.keyboard.press("Delete");
    assert.equal(await value(), "[]");
    await page.keyboard.press("Control+z");
    assertPairs(await value(), [[P1[0], P1_MOVED_TARGET]]);
    await page.keyboard.press("Control+z");
    assertPairs(await value(), [[P1[0], P1_MOVED_TARGET], P2]);
    await page.keyboard.press("Control+z"); // undo the drag
    assertPairs(await value(), [P1, P2]);
  });

  test("clear is undoable", async () => {
    await page.evaluate(() => window.harness.editor.clear());
    assert.equal(await value(), "[]");
    await page.evaluate(() => window.harness.editor.undo());
    assertPairs(await value(), [P1, P2]);
  });

  test("malformed JSON shows an error state and blocks edits until cleared", async () => {
    await page.evaluate(() => window.harness.editor.setValue('[{"handle":[1,2]'));
    const error = await page.evaluate(() => window.harness.editor.error);
    assert.equal(error.code, "invalid_json");
    await click([150, 150]);
    await click([250, 250]);
    assert.equal(await value(), '[{"handle":[1,2]');
    await writeFile(join(OUT_DIR, "widget_error.png"), await page.locator("#editor").screenshot());
    // the error text is drawn in red along the top
    const redText = await page.evaluate(() => {
      const canvas = document.getElementById("editor");
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, 60 * devicePixelRatio).data;
      for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] < 140) return true;
      return false;
    });
    assert.ok(redText, "error message pixels present");
    await page.evaluate(() => window.harness.editor.clear());
    assert.equal(await value(), "[]");
    assert.equal(await page.evaluate(() => window.harness.editor.error), null);
  });

  test("after a resize clicks still map to image pixels", async () => {
    const resized = { width: 200, height: 400 };
    await page.evaluate(({ width, height }) => {
      const canvas = document.getElementById("editor");
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }, resized);
    await waitFor(page, (w) => document.getElementById("editor").width === w, resized.width * DPR, "resize");
    box = await page.locator("#editor").boundingBox();
    const pair = [[100, 200], [150, 250]]; // image (256,192) -> (384,320)
    await click(pair[0]);
    await click(pair[1]);
    assertPairs(await value(), [pair], resized);
    await writeFile(join(OUT_DIR, "widget_resized.png"), await page.locator("#editor").screenshot());
  });

  test("no page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});

describe("ComfyUI glue against a fake host (editor.html)", () => {
  let page;
  const state = (fn, arg) => page.evaluate(fn, arg);
  const viewRequests = () => server.requests.filter((u) => u.pathname === "/api/view").map((u) => Object.fromEntries(u.searchParams));

  before(async () => {
    page = await openPage("/tests/browser/editor.html");
  });

  test("hides drag_points, adds a non-serialized DOM widget, loads the value", async () => {
    const info = await state(() => {
      const { node, pointsWidget, state } = window.harness;
      const dom = node.widgets.find((w) => w.name === "drag_points_editor");
      return {
        hidden: pointsWidget().hidden,
        domSerialize: dom.serialize,
        optionSerialize: dom.options.serialize,
        minHeight: dom.options.getMinHeight(),
        editorValue: state().editor.getValue(),
        width: node.size[0],
        buttons: [...dom.element.querySelectorAll("button")].map((b) => b.textContent),
      };
    });
    assert.equal(info.hidden, true);
    assert.equal(info.domSerialize, false);
    assert.equal(info.optionSerialize, false);
    assert.ok(info.minHeight > 100);
    assert.equal(info.editorValue, '[{"handle":[10,10],"target":[20,20]}]');
    assert.ok(info.width >= 320);
    assert.deepEqual(info.buttons, ["Undo", "Clear"]);
  });

  test("connecting a LoadImage node loads /view?type=input", async () => {
    await state(() => window.harness.connect());
    await waitFor(page, () => window.harness.state().editor.imageSize?.width === 300, undefined, "upstream image");
    assert.deepEqual(viewRequests().at(-1), { filename: "gradient.svg", type: "input", subfolder: "" });
  });

  test("canvas edits are written to the drag_points widget", async () => {
    const box = await page.locator("#host canvas").boundingBox();
    await page.mouse.click(box.x + box.width * 0.25, box.y + box.height * 0.5);
    await page.mouse.click(box.x + box.width * 0.75, box.y + box.height * 0.5);
    const pairs = JSON.parse(await state(() => window.harness.pointsWidget().value));
    assert.equal(pairs.length, 2);
    assert.ok(pairs[1].handle[0] < pairs[1].target[0]);
  });

  test("Undo and Clear buttons edit the widget value", async () => {
    await page.getByRole("button", { name: "Clear" }).click();
    assert.equal(await state(() => window.harness.pointsWidget().value), "[]");
    await page.getByRole("button", { name: "Undo" }).click();
    assert.equal(JSON.parse(await state(() => window.harness.pointsWidget().value)).length, 2);
  });

  test("outside changes to the widget value (paste, load) re-render the editor", async () => {
    await state(() => { window.harness.pointsWidget().value = '[{"handle":[1,2],"target":[3,4]}]'; });
    await waitFor(page, () => window.harness.state().editor.model.pairCount === 1, undefined, "poll sync");
    await state(() => { window.harness.pointsWidget().value = "not json"; });
    await waitFor(page, () => window.harness.state().editor.error?.code === "invalid_json", undefined, "error state");
    await state(() => { window.harness.pointsWidget().value = "[]"; window.harness.node.onConfigure?.({}); });
    assert.equal(await state(() => window.harness.state().editor.error), null);
  });

  test("changing the LoadImage selection reloads the picture", async () => {
    await state(() => { window.harness.loadImage.widgets[0].value = "sub/dir/other.svg [input]"; });
    await waitFor(page, (n) => performance.now() > n, await state(() => performance.now() + 600), "poll");
    assert.deepEqual(viewRequests().at(-1), { filename: "other.svg", type: "input", subfolder: "sub/dir" });
  });

  test("onExecuted shows drag_preview in the input's coordinate space, and tracked points", async () => {
    await state(() => window.harness.node.onExecuted({
      drag_preview: [{ filename: "prev.svg", subfolder: "", type: "temp" }],
      tracked_points: ["[[5,6],[7,8]]"],
    }));
    await waitFor(page, () => window.harness.state().editor.image?.src?.includes("prev.svg"), undefined, "preview");
    assert.deepEqual(viewRequests().at(-1), { filename: "prev.svg", type: "temp", subfolder: "" });
    const info = await state(() => ({ size: window.harness.state().editor.imageSize, tracked: window.harness.state().editor.tracked }));
    assert.deepEqual(info.size, { width: 300, height: 200 }, "150x100 preview keeps the 300x200 coordinate space");
    assert.deepEqual(info.tracked, [[5, 6], [7, 8]]);
    await writeFile(join(OUT_DIR, "editor_glue.png"), await page.locator("#host").screenshot());
  });

  test("through an ImageScale node: the source picture in the scaled image's pixels", async () => {
    await state(() => {
      window.harness.loadImage.widgets[0].value = "gradient.svg [input]";
      window.harness.connect(window.harness.imageScale);
    });
    await waitFor(page, () => window.harness.state().editor.imageSize?.width === 150, undefined, "scaled space");
    assert.deepEqual(await state(() => window.harness.state().editor.imageSize), { width: 150, height: 100 });
    assert.ok((await state(() => window.harness.state().editor.image.src)).includes("filename=gradient.svg"));
    // Another aspect ratio would stretch the picture under the points: nothing is shown until a run.
    await state(() => { window.harness.imageScale.widgets[2].value = 150; });
    await waitFor(page, () => window.harness.state().editor.imageSize === null, undefined, "no picture");
  });

  test("onRemoved tears the editor down", async () => {
    assert.equal(await state(() => { window.harness.node.onRemoved(); return window.harness.state() ?? null; }), null);
  });

  test("no page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
