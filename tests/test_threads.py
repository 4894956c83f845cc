"""fer_demo.threads.intra_op_threads: the calling thread's CPU thread count, and only the caller's."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from fer_demo import threads

needs_openmp = pytest.mark.skipif(not threads.available(), reason="torch runs without an OpenMP runtime here")


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """Tests here set torch's process-wide thread count; later tests get it back as it was."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_rejects_a_count_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        with threads.intra_op_threads(0):
            pass


def test_none_changes_nothing():
    before = threads.current()
    with threads.intra_op_threads(None):
        assert threads.current() == before


@needs_openmp
def test_sets_the_count_inside_and_restores_it_after_an_exception():
    before = threads.current()
    with pytest.raises(RuntimeError):
        with threads.intra_op_threads(1):
            assert threads.current() == 1
            raise RuntimeError("inside")
    assert threads.current() == before


@needs_openmp
def test_other_threads_keep_their_count_while_one_runs_on_one_thread():
    torch.set_num_threads(2)  # this thread and threads started later: 2
    inside, leave = threading.Event(), threading.Event()
    seen: dict[str, int | None] = {}

    def narrow() -> None:
        with threads.intra_op_threads(1):
            seen["inside"] = threads.current()
            inside.set()
            leave.wait(30)
        seen["after"] = threads.current()

    def fresh() -> None:
        torch.zeros(4).sum()  # first torch use in this thread (torch's lazy per-thread set-up)
        seen["fresh"] = threads.current()

    worker = threading.Thread(target=narrow)
    worker.start()
    try:
        assert inside.wait(30)
        late = threading.Thread(target=fresh)
        late.start()
        late.join(30)
        assert threads.current() == 2  # the caller of the narrowing thread is unaffected ...
        assert seen["fresh"] == 2  # ... and so is a thread that starts using torch meanwhile
    finally:
        leave.set()
        worker.join(30)
    assert seen["inside"] == 1 and seen["after"] == 2


@needs_openmp
def test_the_outer_scope_wins_over_the_scopes_inside_it():
    """A session-level setting (the outer scope) is not overridden by a component's own (inner) one."""
    torch.set_num_threads(2)
    assert threads.outer() is None
    with threads.intra_op_threads(2):  # no outer scope: a component's own count applies
        assert threads.current() == 2 and threads.outer() == 2
    with threads.intra_op_threads(1):
        with threads.intra_op_threads(2):
            assert threads.current() == 1
            with threads.intra_op_threads(None):
                assert threads.current() == 1
        assert threads.current() == 1 and threads.outer() == 1  # leaving the inner scope kept it
        with pytest.raises(ValueError, match="at least 1"):
            with threads.intra_op_threads(0):  # an inner count is still checked
                pass
    assert threads.current() == 2 and threads.outer() is None
    with pytest.raises(RuntimeError):
        with threads.intra_op_threads(1):
            raise RuntimeError("inside")
    with threads.intra_op_threads(2):  # an exception left no outer scope behind
        assert threads.current() == 2


@needs_openmp
def test_an_outer_scope_on_one_thread_does_not_reach_another():
    seen: dict[str, int | None] = {}

    def component() -> None:
        with threads.intra_op_threads(2):
            seen["other"] = threads.current()

    with threads.intra_op_threads(1):
        worker = threading.Thread(target=component)
        worker.start()
        worker.join(30)
        assert threads.current() == 1
    assert seen["other"] == 2


def _cpu_ticks() -> dict[str, int]:
    """User-mode CPU ticks of each thread of this process."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            ticks[tid] = int(f.read().rsplit(")", 1)[1].split()[11])
    return ticks


@needs_openmp
@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2, reason="needs Linux, 2 CPUs")
def test_the_work_runs_on_the_calling_thread_alone():
    torch.set_num_threads(2)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(4, 32, 64, 64)
    me = str(threading.get_native_id())

    def work_ticks() -> tuple[int, int]:
        before = _cpu_ticks()
        with torch.no_grad():
            for _ in range(40):
                torch.nn.functional.max_pool2d(conv(x), 2)  # oneDNN, then ATen's own parallel loop
        after = _cpu_ticks()
        mine = after[me] - before.get(me, 0)
        others = sum(after[t] - before.get(t, 0) for t in after if t != me)
        return mine, others

    work_ticks()  # warm-up: the OpenMP pool exists
    mine2, others2 = work_ticks()
    with threads.intra_op_threads(1):
        mine1, others1 = work_ticks()
    assert others2 > 0.3 * mine2  # two threads: the pool thread does a share (the check can fail)
    assert others1 <= 0.1 * mine1  # one thread: no other thread works


@needs_openmp
def test_finds_torchs_openmp_runtime_among_others():
    """scikit-learn ships its own libgomp; setting that one's count would not reach torch."""
    pytest.importorskip("sklearn")
    import ctypes

    import sklearn.cluster  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    ours = threads._libraries()[0]
    others = [p for p in threads._mapped_libraries()
              if p.rsplit("/", 1)[-1].startswith("libgomp") and ctypes.CDLL(p)._handle != ours._handle]
    for path in others:
        lib = ctypes.CDLL(path)
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        assert not threads._drives_torch(lib)
    assert threads._drives_torch(ours)


def test_every_threads_argument_is_checked_the_same_way():
    from fer_demo.detect import FaceDetector
    from fer_demo.live import LiveSession

    assert threads.check_count(None) is None and threads.check_count(2.0) == 2
    with pytest.raises(ValueError, match=r"threads=0 must be at least 1 \(or None: torch's own setting\)"):
        FaceDetector(threads=0)
    with pytest.raises(ValueError, match=r"threads=-1 must be at least 1 \(or None: the predictor's own\)"):
        LiveSession(predictor=None, threads=-1)
