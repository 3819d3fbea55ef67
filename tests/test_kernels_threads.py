"""kernels.threads.blas_threads_for: small BLAS calls run single-threaded, large ones keep the
library's threads, and the count is restored on leaving the block."""

from __future__ import annotations

import numpy as np

from kernels.threads import BLAS_WORK_PER_THREAD, _blas_controller, blas_threads_for


def _blas_threads() -> list[int]:
    """Thread counts of the BLAS libraries loaded when rsim first limited BLAS (numpy's)."""
    return [lib["num_threads"] for lib in _blas_controller().info()]


def test_small_calls_limit_blas_to_one_thread_and_restore_it():
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS is loaded
    before = _blas_threads()
    assert before
    with blas_threads_for(BLAS_WORK_PER_THREAD - 1):
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before
    with blas_threads_for(BLAS_WORK_PER_THREAD):
        assert _blas_threads() == before
