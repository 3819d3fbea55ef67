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
