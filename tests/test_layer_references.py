"""Single layers of the bit-accurate path recomputed independently from their quantized inputs
(Python ints and Fractions), and float-path layers against ml_dtypes: each case pins a result that
was once wrong."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_simulate import int_config

import hwconfigs
import rsim
from rsim.datasets import open_dataset
from rsim.quant.qspec import QSpec
from rsim.simulation import prepare


def _model(path, nodes, inputs, output, out_shape, inits=(), out_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, out_type, out_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return rsim.load(path)


def _nearest_even(q: Fraction) -> int:
    floor = q.numerator // q.denominator
    rest = q - floor
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


def _layer_runs(network, hw, x, qspec=None):
    """(layer name -> (simulated inputs, outcome)) of one propagated run."""
    run = prepare(network, hw, QSpec.model_validate(qspec or {}), open_dataset(x))
    return {q.layer.name: (inputs, outcome)
            for q, inputs, outcome in run.propagate(x, np.random.default_rng(0))}


@pytest.fixture(scope="module")
def attention(tmp_path_factory):
    """Single-head attention scores and output: S = (X Wq)(X Wk)^T, O = S (X Wv)."""
    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.normal(0, 0.4, (16, 16)).astype(np.float32), n)
               for n in ("wq", "wk", "wv")]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
             helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
             helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
             helper.make_node("MatMul", ["s", "v"], ["o"], name="out")]
    path = tmp_path_factory.mktemp("attention") / "attention.onnx"
    network = _model(path, nodes, [("x", ["N", 6, 16])], "o", ["N", 6, 16], weights)
    return network, rng.normal(size=(8, 6, 16)).astype(np.float32)


@pytest.mark.parametrize("layer", ["scores", "out"])
def test_a_product_of_two_activations_requantizes_from_both_operands_scales(attention, layer):
    """The accumulator of A·B holds Σ a·b at fl_a + fl_b fractional bits; its output codes are
    that exact sum rounded once (nearest even) to the output grid and saturated."""
    network, x = attention
    (a, b), outcome = _layer_runs(network, int_config(), x)[layer]
    out = outcome.out
    shift = a.fmt.fl + b.fmt.fl - out.fmt.fl
    ca, cb = a.data.astype(object), b.data.astype(object)
    for index in np.ndindex(out.data.shape):
        n, i, j = index
        exact = sum(ca[n, i, k] * cb[n, k, j] for k in range(ca.shape[2]))
        code = _nearest_even(Fraction(exact, 2**shift) if shift >= 0 else Fraction(exact * 2**-shift))
        assert out.data[index] == max(min(code, out.fmt.max_code), out.fmt.min_code), index


def test_attention_products_keep_their_accuracy(attention):
    network, x = attention
    result = rsim.simulate(network, hw=int_config(), inputs=x)
    for name in ("scores", "out"):
        assert result.layers[name].isolated.sqnr_db > 25, name
        assert result.layers[name].isolated.clipped_share == 0, name


@pytest.fixture(scope="module")
def pooling(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pooling")
    nodes = [helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 2], strides=[2, 1],
                              pads=[1, 0, 1, 1], name="avg"),
             helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap")]
    return _model(folder / "pool.onnx", nodes, [("x", ["N", 2, 5, 4])], "g", ["N", 2, 1, 1])


def test_global_average_pool_into_a_coarser_format_rounds_once(tmp_path):
    """[100, 0, 0] / 3 written at fl = -1 (step 2): one rounding of 100/6 = 16.67 gives code 17
    (value 34); rounding the mean to the input grid first (33) and then again gave 16."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap")]
    network = _model(tmp_path / "gap.onnx", nodes, [("x", ["N", 1, 1, 3])], "g", ["N", 1, 1, 1])
    data = int_config().model_dump(mode="json")
    data["datapath"]["activations"] = "fixed<8,0>"
    hw = hwconfigs.from_dict(data)
    x = np.array([[[[100.0, 0.0, 0.0]]]], np.float32)
    (_, outcome), = _layer_runs(network, hw, x, {"layers": [
        {"match": "gap", "activations": "fixed<8,-1>"}]}).values()
    assert outcome.out.data.item() == 17 and outcome.out.values().item() == 34.0


@pytest.mark.parametrize("out_fl", [-3, -1, 0, 2, 5])
def test_average_pools_are_exact_window_means_rounded_once(pooling, out_fl):
    hw = int_config()
    x = np.random.default_rng(4).normal(0, 3, (3, 2, 5, 4)).astype(np.float32)
    runs = _layer_runs(pooling, hw, x, {"layers": [
        {"match": "*", "activations": f"fixed<8,{out_fl}>"}]})
    for name, count_window in (("avg", _avg_windows), ("gap", _global_windows)):
        (inp,), outcome = runs[name]
        out = outcome.out
        assert out.fmt.fl == out_fl
        for index, taps, count in count_window(inp.data):
            mean = Fraction(sum(int(t) for t in taps), count) * Fraction(2) ** (out_fl - inp.fmt.fl)
            code = max(min(_nearest_even(mean), out.fmt.max_code), out.fmt.min_code)
            assert out.data[index] == code, (name, index)


def _avg_windows(codes):
    """AveragePool k=(3,2), stride (2,1), pads (1,0,1,1), count_include_pad=0."""
    n, c, h, w = codes.shape
    for b, ch, y, xo in np.ndindex(n, c, (h + 2 - 3) // 2 + 1, (w + 1 - 2) + 1):
        taps = [codes[b, ch, i, j] for i in range(2 * y - 1, 2 * y + 2)
                for j in range(xo, xo + 2) if 0 <= i < h and 0 <= j < w]
        yield (b, ch, y, xo), taps, len(taps)


def _global_windows(codes):
    n, c, h, w = codes.shape
    for b, ch in np.ndindex(n, c):
        yield (b, ch, 0, 0), list(codes[b, ch].ravel()), h * w


@pytest.mark.parametrize("to, dtype", [(TensorProto.FLOAT16, np.float16),
                                       (TensorProto.BFLOAT16, ml_dtypes.bfloat16)])
def test_a_cast_to_a_narrower_float_rounds_the_values(tmp_path, to, dtype):
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=to, name="narrow"),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT, name="wide")]
    network = _model(tmp_path / "cast.onnx", nodes, [("x", ["N", 64])], "y", ["N", 64])
    x = np.random.default_rng(5).normal(0, 1e3, (4, 64)).astype(np.float32)
    x[0, :4] = [70000.0, -1e6, 1.0 + 2.0**-11, 3.0e-8]  # overflow to inf in fp16, a tie, a subnormal
    expected = x.astype(dtype).astype(np.float32)
    np.testing.assert_array_equal(network.run_float(x)["y"], expected)
    np.testing.assert_array_equal(network.run_float(x.astype(np.float64), dtype=np.float64)["y"],
                                  x.astype(np.float64).astype(dtype).astype(np.float64))


def test_a_cast_to_a_wider_float_changes_nothing(tmp_path):
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE, name="wide")]
    network = _model(tmp_path / "cast.onnx", nodes, [("x", ["N", 8])], "y", ["N", 8],
                     out_type=TensorProto.DOUBLE)
    x = np.random.default_rng(6).normal(size=(2, 8)).astype(np.float32)
    assert network.layers == []
    np.testing.assert_array_equal(network.run_float(x)["y"], x)
