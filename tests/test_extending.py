"""How rsim is extended, shown end to end: a new operator is one declaration plus one frontend
mapping line; the array's rows alone decide the kernels' K-chunking."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_simulate import int_config

import hwconfigs
import kernels
import rsim
from rsim.frontends.onnx.registry import CONVERTERS, unary
from rsim.ops.registry import OpSpec, always, register, same_shape, unregister
from rsim.datasets import open_dataset
from rsim.quant.qspec import QSpec
from rsim.quant.tensor import Outcome, QTensor
from rsim.shipped import default_data_path, default_model_path
from rsim.simulation import prepare


def _shrink(arrays, attrs, params):
    """ONNX Shrink with bias 0 (hard shrink): x where |x| > lambd, else 0."""
    x = arrays[0]
    return np.where(np.abs(x) > attrs["lambd"], x, x.dtype.type(0))


def _shrink_integer(quant, inputs, rng):
    """On codes: the threshold rounded onto the input grid; the output keeps the format."""
    x = inputs[0]
    limit = quant.layer.attrs["lambd"] * 2.0 ** x.fmt.fl
    return Outcome(QTensor(np.where(np.abs(x.data.astype(np.int64)) > limit, x.data, 0), x.fmt))


@pytest.fixture
def shrink_op():
    register(OpSpec("hard_shrink", _shrink, same_shape, keeps_format=always,
                    integer=_shrink_integer))  # the declaration
    unary("Shrink", "hard_shrink", lambd=0.5)  # the frontend mapping line
    yield
    unregister("hard_shrink")
    del CONVERTERS["Shrink"]


def test_a_new_operator_is_one_declaration_and_one_mapping_line(shrink_op, tmp_path):
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Shrink", ["c"], ["y"], lambd=0.75, name="shrink")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 5, 5])],
                              [w])
    path = tmp_path / "shrink.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              path)
    network = rsim.load(path)
    x = rng.normal(size=(3, 1, 5, 5)).astype(np.float32)
    c = network.run_float(x, collect=True)["c"]
    np.testing.assert_array_equal(network.run_float(x)["y"], np.where(np.abs(c) > 0.75, c, 0))
    result = rsim.simulate(network, hw=int_config(), inputs=x)
    shrink = result.layers["shrink"]
    assert not shrink.float_emulated and shrink.formats["output"] == shrink.formats["input"]
    run = prepare(network, int_config(), QSpec(), open_dataset(x))
    (_, conv), (_, out) = [(q, o) for q, _, o in run.propagate(x, np.random.default_rng(0))]
    kept = np.abs(conv.out.values()) > 0.75
    np.testing.assert_array_equal(out.out.data, np.where(kept, conv.out.data, 0))
    assert 0 < kept.mean() < 1


@pytest.mark.parametrize("rows", [8, 16])
def test_the_array_rows_alone_set_the_kernels_k_chunking(monkeypatch, rows):
    """The plan each MAC layer hands to the kernels is the object its schedule carries, and its
    K chunk is the configured number of rows."""
    data = hwconfigs.load("mid-ws-int8").model_dump(mode="json")
    data["array"]["rows"] = rows
    hw = hwconfigs.from_dict(data)
    seen = {}
    for name in ("conv2d", "gemm"):
        real = getattr(kernels, name)

        def spy(*args, real=real, **kwargs):
            plan = next(a for a in args if isinstance(a, kernels.ReductionPlan))
            seen[id(plan)] = plan
            return real(*args, **kwargs)

        monkeypatch.setattr(kernels, name, spy)
    result = rsim.simulate(default_model_path(), hw=hw, inputs=default_data_path(), limit=8)
    scheduled = {id(layer.plan) for layer in result.schedule.layers}
    assert seen and set(seen) <= scheduled
    assert {plan.k_chunk for plan in seen.values()} == {rows}
