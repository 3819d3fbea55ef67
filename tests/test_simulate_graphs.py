"""Simulation of ResNet- and MobileNet-style graphs: residual adds, depthwise convs, ReLU6,
global pooling and squeeze-excite run on codes (or are marked float-emulated), and wide formats
reproduce the float path through all of them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_graphs import mobilenet_style, resnet_style
from test_simulate import int_config

import rsim
import rsim.ops.conv
from rsim.quant.qspec import QSpec
from rsim.shipped import default_data_path, default_model_path

GRAPHS = {"resnet": resnet_style, "mobilenet": mobilenet_style}
INTEGER_OPS = {"conv", "gemm", "relu", "clip", "maxpool", "global_avgpool", "add", "flatten",
               "reshape", "unsqueeze"}


@pytest.fixture(scope="module", params=sorted(GRAPHS))
def graph(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("graphs") / f"{request.param}.onnx"
    onnx.save(GRAPHS[request.param](13), path)
    inputs = np.random.default_rng(1).normal(size=(12, 3, 32, 32)).astype(np.float32)
    return rsim.load(path), inputs


def test_wide_formats_reproduce_the_float_path_through_every_layer(graph):
    network, inputs = graph
    result = rsim.simulate(network, hw=int_config(bits=24, acc_bits=64, partial_sum_bits=64),
                           inputs=inputs, batch_size=5)
    assert result.agreement == 1.0
    for name, layer in result.layers.items():
        assert layer.propagated.rel_l2 <= 1e-4, (name, layer.op)


def test_ops_without_an_integer_model_are_marked_float_emulated(graph):
    network, inputs = graph
    result = rsim.simulate(network, hw=int_config(), inputs=inputs)
    for name, layer in result.layers.items():
        assert layer.float_emulated == (layer.op not in INTEGER_OPS), (name, layer.op)
    ops = {layer.op for layer in result.layers.values()}
    assert "add" in ops or "clip" in ops
    assert result.agreement >= 0.5


@pytest.fixture(scope="module")
def deconv(tmp_path_factory):
    """Conv → ReLU → ConvTranspose (stride 2) → AveragePool, random weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
             for name, shape in (("w1", (4, 3, 3, 3)), ("b1", (4,)), ("w2", (4, 2, 3, 3)),
                                 ("b2", (2,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ConvTranspose", ["r", "w2", "b2"], ["d"], strides=[2, 2],
                              pads=[1, 1, 0, 0]),
             helper.make_node("AveragePool", ["d"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "deconv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])], inits)
    path = tmp_path_factory.mktemp("deconv") / "deconv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                ir_version=8), path)
    return rsim.load(path), rng.normal(size=(6, 3, 6, 6)).astype(np.float32)


def test_transposed_convolution_and_average_pooling_run_on_codes(deconv):
    network, inputs = deconv
    wide = rsim.simulate(network, hw=int_config(bits=24, acc_bits=64, partial_sum_bits=64),
                         inputs=inputs)
    for name, layer in wide.layers.items():
        assert not layer.float_emulated, name
        assert layer.propagated.rel_l2 <= 1e-4, (name, layer.op)


def test_transposed_convolution_runs_on_the_fp8_datapath(deconv):
    network, inputs = deconv
    result = rsim.simulate(network, hw="fp8-e4m3", inputs=inputs)
    layers = list(result.layers.values())
    assert [layer.op for layer in layers] == ["conv", "relu", "conv_transpose", "avgpool"]
    assert not any(layer.float_emulated for layer in layers)
    assert all(layer.propagated.sqnr_db > 15 for layer in layers)


@pytest.mark.parametrize("hw", ["int", "fp8-e4m3"])
def test_isolated_layers_that_commute_with_quantization_equal_running_them(graph, hw):
    """The simulator takes a relu/maxpool/layout layer's isolated output as its float output
    quantized; running the layer on its quantized float input gives exactly that."""
    network, inputs = graph
    accelerator = rsim.simulation.resolve_accelerator(int_config() if hw == "int" else hw)
    run = rsim.simulation.prepare(network, accelerator, QSpec(),
                                  rsim.datasets.open_dataset(inputs))
    reference = network.run_float(inputs, collect=True)
    reference[network.inputs[0]] = inputs
    rng = np.random.default_rng(0)
    commuting = [quant for quant in run.quants if quant.commutes_with(run.rounding)]
    assert {quant.layer.op for quant in commuting} >= {"relu"}
    for quant in commuting:
        ran = quant.run([run.quantized(t, reference[t], rng) for t in quant.layer.inputs], rng)
        expected = run.quantized(quant.layer.outputs[0], reference[quant.layer.outputs[0]], rng)
        np.testing.assert_array_equal(ran.out.data, expected.data, err_msg=quant.layer.name)
        assert ran.out.fmt == expected.fmt


def _isolated_convs_from_propagated(network, inputs, monkeypatch) -> list[bool]:
    """Checks that every conv's isolated outcome from its propagated accumulators equals
    running it afresh; returns, per conv, whether the changed-codes scatter was taken."""
    accelerator = rsim.simulation.resolve_accelerator(int_config())
    run = rsim.simulation.prepare(network, accelerator, QSpec(),
                                  rsim.datasets.open_dataset(inputs))
    reference = network.run_float(inputs, collect=True)
    reference[network.inputs[0]] = inputs
    scattered = []
    real = rsim.ops.conv.kernels.conv2d_changed

    def counted(*args, **kwargs):
        result = real(*args, **kwargs)
        scattered.append(result is not None)
        return result

    monkeypatch.setattr(rsim.ops.conv.kernels, "conv2d_changed", counted)
    rng = np.random.default_rng(0)
    for quant, simulated, outcome in run.propagate(inputs, rng):
        if quant.layer.op != "conv" or set(quant.layer.inputs) <= set(network.inputs):
            continue
        isolated = [run.quantized(t, reference[t], rng) for t in quant.layer.inputs]
        changed = quant.run_changed(isolated, simulated, outcome, rng)
        fresh = quant.run(isolated, rng)
        np.testing.assert_array_equal(changed.out.data, fresh.out.data, err_msg=quant.layer.name)
        np.testing.assert_array_equal(changed.clipped, fresh.clipped)
        np.testing.assert_array_equal(changed.acc, fresh.acc)
    return scattered


def test_isolated_convs_from_the_propagated_accumulators_equal_running_them(graph, monkeypatch):
    """The simulator runs a conv's isolated pass from its propagated accumulators, scattering
    the input codes that differ, when few do; the outcome equals running the layer afresh.
    (Random weights drift far: most of these convs differ in too many codes and run afresh.)"""
    assert _isolated_convs_from_propagated(*graph, monkeypatch)


def test_the_default_models_isolated_conv_scatters_its_few_changed_codes(monkeypatch):
    network = rsim.load(default_model_path())
    inputs = next(rsim.datasets.open_dataset(default_data_path()).iter_batches(64))[0]
    scattered = _isolated_convs_from_propagated(network, inputs, monkeypatch)
    assert scattered and all(scattered)
