"""Run torch work on fewer threads in the calling thread only, leaving every other thread's setting alone.

``torch.set_num_threads`` is process-wide state: besides the caller's OpenMP setting it changes the count that each
thread copies when it first uses torch, so a thread that starts using torch while it is lowered keeps the lower
count for its life (a sampler elsewhere in ComfyUI could then run on one core).  In torch's OpenMP builds a parallel
operator asks the *calling* thread's OpenMP setting how many threads to use, and MKL its thread-local one; setting
those two through the OpenMP runtime and MKL that torch loaded (``omp_set_num_threads`` on the calling thread,
``mkl_set_num_threads_local``) limits this thread alone.  Where torch is not built on OpenMP or its runtime cannot
be found, :func:`limited_threads` leaves torch as it is (correct, possibly slower on a busy machine).
"""
import ctypes
import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries this process has loaded (Linux), else those shipped in torch's folders."""
    try:
        maps = Path("/proc/self/maps").read_text()
        return sorted({line.split(None, 5)[5] for line in maps.splitlines() if len(line.split(None, 5)) == 6})
    except OSError:
        root = Path(torch.__file__).parent
        return [str(path) for folder in (root / "lib", root.parent / "torch.libs") if folder.is_dir()
                for path in folder.iterdir()]


class _Runtime:
    def __init__(self, openmp: ctypes.CDLL, mkl: Optional[ctypes.CDLL]):
        self.get_max_threads = openmp.omp_get_max_threads
        self.set_num_threads = openmp.omp_set_num_threads
        self.set_num_threads.argtypes = [ctypes.c_int]
        self.mkl_local = getattr(mkl, "MKL_Set_Num_Threads_Local", None)  # C call (the lower-case name takes a pointer)
        if self.mkl_local is not None:
            self.mkl_local.argtypes, self.mkl_local.restype = [ctypes.c_int], ctypes.c_int


@functools.cache
def _runtime() -> Optional[_Runtime]:
    """The OpenMP runtime (and MKL, where torch has it) that torch's operators use, or None."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    torch_dir = str(Path(torch.__file__).parent)
    libraries = _loaded_libraries()
    ours = [path for path in libraries if path.startswith((torch_dir, torch_dir + ".libs"))]
    openmp = [path for path in ours + libraries if "omp" in os.path.basename(path).lower()]
    cpu = [path for path in ours if os.path.basename(path).startswith("libtorch_cpu")]
    try:  # loading an already loaded library returns that same library
        return _Runtime(ctypes.CDLL(openmp[0]), ctypes.CDLL(cpu[0]) if cpu else None) if openmp else None
    except (OSError, AttributeError):
        return None


def available() -> bool:
    """Whether :func:`limited_threads` can limit the calling thread here (torch's OpenMP runtime was found)."""
    return _runtime() is not None


@contextmanager
def limited_threads(threads: int):
    """Run the block's torch work in this thread on at most ``threads`` threads (0: as torch is set); every other
    thread, and threads that first use torch meanwhile, keep theirs."""
    runtime = _runtime() if threads > 0 else None
    before = torch.get_num_threads()  # also torch's per-thread setup, which would overwrite ours if it came later
    if runtime is None or threads >= before:
        yield
        return
    runtime.set_num_threads(threads)
    mkl_before = runtime.mkl_local(threads) if runtime.mkl_local is not None else None
    try:
        yield
    finally:
        if mkl_before is not None:
            runtime.mkl_local(mkl_before)
        runtime.set_num_threads(before)
