"""The instant drag's warp on the CPU: plan (core.region_warp.bidirectional_warp) plus apply (apply_warp).

    python bench/warp.py                       # 512x512 and 1024x1024, 30 runs each after 3 warm-ups
    python bench/warp.py --threads 1 0         # the plan's torch threads: 1 (the default), 0 (torch's own)
    python bench/warp.py --sizes 768 --runs 50 --out /tmp/warp.json

Each run draws fresh, seeded inputs: a disc of radius side/6 at a random spot, 2 to 4 pairs with handles on it
and random drags up to side/8, a random RGB uint8 picture; only the warp is timed.  Prints a table (median, min,
90th percentile, ms) and writes ``bench/results/<date>-cpu-region-warp.json`` (or ``--out``) with the machine
(platform, cores, torch threads, load average before and after: other work on the machine slows the figures,
above all with more than one torch thread).
The acceptance targets: median <= 50 ms at 512x512 and <= 200 ms at 1024x1024 on a 2-core CPU.
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.region_warp import DEFAULTS, InstantDragSettings, apply_warp, bidirectional_warp  # noqa: E402

TARGET_MS = {512: 50, 1024: 200}


def inputs(side: int, rng: np.random.Generator):
    radius = side / 6
    cx, cy = rng.uniform(radius + 2, side - radius - 2, size=2)
    yy, xx = np.mgrid[:side, :side]
    region = ((xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2).astype(np.uint8)
    ys, xs = np.nonzero(region)
    picks = rng.choice(len(xs), size=int(rng.integers(2, 5)), replace=False)
    handles = np.stack([xs[picks], ys[picks]], axis=1)
    targets = handles + rng.integers(-side // 8, side // 8 + 1, size=handles.shape)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    return region, handles, targets, image


def time_size(side: int, runs: int, warmup: int, seed: int, settings: InstantDragSettings) -> dict:
    rng = np.random.default_rng(seed)
    times = []
    for i in range(warmup + runs):
        region, handles, targets, image = inputs(side, rng)
        start = time.perf_counter()
        plan = bidirectional_warp(region, handles, targets, settings.kernel, settings=settings)
        apply_warp(image, plan)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    ms = np.array(times)
    figures = {"median_ms": round(float(np.median(ms)), 2), "min_ms": round(float(ms.min()), 2),
               "p90_ms": round(float(np.percentile(ms, 90)), 2), "runs": runs, "warmup": warmup}
    if side in TARGET_MS:
        figures["target_ms"] = TARGET_MS[side]
        figures["meets_target"] = figures["median_ms"] <= TARGET_MS[side]
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, nargs="+", default=[DEFAULTS.threads, 0],
                        help="InstantDragSettings.threads values to time (0: torch's own setting)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    results = {}
    labels = {}
    for value in args.threads:
        settings = dataclasses.replace(DEFAULTS, threads=value)
        threads = value or torch.get_num_threads()
        labels[threads] = f"threads_{threads}" + ("_default" if value == DEFAULTS.threads else "") + \
            ("_torch_setting" if value == 0 else "")
        for size in args.sizes:
            results[(threads, size)] = time_size(size, args.runs, args.warmup, args.seed + size, settings)
    load_after = os.getloadavg()
    print(f"{'threads':>7} {'size':>9} {'median ms':>10} {'min ms':>8} {'p90 ms':>8} {'target':>7}")
    for (threads, size), f in results.items():
        target = f"<= {f['target_ms']}" if "target_ms" in f else ""
        print(f"{threads:>7} {size:>4}x{size:<4} {f['median_ms']:10.1f} {f['min_ms']:8.1f} {f['p90_ms']:8.1f} "
              f"{target:>7}")
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python bench/warp.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "torch": torch.__version__, "numpy": np.__version__, "cv2": cv2.__version__,
        "config": {"threads": "InstantDragSettings.threads while planning (0: torch's own setting)",
                   "region": "disc, radius side/6", "pairs": "2-4", "max_drag": "side/8", "kernel": DEFAULTS.kernel,
                   "image": "RGB uint8"},
        "figures": {label: {f"{size}x{size}": f for (t, size), f in results.items() if t == threads}
                    for threads, label in labels.items()},
    }
    out = args.out or ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-cpu-region-warp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
