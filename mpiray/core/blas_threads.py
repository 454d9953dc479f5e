"""The loaded BLAS's thread pool follows the task's OMP_NUM_THREADS default.

A worker is forked from the zygote, which may have imported numpy (the driver had): its
OpenBLAS (or MKL) sized its thread pool to every core when it loaded, before any task
said how many CPUs it holds, so setting OMP_NUM_THREADS later changes nothing there.
Every task on a 64-core node would then run 64 BLAS threads. So when executor's
default_omp_threads changes the value, the BLAS libraries this process has loaded are
told too, through their own set-threads call. One numpy imports later reads the
variable itself.
"""

from __future__ import annotations

import ctypes
import os
import sys

# (numpy's wheels bundle scipy-openblas under a prefixed name; system builds do not)
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads", "MKL_Set_Num_Threads")
_LIBRARIES = ("openblas", "libmkl_rt")

SIZING = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")   # (what BLAS reads)

_setters = None   # the set-threads functions found, once numpy is loaded
_size = None      # the threads they were last set to (None: not known)
_LOADED = []      # the libraries looked in


def prepare(size) -> None:
    """(The zygote, after loading numpy with its pool sized `size`: None if the user
    sized it) Finds the setters once, for every worker forked from it."""
    global _setters, _size
    _setters = _find() if "numpy" in sys.modules else None
    _size = size


def _find() -> list:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps
                     if any(name in line.lower() for name in _LIBRARIES)}
    except OSError:
        return []
    found = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        _LOADED.append(lib)   # (kept: a dropped CDLL is a reference cycle, garbage for gc)
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                found.append(fn)
                break
    return found


def set_threads(n: int) -> None:
    """Sizes the loaded BLAS thread pools to n (nothing loaded yet: nothing to do)."""
    global _setters, _size
    if n == _size or any(name in os.environ for name in SIZING[1:]):
        return   # (already so, or the user sized the BLAS itself)
    if _setters is None:
        if "numpy" not in sys.modules:
            return
        _setters = _find()
    for fn in _setters:
        fn(n)
    _size = n
