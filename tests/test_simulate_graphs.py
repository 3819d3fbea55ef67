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
    result = rsim.simulate(network, hw=int_config(bits=24, acc_bits=64, psum_bits=64),
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
