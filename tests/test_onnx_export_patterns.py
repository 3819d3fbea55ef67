"""Graph patterns PyTorch's exporters emit that rsim once refused, on hand-built ONNX graphs
checked against onnxruntime: a fixed-batch Reshape under allowzero, integer token ids feeding an
embedding, a class token concatenated to activations, computed Gemm C and Clip bounds, Einsum
products, and the refusals that remain (integer ids into arithmetic, value-shaped outputs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rsim
from formats.errors import RsimError

OPSET = 18


def _save(path, nodes, inputs, outputs, initializers=(), opset=OPSET):
    tensors = [numpy_helper.from_array(v, k) for k, v in dict(initializers).items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(model, path)
    return path


def _value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _onnxruntime(path, feeds):
    session = ort.InferenceSession(str(path))
    return session.run(None, feeds)[0]


def test_a_fixed_batch_reshape_under_allowzero_runs_any_batch(tmp_path):
    """dynamo writes the literal batch with allowzero=1: (2, 4, 1, 1) -> (2, 4)."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1, name="view")]
    path = _save(tmp_path / "view.onnx", nodes, [_value("x", TensorProto.FLOAT, [2, 4, 1, 1])],
                 [_value("y", TensorProto.FLOAT, [2, 4])],
                 {"shape": np.array([2, 4], np.int64)})
    network = rsim.load(path)
    assert network.layers[0].attrs["copy_leading"] == 1
    x = np.random.default_rng(0).normal(size=(5, 4, 1, 1)).astype(np.float32)
    for batch in (2, 5, 1):
        np.testing.assert_array_equal(network.run_float(x[:batch])["y"], x[:batch].reshape(-1, 4))


def test_a_zero_in_an_allowzero_target_stays_a_real_zero(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1, name="view")]
    path = _save(tmp_path / "zero.onnx", nodes, [_value("x", TensorProto.FLOAT, [1, 4])],
                 [_value("y", TensorProto.FLOAT, [1, 0, 4])],
                 {"shape": np.array([1, 0, 4], np.int64)})
    with pytest.raises(RsimError, match="cannot reshape"):
        rsim.load(path)


def _embedding_model(path, extra_nodes=(), output="y", out_shape=("N", 5, 3)):
    table = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="embedding"),
             helper.make_node("Relu", ["e"], ["y"], name="relu"), *extra_nodes]
    return _save(path, nodes, [_value("ids", TensorProto.INT64, ["N", 5])],
                 [_value(output, TensorProto.FLOAT, list(out_shape))], {"table": table})


def test_integer_token_ids_feed_an_embedding_and_stay_integer(tmp_path):
    path = _embedding_model(tmp_path / "embedding.onnx")
    network = rsim.load(path)
    assert network.index_inputs == {"ids"}
    ids = np.random.default_rng(2).integers(0, 7, (4, 5))
    expected = _onnxruntime(path, {"ids": ids})
    np.testing.assert_array_equal(network.run_float({"ids": ids})["y"], expected)
    # data files load as float32: whole numbers are taken as the ids
    np.testing.assert_array_equal(network.run_float(ids.astype(np.float32))["y"], expected)
    with pytest.raises(RsimError, match="'ids' takes integers.*fractions"):
        network.run_float(ids + 0.5)
    result = rsim.simulate(network, hw="mid-ws-int8", inputs=ids.astype(np.float32))
    assert result.layers["embedding"].formats["input"] == "int32"  # fixed<32,0>
    assert not result.layers["embedding"].float_emulated


def test_integer_ids_into_arithmetic_are_refused_with_the_way_out(tmp_path):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="embedding"),
             helper.make_node("Mul", ["ids", "ids"], ["y"], name="square")]
    path = _save(tmp_path / "square.onnx", nodes, [_value("ids", TensorProto.INT64, ["N", 5])],
                 [_value("y", TensorProto.INT64, ["N", 5])],
                 {"table": np.ones((7, 3), np.float32)})
    with pytest.raises(RsimError, match="'square'.*'ids' holds integers.*Cast it to a float"):
        rsim.load(path).run_float(np.zeros((1, 5), np.int64))


def test_a_class_token_concatenated_to_activations_follows_the_batch(tmp_path):
    """cat([cls.expand(batch, -1, -1), x], 1) exported at batch 2: the expanded constant is
    materialised at the run's batch."""
    cls = np.random.default_rng(3).normal(size=(1, 1, 4)).astype(np.float32)
    nodes = [helper.make_node("Expand", ["cls", "shape"], ["tokens"], name="expand"),
             helper.make_node("Concat", ["tokens", "x"], ["y"], axis=1, name="cat")]
    path = _save(tmp_path / "cls.onnx", nodes, [_value("x", TensorProto.FLOAT, [2, 3, 4])],
                 [_value("y", TensorProto.FLOAT, [2, 4, 4])],
                 {"cls": cls, "shape": np.array([2, 1, 4], np.int64)})
    network = rsim.load(path)
    assert [layer.op for layer in network.layers] == ["batch_constant", "concat"]
    x = np.random.default_rng(4).normal(size=(5, 3, 4)).astype(np.float32)
    for batch in (2, 5, 1):
        got = network.run_float(x[:batch])["y"]
        np.testing.assert_array_equal(got[:, 1:], x[:batch])
        np.testing.assert_array_equal(got[:, :1], np.broadcast_to(cls, (batch, 1, 4)))
    np.testing.assert_array_equal(network.run_float(x[:2])["y"], _onnxruntime(path, {"x": x[:2]}))


def test_computed_gemm_c_and_clip_bounds_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], alpha=0.5, beta=2.0, name="gemm"),
             helper.make_node("Clip", ["g", "low", "high"], ["y"], name="clip")]
    inputs = [_value(n, TensorProto.FLOAT, s) for n, s in
              [("a", ["N", 4]), ("c", ["N", 3]), ("low", []), ("high", [])]]
    path = _save(tmp_path / "gemm.onnx", nodes, inputs, [_value("y", TensorProto.FLOAT, ["N", 3])],
                 {"w": rng.normal(size=(4, 3)).astype(np.float32)})
    feeds = {"a": rng.normal(size=(6, 4)), "c": rng.normal(size=(6, 3)),
             "low": np.array(-0.4), "high": np.array(0.3)}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    network = rsim.load(path, input_shapes={n: v.shape for n, v in feeds.items()})
    np.testing.assert_allclose(network.run_float(feeds)["y"], _onnxruntime(path, feeds),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("equation, shapes", [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("bsd,df->bsf", [(2, 4, 5), (5, 3)]),
    ("bij,bjk->bik", [(2, 4, 5), (2, 5, 3)]),
])
def test_two_operand_einsums_become_matmuls(tmp_path, equation, shapes):
    rng = np.random.default_rng(6)
    arrays = [rng.normal(size=s).astype(np.float32) for s in shapes]
    constant = len(shapes[1]) == 2
    names = ["a", "b"]
    inputs = [_value("a", TensorProto.FLOAT, list(shapes[0]))]
    if not constant:
        inputs.append(_value("b", TensorProto.FLOAT, list(shapes[1])))
    expected = np.einsum(equation, *arrays)
    path = _save(tmp_path / "einsum.onnx",
                 [helper.make_node("Einsum", names, ["y"], equation=equation, name="einsum")],
                 inputs, [_value("y", TensorProto.FLOAT, list(expected.shape))],
                 {"b": arrays[1]} if constant else {})
    network = rsim.load(path)
    ops = {layer.op for layer in network.layers}
    assert "einsum" not in ops and ops & {"matmul", "gemm"}
    feeds = {"a": arrays[0]} if constant else {"a": arrays[0], "b": arrays[1]}
    np.testing.assert_allclose(network.run_float(feeds)["y"], expected, rtol=1e-5, atol=1e-5)


def test_a_shape_the_graph_returns_is_a_layer_and_follows_the_batch(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["y"], name="shape")]
    path = _save(tmp_path / "shape.onnx", nodes, [_value("x", TensorProto.FLOAT, ["N", 3])],
                 [_value("y", TensorProto.INT64, [2])])
    network = rsim.load(path)
    np.testing.assert_array_equal(network.run_float(np.zeros((4, 3), np.float32))["y"], [4, 3])


def test_a_shape_made_from_computed_values_is_refused(tmp_path):
    nodes = [helper.make_node("ArgMax", ["x"], ["k"], axis=1, keepdims=0, name="argmax"),
             helper.make_node("ConstantOfShape", ["k"], ["y"], name="fill")]
    path = _save(tmp_path / "fill.onnx", nodes, [_value("x", TensorProto.FLOAT, [1, 3])],
                 [_value("y", TensorProto.FLOAT, ["M"])])
    with pytest.raises(RsimError, match="'fill'.*shape follows the values.*static shapes"):
        rsim.load(path)
