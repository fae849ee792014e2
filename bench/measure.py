"""Time and peak memory of one stage, in the process that runs it.

GPU: ``torch.cuda.max_memory_allocated`` since the stage began.  CPU: the peak resident set size of the process
since the stage began (Linux resets the high-water mark through ``/proc/self/clear_refs``), so memory held before
the stage (the model, earlier cached results) counts as it does for a user, and nothing from set-up work does.
"""
import json
import sys
import time
from pathlib import Path

import torch

GIB = 2 ** 30


def _resident_peak_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Meter:
    def __init__(self, device: torch.device):
        self.device = device

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self):
        self._sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self.start
        if self.device.type == "cuda":
            self.peak_gib = torch.cuda.max_memory_allocated(self.device) / GIB
        else:
            self.peak_gib = _resident_peak_bytes() / GIB

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
