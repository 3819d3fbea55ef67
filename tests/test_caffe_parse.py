"""Reading Caffe files: every real prototxt, Ristretto's quantization_param (checked against the
files' text read with regular expressions), caffemodel fields written by hand in the protobuf
wire format, Caffe's phase rules, skipped fields, data layers, transforms and the naming rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from caffe_reference import REAL, quantization_blocks, wire_blob, wire_bytes, wire_int

import rsim
from formats.errors import RsimError
from rsim.frontends.caffe import CaffeTransform, RistrettoParams, read_caffe

PROTOTXTS = sorted(REAL.glob("**/*.prototxt"))
SOLVERS = {"lenet_solver.prototxt", "solver_finetune.prototxt"}
# a sample shape for the nets whose data layer leaves it to the database
SAMPLE_SHAPES = {"caffe-lenet": (1, 28, 28), "caffe-cifar10": (3, 32, 32),
                 "caffe-squeezenet": (3, 227, 227)}  # fmt: skip
RISTRETTO_LENET = REAL / "caffe-lenet" / "ristretto_lenet_quantized_8bit_w4.prototxt"
RISTRETTO_SQUEEZENET = REAL / "caffe-squeezenet" / "ristretto" / "squeezenet_v1.0_quantized_dfp8.prototxt"  # noqa: E501
LENET = REAL / "caffe-lenet"

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is not present")


@needs_real
def test_the_real_folder_has_the_prototxts():
    assert len(PROTOTXTS) >= 20


@pytest.mark.parametrize("path", PROTOTXTS, ids=lambda p: str(p.relative_to(REAL)))
def test_every_real_prototxt_reads(path):
    if path.name in SOLVERS:
        with pytest.raises(RsimError, match=r"is a Caffe solver description \(its net is"):
            read_caffe(path)
        return
    model = read_caffe(path)
    network = model.network
    assert model.random_weights and network.outputs
    if not network.is_bound:
        sample = SAMPLE_SHAPES[path.relative_to(REAL).parts[0]]
        network.bind({network.inputs[0]: (2,) + sample})
    shapes = network.shapes(2)
    assert all(shapes[network.resolve(o)][0] == 2 for o in network.outputs)
    assert set(model.blobs) == {
        layer.name for layer in network.layers if layer.op in ("conv", "conv_transpose", "gemm")
    } | {layer.name for layer in model.test_net.layer if layer.type in ("BatchNorm", "Scale")}


def test_ristretto_lenet_has_the_files_parameters():
    if not RISTRETTO_LENET.exists():
        pytest.skip(f"{RISTRETTO_LENET} is not present")
    model = read_caffe(RISTRETTO_LENET, input_shapes={"data": (1, 1, 28, 28)})
    dfp = dict(precision="DYNAMIC_FIXED_POINT", rounding_scheme="NEAREST", bw_layer_in=8,
               bw_layer_out=8, bw_params=4)  # fmt: skip
    assert model.quantization == {
        "conv1": RistrettoParams(**dfp, fl_layer_in=8, fl_layer_out=6, fl_params=3),
        "conv2": RistrettoParams(**dfp, fl_layer_in=6, fl_layer_out=4, fl_params=5),
        "ip1": RistrettoParams(**dfp, fl_layer_in=4, fl_layer_out=4, fl_params=6),
        "ip2": RistrettoParams(**dfp, fl_layer_in=4, fl_layer_out=3, fl_params=4),
    }
    assert [layer.op for layer in model.network.layers if layer.name in model.quantization] == [
        "conv", "conv", "gemm", "gemm"
    ]  # fmt: skip


@pytest.mark.parametrize("path", [RISTRETTO_LENET, RISTRETTO_SQUEEZENET], ids=lambda p: p.name)
def test_ristretto_parameters_equal_the_text_of_the_file(path):
    if not path.exists():
        pytest.skip(f"{path} is not present")
    blocks = quantization_blocks(path)
    quantization = read_caffe(path).quantization
    assert set(quantization) == set(blocks) and len(blocks) in (4, 26)
    defaults = RistrettoParams()
    for name, fields in blocks.items():
        params = quantization[name]
        for field in dataclasses.fields(RistrettoParams):
            text = fields.get(field.name)
            expected = getattr(defaults, field.name) if text is None else text
            if field.name not in ("precision", "rounding_scheme") and text is not None:
                expected = int(text)
            assert getattr(params, field.name) == expected, (name, field.name)


def test_ristretto_defaults_are_32_bit_fixed_point_with_fl_16():
    assert dataclasses.asdict(RistrettoParams()) == {
        "precision": "DYNAMIC_FIXED_POINT", "rounding_scheme": "NEAREST", "bw_layer_in": 32,
        "bw_layer_out": 32, "bw_params": 32, "fl_layer_in": 16, "fl_layer_out": 16,
        "fl_params": 16, "mant_bits": 23, "exp_bits": 8, "exp_min": -8, "exp_max": -1,
    }  # fmt: skip
    with pytest.raises(RsimError, match="precision 'FIXED_POINT' is not one of"):
        RistrettoParams(precision="FIXED_POINT")


FC_PROTOTXT = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "fc" type: "FcRistretto" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
"""


def _fc_caffemodel(quantization_field: int | None, legacy: bool = False) -> bytes:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([0.5, -0.5], dtype=np.float32)
    layer = wire_bytes(1, "fc") + wire_bytes(2, "FcRistretto")
    layer += wire_bytes(7, wire_blob(w, legacy)) + wire_bytes(7, wire_blob(b, legacy))
    if quantization_field:
        # precision MINIFLOAT, mant_bits 4, exp_bits 3, fl_params -2
        layer += wire_bytes(quantization_field, wire_int(1, 1) + wire_int(9, 4) + wire_int(10, 3)
                            + wire_int(8, -2))  # fmt: skip
    return wire_bytes(100, layer)


@pytest.mark.parametrize("field", [149, 148, 147, None])
def test_caffemodel_quantization_is_read_from_each_field_ristretto_used(tmp_path, field):
    (tmp_path / "fc.prototxt").write_text(FC_PROTOTXT)
    (tmp_path / "fc.caffemodel").write_bytes(_fc_caffemodel(field))
    model = read_caffe(tmp_path / "fc.prototxt", tmp_path / "fc.caffemodel")
    assert model.quantization == {"fc": RistrettoParams()}
    if field is None:
        assert model.weights_quantization == {}
    else:
        assert model.weights_quantization == {
            "fc": RistrettoParams(precision="MINIFLOAT", mant_bits=4, exp_bits=3, fl_params=-2)
        }
    y = model.network.run_float(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))["y"]
    np.testing.assert_array_equal(y, [[8.5, 25.5]])


def test_legacy_4d_blobs_fit_the_shapes_caffe_pads_with_ones(tmp_path):
    (tmp_path / "fc.prototxt").write_text(FC_PROTOTXT)
    (tmp_path / "fc.caffemodel").write_bytes(_fc_caffemodel(None, legacy=True))
    model = read_caffe(tmp_path / "fc.prototxt", tmp_path / "fc.caffemodel")
    assert [b.shape for b in model.blobs["fc"]] == [(2, 3), (2,)]
    y = model.network.run_float(np.array([[1.0, 0.0, -1.0]], dtype=np.float32))["y"]
    np.testing.assert_array_equal(y, [[-1.5, -2.5]])


PHASES_PROTOTXT = """
state { stage: "deploy" }
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "train_only" type: "ReLU" bottom: "x" top: "a" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "x" top: "a" include { phase: TEST } }
layer { name: "not_test" type: "Sigmoid" bottom: "a" top: "b" exclude { phase: TEST } }
layer { name: "no_rules" type: "TanH" bottom: "a" top: "b" }
layer { name: "staged" type: "ReLU" bottom: "b" top: "c" include { stage: "deploy" } }
layer { name: "other_stage" type: "ReLU" bottom: "b" top: "c" include { stage: "train" } }
layer { name: "not_deploy" type: "ReLU" bottom: "c" top: "d" include { not_stage: "deploy" } }
layer { name: "level_1" type: "ReLU" bottom: "c" top: "d" include { min_level: 1 } }
layer { name: "level_0" type: "Sigmoid" bottom: "c" top: "d" include { max_level: 0 } }
layer { name: "either" type: "ReLU" bottom: "d" top: "e" include { phase: TRAIN }
        include { stage: "deploy" } }
layer { name: "excluded_by_one" type: "ReLU" bottom: "e" top: "f" exclude { phase: TRAIN }
        exclude { stage: "deploy" } }
"""


def test_the_test_phase_follows_caffes_include_and_exclude_rules(tmp_path):
    path = tmp_path / "phases.prototxt"
    path.write_text(PHASES_PROTOTXT)
    model = read_caffe(path)
    kept = [layer.name for layer in model.test_net.layer]
    assert kept == ["x", "test_only", "no_rules", "staged", "level_0", "either"]
    assert [layer.op for layer in model.network.layers] == [
        "relu", "tanh", "relu", "sigmoid", "relu"
    ]  # fmt: skip
    assert model.network.outputs == ["e"]


def test_fields_outside_the_schema_are_skipped_and_listed(tmp_path):
    path = tmp_path / "extra.prototxt"
    path.write_text(
        'name: "n"\nfoo_net_flag: true\n'
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y"\n'
        "  python_param { module: \"m\" layer: 'L' param_str: \"a\" \"b\" }\n"
        "  relu_param { engine: CUDNN new_knob: -3 nested { a: [1, 2] b < c: 1 > } } }\n"
    )
    model = read_caffe(path)
    assert model.skipped_fields == (
        "2:1 NetParameter.foo_net_flag",
        "5:3 LayerParameter.python_param",
        "6:30 ReLUParameter.new_knob",
        "6:43 ReLUParameter.nested",
    )
    assert [layer.op for layer in model.network.layers] == ["relu"]


@needs_real
def test_score_layers_are_metadata_on_the_predictions():
    model = read_caffe(LENET / "lenet_train_test.prototxt")
    assert [(s.name, s.type, s.prediction, s.label, s.top_k) for s in model.scores] == [
        ("accuracy", "Accuracy", "ip2", "label", 1),
        ("loss", "SoftmaxWithLoss", "ip2", "label", None),
    ]
    assert model.network.inputs == ["data"] and model.network.outputs == ["ip2"]
    assert model.transform == CaffeTransform(
        scale=0.00390625, source=model.transform.source
    )  # fmt: skip
    squeezenet = read_caffe(REAL / "caffe-squeezenet" / "v1.1" / "train_val.prototxt")
    assert [(s.name, s.top_k) for s in squeezenet.scores] == [
        ("loss", None), ("accuracy", 1), ("accuracy_top5", 5)
    ]  # fmt: skip
    assert {s.prediction for s in squeezenet.scores} == {"pool10"}


@needs_real
def test_in_place_layers_write_new_versions_named_after_the_layer():
    model = read_caffe(REAL / "caffe-squeezenet" / "v1.0" / "deploy.prototxt")
    assert model.blob_versions["conv1"] == ["conv1", "conv1@relu_conv1"]
    by_name = {layer.name: layer for layer in model.network.layers}
    assert by_name["conv1"].outputs == ("conv1",)
    assert by_name["relu_conv1"].inputs == ("conv1",)
    assert by_name["relu_conv1"].outputs == ("conv1@relu_conv1",)
    assert by_name["pool1"].inputs == ("conv1@relu_conv1",)
    lenet = read_caffe(LENET / "lenet.prototxt")
    assert lenet.blob_versions["ip1"] == ["ip1", "ip1@relu1"]


def test_identities_alias_their_input(tmp_path):
    path = tmp_path / "split.prototxt"
    path.write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n'
        'layer { name: "s" type: "Split" bottom: "r" top: "r1" top: "r2" }\n'
        'layer { name: "d" type: "Dropout" bottom: "r1" top: "d" }\n'
        'layer { name: "a" type: "Eltwise" bottom: "d" bottom: "r2" top: "a" }\n'
    )
    network = read_caffe(path).network
    assert network.aliases == {"r1": "r", "r2": "r", "d": "r"}
    assert [(layer.op, layer.inputs) for layer in network.layers] == [
        ("relu", ("x",)), ("add", ("r", "r"))
    ]  # fmt: skip


def test_net_level_inputs_become_an_input_layer(tmp_path):
    path = tmp_path / "inputs.prototxt"
    path.write_text(
        'input: "a" input_shape { dim: 2 dim: 3 } input: "b" input_shape { dim: 2 dim: 3 }\n'
        'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }\n'
    )
    model = read_caffe(path)
    assert [(layer.name, layer.type, list(layer.top)) for layer in model.net.layer] == [
        ("input", "Input", ["a", "b"]), ("sum", "Eltwise", ["s"])
    ]  # fmt: skip
    assert model.network.input_specs == {"a": (2, 3), "b": (2, 3)}
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    np.testing.assert_array_equal(model.network.run_float({"a": a, "b": b})["s"], a + b)


DATA_LAYERS = """
layer { name: "img" type: "ImageData" top: "img" top: "img_label"
        image_data_param { source: "list.txt" batch_size: 4 new_height: 40 new_width: 30
                           is_color: false } }
layer { name: "crop" type: "ImageData" top: "crop" top: "crop_label"
        transform_param { crop_size: 24 } image_data_param { source: "list.txt" } }
layer { name: "mem" type: "MemoryData" top: "mem" top: "mem_label"
        memory_data_param { batch_size: 5 channels: 2 height: 6 width: 7 } }
layer { name: "dummy" type: "DummyData" top: "d1" top: "d2"
        dummy_data_param { shape { dim: 3 dim: 8 } } }
layer { name: "lmdb" type: "Data" top: "lmdb" top: "lmdb_label" data_param { batch_size: 16 } }
layer { name: "h5" type: "HDF5Data" top: "h5" top: "h5_label" hdf5_data_param { batch_size: 8 } }
layer { name: "cat" type: "Concat" bottom: "d1" bottom: "d2" top: "cat" }
"""


def test_data_layers_give_what_the_prototxt_says_of_their_samples(tmp_path):
    path = tmp_path / "data.prototxt"
    path.write_text(DATA_LAYERS)
    with pytest.raises(RsimError, match=r"layer 'h5' \(HDF5Data\): the shape of 'h5' is not in"):
        read_caffe(path)
    model = read_caffe(path, input_shapes={"h5": (8, 10)})
    assert model.network.input_specs == {
        "img": (4, 1, 40, 30), "crop": (1, 3, 24, 24), "mem": (5, 2, 6, 7), "d1": (3, 8),
        "d2": (3, 8), "lmdb": (16, None, None, None), "h5": (None, None),
    }  # fmt: skip
    assert model.transforms["crop"].crop_size == 24


def test_transform_crops_the_centre_subtracts_the_mean_then_scales():
    x = np.arange(2 * 3 * 5 * 6, dtype=np.uint8).reshape(2, 3, 5, 6)
    transform = CaffeTransform(scale=0.5, mean_values=(1.0, 2.0, 3.0), crop_size=3)
    got = transform.apply(x)
    # height offset (5 - 3) // 2 = 1, width offset (6 - 3) // 2 = 1
    want = (x[:, :, 1:4, 1:4].astype(np.float32) - np.float32([1, 2, 3])[:, None, None]) * 0.5
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    one_mean = CaffeTransform(mean_values=(10.0,)).apply(x[0])
    np.testing.assert_array_equal(one_mean, x[0].astype(np.float32) - 10)
    with pytest.raises(RsimError, match="2 mean_value entries for 3-channel samples"):
        CaffeTransform(mean_values=(1.0, 2.0)).apply(x)


def test_transform_reads_a_binaryproto_mean_beside_the_prototxt(tmp_path):
    mean = np.random.default_rng(0).uniform(0, 255, (3, 5, 6)).astype(np.float32)
    (tmp_path / "mean.binaryproto").write_bytes(wire_blob(mean[None], legacy=True))
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" transform_param {\n'
        '  mean_file: "mean.binaryproto" crop_size: 4 scale: 0.25 } }\n'
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    )
    transform = read_caffe(tmp_path / "net.prototxt").transform
    assert transform.mean_file == tmp_path / "mean.binaryproto"
    x = np.random.default_rng(1).integers(0, 256, (2, 3, 5, 6)).astype(np.uint8)
    want = (x[:, :, 0:4, 1:5].astype(np.float32) - mean[:, 0:4, 1:5]) * np.float32(0.25)
    np.testing.assert_array_equal(transform.apply(x), want)
    missing = dataclasses.replace(transform, mean_file=tmp_path / "nowhere.binaryproto")
    with pytest.raises(RsimError, match="mean_file .*nowhere.binaryproto does not exist"):
        missing.apply(x)


@needs_real
def test_rsim_load_reads_prototxt_and_caffemodel_and_hashes_both():
    prototxt, weights = LENET / "lenet.prototxt", LENET / "lenet_iter_10000.caffemodel"
    with_weights = rsim.load(prototxt, weights=weights)
    assert with_weights.sha256 == read_caffe(prototxt, weights).network.sha256
    assert with_weights.sha256 != rsim.load(prototxt).sha256
    assert with_weights.sha256 != rsim.load(LENET / "lenet_train_test.prototxt", weights).sha256
    with pytest.raises(RsimError, match="holds Caffe weights; load the network prototxt"):
        rsim.load(weights)
