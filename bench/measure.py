"""Time and peak memory of one stage, in the process that runs it (peak memory as :mod:`core.memory` counts it:
the allocator's peak on a GPU, the process's peak resident set on the CPU, both since the stage began)."""
import json
import sys
import time

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
