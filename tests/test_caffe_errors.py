"""Every mistake a user can make with Caffe files is one RsimError line naming the file and what
went wrong: syntax (line and column), caffemodel/prototxt mismatches (layer and both shapes),
unsupported layer types (with the supported ones), missing files, solver or V0 files."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_reference import REAL, wire_blob, wire_bytes

import rsim
from formats.errors import RsimError
from rsim.frontends.caffe import read_caffe

LENET = REAL / "caffe-lenet"
CONV_PROTOTXT = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


def error_of(call) -> str:
    with pytest.raises(RsimError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def _conv_caffemodel(*blobs: np.ndarray, name: str = "conv") -> bytes:
    layer = wire_bytes(1, name) + wire_bytes(2, "Convolution")
    layer += b"".join(wire_bytes(7, wire_blob(b)) for b in blobs)
    return wire_bytes(100, layer)


@pytest.fixture
def conv_net(tmp_path):
    path = tmp_path / "conv.prototxt"
    path.write_text(CONV_PROTOTXT)
    return path


@pytest.mark.parametrize(
    "text, where, detail",
    [
        ('layer {\n  name: "a"\n  type: "ReLU"\n  bottom: "x" top "y"\n}\n', ":4:19:", "Expected"),
        ('layer { name: "a" type: "ReLU"\n', ":1:25:", 'Expected "}"'),
        ("layer { convolution_param { pad: -1 } }\n", ":1:34:", "Value out of range: -1"),
        ("layers { type: CONVOLUTIONAL }\n", ":1:16:", "CONVOLUTIONAL"),
    ],
)
def test_a_malformed_prototxt_names_line_and_column(tmp_path, text, where, detail):
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    message = error_of(lambda: read_caffe(path))
    assert message.startswith(f"{path}{where} not a valid network prototxt: ")
    assert detail in message


def test_a_caffemodel_that_does_not_fit_names_the_layer_and_both_shapes(tmp_path, conv_net):
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 5, 5)), np.zeros(4)))
    message = error_of(lambda: read_caffe(conv_net, weights))
    assert message == (
        f"{weights}: layer 'conv': the weight blob has shape [4, 3, 5, 5]; "
        "the prototxt gives [4, 3, 3, 3]"
    )
    weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 3, 3))))
    assert "holds 1 blobs; the prototxt's layer needs 2 (weight, bias)" in error_of(
        lambda: read_caffe(conv_net, weights)
    )
    weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 3, 3)), np.zeros(4), name="other"))
    assert "layer 'conv' is missing: the caffemodel holds no weights for it" in error_of(
        lambda: read_caffe(conv_net, weights)
    )


def test_a_corrupt_caffemodel_is_named(tmp_path, conv_net):
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 3, 3)), np.zeros(4))[:-7])
    assert "is not a readable caffemodel (truncated or corrupt file)" in error_of(
        lambda: read_caffe(conv_net, weights)
    )


def test_an_unknown_layer_type_is_named_with_the_supported_ones(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(CONV_PROTOTXT + 'layer { name: "p" type: "PReLU" bottom: "y" top: "z" }\n')
    message = error_of(lambda: read_caffe(path))
    assert message.startswith(
        f"{path}: layer 'p' has type 'PReLU', which rsim does not support; supported types: "
    )
    assert all(t in message for t in ("Convolution", "ConvolutionRistretto", "Pooling", "LRN"))


def test_missing_files_are_named(tmp_path, conv_net):
    assert error_of(lambda: read_caffe(conv_net, tmp_path / "none.caffemodel")) == (
        f"weights file {tmp_path / 'none.caffemodel'} does not exist"
    )
    assert error_of(lambda: rsim.load(conv_net, weights=tmp_path / "none.caffemodel")) == (
        f"weights file {tmp_path / 'none.caffemodel'} does not exist"
    )
    assert error_of(lambda: read_caffe(tmp_path / "none.prototxt")) == (
        f"model file {tmp_path / 'none.prototxt'} does not exist"
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        ('layer { name: "m" type: "Eltwise" bottom: "y" bottom: "y" top: "m" '
         "eltwise_param { operation: MAX } }", "operation MAX is not supported yet"),
        ('layer { name: "p" type: "Pooling" bottom: "y" top: "p" pooling_param { pool: MAX '
         "kernel_size: 1 stride: 4 } }", "places a last window wholly outside the 6x6 input"),
        ('layer { name: "p" type: "Pooling" bottom: "y" top: "p" pooling_param { pool: STOCHASTIC '
         "kernel_size: 2 } }", "pool STOCHASTIC is not supported"),
        ('layer { name: "r" type: "ReLU" bottom: "nowhere" top: "r" }',
         "reads blob 'nowhere', which no earlier layer writes"),
        ('layer { name: "n" type: "LRN" bottom: "y" top: "n" lrn_param { local_size: 4 } }',
         "local_size 4 must be odd"),
        ('layer { name: "b" type: "BatchNorm" bottom: "y" top: "y" '
         "batch_norm_param { use_global_stats: false } }", "use_global_stats is false"),
        ('layer { name: "c" type: "Convolution" bottom: "y" top: "c" '
         "convolution_param { num_output: 3 kernel_size: 1 group: 2 } }",
         "group 2 does not divide num_output 3"),
    ],
)  # fmt: skip
def test_unsupported_layer_settings_name_the_layer(tmp_path, extra, expected):
    path = tmp_path / "net.prototxt"
    path.write_text(CONV_PROTOTXT + extra + "\n")
    message = error_of(lambda: read_caffe(path))
    assert message.startswith(f"{path}: layer ") and expected in message


def test_solver_and_v0_files_are_recognised(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "train_val.prototxt"\nbase_lr: 0.01\nsolver_mode: GPU\n')
    assert error_of(lambda: read_caffe(solver)) == (
        f"{solver} is a Caffe solver description (its net is 'train_val.prototxt'), not a "
        "network; pass the network prototxt"
    )
    v0 = tmp_path / "v0.prototxt"
    v0.write_text('layers { layer { name: "conv1" type: "conv" } bottom: "data" top: "c" }\n')
    assert "uses the pre-2014 V0 layer format" in error_of(lambda: read_caffe(v0))
    empty = tmp_path / "empty.prototxt"
    empty.write_text('name: "nothing"\n')
    assert error_of(lambda: read_caffe(empty)) == (
        f"{empty} defines no layers; is it a Caffe network prototxt?"
    )


def test_a_binary_file_given_as_prototxt_is_named(tmp_path):
    path = tmp_path / "weights.prototxt"
    path.write_bytes(b"\x0a\x03abc\xff\xfe")
    assert "is not a text prototxt" in error_of(lambda: read_caffe(path))


@pytest.mark.parametrize(
    "param, expected",
    [
        ("convolution_param { num_output: 2 kernel_size: 3 stride_h: 2 }", "stride [2, 0] must be"),
        ("convolution_param { num_output: 2 kernel_size: 0 }", "kernel size [0, 0] must be"),
        ("convolution_param { num_output: 2 kernel_h: 3 }", "give both kernel_h and kernel_w"),
        ("convolution_param { num_output: 2 kernel_size: 3 kernel_w: 3 }", "not both"),
        ("convolution_param { num_output: 2 kernel_size: 1 kernel_size: 2 kernel_size: 3 }",
         "kernel_size has 3 values; rsim supports 2-D layers only"),
    ],
)  # fmt: skip
def test_impossible_convolution_parameters_are_named(tmp_path, param, expected):
    path = tmp_path / "net.prototxt"
    path.write_text(CONV_PROTOTXT + f'layer {{ name: "c2" type: "Convolution" bottom: "y" '
                    f'top: "z" {param} }}\n')  # fmt: skip
    message = error_of(lambda: read_caffe(path))
    assert message.startswith(f"{path}: layer 'c2' (Convolution): ") and expected in message


@pytest.mark.parametrize("case", ["malformed", "mismatch", "unknown type", "missing weights"])
def test_each_bad_caffe_input_is_one_stderr_line_and_exit_2_on_the_cli(tmp_path, conv_net, case):
    from click.testing import CliRunner

    from rsim.cli import cli

    model, weights = conv_net, tmp_path / "w.caffemodel"
    weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 3, 3), np.float32),
                                         np.zeros(4, np.float32)))
    if case == "malformed":
        model = tmp_path / "bad.prototxt"
        model.write_text('layer { name: "a" type: "ReLU"\n')
    elif case == "mismatch":
        weights.write_bytes(_conv_caffemodel(np.zeros((4, 3, 5, 5), np.float32),
                                             np.zeros(4, np.float32)))
    elif case == "unknown type":
        model = tmp_path / "odd.prototxt"
        model.write_text(CONV_PROTOTXT.replace('"Convolution"', '"Crop3D"'))
    else:
        weights = tmp_path / "absent.caffemodel"
    result = CliRunner().invoke(cli, ["info", str(model), "--weights", str(weights)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsim: error: ")
    assert {"malformed": ":1:25:", "mismatch": "'conv'", "unknown type": "Crop3D",
            "missing weights": "absent.caffemodel"}[case] in lines[0]
