"""Quantization specs: per-layer overrides by name and glob, calibration rules, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from formats import FixedPoint, RsimError
from rsim.quant.calibrate import TensorRange, activation_fl
from rsim.loader import load
from rsim.quant.qspec import Calibration, QSpec, load_qspec
from rsim.shipped import default_data_path, default_model_path
from rsim.simulation import prepare, resolve_accelerator
from rsim.datasets import open_dataset

CONV = "/features/features.3/Conv"


@pytest.fixture(scope="module")
def network():
    return load(default_model_path())


def _prepared(network, spec: dict):
    qspec, _ = load_qspec(spec)
    return prepare(network, resolve_accelerator(None), qspec, open_dataset(default_data_path()))


def test_an_override_by_glob_changes_only_the_layers_it_matches(network):
    run = _prepared(network, {"layers": [
        {"match": "*/Conv", "weights": "fixed<6,4>", "accumulator": {"bits": 20}},
        {"match": CONV, "weights": {"bits": 4, "fl": "dynamic"}}]})
    by_name = {quant.layer.name: quant for quant in run.quants}
    first = by_name["/features/features.0/Conv"]
    assert first.weight_fmt == FixedPoint(6, 4) and first.plan.accumulator.bits == 20
    later = by_name[CONV]
    assert later.weight_fmt.bits == 4 and later.plan.accumulator.bits == 20  # later entry wins
    fc = by_name["/classifier/classifier.1/Gemm"]
    assert fc.weight_fmt.bits == 8 and fc.plan.accumulator.bits == 32


def test_an_override_of_activations_sets_the_layer_output_format(network):
    run = _prepared(network, {"layers": [{"match": CONV, "activations": "fixed<8,2>"}]})
    assert run.fmts[network.layer(CONV).outputs[0]] == FixedPoint(8, 2)


def _range(values):
    stats = TensorRange(keep_sample=True)
    stats.update(np.asarray(values, dtype=np.float64), np.random.default_rng(0))
    return stats


def test_calibration_rules_follow_their_definitions():
    # 1000 values in [0, 1) and one outlier at 100
    values = np.append(np.linspace(0, 1, 1000, endpoint=False), 100.0)
    stats = _range(values)
    bits = 8
    assert activation_fl(stats, bits, Calibration(rule="max")) == bits - (math.ceil(math.log2(100)) + 1)
    assert activation_fl(stats, bits, Calibration(rule="ristretto")) == bits - math.ceil(math.log2(100))
    percentile = activation_fl(stats, bits, Calibration(rule="percentile", percentile=99.0))
    assert percentile == bits - (math.ceil(math.log2(np.percentile(values, 99.0))) + 1)
    mse = activation_fl(stats, bits, Calibration(rule="mse"))

    def squared_error(fl):
        return float(np.sum((FixedPoint(bits, fl).quantize(values) - values) ** 2))

    fl_max = activation_fl(stats, bits, Calibration(rule="max"))
    candidates = range(fl_max, fl_max + 4)
    assert squared_error(mse) == min(squared_error(fl) for fl in candidates)


@pytest.mark.parametrize("spec, message", [
    ({"layers": [{"match": "nothing*", "weights": "int8"}]}, "selects no layer"),
    ({"layers": [{"match": CONV, "wieghts": "int8"}]}, "layers[0].wieghts: unknown key"),
    ({"layers": [{"match": CONV, "weights": "fixed<8"}]}, "layers[0].weights"),
    ({"calibration": {"rule": "median"}}, "calibration.rule"),
])
def test_a_bad_qspec_is_one_error_naming_the_key(network, spec, message):
    with pytest.raises(RsimError) as error:
        _prepared(network, spec)
    assert message in str(error.value)


def test_a_qspec_file_that_is_not_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layers:\n  - match: [unclosed\n")
    with pytest.raises(RsimError, match=r"bad\.yaml:\d+"):
        load_qspec(path)


def test_an_empty_qspec_file_is_the_empty_spec(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_qspec(path)[0] == QSpec()
