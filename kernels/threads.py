"""How many threads a Numba parallel region gets: only as many as its amount of work pays for.

Waking worker threads costs far more than a small kernel on a busy machine (a sleeping worker
may wait a whole scheduler time slice), so small calls run on the calling thread alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba

WORK_PER_THREAD = 1 << 21  # simple integer operations worth waking one more thread for


@contextmanager
def threads_for(work: int, per_thread: int = WORK_PER_THREAD) -> Iterator[None]:
    """Within the block, parallel kernels use min(available, work // per_thread) threads (>= 1)."""
    available = numba.get_num_threads()
    numba.set_num_threads(max(1, min(available, int(work) // per_thread)))
    try:
        yield
    finally:
        numba.set_num_threads(available)
