#!/usr/bin/env node
// The editor keeps its keys from ComfyUI's own shortcuts inside the real frontend (driven by
// tests/host/test_frontend.py), whichever frontend and node rendering it runs on.
//
//   node web/tests/frontend/editor_keys_frontend.mjs --url http://127.0.0.1:8188/ [--mode classic|nodes2] \
//        --image scene.png --width 512 --height 384 [--chromium /usr/bin/chromium]
//
// On Load Image -> Drag Latent Optimize: paints a stroke and places two pairs, clicks a host button
// (Hide Links), comes back to the editor and presses Ctrl+Z twice: exactly the last two edits are
// undone, and the graph is not reloaded (the same graph and node objects, no loadGraphData); then
// Ctrl+Shift+Z and Ctrl+Y redo them. With the node selected, Delete, Backspace, Esc, B/E/P, + - ] [
// act in the editor and reach none of the host's key handlers (the node stays, unpinned, the zoom
// stays). Ctrl+S, which the editor does not handle, still saves the workflow. After a graph undo made
// on the graph, Ctrl+Shift+Z and Ctrl+Y in the editor leave the graph alone; on the graph they redo it.
// Prints one JSON summary on stdout; exit status 0 when every check passed, 1 otherwise,
// 2 when the page could not be driven at all.

import {
  arg, clickEditorButton, clickOnImage, dragOnImage, editorInfo, exposeEditorState, finishSummary, focusNodes,
  imageToPage, loadWorkflow, minimalWorkflow, newSummary, openComfy, recordException, runSummaryScript,
  serverAndBrowser, settledEditor, waitForEditor,
} from "./comfy_page.mjs";

const { url: URL_, chromium: CHROMIUM, mode: MODE } = serverAndBrowser();
const IMAGE = arg("image", "scene.png");
const SIZE = { width: Number(arg("width", 512)), height: Number(arg("height", 384)) };
const NODE_ID = 2; // Drag Latent Optimize in minimalWorkflow; 1 is Load Image
const IMAGE_NODE_ID = 1;
const HOST_BUTTON = '[data-testid="toggle-link-visibility-button"]'; // "Hide Links", on both frontends
const at = (fx, fy) => [Math.round(fx * SIZE.width), Math.round(fy * SIZE.height)];
const STROKE = [at(0.2, 0.7), at(0.4, 0.7)];
const PAIRS = [{ handle: at(0.25, 0.5), target: at(0.45, 0.35) }, { handle: at(0.7, 0.65), target: at(0.85, 0.3) }];

const results = newSummary(URL_);
const { summary, check } = results;

const waitEditor = (page, predicate, what, timeout = 5000) => waitForEditor(page, NODE_ID, predicate, what, timeout);

/**
 * Watch what the host could do with a key: reload the graph (its undo/redo goes through app.loadGraphData and
 * makes new graph and node objects) and handle the key in the window's bubble phase, where its shortcut handler
 * listens (a listener added now runs after it, so a key seen here reached it).
 */
async function watchHost(page) {
  await page.evaluate((id) => {
    const app = window.app;
    let watch = window.__dragEditHost;
    if (!watch) {
      watch = window.__dragEditHost = { loads: 0, reached: [] };
      const load = app.loadGraphData;
      app.loadGraphData = function (...args) {
        watch.loads++;
        return load.apply(this, args);
      };
      const modifiers = new Set(["Control", "Shift", "Alt", "Meta"]); // pressed on their own before a combination
      window.addEventListener("keydown", (e) => modifiers.has(e.key) || watch.reached.push(e.key));
    }
    Object.assign(watch, { graph: app.graph, node: app.graph.getNodeById(id), loadsBefore: watch.loads });
    watch.reached.length = 0;
  }, NODE_ID);
}

/** What the host did since watchHost() or the last call (the keys it saw are taken). */
async function hostSide(page) {
  return page.evaluate((id) => {
    const watch = window.__dragEditHost;
    const node = window.app.graph.getNodeById(id);
    return { sameGraph: window.app.graph === watch.graph, sameNode: node === watch.node,
      graphLoads: watch.loads - watch.loadsBefore, keysSeen: watch.reached.splice(0), nodeExists: Boolean(node),
      nodeSelected: Boolean(node?.selected), nodePinned: Boolean(node?.pinned), zoom: window.app.canvas.ds.scale };
  }, NODE_ID);
}

const untouched = (host) => host.sameGraph && host.sameNode && host.graphLoads === 0 && host.keysSeen.length === 0;

/** The editor's history as the checks compare it. */
async function editorState(page) {
  const info = await editorInfo(page, NODE_ID);
  const history = await page.evaluate((id) => {
    const { history } = window.__dragEdit.state(id).editor;
    return { steps: history.length, canRedo: history.canRedo };
  }, NODE_ID);
  const pending = await page.evaluate((id) => window.__dragEdit.state(id).editor.model.pending, NODE_ID);
  return { value: info.widgetValue, strokes: info.regionStrokes, pairs: info.pairs.length, pending, tool: info.tool,
    radius: await page.evaluate((id) => window.__dragEdit.state(id).editor.radius, NODE_ID),
    keysFocused: info.keysFocused, ...history };
}

/** A point of the graph canvas with no node and nothing of the host's UI over it, in page px. */
async function emptyGraphSpot(page) {
  return page.evaluate(() => {
    const { canvas } = window.app;
    const r = canvas.canvas.getBoundingClientRect();
    for (let fy = 0.3; fy < 0.9; fy += 0.1) {
      for (let fx = 0.95; fx > 0.05; fx -= 0.05) {
        const [x, y] = [r.left + fx * r.width, r.top + fy * r.height];
        const [gx, gy] = canvas.ds.convertCanvasToOffset([x - r.left, y - r.top]);
        const free = !window.app.graph.nodes.some((n) => gx >= n.pos[0] - 10 && gx <= n.pos[0] + n.size[0] + 10 &&
          gy >= n.pos[1] - 40 && gy <= n.pos[1] + n.size[1] + 10);
        if (free && document.elementFromPoint(x, y) === canvas.canvas) return [x, y];
      }
    }
    return null;
  });
}

/** Page position of the middle of a node's title bar. */
async function titleOf(page, id) {
  return page.evaluate((nodeId) => {
    const { canvas, graph } = window.app;
    const node = graph.getNodeById(nodeId);
    const r = canvas.canvas.getBoundingClientRect();
    const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2,
      node.pos[1] - window.LiteGraph.NODE_TITLE_HEIGHT / 2]);
    return [r.left + x, r.top + y];
  }, id);
}

const nodePosition = (page, id) => page.evaluate((nodeId) => [...window.app.graph.getNodeById(nodeId).pos], id);

/** Press `key` in the editor and report what it did there and on the host's side. */
async function pressInEditor(page, key) {
  const before = await editorState(page);
  await page.keyboard.press(key);
  await page.waitForTimeout(150); // the change tracker acts on the next animation frame
  return { key, before, after: await editorState(page), host: await hostSide(page) };
}

async function main() {
  const t0 = Date.now();
  const session = await openComfy({ url: URL_, chromiumPath: CHROMIUM, mode: MODE });
  const { page } = session;
  try {
    await exposeEditorState(page);
    session.setPhase("load");
    const name = `dragedit-keys-${MODE}-${Date.now()}.json`; // a new file for each run: saving never overwrites
    const loadError = await loadWorkflow(page, minimalWorkflow({ imageName: IMAGE }), name);
    check("workflow_loads", !loadError, loadError ?? undefined);
    await focusNodes(page, [NODE_ID]);
    await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible, "the editor to show the picture", 10000);

    // 1. a stroke and two pairs, then a click on one of the host's buttons
    session.setPhase("edit");
    await clickEditorButton(page, NODE_ID, "Brush");
    await dragOnImage(page, NODE_ID, ...STROKE);
    await clickEditorButton(page, NODE_ID, "Points");
    for (const pair of PAIRS) for (const end of ["handle", "target"]) await clickOnImage(page, NODE_ID, pair[end]);
    const edited = await editorState(page);
    check("edits_made", edited.strokes === 1 && edited.pairs === 2 && edited.keysFocused, edited);
    await watchHost(page);
    const hostButton = page.locator(HOST_BUTTON).first();
    await hostButton.click();
    const hostFocused = await page.evaluate((id) => !window.__dragEdit.state(id).dom.root.contains(document.activeElement),
      NODE_ID);
    check("host_button_takes_focus", hostFocused);

    // 2. back in the editor (its Points button: no edit), Ctrl+Z twice
    session.setPhase("undo");
    await clickEditorButton(page, NODE_ID, "Points");
    const back = await editorState(page);
    check("editor_has_the_keys_again", back.keysFocused && back.value === edited.value && back.steps === edited.steps,
      back);
    const firstUndo = await pressInEditor(page, "Control+z");
    const onePair = JSON.stringify(JSON.parse(edited.value).slice(0, 1));
    check("ctrl_z_undoes_the_last_edit_only", firstUndo.after.pairs === 1 && firstUndo.after.pending !== null &&
      firstUndo.after.strokes === 1 && firstUndo.after.value === onePair && firstUndo.after.steps === edited.steps - 1,
    firstUndo.after);
    check("ctrl_z_leaves_the_graph_alone", untouched(firstUndo.host), firstUndo.host);
    const secondUndo = await pressInEditor(page, "Control+z");
    check("second_ctrl_z_undoes_the_edit_before", secondUndo.after.pairs === 1 && secondUndo.after.pending === null &&
      secondUndo.after.strokes === 1 && secondUndo.after.steps === edited.steps - 2 && secondUndo.after.canRedo,
    secondUndo.after);
    check("second_ctrl_z_leaves_the_graph_alone", untouched(secondUndo.host), secondUndo.host);

    // 3. redo, in the editor
    session.setPhase("redo");
    const redo = await pressInEditor(page, "Control+Shift+Z");
    check("ctrl_shift_z_redoes_in_the_editor", redo.after.pending !== null && redo.after.pairs === 1 &&
      redo.after.steps === edited.steps - 1, redo.after);
    check("ctrl_shift_z_leaves_the_graph_alone", untouched(redo.host), redo.host);
    const redoY = await pressInEditor(page, "Control+y");
    check("ctrl_y_redoes_in_the_editor", redoY.after.value === edited.value && redoY.after.pairs === 2 &&
      redoY.after.strokes === 1 && redoY.after.steps === edited.steps && !redoY.after.canRedo, redoY.after);
    check("ctrl_y_leaves_the_graph_alone", untouched(redoY.host), redoY.host);

    // 4. the node selected: the editor's other keys act in the editor only
    session.setPhase("keys");
    await page.evaluate((id) => window.app.canvas.selectNode(window.app.graph.getNodeById(id)), NODE_ID);
    const keys = [];
    const info = await settledEditor(page, NODE_ID);
    await page.mouse.move(...imageToPage(PAIRS[0].handle, info)); // Delete removes the pair under the cursor
    keys.push({ ...(await pressInEditor(page, "Delete")), acted: (k) => k.after.pairs === k.before.pairs - 1 });
    await page.mouse.move(...imageToPage(at(0.05, 0.05), info)); // nothing under the cursor
    keys.push({ ...(await pressInEditor(page, "Backspace")), acted: (k) => k.after.value === k.before.value });
    await clickOnImage(page, NODE_ID, at(0.5, 0.5)); // a handle waiting for its target
    await page.evaluate((id) => window.app.canvas.selectNode(window.app.graph.getNodeById(id)), NODE_ID);
    await hostSide(page); // forget the click
    keys.push({ ...(await pressInEditor(page, "Escape")), acted: (k) => k.before.pending && !k.after.pending });
    for (const [key, tool] of [["b", "brush"], ["e", "eraser"], ["p", "points"]]) {
      keys.push({ ...(await pressInEditor(page, key)), acted: (k) => k.after.tool === tool });
    }
    for (const [key, sign] of [["+", 1], ["]", 1], ["-", -1], ["[", -1]]) {
      keys.push({ ...(await pressInEditor(page, key)), acted: (k) => Math.sign(k.after.radius - k.before.radius) === sign });
    }
    summary.keys = keys.map(({ key, before, after, host, acted }) => ({ key, acted: Boolean(acted({ before, after })),
      host, keysFocused: after.keysFocused }));
    for (const k of summary.keys) {
      check(`key_${k.key}_acts_in_the_editor`, k.acted && k.keysFocused, k);
      check(`key_${k.key}_leaves_the_host_alone`, untouched(k.host) && k.host.nodeExists && k.host.nodeSelected &&
        !k.host.nodePinned && k.host.zoom === keys[0].host.zoom, k.host);
    }

    // 5. a key the editor does not handle still reaches the host: Ctrl+S saves the workflow (a new one: the host
    // asks for its name first, and Enter there confirms)
    session.setPhase("save");
    const saved = page.waitForRequest((r) => r.method() === "POST" &&
      decodeURIComponent(r.url()).includes(`workflows/${name}`), { timeout: 10000 }).then(() => true, () => false);
    await page.keyboard.press("Control+s");
    const afterSave = await hostSide(page);
    const nameField = page.locator('[role="dialog"] input, .p-dialog input').first();
    const asked = await nameField.waitFor({ state: "visible", timeout: 5000 }).then(() => true, () => false);
    if (asked) await nameField.press("Enter");
    const saveSeen = await saved;
    check("ctrl_s_reaches_the_host", saveSeen && afterSave.keysSeen.includes("s"), { asked, saveSeen, host: afterSave });
    await page.waitForTimeout(500); // the dialog closes

    // 6. a graph undo made on the graph: the editor's redo keys leave it undone, the graph's own redo it
    session.setPhase("graph_redo");
    await focusNodes(page, [IMAGE_NODE_ID, NODE_ID], { maxScale: 1 });
    await page.waitForTimeout(300);
    const start = await nodePosition(page, IMAGE_NODE_ID);
    const title = await titleOf(page, IMAGE_NODE_ID);
    // a drag of its title bar, at a person's pace (Vue-rendered nodes miss a drag pressed and moved at once)
    await page.mouse.move(...title);
    await page.waitForTimeout(100);
    await page.mouse.down();
    await page.waitForTimeout(100);
    await page.mouse.move(title[0] + 40, title[1] + 30, { steps: 8 });
    await page.waitForTimeout(100);
    await page.mouse.up();
    await page.waitForTimeout(300);
    const moved = await nodePosition(page, IMAGE_NODE_ID);
    const spot = await emptyGraphSpot(page);
    if (!spot) throw new Error("no free spot on the graph canvas to click");
    await page.mouse.click(...spot);
    await page.keyboard.press("Control+z");
    const undoneOnGraph = await page.waitForFunction(([id, x, y]) => {
      const pos = window.app.graph.getNodeById(id)?.pos;
      return pos && Math.abs(pos[0] - x) < 1 && Math.abs(pos[1] - y) < 1;
    }, [IMAGE_NODE_ID, ...start], { timeout: 8000 }).then(() => true, () => false);
    check("graph_undo_on_the_graph", moved[0] !== start[0] && undoneOnGraph, { start, moved });
    await waitEditor(page, (i) => i.editor && i.imageLoaded && i.visible, "the editor after the graph undo", 10000);
    await watchHost(page); // the graph was reloaded: these are its objects now
    await clickEditorButton(page, NODE_ID, "Points");
    const editorRedo = [await pressInEditor(page, "Control+Shift+Z"), await pressInEditor(page, "Control+y")];
    const stayed = await nodePosition(page, IMAGE_NODE_ID);
    check("editor_redo_keys_do_not_redo_the_graph", editorRedo.every((k) => untouched(k.host) && k.after.keysFocused) &&
      stayed[0] === start[0] && stayed[1] === start[1], { hosts: editorRedo.map((k) => k.host), stayed });
    await page.mouse.click(...spot);
    await page.keyboard.press("Control+Shift+Z");
    const redoneOnGraph = await page.waitForFunction(([id, x, y]) => {
      const pos = window.app.graph.getNodeById(id)?.pos;
      return pos && Math.abs(pos[0] - x) < 1 && Math.abs(pos[1] - y) < 1;
    }, [IMAGE_NODE_ID, ...moved], { timeout: 8000 }).then(() => true, () => false);
    check("the_same_key_on_the_graph_redoes_it", redoneOnGraph, { moved, now: await nodePosition(page, IMAGE_NODE_ID) });

    session.setPhase("end");
    await hostButton.click(); // links shown again
  } catch (e) {
    recordException(summary, e);
  } finally {
    await finishSummary(results, session, t0);
  }
  return summary;
}

runSummaryScript(main);
