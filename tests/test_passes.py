"""Each IR pass on a tiny hand-built graph: what it matches, what it leaves alone, and that the
rewritten network computes what an independent numpy expression of the original computes."""

from __future__ import annotations

import numpy as np
import pytest

from rsim.frontends.builder import GraphBuilder
from rsim.network import Graph, Layer, Network
from rsim.passes import fold_batchnorm, fold_bias, identities, run_passes

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)
SCALE, SHIFT = RNG.normal(size=4), RNG.normal(size=4)
X = RNG.normal(size=(2, 3, 6, 6)).astype(np.float32)
CONV = {"kernel": (3, 3), "strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1),
        "groups": 1}


def _conv_reference(x, w, b):
    """Direct float64 convolution, stride 1, zero padding 1."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], w.shape[0], x.shape[2], x.shape[3]))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, i:i + x.shape[2], j:j + x.shape[3]],
                             w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def _graph(*layers: Layer, shape=(2, 3, 6, 6)) -> Graph:
    return Graph(list(layers), {"x": shape}, {}, shape[0])


def _network(graph: Graph, outputs: list[str]) -> Network:
    return Network(lambda bound: graph, {"x": (None,) + graph.input_shapes["x"][1:]}, outputs)


def _conv(output="c"):
    return Layer("conv", "conv", ("x",), (output,), dict(CONV), {"weight": W, "bias": B})


def _batchnorm(source="c", output="y"):
    return Layer("bn", "batchnorm", (source,), (output,), {},
                 {"scale": SCALE.astype(np.float32), "shift": SHIFT.astype(np.float32)})


def test_identities_are_removed_and_their_readers_rewired():
    graph = _graph(Layer("drop", "identity", ("x",), ("d",)),
                   Layer("relu", "relu", ("d",), ("r",)),
                   Layer("id", "identity", ("r",), ("y",)))
    graph = identities.run(graph, ["y"])
    assert [layer.op for layer in graph.layers] == ["relu"]
    assert graph.layers[0].inputs == ("x",) and graph.aliases == {"d": "x", "y": "r"}
    np.testing.assert_array_equal(_network(graph, ["y"]).run_float(X)["y"], np.maximum(X, 0))


def test_a_batchnorm_after_a_conv_folds_into_its_weights_and_bias():
    graph = fold_batchnorm.run(_graph(_conv(), _batchnorm()), ["y"])
    assert [layer.op for layer in graph.layers] == ["conv"] and graph.layers[0].outputs == ("y",)
    assert graph.aliases == {"c": "y"}
    expected = _conv_reference(X, W, B) * SCALE.reshape(1, -1, 1, 1) + SHIFT.reshape(1, -1, 1, 1)
    got = _network(graph, ["y"]).run_float(X, dtype=np.float64)["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("why", ["read twice", "graph output"])
def test_a_batchnorm_is_not_folded_into_a_conv_whose_output_is_needed(why):
    layers = [_conv(), _batchnorm()]
    outputs = ["y"]
    if why == "read twice":
        layers.append(Layer("relu", "relu", ("c",), ("r",)))
        outputs.append("r")
    else:
        outputs.append("c")
    graph = fold_batchnorm.run(_graph(*layers), outputs)
    assert "batchnorm" in [layer.op for layer in graph.layers] and not graph.aliases


def _fc(output="f"):
    weight = RNG.normal(size=(5, 3)).astype(np.float32)
    return Layer("fc", "gemm", ("x",), (output,), {}, {"weight": weight})


@pytest.mark.parametrize("op, constant, first, folds", [
    ("add", np.arange(3, dtype=np.float32), False, True),
    ("add", np.float32(2.5) * np.ones((1, 3), np.float32), True, True),
    ("sub", np.arange(3, dtype=np.float32), False, True),
    ("sub", np.arange(3, dtype=np.float32), True, False),  # c - fc(x): not a bias
    ("add", np.arange(6, dtype=np.float32).reshape(2, 3), False, False),  # varies by row
])
def test_a_constant_per_channel_add_after_an_fc_joins_its_bias(op, constant, first, folds):
    fc = _fc()
    weight = fc.params["weight"].astype(np.float64)
    add = Layer("add", op, ("f",), ("y",), {"constant_first": first}, {"constant": constant})
    graph = fold_bias.run(_graph(fc, add, shape=(2, 5)), ["y"])
    assert (len(graph.layers) == 1) == folds
    x = X.reshape(-1)[:10].reshape(2, 5)
    product = x.astype(np.float64) @ weight
    c = constant.astype(np.float64)
    expected = product + c if op == "add" else (c - product if first else product - c)
    got = _network(graph, ["y"]).run_float(x, dtype=np.float64)["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_run_passes_chains_the_aliases_to_the_kept_tensor():
    graph = _graph(_conv(), Layer("drop", "identity", ("c",), ("d",)), _batchnorm("d", "y"))
    graph = run_passes(graph, ["y"])
    assert [layer.op for layer in graph.layers] == ["conv"]
    assert graph.aliases == {"c": "y", "d": "y"}


def test_the_builder_folds_layers_on_float_constants_and_keeps_integer_ones():
    builder = GraphBuilder({"x": (1, 3)}, ValueError)
    builder.constants["w"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert builder.emit("transpose", ["w"], "wt", {"perm": (1, 0)}) is None
    np.testing.assert_array_equal(builder.constants["wt"], np.arange(6).reshape(2, 3).T)
    builder.constants["shape"] = np.array([3, 2], np.int64)
    with pytest.raises(ValueError, match="'shape' is a constant"):
        builder.emit("relu", ["shape"], "r")
    layer = builder.emit("gemm", ["x"], "y", {}, {"weight": builder.constants["wt"]})
    assert layer is not None and builder.shapes["y"] == (1, 2)
