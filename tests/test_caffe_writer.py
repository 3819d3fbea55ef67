"""Writing Ristretto prototxts: what is written reads back to the same parameters and the same
float network; the text uses Ristretto's type and field names (checked with regular expressions,
not with rsim's schema); the file appears whole or not at all."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from caffe_reference import REAL, quantization_blocks

from formats.errors import RsimError
from rsim.frontends.caffe import RistrettoParams, read_caffe, write_ristretto_prototxt

LENET = REAL / "caffe-lenet"
CIFAR = REAL / "caffe-cifar10"
pytestmark = pytest.mark.skipif(not LENET.is_dir(), reason=f"{LENET} is not present")

PARAMS = {
    "conv1": RistrettoParams(bw_layer_in=8, bw_layer_out=8, bw_params=4, fl_layer_in=8,
                             fl_layer_out=6, fl_params=3),
    "conv2": RistrettoParams(precision="MINIFLOAT", mant_bits=3, exp_bits=4,
                             rounding_scheme="STOCHASTIC"),
    "ip1": RistrettoParams(precision="INTEGER_POWER_OF_2_WEIGHTS", exp_min=-7, exp_max=0,
                           bw_layer_in=8, fl_layer_in=-2),
}  # fmt: skip


def assert_same_network(a, b):
    assert a.inputs == b.inputs and a.outputs == b.outputs
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.name, x.op, x.inputs, x.outputs, x.attrs) == (
            y.name, y.op, y.inputs, y.outputs, y.attrs
        )  # fmt: skip
        for key in x.params.keys() | y.params.keys():
            np.testing.assert_array_equal(x.params[key], y.params[key])


def test_written_prototxt_reads_back_to_the_same_params_and_network(tmp_path):
    weights = LENET / "lenet_iter_10000.caffemodel"
    shapes = {"data": (1, 1, 28, 28)}
    model = read_caffe(LENET / "lenet_train_test.prototxt", weights, shapes)
    path = write_ristretto_prototxt(model, PARAMS, tmp_path / "quantized.prototxt")
    again = read_caffe(path, weights, shapes)
    assert again.quantization == PARAMS
    assert_same_network(model.network, again.network)
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(model.network.run_float(x)["ip2"],
                                  again.network.run_float(x)["ip2"])  # fmt: skip
    assert [s.name for s in again.scores] == [s.name for s in model.scores]
    assert again.transform.scale == model.transform.scale
    # the TRAIN-phase data layer is kept: Ristretto fine-tunes with the written file
    assert [layer.name for layer in again.net.layer].count("mnist") == 2


def test_the_text_uses_ristrettos_type_and_field_names(tmp_path):
    model = read_caffe(LENET / "lenet.prototxt")
    path = write_ristretto_prototxt(model, PARAMS, tmp_path / "q.prototxt")
    text = path.read_text()
    assert text.count('type: "ConvolutionRistretto"') == 2 and text.count('"FcRistretto"') == 1
    assert text.count('type: "InnerProduct"') == 1  # ip2 is not quantized
    blocks = quantization_blocks(path)
    assert set(blocks) == set(PARAMS)
    for name, params in PARAMS.items():
        assert blocks[name] == {k: str(v) for k, v in dataclasses.asdict(params).items()}


def test_ristretto_layers_keep_their_params_unless_given_new_ones(tmp_path):
    source = LENET / "ristretto_lenet_quantized_8bit_w4.prototxt"
    model = read_caffe(source)
    changed = RistrettoParams(bw_params=2, fl_params=1)
    path = write_ristretto_prototxt(model, {"ip2": changed}, tmp_path / "q.prototxt")
    again = read_caffe(path)
    assert again.quantization == dict(model.quantization, ip2=changed)


def test_v1_nets_are_written_in_the_v2_format(tmp_path):
    prototxt = CIFAR / "v1-format" / "cifar10_full.prototxt"
    weights = CIFAR / "v1-format" / "cifar10_full_iter_70000.caffemodel"
    model = read_caffe(prototxt, weights)
    params = {"conv1": RistrettoParams(), "norm1": RistrettoParams(precision="MINIFLOAT")}
    path = write_ristretto_prototxt(model, params, tmp_path / "q.prototxt")
    text = path.read_text()
    assert "layers {" not in text and 'type: "LRNRistretto"' in text
    again = read_caffe(path, weights)
    assert again.quantization == params
    assert_same_network(model.network, again.network)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"relu1": RistrettoParams()}, "layer 'relu1' is a ReLU; Ristretto quantizes"),
        ({"nowhere": RistrettoParams()}, "name layers ['nowhere'] that"),
        ({"conv1": {"bw_params": 8}}, "must be a RistrettoParams, got dict"),
    ],
)
def test_layers_ristretto_cannot_quantize_are_refused(tmp_path, params, message):
    model = read_caffe(LENET / "lenet.prototxt")
    with pytest.raises(RsimError) as info:
        write_ristretto_prototxt(model, params, tmp_path / "q.prototxt")
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_lrn_is_quantized_in_minifloat_only(tmp_path):
    model = read_caffe(CIFAR / "cifar10_full.prototxt")
    with pytest.raises(RsimError, match="LRNRistretto supports precision MINIFLOAT only"):
        write_ristretto_prototxt(model, {"norm1": RistrettoParams()}, tmp_path / "q.prototxt")


def test_the_file_is_replaced_whole_or_not_at_all(tmp_path):
    model = read_caffe(LENET / "lenet.prototxt")
    path = tmp_path / "q.prototxt"
    path.write_text("old")
    write_ristretto_prototxt(model, PARAMS, path)
    assert path.read_text().startswith("# written by rsim from ")
    assert os.listdir(tmp_path) == ["q.prototxt"]
    occupied = tmp_path / "a_folder.prototxt"
    occupied.mkdir()
    with pytest.raises(RsimError, match="cannot write"):
        write_ristretto_prototxt(model, PARAMS, occupied)
    assert sorted(os.listdir(tmp_path)) == ["a_folder.prototxt", "q.prototxt"]
    with pytest.raises(RsimError, match="folder .* does not exist"):
        write_ristretto_prototxt(model, PARAMS, tmp_path / "missing" / "q.prototxt")


def test_skipped_fields_are_noted_in_the_written_file(tmp_path):
    source = tmp_path / "net.prototxt"
    source.write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" fork_param { a: 1 }\n'
        "        inner_product_param { num_output: 2 } }\n"
    )
    model = read_caffe(source)
    text = write_ristretto_prototxt(model, {}, tmp_path / "q.prototxt").read_text()
    assert (
        "# fields of the source rsim did not carry over (line:column message.field): "
        "2:62 LayerParameter.fork_param\n"
    ) in text
