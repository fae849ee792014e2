// One undo history over several models (the pairs and the region): each model keeps its own
// snapshots; this only remembers which model took each step, so Ctrl+Z undoes the last edit,
// whichever it was.

const MAX_STEPS = 400; // both models keep 200 steps each

export class EditHistory {
  constructor(limit = MAX_STEPS) {
    this._kinds = [];
    this._limit = limit;
  }

  get length() {
    return this._kinds.length;
  }

  get canUndo() {
    return this._kinds.length > 0;
  }

  /** A model named `kind` stored an undo step. */
  record(kind) {
    this._kinds.push(kind);
    if (this._kinds.length > this._limit) this._kinds.shift();
  }

  /** The model was replaced from outside (its own history is gone): drop its steps. */
  forget(kind) {
    this._kinds = this._kinds.filter((k) => k !== kind);
  }

  /**
   * Undo the latest step through `models[kind].undo()`; a step whose model no longer has it (its own
   * history is capped) is skipped. Returns the kind undone, or null.
   */
  undo(models) {
    while (this._kinds.length) {
      const kind = this._kinds.pop();
      if (models[kind]?.undo()) return kind;
    }
    return null;
  }
}
