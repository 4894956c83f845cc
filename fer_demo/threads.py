"""How many CPU threads one block of torch work uses, set for the calling thread only.

``torch.set_num_threads`` is no tool for one call in a server: it sets the calling thread's OpenMP
thread count *and* a process-wide value that every thread touching torch for the first time takes
as its own, so switching it around a call races with the server's other request threads.
``intra_op_threads(n)`` sets only the calling thread's counts and restores them on the way out:

- OpenMP's ``omp_set_num_threads`` (ATen's parallel loops and oneDNN both ask the calling thread's
  ``omp_get_max_threads``; by the OpenMP specification the count set outside a parallel region belongs
  to the calling thread's data environment, so other threads keep theirs);
- MKL's ``mkl_set_num_threads_local`` (C symbol ``MKL_Set_Num_Threads_Local``; MKL's BLAS, which
  fp32 matrix products call), thread-local by MKL's definition.

The OpenMP runtime is the one torch answers to (a process may hold several: scikit-learn brings its
own ``libgomp``). Where none is found (torch without OpenMP, not Linux) the block runs with torch's
threads unchanged; ``available()`` says which.

Scopes nest, and the outermost one on a thread wins: inside ``intra_op_threads(n)`` a nested
``intra_op_threads(m)`` leaves the count at ``n`` (and ``intra_op_threads(None)`` never changes it). The
outer scope is the caller's setting for the whole block; the inner ones are components' own defaults.
So ``LiveSession(threads=1)`` runs a frame's detection, classification and CAM on one thread even
where the detector's and ``FastNet``'s own ``threads`` (``limits.ANALYSIS_THREADS``) say 2; outside a
session those components use their own setting. Threads are independent: an outer scope on one thread
does not reach scopes entered on another.

Why: two OpenMP threads per step are faster on a quiet 2-core machine, but when the cores are shared
(a browser on the same machine, a second request, other work) they wait on each other and one thread
is many times faster (``limits.ANALYSIS_THREADS``, ``limits.LIVE_THREADS``; numbers in docs/speed.md).
The live stream runs its frames on one thread this way, without touching the photo requests served
meanwhile on other threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading
from collections.abc import Iterator

_OPENMP_NAMES = ("libgomp", "libiomp5", "libomp")
# Per thread: ``count``, the count of the outermost ``intra_op_threads`` scope it is in (None: none).
_scope = threading.local()


def _mapped_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process, in load order, each once."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            fields = [line.split(None, 5) for line in f]
    except OSError:
        return []
    return list(dict.fromkeys(parts[5].strip() for parts in fields if len(parts) == 6 and ".so" in parts[5]))


def _drives_torch(openmp: ctypes.CDLL) -> bool:
    """True when ``openmp`` is the OpenMP runtime torch's parallel loops use (other packages, e.g.
    scikit-learn, may load their own copy): in a throw-away thread (so no other thread's count
    changes), set its count to one more than torch's and ask torch."""
    import torch

    answer: list[bool] = []

    def probe() -> None:
        n = torch.get_num_threads()  # also torch's lazy set-up of this thread's count
        openmp.omp_set_num_threads(n + 1)
        answer.append(torch.get_num_threads() == n + 1)

    thread = threading.Thread(target=probe, name="fer-demo-openmp-probe", daemon=True)
    thread.start()
    thread.join()
    return bool(answer and answer[0])


@functools.lru_cache(maxsize=None)
def _libraries() -> tuple[ctypes.CDLL | None, ctypes.CDLL | None]:
    """(the OpenMP runtime torch uses, the library exporting MKL's C ``MKL_Set_Num_Threads_Local``),
    each None when absent (the lower-case ``mkl_set_num_threads_local`` is the Fortran entry: a
    pointer). Both are found among the libraries already mapped into this process, so the handles are
    the loaded instances, never a second copy; an OpenMP runtime counts only if torch answers to it."""
    import torch  # noqa: F401  (loads the libraries looked for)

    if not sys.platform.startswith("linux"):
        return None, None
    openmp = mkl = None
    for path in _mapped_libraries():
        name = path.rsplit("/", 1)[-1]
        try:
            if openmp is None and name.startswith(_OPENMP_NAMES):
                lib = ctypes.CDLL(path)
                if hasattr(lib, "omp_set_num_threads") and hasattr(lib, "omp_get_max_threads"):
                    lib.omp_get_max_threads.restype = ctypes.c_int
                    lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                    if _drives_torch(lib):
                        openmp = lib
            elif mkl is None and name.startswith(("libtorch_cpu", "libmkl")):
                lib = ctypes.CDLL(path)
                if hasattr(lib, "MKL_Set_Num_Threads_Local"):
                    lib.MKL_Set_Num_Threads_Local.restype = ctypes.c_int
                    lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
                    mkl = lib
        except OSError:
            continue
    return openmp, mkl


def available() -> bool:
    """True when ``intra_op_threads`` can set the calling thread's OpenMP thread count here."""
    return _libraries()[0] is not None


def current() -> int | None:
    """The calling thread's OpenMP thread count (``omp_get_max_threads``), None where unavailable."""
    openmp = _libraries()[0]
    return None if openmp is None else int(openmp.omp_get_max_threads())


def outer() -> int | None:
    """The count of the ``intra_op_threads`` scope the calling thread is in (the outermost, which
    wins), or None outside any (or where ``available()`` is False)."""
    return getattr(_scope, "count", None)


def check_count(n: int | None, none_means: str = "torch's own setting") -> int | None:
    """``n`` as an int, or None; the one check every ``threads=`` argument goes through.

    Raises:
        ValueError: ``n`` below 1.
    """
    if n is None:
        return None
    if int(n) < 1:
        raise ValueError(f"threads={n} must be at least 1 (or None: {none_means})")
    return int(n)


@contextlib.contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` OpenMP (and MKL) threads in the calling thread; None: unchanged.

    Only the calling thread's counts change, and they are restored on exit (also on an exception), so
    concurrent callers with other counts, and threads that start using torch meanwhile, are unaffected.
    Inside another ``intra_op_threads`` scope of the same thread (``outer()`` is not None) it changes
    nothing: the outer scope's count wins (module docstring). A no-op where ``available()`` is False.

    Raises:
        ValueError: ``n`` below 1.
    """
    n = check_count(n)
    if n is None or outer() is not None:
        yield
        return
    openmp, mkl = _libraries()
    if openmp is None:
        yield
        return
    before = int(openmp.omp_get_max_threads())
    openmp.omp_set_num_threads(int(n))
    mkl_before = None if mkl is None else int(mkl.MKL_Set_Num_Threads_Local(int(n)))
    _scope.count = int(n)
    try:
        yield
    finally:
        _scope.count = None
        openmp.omp_set_num_threads(before)
        if mkl is not None:
            # 0 restores "follow MKL's global setting", which is what a thread had before any local one.
            mkl.MKL_Set_Num_Threads_Local(mkl_before)
