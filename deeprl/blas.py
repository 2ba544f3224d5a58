"""NumPy's BLAS thread count, set at run time (what ``threadpoolctl`` does, for OpenBLAS only).

NumPy's wheels bundle OpenBLAS, which runs a thread per core and lets idle threads spin.  deeprl's
NumPy paths (``numpy_ac.py``, ``nets.NumpyQ``) multiply small matrices; with two training
processes on a 2-core machine the spinning threads made each run ten times slower (100k A2C
steps on CartPole: 3.8 s alone, 39 s beside a second run; 3.8 s beside it on one BLAS thread).
``OPENBLAS_NUM_THREADS`` only works before NumPy is imported, so the library's own setter is
called instead.  Found through ``/proc/self/maps``, so Linux only; elsewhere this does nothing
(macOS wheels use Accelerate).
"""

from __future__ import annotations

import ctypes

import numpy  # noqa: F401  (loads the BLAS library this module looks for)

_PREFIXES = ("scipy_openblas_", "openblas_")  # NumPy >= 2 wheels use the first
_SUFFIXES = ("64_", "")                        # 64-bit-integer builds append 64_


def _openblas_libraries() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:
        return []
    libs = []
    for path in paths:
        if path.startswith("/"):
            try:
                libs.append(ctypes.CDLL(path))  # already loaded: the same handle, nothing new
            except OSError:
                pass
    return libs


def _function(lib: ctypes.CDLL, verb: str):
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            fn = getattr(lib, f"{prefix}{verb}_num_threads{suffix}", None)
            if fn is not None:
                return fn
    return None


def set_blas_threads(n: int) -> bool:
    """Use ``n`` threads in every loaded OpenBLAS; returns whether one was found."""
    found = False
    for lib in _openblas_libraries():
        fn = _function(lib, "set")
        if fn is not None:
            fn(ctypes.c_int(int(n)))
            found = True
    return found


def blas_threads() -> int | None:
    """The first loaded OpenBLAS's thread count, or ``None`` where none is found."""
    for lib in _openblas_libraries():
        fn = _function(lib, "get")
        if fn is not None:
            fn.restype = ctypes.c_int
            return int(fn())
    return None
