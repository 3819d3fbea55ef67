"""The Network IR as the simulator sees it: layers in topological order with canonical op names,
normalised attributes and params, per-layer evaluation that reproduces the whole run, shapes and
MACs at any batch, folding reported through aliases, and dynamic dimensions bound on demand."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rsim
from rsim import RsimError
from rsim.ops import OP_NAMES
from tests.onnx_graphs import IR_VERSION, mobilenet_style, resnet_style

MNIST8 = Path(__file__).resolve().parents[2] / "shared" / "real" / "onnx-mnist8" / "model.onnx"
needs_mnist8 = pytest.mark.skipif(
    not MNIST8.exists(), reason="../shared/real/onnx-mnist8 is not present"
)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> rsim.Network:
    path = tmp_path_factory.mktemp("resnet") / "resnet.onnx"
    onnx.save(resnet_style(13), path)
    return rsim.load(path)


@pytest.fixture(scope="module")
def mobilenet_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenet.onnx"
    onnx.save(mobilenet_style(18), path)
    return path


def _save(tmp_path: Path, nodes, x_dims, consts=(), y_dims=None, opset=13) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        initializer=[numpy_helper.from_array(v, k) for k, v in dict(consts).items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def test_layers_are_topological_with_canonical_ops_and_float32_params(resnet):
    produced = set(resnet.inputs)
    for layer in resnet.layers:
        assert layer.op in OP_NAMES
        assert all(t in produced for t in layer.inputs)
        assert len(layer.outputs) == 1
        produced.add(layer.outputs[0])
        assert all(v.dtype == np.float32 for v in layer.params.values())
    assert all(resnet.resolve(o) in produced for o in resnet.outputs)


def test_conv_attrs_are_normalised_tuples_and_weights_oihw(resnet):
    stem = resnet.layers[0]
    assert stem.op == "conv"
    assert stem.attrs == {
        "kernel": (7, 7),
        "strides": (2, 2),
        "dilations": (1, 1),
        "pads": (3, 3, 3, 3),
        "groups": 1,
    }
    assert stem.params["weight"].shape == (8, 3, 7, 7) and stem.params["bias"].shape == (8,)


def test_every_collected_tensor_equals_onnxruntimes_tensor_of_that_name(tmp_path):
    """The float path layer by layer: each tensor run_float keeps (under the model's own names,
    folded ones under the name that replaced them) against onnxruntime exposing the same
    tensor as a graph output."""
    model = resnet_style(13)
    network = rsim.load(_saved(model, tmp_path / "resnet.onnx"))
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    tensors = network.run_float(x, collect=True)
    assert set(tensors) == set(network.inputs) | {layer.outputs[0] for layer in network.layers} | set(
        network.outputs
    )
    produced = {o for node in model.graph.node for o in node.output}
    names = sorted(set(tensors) & produced)
    assert len(names) >= len(network.layers) - 2
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names
                                if n not in network.outputs)
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = [o.name for o in exposed.graph.output]
    for name, value in zip(wanted, session.run(wanted, {network.inputs[0]: x}), strict=True):
        scale = max(float(np.abs(value).max()), 1e-6)
        assert np.abs(tensors[name] - value).max() <= 1e-5 * scale, name
        assert tensors[name].shape == network.shape(name, batch=2)


def _saved(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def test_folded_batchnorm_output_is_reported_under_the_batchnorm_tensor(tmp_path):
    rng = np.random.default_rng(1)
    consts = {
        "w": rng.normal(size=(4, 2, 3, 3)).astype(np.float32),
        "g": np.full(4, 2, np.float32),
        "b": np.ones(4, np.float32),
        "m": np.zeros(4, np.float32),
        "v": np.ones(4, np.float32),
    }
    path = _save(
        tmp_path,
        [
            helper.make_node("Conv", ["x", "w"], ["conv_out"], name="conv"),
            helper.make_node(
                "BatchNormalization",
                ["conv_out", "g", "b", "m", "v"],
                ["bn_out"],
                name="bn",
                epsilon=0.0,
            ),
            helper.make_node("Relu", ["bn_out"], ["y"], name="relu"),
        ],
        ["N", 2, 5, 5],
        consts,
        y_dims=["N", 4, 3, 3],
    )
    net = rsim.load(path)
    assert [layer.op for layer in net.layers] == ["conv", "relu"]
    assert net.layers[0].outputs == ("bn_out",)
    assert net.aliases == {"conv_out": "bn_out"}
    np.testing.assert_allclose(net.layers[0].params["weight"], 2 * consts["w"])
    np.testing.assert_allclose(net.layers[0].params["bias"], np.ones(4))
    x = rng.normal(size=(1, 2, 5, 5)).astype(np.float32)
    collected = net.run_float(x, collect=True)
    assert "conv_out" not in collected and net.shape("conv_out", 1) == (1, 4, 3, 3)
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    np.testing.assert_allclose(np.maximum(collected["bn_out"], 0), want, rtol=1e-5, atol=1e-6)


def test_identity_and_dropout_vanish_and_graph_outputs_keep_their_names(tmp_path):
    path = _save(
        tmp_path,
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Dropout", ["r"], ["d"]),
            helper.make_node("Identity", ["d"], ["y"]),
        ],
        ["N", 3],
        y_dims=["N", 3],
    )
    net = rsim.load(path)
    assert [layer.op for layer in net.layers] == ["relu"]
    assert net.resolve("y") == "r"
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    assert list(net.run_float(x)) == ["y"]
    np.testing.assert_array_equal(net.run_float(x)["y"], np.maximum(x, 0))


def test_gemm_weight_is_k_by_n_with_alpha_and_beta_folded(tmp_path):
    b = np.arange(12, dtype=np.float32).reshape(4, 3)  # (N, K) with transB
    c = np.array([1, 2, 3, 4], np.float32)
    path = _save(
        tmp_path,
        [helper.make_node("Gemm", ["x", "b", "c"], ["y"], transB=1, alpha=2.0, beta=0.5)],
        ["N", 3],
        {"b": b, "c": c},
        y_dims=["N", 4],
    )
    (layer,) = rsim.load(path).layers
    assert layer.op == "gemm"
    np.testing.assert_array_equal(layer.params["weight"], 2 * b.T)
    np.testing.assert_array_equal(layer.params["bias"], 0.5 * c)


@needs_mnist8
def test_mnist8_folds_its_bias_adds_and_rewrites_its_batch_1_reshape():
    net = rsim.load(MNIST8)
    assert [layer.op for layer in net.layers] == [
        "conv",
        "relu",
        "maxpool",
        "conv",
        "relu",
        "maxpool",
        "reshape",
        "gemm",
    ]
    assert net.layers[0].params["bias"].shape == (8,)
    assert net.aliases["Convolution28_Output_0"] == "Plus30_Output_0"
    assert net.layers[6].attrs["shape"] == (0, 256)
    assert net.sha256 == hashlib.sha256(MNIST8.read_bytes()).hexdigest() and net.source == MNIST8


@needs_mnist8
def test_batch_1_model_runs_any_batch_like_separate_single_runs():
    net = rsim.load(MNIST8)
    x = np.random.default_rng(2).uniform(0, 255, (5, 1, 28, 28)).astype(np.float32)
    together = net.run_float(x)[net.outputs[0]]
    one_by_one = np.concatenate([net.run_float(x[i : i + 1])[net.outputs[0]] for i in range(5)])
    # BLAS sums in another order for another batch size: equal to float32 rounding
    assert np.abs(together - one_by_one).max() <= 1e-5 * np.abs(one_by_one).max()
    assert np.array_equal(together.argmax(axis=1), one_by_one.argmax(axis=1))
    assert net.shape(net.outputs[0], batch=5) == (5, 10)


@needs_mnist8
def test_macs_follow_the_conv_and_fc_formulas_and_scale_with_batch():
    net = rsim.load(MNIST8)
    for layer in net.layers:
        out = net.shape(layer.outputs[0], batch=1)
        if layer.op == "conv":
            o, cg, kh, kw = layer.params["weight"].shape
            assert layer.macs(1) == out[2] * out[3] * o * cg * kh * kw
        elif layer.op == "gemm":
            assert layer.macs(1) == int(np.prod(layer.params["weight"].shape))
        else:
            assert layer.macs(1) == 0
        assert layer.macs(7) == 7 * layer.macs(1)
        assert layer.param_count == sum(v.size for v in layer.params.values())
    assert net.param_count == 8 * 25 + 8 + 16 * 8 * 25 + 16 + 256 * 10 + 10


def test_reshape_that_spreads_the_batch_over_two_axes_runs_only_the_exported_batch(tmp_path):
    path = _save(
        tmp_path,
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="spread")],
        [2, 3],
        {"s": np.array([3, 2], np.int64)},
        y_dims=[3, 2],
    )
    net = rsim.load(path)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(net.run_float(x)["y"], x.reshape(3, 2))
    with pytest.raises(RsimError, match="'spread'.*batch of 3.*exported for batch 2"):
        net.run_float(np.ones((3, 3), np.float32))


def test_reshape_that_folds_the_batch_into_one_axis_follows_the_batch(tmp_path):
    path = _save(
        tmp_path,
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="flat_all")],
        [1, 2, 3],
        {"s": np.array([6], np.int64)},
        y_dims=[6],
    )
    net = rsim.load(path)
    x = np.arange(18, dtype=np.float32).reshape(3, 2, 3)
    np.testing.assert_array_equal(net.run_float(x[:1])["y"], x[:1].reshape(6))
    np.testing.assert_array_equal(net.run_float(x)["y"], x.reshape(18))


def test_symbolic_height_and_width_bind_on_first_run_or_from_input_shapes(tmp_path):
    w = np.random.default_rng(3).normal(size=(2, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["y"]),
    ]
    path = _save(tmp_path, nodes, ["N", 3, "H", "W"], {"w": w}, y_dims=["N", 2, 1, 1])
    lazy = rsim.load(path)
    with pytest.raises(RsimError, match="symbolic input dimensions.*input_shapes"):
        lazy.shape("c")
    with pytest.raises(RsimError, match=r"input 'x' has shape \(3, 10, 12\).*\[N, 3, \?, \?\]"):
        lazy.run_float(np.zeros((3, 10, 12), np.float32))
    x = np.random.default_rng(4).normal(size=(2, 3, 10, 12)).astype(np.float32)
    y = lazy.run_float(x)["y"]
    assert y.shape == (2, 2, 1, 1) and lazy.shape("c", batch=4) == (4, 2, 10, 12)
    with pytest.raises(RsimError, match=r"\[N, 3, 10, 12\]"):
        lazy.run_float(np.zeros((2, 3, 8, 8), np.float32))
    bound = rsim.load(path, input_shapes={"x": (1, 3, 10, 12)})
    assert bound.shape("c") == (1, 2, 10, 12)
    np.testing.assert_array_equal(bound.run_float(x)["y"], y)
    with pytest.raises(RsimError, match=r"input_shapes\['x'\] = \(1, 4, 10, 12\) does not fit"):
        rsim.load(path, input_shapes={"x": (1, 4, 10, 12)})


def test_float64_run_returns_float64_close_to_float32(mobilenet_path):
    net = rsim.load(mobilenet_path)
    x = np.random.default_rng(5).normal(size=(2, 3, 32, 32))
    y64 = net.run_float(x, dtype=np.float64)[net.outputs[0]]
    y32 = net.run_float(x.astype(np.float32))[net.outputs[0]]
    assert y64.dtype == np.float64 and y32.dtype == np.float32
    np.testing.assert_allclose(y64, y32, rtol=1e-4, atol=1e-6)
    with pytest.raises(RsimError, match="float32 or float64, not float16"):
        net.run_float(x, dtype=np.float16)


def test_layer_forward_checks_its_arity(resnet):
    with pytest.raises(RsimError, match="takes 1 input array"):
        resnet.layers[0].forward(np.zeros((1, 3, 32, 32)), np.zeros(1))
