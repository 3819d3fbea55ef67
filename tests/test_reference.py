"""The float reference is computed once: calibration reuses a run's first batches, and a shared
reference (in memory or in a folder) serves further runs without any float pass, with bitwise
the same results."""

from __future__ import annotations

import dataclasses

import pytest
from test_simulate import int_config

import rsim
from rsim import RsimError
from rsim.network import Network
from rsim.reference import FloatReference
from rsim.shipped import default_data_path, default_model_path


def _figures(result):
    return {name: (dataclasses.astuple(layer.isolated), dataclasses.astuple(layer.propagated),
                   layer.acc_saturations) for name, layer in result.layers.items()}


def test_calibration_and_the_reference_pass_share_the_first_batch(monkeypatch):
    calls = []
    real = Network.run_float

    def counted(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return real(self, inputs, *args, **kwargs)

    monkeypatch.setattr(Network, "run_float", counted)
    result = rsim.simulate(default_model_path(), inputs=default_data_path(), batch_size=256)
    assert result.samples == 360 and calls == [256, 104]  # calibration = batch 0, run once


@pytest.mark.parametrize("in_folder", [False, True])
def test_a_shared_reference_serves_later_runs_without_a_float_pass(tmp_path, in_folder):
    network = rsim.load(default_model_path())
    reference = FloatReference(network, str(default_data_path()), 128,
                               folder=tmp_path / "ref" if in_folder else None)
    first = rsim.simulate(network, hw=int_config(), inputs=default_data_path(), batch_size=128,
                          reference=reference)
    assert reference.computed == 3
    again = rsim.simulate(network, hw=int_config(bits=6, acc_bits=16), inputs=default_data_path(),
                          batch_size=128, reference=reference)
    alone = rsim.simulate(network, hw=int_config(bits=6, acc_bits=16),
                          inputs=default_data_path(), batch_size=128)
    assert reference.computed == 3  # nothing recomputed for the second design point
    assert _figures(again) == _figures(alone) and again.agreement == alone.agreement
    assert _figures(first) != _figures(again)


def test_a_reference_is_refused_for_another_model_or_batch_size(tmp_path):
    network = rsim.load(default_model_path())
    reference = FloatReference(network, "digits", 128, folder=tmp_path / "ref")
    with pytest.raises(RsimError, match="in batches of 128"):
        rsim.simulate(network, inputs=default_data_path(), batch_size=64, reference=reference)
    network.sha256 = "0" * 64
    with pytest.raises(RsimError, match="holds the float reference of another model"):
        FloatReference(network, "digits", 128, folder=tmp_path / "ref")
