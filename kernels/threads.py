"""How many threads a Numba parallel region or a BLAS call gets: only as many as its amount of
work pays for.

Waking worker threads costs far more than a small kernel on a busy machine (a sleeping worker
may wait a whole scheduler time slice), so small calls run on the calling thread alone. BLAS
(OpenBLAS) threads are set through threadpoolctl, which changes them at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numba
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


@contextmanager
def blas_threads_for(macs_per_call: int) -> Iterator[None]:
    """Within the block, BLAS runs single-threaded when each call does fewer multiply-adds than
    `BLAS_WORK_PER_THREAD` (many small GEMMs in a row are slower threaded, by far on a busy
    machine); larger calls keep the library's thread count."""
    if macs_per_call >= BLAS_WORK_PER_THREAD:
        yield
        return
    with _blas_controller().limit(limits=1):
        yield


@cache
def _blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries' thread controls (found once: the search scans the process)."""
    return ThreadpoolController().select(user_api="blas")
