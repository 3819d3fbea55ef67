"""Timing helpers shared by the benchmark scripts: one best-of-N loop, and one driver re-running a
script in fresh processes per thread setting (BLAS thread counts are fixed when numpy loads)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable


def timed_runs(fn: Callable[[], object], repeats: int,
               warmup: bool = True) -> tuple[float, list[float]]:
    """The best wall time of `repeats` calls of fn and all of them (callers printing a range
    need both). The warm-up call absorbs JIT compilation, page faults, lazy binding and
    onnxruntime's first-run allocations; callers warming up on cheaper input pass warmup=False."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def best_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """The best wall time of `repeats` calls of fn (see timed_runs)."""
    return timed_runs(fn, repeats, warmup)[0]


def run_thread_settings(script: str, one_thread_env: dict[str, str]) -> None:
    """Run `script 1` with one_thread_env added to the environment, then `script 0` with every
    library's default thread pool, each in a fresh process under a `--- label` heading."""
    for label, threads, env in (
        ("one thread each", "1", one_thread_env),
        ("default thread pools", "0", {}),
    ):
        print(f"--- {label}", flush=True)
        subprocess.run([sys.executable, script, threads], env=dict(os.environ, **env), check=True)
