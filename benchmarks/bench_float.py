"""rsim's float reference path against onnxruntime, same machine, same run, same batch.

Cases: mnist-8 (../shared/real/onnx-mnist8, batch 256) and the ResNet-style test graph
(tests/onnx_graphs.py, widths 64/128/256, 224x224, batch 8). Prints the best of a few runs for
each and the ratio rsim / onnxruntime (target: within 3x).

Runs twice, each in a fresh process: with one thread for both (OPENBLAS_NUM_THREADS=1 and
onnxruntime intra_op_num_threads=1, the fair comparison on a shared machine), and with both
libraries' default thread pools. BLAS thread counts are fixed when numpy loads, hence the
subprocesses.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import best_time, run_thread_settings  # noqa: E402

import rsim  # noqa: E402
from tests.onnx_graphs import resnet_style  # noqa: E402

MNIST8 = ROOT.parent / "shared" / "real" / "onnx-mnist8" / "model.onnx"


def batch_free(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a batch-1 model that onnxruntime runs at any batch: symbolic leading input and
    output dims, and Reshape targets starting with a literal 1 start with -1 instead (rsim does
    this rewrite itself at import)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    weights = {t.name for t in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name not in weights:
            value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    targets = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for init in model.graph.initializer:
        value = onnx.numpy_helper.to_array(init)
        if init.name in targets and value.size and value.reshape(-1)[0] == 1:
            value = value.copy()
            value.reshape(-1)[0] = -1
            init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
    return model


def ort_session(path_or_model: Path | onnx.ModelProto, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session on the batch-free copy of a model (see batch_free) with
    `threads` intra-op threads (0: onnxruntime's default pool)."""
    model = path_or_model
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        batch_free(model).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def compare(label: str, path: Path, x: np.ndarray, repeats: int, threads: int) -> None:
    net = rsim.load(path)
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    t_rsim = best_time(lambda: net.run_float(x), repeats)
    t_ort = best_time(lambda: session.run(None, {name: x}), repeats)
    got = net.run_float(x)[net.outputs[0]]
    want = session.run(None, {name: x})[0]
    err = np.abs(got - want).max() / np.abs(want).max()
    print(
        f"{label:<34} rsim {t_rsim * 1e3:8.1f} ms   onnxruntime {t_ort * 1e3:8.1f} ms   "
        f"ratio {t_rsim / t_ort:5.2f}x   max rel err {err:.1e}"
    )


def run_cases(threads: int) -> None:
    rng = np.random.default_rng(0)
    if MNIST8.exists():
        compare(
            "mnist-8, batch 256",
            MNIST8,
            rng.uniform(0, 255, (256, 1, 28, 28)).astype(np.float32),
            repeats=10,
            threads=threads,
        )
    else:
        print(f"skipping mnist-8: {MNIST8} not found")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet.onnx"
        onnx.save(resnet_style(17, size=224, widths=(64, 128, 256)), path)
        compare(
            "ResNet-style 224x224, batch 8",
            path,
            rng.normal(size=(8, 3, 224, 224)).astype(np.float32),
            repeats=3,
            threads=threads,
        )


def main() -> None:
    if len(sys.argv) > 1:
        run_cases(int(sys.argv[1]))
        return
    run_thread_settings(__file__, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})


if __name__ == "__main__":
    main()
