import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { DragPointsModel } from "../js/drag_points_model.js";
import { EditHistory } from "../js/edit_history.js";
import {
  RegionModel,
  SIMPLIFY_FRACTION,
  emptyRegion,
  parseRegion,
  regionLimits,
  serializeRegion,
  setRegionLimits,
  simplifyPoints,
} from "../js/region_model.js";

// The server sends core/regions.py's limits with the node definition; these tests give their own, smaller ones.
const LIMITS = { chars: 20_000, strokes: 40, points: 400, side: 16_384, coord: 1e6, radius_sides: 2 };
setRegionLimits(LIMITS);

const IMAGE = { width: 512, height: 384 };

/** Paint one stroke through the model as the canvas does: begin, pointer moves, end. */
function paint(model, points, { radius = 8, erase = false, imageSize = IMAGE } = {}) {
  model.beginStroke(points[0], { radius, erase, imageSize });
  for (const point of points.slice(1)) model.extendStroke(point);
  return model.endStroke();
}

const parsed = (text) => JSON.parse(text);

describe("painting strokes", () => {
  test("a brush stroke is serialized in the format core/regions.py reads", () => {
    const model = new RegionModel();
    assert.deepEqual(paint(model, [[10, 20], [30, 20], [30, 40]], { radius: 8 }), { changed: true });
    assert.equal(model.serialize(),
      '{"size":[512,384],"strokes":[{"radius":8,"points":[[10,20],[30,20],[30,40]]}]}');
  });

  test("an eraser stroke carries erase: true and applies after the brush", () => {
    const model = new RegionModel();
    paint(model, [[10, 20], [60, 20]]);
    paint(model, [[30, 10], [30, 30]], { radius: 4, erase: true });
    assert.deepEqual(parsed(model.serialize()).strokes, [
      { radius: 8, points: [[10, 20], [60, 20]] },
      { erase: true, radius: 4, points: [[30, 10], [30, 30]] },
    ]);
  });

  test("an eraser with nothing to erase is not stored", () => {
    const model = new RegionModel();
    assert.deepEqual(paint(model, [[10, 20], [60, 20]], { erase: true }), { changed: false });
    assert.equal(model.serialize(), "");
    assert.equal(model.canUndo, false);
  });

  test("a click without a move is a single-point stroke (a disc)", () => {
    const model = new RegionModel();
    paint(model, [[100, 100]], { radius: 5 });
    assert.deepEqual(parsed(model.serialize()).strokes, [{ radius: 5, points: [[100, 100]] }]);
  });

  test("coordinates and radius are rounded to 0.1 px, without -0", () => {
    const model = new RegionModel();
    paint(model, [[10.04, 20.06], [40.123, -0.01]], { radius: 7.349 });
    const stroke = parsed(model.serialize()).strokes[0];
    assert.deepEqual(stroke, { radius: 7.3, points: [[10, 20.1], [40.1, 0]] });
    assert.ok(!Object.is(stroke.points[1][1], -0));
  });

  test("points past the border are clamped to the picture's extent", () => {
    const model = new RegionModel();
    paint(model, [[500, 370], [600, 400], [-20, -5]], { radius: 10 });
    assert.deepEqual(parsed(model.serialize()).strokes[0].points, [[500, 370], [512, 384], [0, 0]]);
  });

  test("the radius is never stored as 0", () => {
    const model = new RegionModel();
    paint(model, [[1, 1]], { radius: 0.01 });
    assert.equal(parsed(model.serialize()).strokes[0].radius, 0.1);
  });

  test("serializeLive includes the stroke being painted; serialize does not", () => {
    const model = new RegionModel();
    model.beginStroke([10, 10], { radius: 8, imageSize: IMAGE });
    model.extendStroke([40, 10]);
    assert.equal(model.serialize(), "");
    assert.deepEqual(parsed(model.serializeLive()).strokes, [{ radius: 8, points: [[10, 10], [40, 10]] }]);
    assert.deepEqual(model.active.points, [[10, 10], [40, 10]]);
    model.cancelStroke();
    assert.equal(model.serializeLive(), "");
    assert.equal(model.active, null);
  });
});

describe("simplification", () => {
  test("a point closer than radius/4 to the last kept one is dropped", () => {
    const model = new RegionModel();
    model.beginStroke([0, 0], { radius: 8, imageSize: IMAGE }); // keeps a point every 2 px
    assert.equal(model.extendStroke([1.9, 0]), false);
    assert.equal(model.extendStroke([2, 0]), true);
    assert.equal(model.extendStroke([3, 0]), false); // measured from the kept point (2, 0)
    assert.equal(model.extendStroke([4.1, 0]), true);
    model.endStroke();
    assert.deepEqual(parsed(model.serialize()).strokes[0].points, [[0, 0], [2, 0], [4.1, 0]]);
  });

  test("simplifyPoints keeps the first point and each one radius/4 from the last kept", () => {
    const points = [[0, 0], [1, 0], [2, 0], [2.5, 0], [5, 0], [5, 1], [5, 4]];
    assert.equal(SIMPLIFY_FRACTION, 0.25);
    assert.deepEqual(simplifyPoints(points, 8), [[0, 0], [2, 0], [5, 0], [5, 4]]);
    assert.deepEqual(simplifyPoints([], 8), []);
  });

  test("a long scribble at one point per pixel stays a few KB", () => {
    const model = new RegionModel();
    const trail = Array.from({ length: 1200 }, (_, i) => [20 + (i % 400), 40 + 60 * Math.sin(i / 50) + Math.floor(i / 400) * 80]);
    paint(model, trail, { radius: 16 });
    const text = model.serialize();
    const kept = parsed(text).strokes[0].points.length;
    assert.ok(kept < trail.length / 3, `${kept} points kept of ${trail.length}`);
    assert.ok(text.length < 6000, `${text.length} characters`);
  });
});

describe("undo and clear", () => {
  test("undo steps back through strokes and clear", () => {
    const model = new RegionModel();
    paint(model, [[10, 10], [20, 10]]);
    const one = model.serialize();
    paint(model, [[50, 50], [60, 60]]);
    const two = model.serialize();
    assert.equal(model.clear(), true);
    assert.equal(model.serialize(), "");
    assert.equal(model.undo(), true);
    assert.equal(model.serialize(), two);
    assert.equal(model.undo(), true);
    assert.equal(model.serialize(), one);
    assert.equal(model.undo(), true);
    assert.equal(model.serialize(), "");
    assert.equal(model.undo(), false);
  });

  test("redo repaints undone strokes and an undone clear; a new stroke drops what was undone", () => {
    const model = new RegionModel();
    paint(model, [[10, 10], [20, 10]]);
    paint(model, [[10, 30], [20, 30]]);
    const two = model.serialize();
    model.clear();
    model.undo();
    model.undo();
    assert.equal(model.strokeCount, 1);
    assert.ok(model.canRedo);
    assert.equal(model.redo(), true);
    assert.equal(model.serialize(), two);
    assert.equal(model.redo(), true); // the clear again
    assert.equal(model.serialize(), "");
    assert.equal(model.redo(), false);
    model.undo();
    model.undo();
    paint(model, [[50, 50]]);
    assert.equal(model.canRedo, false);
    assert.equal(model.redo(), false);
    assert.equal(model.strokeCount, 2);
  });

  test("clearing nothing records nothing", () => {
    const model = new RegionModel();
    assert.equal(model.clear(), false);
    assert.equal(model.canUndo, false);
  });

  test("load replaces the strokes and forgets the history", () => {
    const model = new RegionModel();
    paint(model, [[10, 10], [20, 10]]);
    paint(model, [[10, 20]]);
    model.undo();
    const result = parseRegion('{"size":[100,50],"strokes":[{"radius":3,"points":[[1,2]]}]}');
    model.load(result.region);
    assert.equal(model.canUndo, false);
    assert.equal(model.canRedo, false);
    assert.deepEqual(model.size, { width: 100, height: 50 });
    model.load(emptyRegion());
    assert.equal(model.serialize(), "");
    assert.equal(model.size, null);
  });

  test("version changes with every committed change (display caches key on it)", () => {
    const model = new RegionModel();
    const v0 = model.version;
    model.beginStroke([10, 10], { radius: 8, imageSize: IMAGE });
    model.extendStroke([30, 10]);
    assert.equal(model.version, v0, "a stroke in progress is not committed");
    model.endStroke();
    const v1 = model.version;
    assert.ok(v1 > v0);
    model.undo();
    assert.ok(model.version > v1);
  });

  test("onRecord runs once per undo step", () => {
    let steps = 0;
    const model = new RegionModel({ onRecord: () => steps++ });
    paint(model, [[10, 10], [20, 10], [30, 10]]);
    paint(model, [[10, 10]], { erase: true });
    model.clear();
    model.clear();
    assert.equal(steps, 3);
  });
});

describe("the region's picture size", () => {
  test("the size is the picture's the strokes were painted on", () => {
    const model = new RegionModel();
    paint(model, [[100, 100]], { radius: 10, imageSize: { width: 200, height: 100 } });
    paint(model, [[50, 20]], { radius: 4, imageSize: { width: 200, height: 100 } });
    assert.deepEqual(parsed(model.serialize()).size, [200, 100]);
  });

  test("a stroke on a picture of another size rescales the region to it (the pixels drag_points are in)", () => {
    const model = new RegionModel();
    paint(model, [[100, 50], [120, 50]], { radius: 10, imageSize: { width: 200, height: 100 } });
    paint(model, [[10, 10]], { radius: 3, erase: true, imageSize: { width: 200, height: 100 } });
    const before = model.serialize();
    // the same picture, now given at 400 x 100: x doubles, the radius by the geometric mean (sqrt 2)
    model.beginStroke([300, 60], { radius: 5, imageSize: { width: 400, height: 100 } });
    assert.deepEqual(parsed(model.serializeLive()).strokes[0], { radius: 14.1, points: [[200, 50], [240, 50]] });
    assert.equal(model.serialize(), before, "nothing is rescaled until the stroke is committed");
    model.endStroke();
    const region = parsed(model.serialize());
    assert.deepEqual(region.size, [400, 100]);
    assert.deepEqual(region.strokes, [
      { radius: 14.1, points: [[200, 50], [240, 50]] },
      { erase: true, radius: 4.2, points: [[20, 10]] },
      { radius: 5, points: [[300, 60]] },
    ]);
    model.undo();
    assert.equal(model.serialize(), before, "one undo step restores the region at its old size");
  });

  test("after a clear the next stroke takes the picture shown then", () => {
    const model = new RegionModel();
    paint(model, [[10, 10]], { imageSize: { width: 200, height: 100 } });
    model.clear();
    paint(model, [[10, 10]], { imageSize: { width: 64, height: 32 } });
    assert.deepEqual(parsed(model.serialize()).size, [64, 32]);
  });
});

describe("text round trip", () => {
  const canonical = '{"size":[640,480],"strokes":[{"radius":12.5,"points":[[10.1,20.2],[30,40]]},' +
    '{"erase":true,"radius":3,"points":[[15,25]]}]}';

  test("parse -> serialize gives the same text", () => {
    const result = parseRegion(canonical);
    assert.equal(result.ok, true);
    assert.deepEqual(result.region.size, { width: 640, height: 480 });
    assert.equal(serializeRegion(result.region), canonical);
  });

  test("a model loaded from text serializes it unchanged, and extra keys are dropped", () => {
    const model = new RegionModel();
    model.load(parseRegion(canonical).region);
    assert.equal(model.serialize(), canonical);
    const extra = parseRegion('{"size":[10,10],"note":1,"strokes":[{"radius":2,"points":[[1,1]],"color":"red"}]}');
    assert.equal(serializeRegion(extra.region), '{"size":[10,10],"strokes":[{"radius":2,"points":[[1,1]]}]}');
  });

  test("empty text, whitespace and no strokes mean no region", () => {
    for (const text of ["", "  \n", '{"size":[10,10],"strokes":[]}']) {
      const result = parseRegion(text);
      assert.equal(result.ok, true, text);
      assert.equal(serializeRegion(result.region), "");
    }
  });
});

describe("malformed regions give structured errors, never exceptions", () => {
  const stroke = (extra) => JSON.stringify({ size: [10, 10], strokes: [{ radius: 2, points: [[1, 1]], ...extra }] });
  const cases = [
    ["truncated JSON", '{"size":[10,10],"strokes":[', "invalid_json", /not valid JSON/],
    ["an array", "[]", "bad_shape", /'size' and 'strokes'/],
    ["no size", '{"strokes":[]}', "bad_shape", /'size' and 'strokes'/],
    ["strokes not a list", '{"size":[10,10],"strokes":{}}', "bad_shape", /'size' and 'strokes'/],
    ["fractional size", '{"size":[10.5,10],"strokes":[]}', "bad_size", /whole pixels/],
    ["zero size", '{"size":[0,10],"strokes":[]}', "bad_size", /whole pixels/],
    ["huge size", '{"size":[20000,10],"strokes":[]}', "bad_size", /whole pixels/],
    ["three sides", '{"size":[1,2,3],"strokes":[]}', "bad_size", /whole pixels/],
    ["a stroke that is not an object", '{"size":[10,10],"strokes":[3]}', "bad_stroke", /stroke 1 /],
    ["no points", stroke({ points: [] }), "bad_stroke", /non-empty 'points'/],
    ["zero radius", stroke({ radius: 0 }), "bad_radius", /radius must be a number above 0/],
    ["text radius", stroke({ radius: "2" }), "bad_radius", /radius/],
    ["erase not a boolean", stroke({ erase: "yes" }), "bad_erase", /true or false/],
    ["a point of one number", stroke({ points: [[1]] }), "bad_point", /not \[x, y\]/],
    ["a text coordinate", stroke({ points: [[1, "2"]] }), "bad_point", /not \[x, y\]/],
    ["a coordinate out of range", stroke({ points: [[1, 2e6]] }), "bad_point", /finite numbers/],
  ];
  for (const [name, text, code, message] of cases) {
    test(name, () => {
      const result = parseRegion(text);
      assert.equal(result.ok, false);
      assert.equal(result.error.code, code);
      assert.match(result.error.message, message);
    });
  }

  test("the error names the stroke", () => {
    const text = '{"size":[10,10],"strokes":[{"radius":2,"points":[[1,1]]},{"radius":-1,"points":[[1,1]]}]}';
    assert.deepEqual(parseRegion(text).error.index, 1);
    assert.match(parseRegion(text).error.message, /stroke 2/);
  });

  test("non-string input", () => {
    assert.equal(parseRegion(undefined).error.code, "not_string");
    assert.equal(parseRegion({ size: [1, 1], strokes: [] }).error.code, "not_string");
  });

  test("past core's limits: strokes, points, characters", () => {
    const many = (strokes, points) => JSON.stringify({ size: [10, 10], strokes: Array.from({ length: strokes },
      () => ({ radius: 1, points: Array.from({ length: points }, () => [1, 1]) })) });
    assert.equal(parseRegion(many(LIMITS.strokes + 1, 1)).error.code, "too_many_strokes");
    assert.equal(parseRegion(many(2, LIMITS.points / 2 + 1)).error.code, "too_many_points");
    assert.equal(parseRegion(" ".repeat(LIMITS.chars + 1) + "{}").error.code, "too_long");
  });

  test("the limits are the server's: taken when well formed, kept otherwise, none until sent", () => {
    assert.deepEqual(regionLimits(), LIMITS);
    assert.equal(setRegionLimits({ ...LIMITS, strokes: "many" }), false);
    assert.equal(setRegionLimits(undefined), false);
    assert.deepEqual(regionLimits(), LIMITS);
    const many = JSON.stringify({ size: [10, 10], strokes: Array.from({ length: LIMITS.strokes + 1 },
      () => ({ radius: 1, points: [[1, 1]] })) });
    try {
      assert.equal(setRegionLimits(null), true);
      assert.equal(parseRegion(many).ok, true, "no limits: the server checks");
      assert.equal(parseRegion('{"size":[10,10],"strokes":[{"radius":1e9,"points":[[1,1]]}]}').ok, true);
    } finally {
      setRegionLimits(LIMITS);
    }
    assert.equal(parseRegion(many).error.code, "too_many_strokes");
  });

  test("a radius past twice the picture's longer side is refused; the brush is clamped to it", () => {
    const text = (radius) => `{"size":[30,20],"strokes":[{"radius":${radius},"points":[[1,1]]}]}`;
    assert.equal(parseRegion(text(60)).ok, true);
    const refused = parseRegion(text(60.1));
    assert.equal(refused.error.code, "bad_radius");
    assert.match(refused.error.message, /stroke 1's radius 60.1 is more than 2 times the painted picture's longer/);
    const model = new RegionModel();
    paint(model, [[5, 5]], { radius: 256, imageSize: { width: 30, height: 20 } });
    assert.equal(parsed(model.serialize()).strokes[0].radius, 60);
    paint(model, [[5, 5]], { radius: 1000, imageSize: { width: 300, height: 20 } });
    assert.equal(parsed(model.serialize()).strokes[1].radius, 600);
    // rescaled to a picture of another shape (radius x sqrt(0.1 x 10) = 600), it stays within that picture's bound
    paint(model, [[5, 5]], { radius: 1, imageSize: { width: 30, height: 200 } });
    assert.deepEqual(parsed(model.serialize()).strokes.map((stroke) => stroke.radius), [189.7, 400, 1]);
  });

  test("a stroke past the limits is refused and the region kept", () => {
    const full = { size: { width: 10, height: 10 },
      strokes: Array.from({ length: LIMITS.strokes }, () => ({ radius: 1, points: [[1, 1]] })) };
    const model = new RegionModel();
    model.load(full);
    const before = model.serialize();
    const result = paint(model, [[5, 5]], { imageSize: { width: 10, height: 10 } });
    assert.equal(result.changed, false);
    assert.equal(result.error.code, "too_many_strokes");
    assert.equal(model.serialize(), before);
  });
});

describe("one history over pairs and region", () => {
  function editor() {
    const history = new EditHistory();
    const points = new DragPointsModel([], { onRecord: () => history.record("points") });
    const region = new RegionModel({ onRecord: () => history.record("region") });
    const undo = () => history.undo({ points, region });
    const redo = () => history.redo({ points, region });
    return { history, points, region, undo, redo };
  }

  test("Ctrl+Z undoes the last edit, a stroke or a point edit", () => {
    const { points, region, undo } = editor();
    points.addPoint([10, 10]);
    points.addPoint([20, 20]);
    paint(region, [[5, 5], [40, 5]]);
    points.beginGesture();
    points.movePoint({ index: 0, end: "target" }, [25, 25]);
    points.movePoint({ index: 0, end: "target" }, [30, 30]);
    points.endGesture();
    paint(region, [[5, 5]], { erase: true });

    assert.equal(undo(), "region");
    assert.equal(region.strokeCount, 1);
    assert.equal(undo(), "points"); // the whole drag
    assert.deepEqual(points.pairs, [{ handle: [10, 10], target: [20, 20] }]);
    assert.equal(undo(), "region");
    assert.equal(region.strokeCount, 0);
    assert.equal(undo(), "points");
    assert.equal(undo(), "points");
    assert.equal(points.pending, null);
    assert.equal(undo(), null);
  });

  test("Ctrl+Shift+Z redoes the undone edits in order, across both models", () => {
    const { points, region, undo, redo } = editor();
    points.addPoint([10, 10]);
    points.addPoint([20, 20]);
    paint(region, [[5, 5], [40, 5]]);
    points.clear();
    const states = () => [points.serialize(), region.serialize()];
    const edited = states();
    assert.equal(redo(), null);
    assert.deepEqual([undo(), undo(), undo()], ["points", "region", "points"]);
    assert.deepEqual(points.pending, [10, 10]);
    assert.deepEqual([redo(), redo()], ["points", "region"]);
    assert.deepEqual(points.pairs, [{ handle: [10, 10], target: [20, 20] }]);
    assert.equal(region.strokeCount, 1);
    assert.equal(redo(), "points");
    assert.deepEqual(states(), edited);
    assert.equal(redo(), null);
    assert.equal(undo(), "points"); // redone steps are undoable again
    assert.equal(points.pairCount, 1);
  });

  test("an edit of either model ends the redo of both", () => {
    const { history, points, region, undo, redo } = editor();
    points.addPoint([10, 10]);
    points.addPoint([20, 20]);
    paint(region, [[5, 5]]);
    undo(); // the stroke
    undo(); // the target
    points.addPoint([30, 30]); // a new target: the undone stroke and target are gone for good
    assert.equal(history.canRedo, false);
    assert.equal(redo(), null);
    assert.equal(region.strokeCount, 0);
    assert.deepEqual(points.pairs, [{ handle: [10, 10], target: [30, 30] }]);
  });

  test("a model's redo state left behind by the other model's edit never comes back", () => {
    const { points, region, undo, redo } = editor();
    paint(region, [[5, 5]]);
    paint(region, [[60, 60]]);
    undo(); // the second stroke, kept by the region model for a redo
    points.addPoint([1, 1]); // ... which this edit makes unreachable
    undo();
    undo(); // the first stroke
    assert.deepEqual([redo(), redo(), redo()], ["region", "points", null]);
    assert.deepEqual(JSON.parse(region.serialize()).strokes.map((stroke) => stroke.points), [[[5, 5]]]);
  });

  test("forget drops one model's steps (its value was replaced from outside)", () => {
    const { history, points, region, undo } = editor();
    paint(region, [[5, 5]]);
    points.addPoint([1, 1]);
    points.load([]);
    history.forget("points");
    assert.equal(history.length, 1);
    assert.equal(undo(), "region");
  });

  test("forget also drops the model's undone steps", () => {
    const { history, points, region, undo, redo } = editor();
    paint(region, [[5, 5]]);
    points.addPoint([1, 1]);
    undo();
    undo();
    points.load([]);
    history.forget("points");
    assert.equal(redo(), "region");
    assert.equal(redo(), null);
  });

  test("a step its model no longer holds is skipped", () => {
    const history = new EditHistory(3);
    const calls = [];
    const models = { a: { undo: () => calls.push("a") && false }, b: { undo: () => calls.push("b") > 0 } };
    for (const kind of ["a", "b", "a", "a"]) history.record(kind); // the first "a" falls off the cap
    assert.equal(history.length, 3);
    assert.equal(history.undo(models), "b");
    assert.deepEqual(calls, ["a", "a", "b"]);
    assert.equal(history.undo(models), null);
  });
});
