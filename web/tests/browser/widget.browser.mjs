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

// Region colour over the grey test picture: red and blue well above green (see region_layer.js).
const isTinted = ([r, g, b]) => r - g > 50 && b - g > 30;
const isGrey = ([r, g, b]) => Math.abs(r - g) < 20 && Math.abs(b - g) < 20;

describe("region painting (index.html)", () => {
  let page;
  let box;
  const at = ([x, y]) => [box.x + x, box.y + y];
  const harness = (fn, arg) => page.evaluate(fn, arg);
  const regionValue = () => harness(() => window.harness.editor.getRegionValue());
  const lastRegionChange = () => harness(() => window.harness.regionChanges.at(-1));
  async function drag(from, to, steps = 20) {
    await page.mouse.move(...at(from));
    await page.mouse.down();
    await page.mouse.move(...at(to), { steps });
    await page.mouse.up();
  }
  async function probe(points) {
    await page.mouse.move(...at([390, 390])); // the brush cursor away from the probes
    const png = await page.locator("#editor").screenshot();
    return { png, colors: (await samplePixels(page, png, points)).colors };
  }
  // canvas (CSS px) -> image px: x / 0.78125, (y - 50) / 0.78125 (see toImage)
  const STROKE = [[100, 200], [300, 200]]; // image (128,192) -> (384,192)
  const ERASE = [[200, 150], [200, 250]]; // image (256,128) -> (256,256)
  const ON_STROKE = [[120, 200], [280, 200]];
  const ERASED = [200, 200];
  const OFF = [200, 120];

  before(async () => {
    page = await openPage("/tests/browser/index.html");
    box = await page.locator("#editor").boundingBox();
    await page.locator("#editor").focus();
  });

  test("B, E and P choose the tool; +/- change the radius", async () => {
    await page.keyboard.press("b");
    assert.equal(await harness(() => window.harness.editor.tool), "brush");
    await page.keyboard.press("e");
    assert.equal(await harness(() => window.harness.editor.tool), "eraser");
    const radius = await harness(() => window.harness.editor.radius);
    assert.equal(radius, 16);
    await page.keyboard.press("+");
    assert.equal(await harness(() => window.harness.editor.radius), 20);
    await page.keyboard.press("-");
    assert.equal(await harness(() => window.harness.editor.radius), 16);
    await page.keyboard.press("p");
    assert.equal(await harness(() => window.harness.editor.tool), "points");
  });

  test("a brush stroke is written as strokes in image pixels, simplified", async () => {
    await page.keyboard.press("b");
    await page.mouse.move(...at(STROKE[0]));
    await page.mouse.down();
    await page.mouse.move(...at([200, 200]), { steps: 50 });
    const live = JSON.parse(await harness(() => window.harness.editor.liveValues().region));
    assert.equal(live.strokes.length, 1, "the stroke in progress is in the live value");
    assert.equal(await regionValue(), "", "nothing is written before the stroke ends");
    await page.mouse.move(...at(STROKE[1]), { steps: 50 });
    await page.mouse.up();
    const text = await lastRegionChange();
    assert.equal(text, await regionValue());
    const region = JSON.parse(text);
    assert.deepEqual(region.size, [512, 384]);
    assert.equal(region.strokes.length, 1);
    const [stroke] = region.strokes;
    assert.equal(stroke.radius, 16);
    assert.equal(stroke.erase, undefined);
    assertPoint(stroke.points[0], toImage(STROKE[0]), "first point");
    const end = toImage(STROKE[1]);
    const last = stroke.points.at(-1);
    assert.ok(Math.hypot(last[0] - end[0], last[1] - end[1]) <= 4, `last point ${last} near ${end}`);
    assert.ok(stroke.points.every((p) => Math.abs(p[1] - 192) < 0.06), "a straight stroke stays on y = 192");
    // 100 pointer moves 2.56 image px apart: only those radius/4 = 4 px apart are kept
    assert.ok(stroke.points.length < 70 && stroke.points.length > 40, `${stroke.points.length} points`);
    const { colors } = await probe([...ON_STROKE, ERASED, OFF]);
    assert.ok(colors.slice(0, 3).every(isTinted), `painted: ${JSON.stringify(colors.slice(0, 3))}`);
    assert.ok(isGrey(colors[3]), `unpainted ${colors[3]}`);
  });

  test("the eraser clears part of the region", async () => {
    await page.keyboard.press("e");
    await drag(...ERASE);
    const region = JSON.parse(await lastRegionChange());
    assert.equal(region.strokes.length, 2);
    const eraser = region.strokes[1];
    assert.equal(eraser.erase, true);
    assert.equal(eraser.radius, 16);
    assertPoint(eraser.points[0], toImage(ERASE[0]), "eraser start");
    assertPoint(eraser.points.at(-1), toImage(ERASE[1]), "eraser end");
    const { png, colors } = await probe([...ON_STROKE, ERASED]);
    await writeFile(join(OUT_DIR, "region.png"), png);
    assert.ok(colors.slice(0, 2).every(isTinted), `still painted: ${JSON.stringify(colors.slice(0, 2))}`);
    assert.ok(isGrey(colors[2]), `erased ${colors[2]}`);
  });

  test("Ctrl+Z undoes the eraser, then the stroke", async () => {
    await page.keyboard.press("Control+z");
    assert.equal(JSON.parse(await regionValue()).strokes.length, 1);
    assert.equal(JSON.parse(await lastRegionChange()).strokes.length, 1, "undo writes the value");
    assert.ok(isTinted((await probe([ERASED])).colors[0]), "the erased part is back");
    await page.keyboard.press("Control+z");
    assert.equal(await regionValue(), "");
    assert.equal(await lastRegionChange(), "");
    assert.ok(isGrey((await probe([ON_STROKE[0]])).colors[0]), "no region drawn");
  });

  test("one history: a stroke and a point edit are undone in order", async () => {
    await page.keyboard.press("p");
    await page.mouse.click(...at([120, 200]));
    await page.mouse.click(...at([250, 120]));
    assert.equal(JSON.parse(await harness(() => window.harness.editor.getValue())).length, 1);
    await page.keyboard.press("b");
    await drag(...STROKE);
    assert.equal(JSON.parse(await regionValue()).strokes.length, 1);
    await page.keyboard.press("Control+z");
    assert.equal(await regionValue(), "", "the stroke went first");
    assert.equal(JSON.parse(await harness(() => window.harness.editor.getValue())).length, 1, "the pair stays");
    await page.keyboard.press("Control+z");
    assert.equal(await harness(() => window.harness.editor.getValue()), "[]", "then the pair's target");
    await page.keyboard.press("Escape"); // drop the pending handle
  });

  test("Ctrl+Shift+Z and Ctrl+Y redo what Ctrl+Z undid, strokes and point edits in one history", async () => {
    await page.keyboard.press("p");
    await page.mouse.click(...at([120, 200]));
    await page.mouse.click(...at([250, 120]));
    await page.keyboard.press("b");
    await drag(...STROKE);
    const pairs = await harness(() => window.harness.editor.getValue());
    const region = await regionValue();
    await page.keyboard.press("Control+z");
    await page.keyboard.press("Control+z");
    assert.equal(await regionValue(), "");
    assert.equal(await harness(() => window.harness.editor.getValue()), "[]");
    await page.keyboard.press("Control+Shift+Z");
    assert.equal(await harness(() => window.harness.editor.getValue()), pairs, "the target first");
    assert.equal(await regionValue(), "");
    await page.keyboard.press("Control+y");
    assert.equal(await regionValue(), region, "then the stroke");
    assert.equal(await lastRegionChange(), region, "redo writes the value");
    await page.keyboard.press("Control+y"); // nothing left to redo
    assert.equal(await regionValue(), region);
    for (let i = 0; i < 3; i++) await page.keyboard.press("Control+z"); // back to no pairs and no region
    assert.equal(await harness(() => window.harness.editor.getValue()), "[]");
  });

  test("Clear region is undoable", async () => {
    await drag(...STROKE);
    const painted = await regionValue();
    assert.equal(await harness(() => window.harness.editor.clearRegion()), true);
    assert.equal(await regionValue(), "");
    await harness(() => window.harness.editor.undo());
    assert.equal(await regionValue(), painted);
  });

  test("a malformed region shows its error, blocks painting, and Clear region resets it", async () => {
    const bad = '{"size":[512,384],"strokes":[{"radius":0,"points":[[1,1]]}]}';
    await harness((text) => window.harness.editor.setRegionValue(text), bad);
    assert.equal((await harness(() => window.harness.editor.regionError)).code, "bad_radius");
    const changes = await harness(() => window.harness.regionChanges.length);
    await drag(...STROKE);
    assert.equal(await regionValue(), bad, "the text is kept until cleared");
    assert.equal(await harness(() => window.harness.regionChanges.length), changes);
    const { png } = await probe([]);
    await writeFile(join(OUT_DIR, "region_error.png"), png);
    const redText = await harness(() => {
      const canvas = document.getElementById("editor");
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, 60 * devicePixelRatio).data;
      for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] < 140 && data[i + 2] < 140) return true;
      return false;
    });
    assert.ok(redText, "the error is drawn in red along the top");
    await harness(() => window.harness.editor.clearRegion());
    assert.equal(await harness(() => window.harness.editor.regionError), null);
    assert.equal(await lastRegionChange(), "");
    await page.keyboard.press("p");
  });

  test("no page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});

describe("ComfyUI glue against a fake host (editor.html)", () => {
  let page;
  const state = (fn, arg) => page.evaluate(fn, arg);
  const viewRequests = () => server.requests.filter((u) => u.pathname === "/api/view").map((u) => Object.fromEntries(u.searchParams));
  const hostButton = (name, host = "#host") => page.locator(host).getByRole("button", { name, exact: true });

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
        buttons: [...dom.element.querySelectorAll("input[type=button]")].map((b) => b.value),
        regionHidden: node.widgets.find((w) => w.name === "region").hidden,
      };
    });
    assert.equal(info.hidden, true);
    assert.equal(info.domSerialize, false);
    assert.equal(info.optionSerialize, false);
    assert.ok(info.minHeight >= 300, "the picture's 300 px and the rows around it");
    assert.equal(info.editorValue, '[{"handle":[10,10],"target":[20,20]}]');
    assert.ok(info.width >= 320);
    assert.deepEqual(info.buttons, ["Points", "Brush", "Eraser", "Undo", "Redo", "Clear", "Clear region"]);
    assert.equal(info.regionHidden, true);
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
    await hostButton("Clear").click();
    assert.equal(await state(() => window.harness.pointsWidget().value), "[]");
    await hostButton("Undo").click();
    assert.equal(JSON.parse(await state(() => window.harness.pointsWidget().value)).length, 2);
  });

  test("the editor's keys go to a read-only text field, which a click on the picture or a button focuses", async () => {
    const points = () => state(() => window.harness.pointsWidget().value);
    const focused = () => state(() => {
      const el = document.activeElement;
      return { tag: el.tagName, readOnly: el.readOnly, inEditor: document.querySelector("#host").contains(el) };
    });
    const box = await page.locator("#host canvas").boundingBox();
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.8); // a handle waiting for its target
    assert.deepEqual(await focused(), { tag: "TEXTAREA", readOnly: true, inEditor: true });
    await page.keyboard.press("Escape");
    assert.equal(await state(() => window.harness.state().editor.model.pending), null);
    const two = await points();
    await hostButton("Clear").click();
    assert.deepEqual(await focused(), { tag: "TEXTAREA", readOnly: true, inEditor: true }, "the keys are back");
    await page.keyboard.press("Control+z");
    assert.equal(await points(), two);
    await page.keyboard.press("Control+Shift+Z");
    assert.equal(await points(), "[]");
    await page.keyboard.press("Control+z");
    await page.keyboard.press("Control+y");
    assert.equal(await points(), "[]");
    await hostButton("Undo").click();
    assert.equal(await points(), two);
    await hostButton("Redo").click();
    assert.equal(await points(), "[]");
    await hostButton("Undo").click();
    assert.equal(await points(), two);
  });

  test("the editor's keys stop at the editor; the others reach the page", async () => {
    await state(() => {
      window.keysSeen = [];
      window.addEventListener("keydown", (e) => window.keysSeen.push({ key: e.key, prevented: e.defaultPrevented }));
    });
    await page.locator("#host textarea").focus();
    const before = await state(() => window.harness.pointsWidget().value);
    // each edit undone and redone, the tool and radius back as they were
    for (const key of ["Control+z", "Control+y", "Control+z", "Control+Shift+Z", "Delete", "Escape", "b", "p", "+", "-",
      "Control+s"]) {
      await page.keyboard.press(key);
    }
    const seen = await state(() => window.keysSeen.filter((k) => !["Control", "Shift"].includes(k.key)));
    assert.deepEqual(seen, [{ key: "s", prevented: false }]);
    assert.equal(await state(() => window.harness.pointsWidget().value), before);
  });

  test("the status line is under the picture and follows the cursor", async () => {
    const box = await page.locator("#host canvas").boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    const status = page.locator("#host canvas").locator("xpath=../following-sibling::div[1]");
    assert.match(await status.textContent(), /^\(150, 100\) px$/);
    assert.ok((await status.boundingBox()).y >= box.y + box.height, "not over the picture");
  });

  test("the Brush button paints into the hidden region widget; Undo takes the stroke back", async () => {
    const regionWidget = () => state(() => window.harness.widget(window.harness.node, "region").value);
    await hostButton("Brush").click();
    assert.equal(await state(() => window.harness.state().editor.tool), "brush");
    assert.equal(await hostButton("Brush").getAttribute("aria-pressed"), "true");
    const box = await page.locator("#host canvas").boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5, { steps: 10 });
    await page.mouse.up();
    const region = JSON.parse(await regionWidget());
    assert.deepEqual(region.size, [300, 200], "strokes in the picture's pixels");
    assert.equal(region.strokes.length, 1);
    await hostButton("Undo").click();
    assert.equal(await regionWidget(), "");
    assert.equal(JSON.parse(await state(() => window.harness.pointsWidget().value)).length, 2, "the pairs stay");
    await hostButton("Points").click();
  });

  test("the radius slider sets the brush radius and follows the +/- keys", async () => {
    const slider = page.locator("#host input[type=range]");
    await slider.fill("40");
    assert.equal(await state(() => window.harness.state().editor.radius), 40);
    assert.equal(await page.locator("#host").getByText("40 px", { exact: true }).count(), 1);
    await page.locator("#host textarea").focus();
    await page.keyboard.press("+");
    assert.equal(await state(() => window.harness.state().editor.radius), 50);
    assert.equal(await slider.inputValue(), "50");
    await slider.fill("16");
  });

  test("outside changes to the region widget load; a malformed one shows until Clear region", async () => {
    const good = '{"size":[300,200],"strokes":[{"radius":5,"points":[[10,10]]}]}';
    await state((text) => { window.harness.widget(window.harness.node, "region").value = text; }, good);
    await waitFor(page, () => window.harness.state().editor.region.strokeCount === 1, undefined, "region poll sync");
    await state(() => { window.harness.widget(window.harness.node, "region").value = "{oops"; });
    await waitFor(page, () => window.harness.state().editor.regionError?.code === "invalid_json", undefined,
      "region error state");
    await hostButton("Clear region").click();
    assert.equal(await state(() => window.harness.widget(window.harness.node, "region").value), "");
    assert.equal(await state(() => window.harness.state().editor.regionError), null);
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

  test("Drag Region Warp: the editor with a preview toggle, and a hint until there is something to warp", async () => {
    await state(() => window.harness.connect(window.harness.loadImage, window.harness.warpNode, 9));
    await waitFor(page, () => window.harness.warpState().editor.imageSize?.width === 300, undefined, "warp picture");
    const buttons = await page.locator("#host2 input[type=button]").evaluateAll((els) => els.map((b) => b.value));
    assert.deepEqual(buttons, ["Points", "Brush", "Eraser", "Undo", "Redo", "Clear", "Clear region", "Show original"]);
    assert.equal(await hostButton("Show original", "#host2").isDisabled(), true, "no preview yet");
    await waitFor(page, () => /Live preview/.test(window.harness.warpState().editor.notice?.text), undefined, "hint");
    assert.equal(await state(() => window.harness.previewRequests.length), 0, "nothing to warp, nothing sent");
  });

  test("painting and a pair on the region post the picture and the texts; the answer is shown", async () => {
    const box = await page.locator("#host2 canvas").boundingBox();
    const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
    await hostButton("Brush", "#host2").click();
    await page.mouse.move(...at(0.3, 0.5));
    await page.mouse.down();
    await page.mouse.move(...at(0.5, 0.5), { steps: 8 });
    await page.mouse.up();
    await hostButton("Points", "#host2").click();
    await page.mouse.click(...at(0.4, 0.5));
    await page.mouse.click(...at(0.6, 0.3));
    await waitFor(page, () => window.harness.warpState().editor.preview !== null, undefined, "the preview");
    const sent = await state(async () => {
      const { previewRequests, warpNode, widget } = window.harness;
      const last = previewRequests.at(-1);
      const img = new Image();
      img.src = last.body.image;
      await img.decode();
      return { ...last, body: { ...last.body, image: last.body.image.slice(0, 22) }, imageSize: [img.width, img.height],
        pointsWidget: widget(warpNode, "drag_points").value, regionWidget: widget(warpNode, "region").value };
    });
    const [path, query] = sent.route.split("?");
    assert.equal(path, "/drag_edit/region_warp_preview");
    assert.equal(new URLSearchParams(query).get("editor"), await state(() => window.harness.warpState().preview.editorId));
    assert.match(new URLSearchParams(query).get("editor"), /^[\w-]{8,}$/, "an id of this editor");
    assert.equal(sent.method, "POST");
    assert.equal(sent.body.image, "data:image/png;base64,");
    assert.deepEqual(sent.imageSize, [300, 200], "the picture at the W x H of the points");
    assert.equal(sent.body.drag_points, sent.pointsWidget);
    assert.equal(JSON.parse(sent.pointsWidget).length, 1);
    assert.equal(sent.body.region, sent.regionWidget);
    assert.equal(JSON.parse(sent.regionWidget).strokes.length, 1);
    assert.equal(sent.body.kernel, 5);
    // the answer (flat green) is the background; the toggle shows the original (grey) again
    const corner = [[10, 190]]; // image px, away from the region and the pair
    const sample = () => state((points) => {
      const { editor } = window.harness.warpState();
      const fit = editor.fit;
      return points.map(([x, y]) => Array.from(editor.ctx.getImageData(Math.round((fit.offsetX + x * fit.scale) * editor.dpr),
        Math.round((fit.offsetY + y * fit.scale) * editor.dpr), 1, 1).data));
    }, corner);
    const [warped] = await sample();
    assert.ok(warped[1] > 150 && warped[0] < 90, `the preview is shown: ${warped}`);
    await hostButton("Show original", "#host2").click();
    const [original] = await sample();
    assert.ok(isGrey(original), `the original is shown: ${original}`);
    assert.equal(await page.locator("#host2").getByRole("button", { name: "Show warped" }).count(), 1);
    await hostButton("Show warped", "#host2").click();
    assert.ok((await sample())[0][1] > 150, "back to the preview");
    await writeFile(join(OUT_DIR, "warp_preview.png"), await page.locator("#host2").screenshot());
  });

  test("a drag is previewed while it moves, debounced, ending on the final pair", async () => {
    const before = await state(() => window.harness.previewRequests.length);
    const box = await page.locator("#host2 canvas").boundingBox();
    const info = await state(() => {
      const { editor } = window.harness.warpState();
      return { fit: editor.fit, target: editor.model.pairs[0].target };
    });
    const start = [box.x + info.fit.offsetX + info.target[0] * info.fit.scale,
      box.y + info.fit.offsetY + info.target[1] * info.fit.scale];
    const steps = 20;
    await page.mouse.move(...start);
    await page.mouse.down();
    await page.mouse.move(start[0] + 60, start[1] + 40, { steps });
    await page.mouse.up();
    const widgetValue = () => window.harness.widget(window.harness.warpNode, "drag_points").value;
    await waitFor(page, (value) => window.harness.previewRequests.at(-1)?.body.drag_points === value &&
      window.harness.warpState().preview._inFlight === false, await state(widgetValue), "the final request");
    const sentCount = (await state(() => window.harness.previewRequests.length)) - before;
    assert.ok(sentCount >= 1 && sentCount < steps / 2, `${sentCount} requests for ${steps} moves`);
  });

  test("an HTTP 400 answer shows its sentence in the status line instead of a stale preview", async () => {
    await state(() => {
      window.harness.previewAnswer = { status: 400, body: { error: "pair 1: the handle (1, 1) lies in no region" } };
      window.harness.widget(window.harness.warpNode, "kernel").value = 7; // picked up by the poll
    });
    await waitFor(page, () => window.harness.warpState().editor.notice?.error === true, undefined, "the error");
    const shown = await state(() => ({ notice: window.harness.warpState().editor.notice,
      preview: window.harness.warpState().editor.preview, kernel: window.harness.previewRequests.at(-1).body.kernel }));
    assert.equal(shown.notice.text, "Preview: pair 1: the handle (1, 1) lies in no region");
    assert.equal(shown.preview, null);
    assert.equal(shown.kernel, 7);
    await writeFile(join(OUT_DIR, "warp_preview_error.png"), await page.locator("#host2").screenshot());
    await state(() => { window.harness.previewAnswer = null; });
  });

  test("a superseded answer is ignored; a busy one is said and sent again", async () => {
    const sendKernel = (kernel) => state((k) => { window.harness.widget(window.harness.warpNode, "kernel").value = k; }, kernel);
    await sendKernel(5);
    await waitFor(page, () => window.harness.warpState().editor.preview !== null, undefined, "a preview");
    const before = await state(() => window.harness.previewRequests.length);
    await state(() => {
      window.harness.previewAnswers.push({ status: 409, body: { superseded: true, error: "a newer preview request" } });
    });
    await sendKernel(3);
    await waitFor(page, (n) => window.harness.previewRequests.length > n &&
      window.harness.warpState().preview._inFlight === false, before, "the superseded request");
    const kept = await state(() => ({ notice: window.harness.warpState().editor.notice,
      preview: window.harness.warpState().editor.preview !== null }));
    assert.deepEqual(kept, { notice: null, preview: true }, "nothing shown for a superseded request");
    const busy = "previews of 8 other editors are waiting; this one was not queued, try again shortly";
    await state((error) => { window.harness.previewAnswers.push({ status: 429, body: { busy: true, error } }); }, busy);
    await sendKernel(9);
    await waitFor(page, (text) => window.harness.warpState().editor.notice?.text === `Preview: ${text}`, busy, "busy");
    assert.equal(await state(() => window.harness.warpState().editor.notice.error), false);
    await waitFor(page, () => window.harness.warpState().editor.notice === null &&
      window.harness.previewRequests.at(-1).body.kernel === 9, undefined, "the retry's preview");
  });

  test("with a MASK connected the status line says the preview shows the painted region", async () => {
    await state(() => { window.harness.warpNode.inputs[1].link = 12; });
    await waitFor(page, () => /connected MASK moves instead/.test(window.harness.warpState().editor.notice?.text ?? ""),
      undefined, "the MASK note");
    assert.equal(await state(() => window.harness.warpState().editor.preview !== null), true);
    await state(() => { window.harness.warpNode.inputs[1].link = null; });
    await waitFor(page, () => window.harness.warpState().editor.notice === null, undefined, "the note gone");
  });

  test("the editor takes the region limits the server sends with the node definition", async () => {
    const [taken, sent] = await state(() => [window.harness.regionLimits(), window.harness.sentLimits]);
    assert.deepEqual(taken, sent);
  });

  test("onRemoved tears the editor down", async () => {
    assert.equal(await state(() => { window.harness.node.onRemoved(); return window.harness.state() ?? null; }), null);
  });

  test("no page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
