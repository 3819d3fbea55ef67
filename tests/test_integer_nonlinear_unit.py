"""The integer-only nonlinear unit in simulation (datapath `nonlinear: integer`): each layernorm,
GELU and softmax layer's output codes equal the Python-int definition of its kernel
(tests/test_intnonlinear.py) applied to the layer's simulated input codes and its quantized scale
and shift; with `nonlinear: float` the same layers are float-emulated."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_intnonlinear import ref_gelu, ref_layernorm, ref_softmax
from test_simulate import int_config

import hwconfigs
import rsim
from rsim.datasets import open_dataset
from formats.errors import RsimError
from rsim.quant.qspec import QSpec
from rsim.simulation import prepare

UNIT_LAYERS = ("ln", "gelu", "softmax")


def _config(nonlinear: str = "integer", rounding: str = "nearest_even"):
    data = int_config().model_dump(mode="json")
    data["datapath"].update(nonlinear=nonlinear, requant_rounding=rounding)
    return hwconfigs.from_dict(data)


def _load(path, nodes, x_shape, out_shape, inits, opset):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return rsim.load(path)


@pytest.fixture(scope="module")
def encoder_block(tmp_path_factory):
    """LayerNorm over the last axis, GELU, a projection and softmax over the last axis."""
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(0, 0.2, 16).astype(np.float32), "beta"),
             numpy_helper.from_array(rng.normal(0, 0.5, (16, 12)).astype(np.float32), "w")]
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1,
                              epsilon=1e-5, name="ln"),
             helper.make_node("Gelu", ["ln"], ["g"], name="gelu"),
             helper.make_node("MatMul", ["g", "w"], ["s"], name="proj"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="softmax")]
    network = _load(tmp_path_factory.mktemp("block") / "block.onnx", nodes, ["N", 5, 16],
                    ["N", 5, 12], inits, opset=20)
    x = (rng.normal(0, 1.5, (6, 5, 16)) + rng.normal(0, 1, (6, 5, 1))).astype(np.float32)
    return network, x


@pytest.fixture(scope="module")
def flattened_softmax(tmp_path_factory):
    """Opset 11 Softmax with axis 1: every axis from 1 on normalised together."""
    nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=1, name="softmax")]
    network = _load(tmp_path_factory.mktemp("softmax") / "softmax.onnx", nodes, ["N", 3, 7],
                    ["N", 3, 7], [], opset=11)
    return network, np.random.default_rng(8).normal(0, 2, (4, 3, 7)).astype(np.float32)


def _runs(network, hw, x):
    """(layer name -> (LayerQuant, simulated inputs, outcome)) of one propagated batch."""
    run = prepare(network, hw, QSpec(), open_dataset(x))
    return {q.layer.name: (q, inputs, outcome)
            for q, inputs, outcome in run.propagate(x, np.random.default_rng(0))}


def _reference(name, quant, q, rounding, u):
    """The Python-int definition of the layer's kernel on its input codes."""
    fmt, codes = quant.out_fmt, q.data.astype(np.int64)
    if name == "ln":
        c = quant.constants
        return ref_layernorm(codes, q.fmt.fl, c.weights, c.weight_fl, c.bias, c.bias_fmt.fl,
                             (-1,), fmt.bits, fmt.fl, 1e-5, True, 12, 16, rounding, u)
    if name == "gelu":
        return ref_gelu(codes, q.fmt.fl, fmt.bits, fmt.fl, True, 14, rounding, u)
    axes = sorted(quant.layer.attrs["axes"])
    merged = codes.reshape(codes.shape[:axes[0]] + (-1,))
    want, saturated = ref_softmax(merged, q.fmt.fl, axes[0], fmt.bits, fmt.fl, True, 15, 16,
                                  rounding, u.reshape(merged.shape))
    return want.reshape(codes.shape), saturated


@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_up", "floor", "stochastic"])
@pytest.mark.parametrize("model, names", [("encoder_block", UNIT_LAYERS),
                                          ("flattened_softmax", ("softmax",))])
def test_the_units_outputs_equal_their_python_int_definitions(model, names, rounding, request):
    network, x = request.getfixturevalue(model)
    runs = _runs(network, _config(rounding=rounding), x)
    for name in names:
        quant, inputs, _ = runs[name]
        assert not quant.float_emulated, name
        (q,) = inputs
        # rerun with a generator whose draws the reference reads too
        outcome = quant.run(inputs, np.random.default_rng(11))
        u = np.random.default_rng(11).random(q.data.shape) if rounding == "stochastic" else \
            np.zeros(q.data.shape)
        want, saturated = _reference(name, quant, q, rounding, u)
        assert np.array_equal(outcome.out.data, want), name
        assert np.count_nonzero(outcome.clipped) == saturated, name


def test_layernorm_scale_and_shift_are_codes_in_the_weight_and_bias_formats(encoder_block):
    network, x = encoder_block
    quant = _runs(network, _config(), x)["ln"][0]
    layer, c = quant.layer, quant.constants
    assert (c.weight_fmt.bits, c.bias_fmt.bits) == (8, 32)
    assert np.abs(c.weights * 2.0 ** -c.weight_fl - layer.params["scale"]).max() <= \
        2.0 ** -(c.weight_fl + 1)
    assert np.abs(c.bias * 2.0 ** -c.bias_fmt.fl - layer.params["bias"]).max() <= \
        2.0 ** -(c.bias_fmt.fl + 1)
    assert quant.formats()["weights"] == str(c.weight_fmt)


def test_float_nonlinear_datapaths_emulate_the_same_layers(encoder_block):
    network, x = encoder_block
    runs = _runs(network, _config("float"), x)
    assert all(runs[name][0].float_emulated for name in UNIT_LAYERS)
    integer = rsim.simulate(network, hw=_config(), inputs=x)
    emulated = rsim.simulate(network, hw=_config("float"), inputs=x)
    # both track the float reference; the integer unit's approximations cost some accuracy
    for result in (integer, emulated):
        assert result.layers["softmax"].isolated.sqnr_db > 20
    assert emulated.layers["gelu"].isolated.sqnr_db > integer.layers["gelu"].isolated.sqnr_db


def test_a_unit_error_names_the_layer(encoder_block):
    network, x = encoder_block
    qspec = QSpec.model_validate({"layers": [{"match": "softmax", "activations": "fixed<8,40>"}]})
    run = prepare(network, _config(), qspec, open_dataset(x))
    with pytest.raises(RsimError, match=r"layer 'softmax' \(softmax on the integer nonlinear "
                                        r"unit\): out_fl"):
        list(run.propagate(x, np.random.default_rng(0)))
