"""`rsim vectors`: the hex files hold what a plain integer reference computes from them."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import yaml
from click.testing import CliRunner
from test_simulate import int_config

from rsim.cli import cli
from rsim.vectors import hex_words

LAYER = "/features/features.3/Conv"


def read_hex(path, shape, bits):
    words = [line for line in path.read_text().splitlines() if not line.startswith("//")]
    values = [int(word, 16) for word in words]
    signed = [v - (1 << bits) if v >= 1 << (bits - 1) else v for v in values]
    return np.array(signed, dtype=object).reshape(shape)


def reference_conv(x, w, bias, pads):
    """Plain Python-int convolution (stride 1, no dilation, one group) plus bias."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    top, left, bottom, right = pads
    padded = np.zeros((n, c, h + top + bottom, wd + left + right), dtype=object)
    padded[:, :, top:top + h, left:left + wd] = x
    oh, ow = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
    out = np.zeros((n, o, oh, ow), dtype=object)
    for b in range(n):
        for k in range(o):
            for i in range(oh):
                for j in range(ow):
                    window = padded[b, :, i:i + kh, j:j + kw]
                    out[b, k, i, j] = int((window * w[k]).sum()) + int(bias[k])
    return out


def test_vectors_reproduce_the_layer_with_a_python_int_reference(tmp_path):
    hw_file = tmp_path / "int8.yaml"
    hw_file.write_text(yaml.safe_dump(int_config().model_dump(mode="json")))
    out = tmp_path / "vectors"
    result = CliRunner().invoke(cli, ["vectors", "--hw", str(hw_file), "--layer", LAYER,
                                      "--out", str(out), "--samples", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["files"]
    assert set(files) == {"input", "weights", "bias", "accumulator", "output"}
    assert manifest["reduction_plan"]["k_chunk"] == 32
    tensors = {role: read_hex(out / entry["file"], entry["shape"], entry["bits"])
               for role, entry in files.items()}
    acc = reference_conv(tensors["input"], tensors["weights"], tensors["bias"],
                         manifest["attributes"]["pads"])
    assert (acc == tensors["accumulator"]).all()
    shift = manifest["requantization"]["shift"]
    assert manifest["requantization"]["rounding"] == "nearest_even"
    bits = files["output"]["bits"]
    expected = np.vectorize(lambda a: min(max(round(Fraction(a, 2**shift)), -2**(bits - 1)),
                                          2**(bits - 1) - 1))(acc)
    assert (expected == tensors["output"]).all()


def test_hex_words_are_twos_complement_of_the_width():
    assert hex_words(np.array([-1, 0, 5, -128, 127]), 8) == ["ff", "00", "05", "80", "7f"]
    assert hex_words(np.array([-2]), 12) == ["ffe"]


def test_an_unknown_layer_is_one_error(tmp_path):
    result = CliRunner().invoke(cli, ["vectors", "--layer", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no layer 'nope'" in result.stderr


def test_nan_in_the_data_is_one_error_naming_the_sample(tmp_path):
    """The same per-batch input check as `rsim simulate`, not a format error from inside."""
    path = tmp_path / "nan.npz"
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    x[3, 0, 2, 2] = np.nan
    np.savez(path, x=x)
    result = CliRunner().invoke(cli, ["vectors", "--layer", LAYER, "--data", str(path),
                                      "--samples", "5", "--out", str(tmp_path / "v")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"rsim: error: data '{path}': sample 3 holds NaN, but the input format fixed<8,7> has "
        "no NaN code; clean the data (e.g. np.nan_to_num) or give the input a format with NaN"]


def test_a_model_with_two_inputs_is_one_error(tmp_path):
    from onnx import TensorProto, helper, save

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in "ab"]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "two.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((2, 4), np.float32))
    for command in (["vectors", str(model), "--layer", "y", "--out", str(tmp_path / "v")],
                    ["simulate", str(model)]):
        result = CliRunner().invoke(cli, [*command, "--data", str(data)])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert "2 inputs (a, b); only single-input models" in result.stderr
