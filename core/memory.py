"""Peak memory since a reset, the way the benchmarks and the DragBench runner count it.

GPU: ``torch.cuda.max_memory_allocated`` (what PyTorch's allocator handed out).  CPU: the process's peak resident
set size; Linux resets that high-water mark through ``/proc/self/clear_refs``, so memory held before the reset (the
model, cached results) counts as it does for a user, and nothing from earlier work does.
"""
from pathlib import Path

import torch


def resident_peak_bytes() -> int:
    """The process's peak resident set size (Linux ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak(device: torch.device) -> None:
    """Start a new peak at the current use (waits for queued GPU work first)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS


def peak_bytes(device: torch.device) -> int:
    """The peak since the last :func:`reset_peak` (waits for queued GPU work first)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return resident_peak_bytes()
