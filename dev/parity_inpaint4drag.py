"""Compare the pack's region warp (core/region_warp.py) with recorded runs of the official Inpaint4Drag ``bi_warp``.

    python dev/parity_inpaint4drag.py /work/parity/inpaint4drag/cases [--json report.json]

Each ``CASE.npz`` was written by a harness around the official ``utils/drag.py: bi_warp`` and its UI's preview
composition (no official code is here): the inputs (``image`` uint8 RGB, ``region``, ``points`` alternating
handle/target, ``kernel``) and the outputs (``warped``: the picture after ``image[target] = image[source]``;
``preview``: the same with the grid over the inpaint area; ``inpaint_mask``; ``moved_mask``: the pixels the warp
writes).  Per case this runs :func:`core.region_warp.bidirectional_warp`, :func:`apply_warp` and
:func:`preview_warp` on the same inputs and reports the largest absolute difference of the warped picture (and
on how many pixels, how many of them outside the inpaint mask) and of the preview, and whether both masks are
identical.

The fill of the moved outline is OpenCV's: the official requirements pin OpenCV 4.8.0.76, whose ``fillPoly`` spills
a pixel past some outlines (fixed in 4.11, opencv/opencv#26130); the pack needs 4.11 or later.  Compare with an
official run on OpenCV 4.11+ for exact agreement; against a 4.8 run the moved region differs by a few edge pixels.

A case whose handle lies in no region is compared as documented in the module: the official code ignores that
pair, ours must refuse it with a ValueError naming it, and ours without that pair must match the official output.
Exits 0 only when every case matches exactly.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from core.region_warp import apply_warp, bidirectional_warp, preview_warp  # noqa: E402


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max(initial=0))


def compare(case: dict) -> dict:
    points = case["points"]
    handles, targets = points[0::2], points[1::2]
    kernel = int(case["kernel"])
    row = {"pairs": len(handles), "kernel": kernel, "image_hw": list(case["image"].shape[:2])}
    try:
        plan = bidirectional_warp(case["region"], handles, targets, kernel)
    except ValueError as error:
        message = str(error)
        pair = next((i for i in range(len(handles)) if message.startswith(f"pair {i + 1}:")), None)
        if pair is None:
            row.update(refused=message, match=False)
            return row
        row["refused"] = message  # compared as documented: without that pair, ours must equal the official run
        keep = [i for i in range(len(handles)) if i != pair]
        plan = bidirectional_warp(case["region"], handles[keep], targets[keep], kernel)
    warped = apply_warp(case["image"], plan)
    preview = preview_warp(case["image"], plan)
    differs = (warped != case["warped"]).any(axis=-1)
    row.update(
        warped_max_abs_diff=_max_diff(warped, case["warped"]),
        warped_px_different=int(differs.sum()),
        warped_px_different_outside_inpaint_mask=int((differs & ~plan.inpaint_mask).sum()),
        moved_mask_px_different=int((plan.moved_mask != (case["moved_mask"] > 0)).sum()),
        preview_max_abs_diff=_max_diff(preview, case["preview"]),
        inpaint_mask_identical=bool(np.array_equal(plan.inpaint_mask, case["inpaint_mask"] > 0)),
        moved_mask_identical=bool(np.array_equal(plan.moved_mask, case["moved_mask"] > 0)),
        points_identical=bool(np.array_equal(plan.source_xy, case["source"])
                              and np.array_equal(plan.target_xy, case["target"])),
        moved_pixels=len(plan.target_xy),
    )
    row["match"] = (row["warped_max_abs_diff"] == 0 and row["preview_max_abs_diff"] == 0
                    and row["inpaint_mask_identical"] and row["moved_mask_identical"])
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", type=Path, help="folder of CASE.npz written around the official bi_warp")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted(args.cases.glob("*.npz"))
    if not files:
        sys.stderr.write(f"no .npz cases in {args.cases}\n")
        return 2
    report = {"ours": {"torch": torch.__version__, "numpy": np.__version__, "cv2": cv2.__version__},
              "official": {}, "cases": {}}
    write = sys.stdout.write
    write(f"{'case':32} {'warped':>6} {'px':>4} {'preview':>7} {'inpaint':>7} {'moved':>5} {'points':>6}  result\n")
    for path in files:
        with np.load(path) as data:
            case = {key: data[key] for key in data.files}
        for key in ("torch", "cv2", "numpy"):
            if f"{key}_version" in case:
                report["official"].setdefault(key, str(case[f"{key}_version"]))
        row = compare(case)
        report["cases"][path.stem] = row
        if "warped_max_abs_diff" in row:
            write(f"{path.stem:32} {row['warped_max_abs_diff']:6d} {row['warped_px_different']:4d} "
                  f"{row['preview_max_abs_diff']:7d} "
                  f"{str(row['inpaint_mask_identical']):>7} {str(row['moved_mask_identical']):>5} "
                  f"{str(row['points_identical']):>6}  {'ok' if row['match'] else 'DIFFERENT'}"
                  f"{'  (refused as documented)' if 'refused' in row else ''}\n")
        else:
            write(f"{path.stem:32} refused unexpectedly: {row['refused']}\n")
    report["all_match"] = all(row["match"] for row in report["cases"].values())
    write(f"{sum(r['match'] for r in report['cases'].values())}/{len(files)} cases match exactly "
          f"(ours: OpenCV {cv2.__version__}, torch {torch.__version__}; official run: "
          f"{', '.join(f'{k} {v}' for k, v in report['official'].items()) or 'versions not recorded'})\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["all_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
