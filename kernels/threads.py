"""How many threads a Numba parallel region or a BLAS call gets: only as many as its amount of
work pays for.

Waking worker threads costs far more than a small kernel on a busy machine (a sleeping worker
may wait a whole scheduler time slice), so small calls run on the calling thread alone. BLAS
(OpenBLAS) threads are set through threadpoolctl, which changes them at run time.

A caller that runs kernels from several threads of its own (the simulator, a batch per thread)
enters `single_threaded_kernels` once, from its own thread: BLAS (and torch's intra-op pool,
when the torch integer backend has loaded it) then stays on one thread (these settings are
process-wide, so per-call changes from several threads would race) and each of its worker
threads calls `one_kernel_thread` so that Numba parallel regions do not multiply the threads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import ThreadpoolController

WORK_PER_THREAD = 1 << 21  # simple integer operations worth waking one more thread for
BLAS_WORK_PER_THREAD = 1 << 26  # multiply-adds of one BLAS call worth waking one more thread for


@contextmanager
def threads_for(work: int, per_thread: int = WORK_PER_THREAD) -> Iterator[None]:
    """Within the block, parallel kernels use min(available, work // per_thread) threads (>= 1)."""
    available = numba.get_num_threads()
    numba.set_num_threads(max(1, min(available, int(work) // per_thread)))
    try:
        yield
    finally:
        numba.set_num_threads(available)


_pin_lock = threading.RLock()
_pinned = 0  # depth of `single_threaded_kernels` blocks: inside one, BLAS stays on one thread


@contextmanager
def blas_threads_for(macs_per_call: int) -> Iterator[None]:
    """Within the block, BLAS runs single-threaded when each call does fewer multiply-adds than
    `BLAS_WORK_PER_THREAD` (many small GEMMs in a row are slower threaded, by far on a busy
    machine); larger calls keep the library's thread count."""
    if macs_per_call >= BLAS_WORK_PER_THREAD or _pinned:
        yield
        return
    with _blas_controller().limit(limits=1):
        yield


@cache
def _blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries' thread controls (found once: the search scans the process)."""
    return ThreadpoolController().select(user_api="blas")


@contextmanager
def single_threaded_kernels() -> Iterator[None]:
    """Within the block, BLAS runs on one thread and `blas_threads_for` leaves it so, for
    callers that run kernels from several threads of their own. One thread at a time: the
    limit is process-wide and threadpoolctl lets only the thread that set it change it back, so
    a block entered from another thread waits until this one ends (nesting is fine)."""
    global _pinned
    with _pin_lock, _blas_controller().limit(limits=1), _torch_threads(1):
        _pinned += 1
        try:
            yield
        finally:
            _pinned -= 1


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Within the block, torch's intra-op pool has `count` threads, when torch is loaded (the
    integer backend, `kernels.intmm`); otherwise nothing to limit."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_kernel_thread() -> None:
    """Numba parallel regions launched from the calling thread use that thread alone (the
    setting is per thread)."""
    numba.set_num_threads(1)


@njit(cache=True, parallel=True)
def _touch(a):
    for i in prange(a.size):
        a[i] = i


@cache
def kernels_run_concurrently() -> bool:
    """Whether Numba parallel kernels may be launched from several threads at once: the tbb
    and omp threading layers allow it, the workqueue fallback does not."""
    _touch(np.zeros(1))  # a parallel region picks the threading layer
    return numba.threading_layer() != "workqueue"
