"""The V1 upgrade: the old-format CIFAR-10 prototxts give the same networks as their V2
counterparts (same layers, attributes, weights, outputs bit for bit), and the V1-only fields
(blobs_lr, weight_decay, data-layer transform fields) land where Caffe's upgrade puts them."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_reference import REAL

from rsim.frontends.caffe import read_caffe

CIFAR = REAL / "caffe-cifar10"
pytestmark = pytest.mark.skipif(not CIFAR.is_dir(), reason=f"{CIFAR} is not present")


def assert_same_network(a, b):
    assert a.input_specs == b.input_specs and a.outputs == b.outputs
    assert a.aliases == b.aliases
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.name, x.op, x.inputs, x.outputs, x.attrs) == (
            y.name, y.op, y.inputs, y.outputs, y.attrs
        )  # fmt: skip
        assert x.params.keys() == y.params.keys()
        for key in x.params:
            np.testing.assert_array_equal(x.params[key], y.params[key])


@pytest.mark.parametrize(
    "name, weights",
    [("cifar10_quick", "cifar10_quick_iter_5000"), ("cifar10_full", "cifar10_full_iter_70000")],
)
def test_v1_prototxt_and_its_v2_counterpart_give_one_network(name, weights):
    caffemodel = CIFAR / "v1-format" / f"{weights}.caffemodel"
    v1 = read_caffe(CIFAR / "v1-format" / f"{name}.prototxt", caffemodel)
    v2 = read_caffe(CIFAR / f"{name}.prototxt", caffemodel)
    assert [layer.type for layer in v1.net.layer] == [layer.type for layer in v2.net.layer]
    assert_same_network(v1.network, v2.network)
    x = np.random.default_rng(0).uniform(-128, 128, (4, 3, 32, 32)).astype(np.float32)
    out1, out2 = v1.network.run_float(x), v2.network.run_float(x)
    np.testing.assert_array_equal(out1["prob"], out2["prob"])
    assert v1.blob_versions == v2.blob_versions


def test_v1_train_test_prototxt_selects_the_same_test_net():
    v1 = read_caffe(CIFAR / "v1-format" / "cifar10_quick_train_test.prototxt")
    v2 = read_caffe(CIFAR / "cifar10_quick_train_test.prototxt")
    for model in (v1, v2):
        model.network.bind({"data": (2, 3, 32, 32)})
    assert_same_network(v1.network, v2.network)
    assert [(s.name, s.prediction, s.label) for s in v1.scores] == [
        (s.name, s.prediction, s.label) for s in v2.scores
    ]
    assert v1.transform.mean_file == v2.transform.mean_file
    assert str(v1.transform.mean_file) == "examples/cifar10/mean.binaryproto"
    conv1 = next(layer for layer in v1.net.layer if layer.name == "conv1")
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 1)]


def test_v1_only_fields_move_where_caffe_upgrades_them(tmp_path):
    path = tmp_path / "old.prototxt"
    path.write_text(
        'layers { name: "d" type: DATA top: "data" top: "label"\n'
        "  data_param { batch_size: 7 scale: 0.5 crop_size: 5 mean_file: \"m.binaryproto\" } }\n"
        'layers { name: "fc" type: INNER_PRODUCT bottom: "data" top: "fc"\n'
        '  blobs_lr: 1 blobs_lr: 2 weight_decay: 3 param: "shared_w"\n'
        "  blob_share_mode: PERMISSIVE\n"
        "  inner_product_param { num_output: 2 } }\n"
        'layers { name: "acc" type: ACCURACY bottom: "fc" bottom: "label" top: "acc"\n'
        "  include { phase: TEST } accuracy_param { top_k: 2 } }\n"
    )
    model = read_caffe(path)
    data, fc, acc = model.net.layer
    assert (data.type, fc.type, acc.type) == ("Data", "InnerProduct", "Accuracy")
    assert not data.data_param.HasField("scale") and data.data_param.batch_size == 7
    assert (data.transform_param.scale, data.transform_param.crop_size) == (0.5, 5)
    assert [(p.name, p.share_mode, p.lr_mult, p.decay_mult) for p in fc.param] == [
        ("shared_w", 1, 1.0, 3.0), ("", 0, 2.0, 1.0)
    ]  # fmt: skip
    assert model.network.input_specs == {"data": (7, None, 5, 5)}
    assert [(s.name, s.top_k) for s in model.scores] == [("acc", 2)]
