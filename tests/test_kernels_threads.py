"""kernels.threads: small BLAS calls run single-threaded, large ones keep the library's threads,
the count is restored on leaving the block, and callers running kernels in threads of their own
pin BLAS to one thread until the last of them is done."""

from __future__ import annotations

import threading

import numpy as np

from kernels.threads import (
    BLAS_WORK_PER_THREAD,
    _blas_controller,
    blas_threads_for,
    single_threaded_kernels,
)


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


def test_overlapping_single_threaded_blocks_pin_blas_until_the_last_one_leaves():
    """Two threads enter and leave in crossed order: BLAS stays on one thread (and per-call
    limits leave it there) until the last block ends, then gets its thread count back."""
    np.ones((2, 2)) @ np.ones((2, 2))
    before = _blas_threads()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with single_threaded_kernels():
            first_in.set()
            second_in.wait()
        first_out.set()

    def second():
        first_in.wait()
        with single_threaded_kernels():
            second_in.set()
            first_out.wait()
            with blas_threads_for(BLAS_WORK_PER_THREAD - 1):
                seen.append(_blas_threads())
            seen.append(_blas_threads())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [[1] * len(before)] * 2
    assert _blas_threads() == before
