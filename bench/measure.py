"""Time and peak memory of one stage, in the process that runs it (peak memory as :mod:`core.memory` counts it:
the allocator's peak on a GPU, the process's peak resident set on the CPU, both since the stage began)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from core.memory import peak_bytes, reset_peak

GIB = 2 ** 30


class Meter:
    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        reset_peak(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.peak_gib = peak_bytes(self.device) / GIB  # waits for the GPU, so the time below is complete
        self.seconds = time.perf_counter() - self.start

    def figures(self, **extra) -> dict:
        return {"seconds": round(self.seconds, 3), "peak_gib": round(self.peak_gib, 3), **extra}


def emit(result: dict) -> None:
    """The stage's result as the last stdout line, for the parent process."""
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


def parse(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if not lines:
        raise RuntimeError("the stage printed no result")
    return json.loads(lines[-1][len("BENCH_RESULT "):])


def run_fresh(script: Path, label: str, arguments: list) -> dict:
    """Run ``script`` with ``arguments`` in a fresh Python process (so each stage's peak memory is its own) and
    return what it emitted; stops the bench with the stage's output when it fails."""
    print(f"  {label} ...", end="", flush=True)
    done = subprocess.run([sys.executable, str(script), *arguments], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(" FAILED")
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"stage {label} failed (exit {done.returncode})")
    result = parse(done.stdout)
    print(" " + ", ".join(f"{k} {v.get('seconds', v.get('median_ms'))}" for k, v in result.items()), flush=True)
    return result
