import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  DragPointsModel,
  canvasToImage,
  clampToImage,
  containFit,
  imageToCanvas,
  isInsideFit,
  parsePairs,
  roundCoord,
  serializePairs,
  validateBounds,
} from "../js/drag_points_model.js";

const close = (actual, expected, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${actual} != ${expected}`);
const closePoint = (actual, expected, eps = 1e-9) => {
  close(actual[0], expected[0], eps);
  close(actual[1], expected[1], eps);
};

describe("pair editing", () => {
  test("handle then target completes a pair", () => {
    const model = new DragPointsModel();
    assert.deepEqual(model.addPoint([10, 20]), { completed: false, index: null });
    assert.deepEqual(model.pending, [10, 20]);
    assert.equal(model.pairCount, 0);
    assert.deepEqual(model.addPoint([30, 40]), { completed: true, index: 0 });
    assert.equal(model.pending, null);
    assert.deepEqual(model.pairs, [{ handle: [10, 20], target: [30, 40] }]);
  });

  test("getters return copies", () => {
    const model = new DragPointsModel([{ handle: [1, 2], target: [3, 4] }]);
    model.pairs[0].handle[0] = 99;
    assert.deepEqual(model.pairs[0].handle, [1, 2]);
  });

  test("move either endpoint and the pending handle", () => {
    const model = new DragPointsModel([{ handle: [1, 2], target: [3, 4] }]);
    assert.ok(model.movePoint({ index: 0, end: "target" }, [5, 6]));
    assert.ok(model.movePoint({ index: 0, end: "handle" }, [7, 8]));
    assert.deepEqual(model.pairs, [{ handle: [7, 8], target: [5, 6] }]);
    model.addPoint([50, 50]);
    assert.ok(model.movePoint({ index: null, end: "pending" }, [60, 61]));
    assert.deepEqual(model.pending, [60, 61]);
    assert.equal(model.movePoint({ index: 3, end: "handle" }, [0, 0]), false);
  });

  test("delete a pair by either endpoint; pending deletion cancels it", () => {
    const model = new DragPointsModel([
      { handle: [1, 1], target: [2, 2] },
      { handle: [3, 3], target: [4, 4] },
    ]);
    assert.ok(model.deleteAt({ index: 0, end: "target" }));
    assert.deepEqual(model.pairs, [{ handle: [3, 3], target: [4, 4] }]);
    model.addPoint([9, 9]);
    assert.ok(model.deleteAt({ index: null, end: "pending" }));
    assert.equal(model.pending, null);
    assert.equal(model.deleteAt({ index: 5, end: "handle" }), false);
  });

  test("undo steps back through adds, moves and deletes", () => {
    const model = new DragPointsModel();
    assert.equal(model.canUndo, false);
    model.addPoint([1, 1]);
    model.addPoint([2, 2]);
    model.movePoint({ index: 0, end: "target" }, [3, 3]);
    model.deleteAt({ index: 0, end: "handle" });
    assert.equal(model.pairCount, 0);
    assert.ok(model.undo());
    assert.deepEqual(model.pairs, [{ handle: [1, 1], target: [3, 3] }]);
    assert.ok(model.undo());
    assert.deepEqual(model.pairs, [{ handle: [1, 1], target: [2, 2] }]);
    assert.ok(model.undo());
    assert.deepEqual(model.pending, [1, 1]);
    assert.equal(model.pairCount, 0);
    assert.ok(model.undo());
    assert.equal(model.pending, null);
    assert.equal(model.undo(), false);
  });

  test("clear is undoable and clearing nothing records nothing", () => {
    const pairs = [{ handle: [1, 1], target: [2, 2] }, { handle: [5, 5], target: [6, 6] }];
    const model = new DragPointsModel(pairs);
    assert.ok(model.clear());
    assert.equal(model.pairCount, 0);
    assert.equal(model.clear(), false);
    assert.ok(model.undo());
    assert.deepEqual(model.pairs, pairs);
    assert.equal(model.canUndo, false);
  });

  test("a drag gesture with many moves is one undo step", () => {
    const model = new DragPointsModel([{ handle: [1, 1], target: [2, 2] }]);
    model.beginGesture();
    for (let i = 0; i < 10; i++) model.movePoint({ index: 0, end: "handle" }, [i, i]);
    assert.ok(model.endGesture());
    assert.deepEqual(model.pairs[0].handle, [9, 9]);
    assert.ok(model.undo());
    assert.deepEqual(model.pairs[0].handle, [1, 1]);
    assert.equal(model.canUndo, false);
  });

  test("a gesture that changes nothing leaves no undo step", () => {
    const model = new DragPointsModel([{ handle: [1, 1], target: [2, 2] }]);
    model.beginGesture();
    assert.equal(model.endGesture(), false);
    assert.equal(model.canUndo, false);
  });

  test("redo takes back undos in reverse order, ending where the edits ended", () => {
    const model = new DragPointsModel();
    assert.equal(model.redo(), false);
    model.addPoint([1, 1]);
    model.addPoint([2, 2]);
    model.movePoint({ index: 0, end: "target" }, [3, 3]);
    const edited = model.serialize();
    for (let i = 0; i < 3; i++) assert.ok(model.undo());
    assert.equal(model.pending, null);
    assert.ok(model.canRedo);
    assert.ok(model.redo());
    assert.deepEqual(model.pending, [1, 1]);
    assert.ok(model.redo());
    assert.deepEqual(model.pairs, [{ handle: [1, 1], target: [2, 2] }]);
    assert.ok(model.redo());
    assert.equal(model.serialize(), edited);
    assert.equal(model.redo(), false);
    assert.ok(model.undo()); // a redone step can be undone again
    assert.deepEqual(model.pairs, [{ handle: [1, 1], target: [2, 2] }]);
  });

  test("a new edit after an undo leaves nothing to redo", () => {
    const model = new DragPointsModel([{ handle: [1, 1], target: [2, 2] }]);
    model.clear();
    model.undo();
    model.movePoint({ index: 0, end: "handle" }, [7, 7]);
    assert.equal(model.canRedo, false);
    assert.equal(model.redo(), false);
    assert.deepEqual(model.pairs, [{ handle: [7, 7], target: [2, 2] }]);
  });

  test("redo of a whole drag; a drag in progress at redo is an edit, so nothing is redone", () => {
    const model = new DragPointsModel([{ handle: [1, 1], target: [2, 2] }]);
    model.beginGesture();
    for (let i = 0; i < 5; i++) model.movePoint({ index: 0, end: "handle" }, [i, 10]);
    model.endGesture();
    model.undo();
    assert.ok(model.redo());
    assert.deepEqual(model.pairs[0].handle, [4, 10]);
    model.undo();
    model.beginGesture();
    model.movePoint({ index: 0, end: "target" }, [9, 9]);
    assert.equal(model.redo(), false);
    assert.deepEqual(model.pairs, [{ handle: [1, 1], target: [9, 9] }]);
  });

  test("load replaces state and forgets history", () => {
    const model = new DragPointsModel();
    model.addPoint([1, 1]);
    model.addPoint([2, 2]);
    model.undo();
    model.load([{ handle: [4, 4], target: [5, 5] }]);
    assert.equal(model.pending, null);
    assert.equal(model.canUndo, false);
    assert.equal(model.canRedo, false);
    assert.equal(model.serialize(), '[{"handle":[4,4],"target":[5,5]}]');
  });
});

describe("serialization", () => {
  test("stable compact format, 0.1 px rounding, no -0", () => {
    const json = serializePairs([{ handle: [10.04, -0.01], target: [3.16, 200] }]);
    assert.equal(json, '[{"handle":[10,0],"target":[3.2,200]}]');
    assert.equal(roundCoord(-0.04), 0);
    assert.ok(!Object.is(roundCoord(-0.04), -0));
  });

  test("round trip parse -> serialize -> parse", () => {
    const pairs = [
      { handle: [12.3, 45.6], target: [78.9, 0] },
      { handle: [511, 383], target: [0.1, 99.9] },
    ];
    const json = serializePairs(pairs);
    const parsed = parsePairs(json, { width: 512, height: 384 });
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.pairs, pairs);
    assert.equal(serializePairs(parsed.pairs), json);
  });

  test("extra keys are dropped and key order is normalized", () => {
    const parsed = parsePairs('[{"target":[3,4],"note":"x","handle":[1,2]}]');
    assert.ok(parsed.ok);
    assert.equal(serializePairs(parsed.pairs), '[{"handle":[1,2],"target":[3,4]}]');
  });

  test("empty text and [] mean no pairs", () => {
    assert.deepEqual(parsePairs(""), { ok: true, pairs: [] });
    assert.deepEqual(parsePairs("  \n"), { ok: true, pairs: [] });
    assert.deepEqual(parsePairs("[]"), { ok: true, pairs: [] });
  });
});

describe("malformed JSON gives structured errors, never exceptions", () => {
  const cases = [
    ["truncated JSON", '[{"handle":[1,2]', "invalid_json"],
    ["not JSON at all", "hello", "invalid_json"],
    ["object instead of array", '{"handle":[1,2],"target":[3,4]}', "not_array"],
    ["number", "42", "not_array"],
    ["null", "null", "not_array"],
    ["pair is array", "[[1,2],[3,4]]", "bad_pair"],
    ["pair is null", "[null]", "bad_pair"],
    ["missing target", '[{"handle":[1,2]}]', "bad_point"],
    ["three coordinates", '[{"handle":[1,2,3],"target":[3,4]}]', "bad_point"],
    ["string coordinate", '[{"handle":["1",2],"target":[3,4]}]', "non_finite"],
    ["null coordinate", '[{"handle":[null,2],"target":[3,4]}]', "non_finite"],
    ["overflow to Infinity", '[{"handle":[1e999,2],"target":[3,4]}]', "non_finite"],
  ];
  for (const [name, text, code] of cases) {
    test(name, () => {
      const result = parsePairs(text);
      assert.equal(result.ok, false);
      assert.equal(result.error.code, code);
      assert.equal(typeof result.error.message, "string");
      assert.ok(result.error.message.length > 0);
    });
  }

  test("non-string input", () => {
    assert.equal(parsePairs(undefined).error.code, "not_string");
    assert.equal(parsePairs(123).error.code, "not_string");
  });

  test("error names the pair and the field", () => {
    const result = parsePairs('[{"handle":[1,2],"target":[3,4]},{"handle":[1,2],"target":[3]}]');
    assert.equal(result.error.index, 1);
    assert.equal(result.error.field, "target");
    assert.match(result.error.message, /pair 2 target/);
  });

  test("points outside a known image size", () => {
    const size = { width: 512, height: 384 };
    const outside = parsePairs('[{"handle":[10,10],"target":[600,10]}]', size);
    assert.equal(outside.ok, false);
    assert.equal(outside.error.code, "out_of_bounds");
    assert.equal(outside.error.field, "target");
    assert.equal(parsePairs('[{"handle":[-1,10],"target":[6,10]}]', size).error.code, "out_of_bounds");
    // edges are accepted; without a size nothing is bounds-checked
    assert.ok(parsePairs('[{"handle":[0,0],"target":[512,384]}]', size).ok);
    assert.ok(parsePairs('[{"handle":[10,10],"target":[600,10]}]').ok);
    assert.equal(validateBounds([{ handle: [1, 1], target: [1, 1] }], null), null);
  });
});

describe("contain-fit transforms", () => {
  const cases = [
    // image, canvas, expected scale, offsetX, offsetY
    [{ width: 512, height: 512 }, { width: 300, height: 300 }, 300 / 512, 0, 0],
    [{ width: 512, height: 384 }, { width: 200, height: 400 }, 200 / 512, 0, (400 - 384 * (200 / 512)) / 2],
    [{ width: 37, height: 91 }, { width: 640, height: 480 }, 480 / 91, (640 - 37 * (480 / 91)) / 2, 0],
    [{ width: 512, height: 384 }, { width: 400, height: 400 }, 0.78125, 0, 50],
    [{ width: 1920, height: 1080 }, { width: 100, height: 900 }, 100 / 1920, 0, (900 - 1080 * (100 / 1920)) / 2],
    [{ width: 64, height: 64 }, { width: 1024, height: 256 }, 4, 384, 0],
  ];

  for (const [image, canvas, scale, offsetX, offsetY] of cases) {
    const label = `${image.width}x${image.height} in ${canvas.width}x${canvas.height}`;

    test(`${label}: scale and letterbox offsets`, () => {
      const fit = containFit(image, canvas);
      close(fit.scale, scale);
      close(fit.offsetX, offsetX);
      close(fit.offsetY, offsetY);
      // the fitted image touches both edges of one axis and fits the other
      assert.ok(fit.width <= canvas.width + 1e-9 && fit.height <= canvas.height + 1e-9);
      assert.ok(Math.abs(fit.width - canvas.width) < 1e-9 || Math.abs(fit.height - canvas.height) < 1e-9);
    });

    test(`${label}: corners map to the fitted rectangle and back`, () => {
      const fit = containFit(image, canvas);
      closePoint(imageToCanvas([0, 0], fit), [offsetX, offsetY]);
      closePoint(imageToCanvas([image.width, image.height], fit), [offsetX + fit.width, offsetY + fit.height]);
      closePoint(imageToCanvas([image.width / 2, image.height / 2], fit), [canvas.width / 2, canvas.height / 2]);
    });

    test(`${label}: canvasToImage inverts imageToCanvas`, () => {
      const fit = containFit(image, canvas);
      for (const point of [[0, 0], [image.width - 1, image.height - 1], [image.width * 0.3, image.height * 0.7], [1.5, 2.25]]) {
        closePoint(canvasToImage(imageToCanvas(point, fit), fit), point, 1e-6);
      }
    });

    test(`${label}: clicks on the letterbox clamp into the image`, () => {
      const fit = containFit(image, canvas);
      closePoint(canvasToImage([-50, -50], fit), [0, 0]);
      closePoint(canvasToImage([canvas.width + 50, canvas.height + 50], fit), [image.width - 1, image.height - 1]);
      assert.equal(isInsideFit([offsetX + 1, offsetY + 1], fit), true);
      assert.equal(isInsideFit([offsetX - 1, offsetY - 1], fit), false);
      const raw = canvasToImage([-50, -50], fit, { clamp: false });
      assert.ok(raw[0] < 0 && raw[1] < 0);
    });
  }

  test("unusable sizes give no fit", () => {
    assert.equal(containFit(null, { width: 10, height: 10 }), null);
    assert.equal(containFit({ width: 10, height: 10 }, { width: 0, height: 10 }), null);
    assert.equal(containFit({ width: NaN, height: 10 }, { width: 10, height: 10 }), null);
  });

  test("clampToImage", () => {
    assert.deepEqual(clampToImage([-3, 900], { width: 512, height: 384 }), [0, 383]);
    assert.deepEqual(clampToImage([12.5, 7], { width: 512, height: 384 }), [12.5, 7]);
  });
});

describe("hit testing", () => {
  const fit = containFit({ width: 512, height: 384 }, { width: 400, height: 400 }); // scale 0.78125, offsetY 50
  const model = new DragPointsModel([
    { handle: [128, 128], target: [384, 256] }, // canvas (100,150) -> (300,250)
    { handle: [140, 128], target: [0, 0] }, // handle at canvas (109.375,150)
  ]);

  test("nearest endpoint within the radius wins", () => {
    assert.deepEqual(model.hitTest([300, 252], fit, 10), { index: 0, end: "target" });
    assert.deepEqual(model.hitTest([101, 150], fit, 10), { index: 0, end: "handle" });
    assert.deepEqual(model.hitTest([108, 150], fit, 10), { index: 1, end: "handle" });
    assert.deepEqual(model.hitTest([0, 50], fit, 10), { index: 1, end: "target" });
  });

  test("nothing within the radius", () => {
    assert.equal(model.hitTest([200, 200], fit, 10), null);
    assert.equal(model.hitTest([300, 262], fit, 10), null);
    assert.deepEqual(model.hitTest([300, 262], fit, 15), { index: 0, end: "target" });
  });

  test("radius is in canvas pixels, independent of image scale", () => {
    const big = containFit({ width: 4096, height: 4096 }, { width: 400, height: 400 });
    const m = new DragPointsModel([{ handle: [2048, 2048], target: [0, 0] }]);
    assert.deepEqual(m.hitTest([205, 200], big, 10), { index: 0, end: "handle" }); // 51 image px away
    assert.equal(m.hitTest([215, 200], big, 10), null);
  });

  test("pending handle is hittable; no fit means no hit", () => {
    const m = new DragPointsModel();
    m.addPoint([256, 192]);
    assert.deepEqual(m.hitTest([200, 200], fit, 10), { index: null, end: "pending" });
    assert.equal(m.hitTest([200, 200], null, 10), null);
  });
});
