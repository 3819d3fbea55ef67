"""kernels.threads: small BLAS calls run single-threaded, large ones keep the library's threads,
the count is restored on leaving the block, and callers running kernels in threads of their own
pin BLAS to one thread until the last of them is done."""

from __future__ import annotations

import threading

import numpy as np
import pytest

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


def test_single_threaded_blocks_from_two_threads_take_turns_and_restore_blas():
    """Two threads enter at once: their blocks run one after the other (each pins and restores
    BLAS itself, as threadpoolctl requires), per-call limits inside leave BLAS on one thread,
    and the thread count comes back at the end."""
    np.ones((2, 2)) @ np.ones((2, 2))
    before = _blas_threads()
    start = threading.Barrier(2)
    events, seen = [], []

    def simulation(name):
        start.wait()
        with single_threaded_kernels():
            events.append(("in", name))
            with blas_threads_for(BLAS_WORK_PER_THREAD - 1):
                seen.append(_blas_threads())
            seen.append(_blas_threads())
            events.append(("out", name))

    threads = [threading.Thread(target=simulation, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [[1] * len(before)] * 4
    assert [kind for kind, _ in events] == ["in", "out", "in", "out"]
    assert events[0][1] == events[1][1]
    assert _blas_threads() == before


def test_single_threaded_kernels_pin_torch_when_the_integer_backend_loaded_it():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with single_threaded_kernels():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
