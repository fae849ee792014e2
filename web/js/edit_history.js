// One undo/redo history over several models (the pairs and the region): each model keeps its own
// snapshots; this only remembers which model took each step, so Ctrl+Z undoes the last edit and
// Ctrl+Shift+Z redoes the last undo, whichever model it was.

const MAX_STEPS = 400; // both models keep 200 steps each

export class EditHistory {
  constructor(limit = MAX_STEPS) {
    this._undo = [];
    this._redo = [];
    this._limit = limit;
  }

  get length() {
    return this._undo.length;
  }

  get canUndo() {
    return this._undo.length > 0;
  }

  get canRedo() {
    return this._redo.length > 0;
  }

  /** A model named `kind` stored an undo step: a new edit, so nothing undone can be redone any more. */
  record(kind) {
    this._push(this._undo, kind);
    this._redo = [];
  }

  /** The model was replaced from outside (its own history is gone): drop its steps. */
  forget(kind) {
    this._undo = this._undo.filter((k) => k !== kind);
    this._redo = this._redo.filter((k) => k !== kind);
  }

  /**
   * Undo the latest step through `models[kind].undo()`; a step whose model no longer has it (its own
   * history is capped) is skipped. Returns the kind undone, or null.
   */
  undo(models) {
    return this._move(this._undo, this._redo, (kind) => models[kind]?.undo());
  }

  /** Redo the latest undone step through `models[kind].redo()`. Returns the kind redone, or null. */
  redo(models) {
    return this._move(this._redo, this._undo, (kind) => models[kind]?.redo());
  }

  _move(from, to, apply) {
    while (from.length) {
      const kind = from.pop();
      if (apply(kind)) {
        this._push(to, kind);
        return kind;
      }
    }
    return null;
  }

  _push(list, kind) {
    list.push(kind);
    if (list.length > this._limit) list.shift();
  }
}
