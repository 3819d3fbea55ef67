"""The Caffe frontend's float path against independent oracles: onnxruntime running an ONNX graph
written straight from the Caffe layers and blobs (every version of every Caffe blob compared),
Caffe's pooling size and average-divisor rules written out in the test, and a loop reference of
Caffe's WITHIN_CHANNEL LRN."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_reference import REAL, caffe_ave_divisors, caffe_onnx_oracle, caffe_pooled_size

from formats.errors import RsimError
from rsim.frontends.caffe import read_caffe
from rsim.network import Layer

REL_TOLERANCE = 1e-5

# a small net with what the real prototxts lack: rectangular kernels, strides and pads, leaky
# ReLU, dilation, groups, in-place BatchNorm + Scale, Split, WITHIN_CHANNEL LRN, Deconvolution,
# Eltwise SUM with coefficients and PROD, Sigmoid, TanH, MAX pooling whose last window Caffe
# drops, AVE pooling whose last window hangs past the padding, global MAX pooling, Dropout,
# Flatten, a transposed InnerProduct
COVERAGE_PROTOTXT = """
name: "coverage"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 19 dim: 17 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_h: 5 kernel_w: 3 stride_h: 2 stride_w: 1
                            pad_h: 2 pad_w: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.001 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 3 pad: 1 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 2 dilation: 2 group: 2 } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" batch_norm_param { eps: 0.001 } }
layer { name: "scale2" type: "Scale" bottom: "conv2" top: "conv2" scale_param { bias_term: true } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "split2" type: "Split" bottom: "conv2" top: "conv2a" top: "conv2b" }
layer { name: "branch_a" type: "Convolution" bottom: "conv2a" top: "branch_a"
        convolution_param { num_output: 8 kernel_size: 1 bias_term: false } }
layer { name: "norm_a" type: "LRN" bottom: "branch_a" top: "norm_a"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "up_b" type: "Deconvolution" bottom: "conv2b" top: "up_b"
        convolution_param { num_output: 8 kernel_size: 4 stride: 2 pad: 1 group: 2 } }
layer { name: "pool_b" type: "Pooling" bottom: "up_b" top: "pool_b"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "norm_a" bottom: "pool_b" bottom: "conv2a" top: "sum"
        eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 } }
layer { name: "sig" type: "Sigmoid" bottom: "sum" top: "sig" }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "pool_b" top: "prod"
        eltwise_param { operation: PROD } }
layer { name: "cat" type: "Concat" bottom: "sum" bottom: "prod" top: "cat" }
layer { name: "pool3" type: "Pooling" bottom: "cat" top: "pool3"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "gpool" type: "Pooling" bottom: "cat" top: "gpool"
        pooling_param { pool: MAX global_pooling: true } }
layer { name: "drop3" type: "Dropout" bottom: "pool3" top: "drop3" }
layer { name: "flat" type: "Flatten" bottom: "drop3" top: "flat" }
layer { name: "fc4" type: "InnerProduct" bottom: "flat" top: "fc4"
        inner_product_param { num_output: 16 transpose: true } }
layer { name: "tanh4" type: "TanH" bottom: "fc4" top: "fc4" }
layer { name: "drop4" type: "Dropout" bottom: "fc4" top: "fc4" }
layer { name: "fc5" type: "InnerProduct" bottom: "fc4" top: "fc5"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc5" top: "prob" }
"""

# (prototxt, caffemodel or None for random weights, input shape, input scale)
REAL_CASES = {
    "lenet": ("caffe-lenet/lenet.prototxt", "caffe-lenet/lenet_iter_10000.caffemodel",
              (3, 1, 28, 28), 1.0),
    "cifar10_quick_v1": ("caffe-cifar10/v1-format/cifar10_quick.prototxt",
                         "caffe-cifar10/v1-format/cifar10_quick_iter_5000.caffemodel",
                         (2, 3, 32, 32), 128.0),
    "cifar10_full_v1": ("caffe-cifar10/v1-format/cifar10_full.prototxt",
                        "caffe-cifar10/v1-format/cifar10_full_iter_70000.caffemodel",
                        (2, 3, 32, 32), 128.0),
    "squeezenet_v1.0_random": ("caffe-squeezenet/v1.0/deploy.prototxt", None,
                               (1, 3, 227, 227), 128.0),
    "googlenet_random": ("caffe-bvlc-deploy/bvlc_googlenet.deploy.prototxt", None,
                         (1, 3, 224, 224), 128.0),
}  # fmt: skip


def max_relative_errors(model, x: np.ndarray) -> dict[str, float]:
    """IR tensor -> max |rsim - onnxruntime| / max |onnxruntime|, for every version of every
    Caffe blob the IR keeps; also checks that both sides version each blob alike. A version the
    passes folded away (a convolution's output before its BatchNorm/Scale) must be an alias of a
    later version of the same blob."""
    network = model.network
    want = caffe_onnx_oracle(model, {network.inputs[0]: x})
    got = network.run_float(x, collect=True)
    errors = {}
    for blob, values in want.items():
        names = model.blob_versions[blob]
        assert len(names) == len(values), f"{blob}: rsim versions {names}, oracle {len(values)}"
        for index, (name, value) in enumerate(zip(names, values, strict=True)):
            kept = network.resolve(name)
            if kept in names[index + 1:]:
                continue  # folded into a later version (a BatchNorm/Scale after a conv)
            name = kept  # the tensor itself, or what a Split/Dropout top is an alias of
            assert got[name].shape == value.shape, name
            errors[name] = float(np.abs(got[name] - value).max() / np.abs(value).max())
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REAL_CASES))
def test_real_net_agrees_with_onnxruntime_on_every_blob(case):
    prototxt, weights, shape, scale = REAL_CASES[case]
    if not (REAL / prototxt).exists():
        pytest.skip(f"{REAL / prototxt} is not present")
    model = read_caffe(REAL / prototxt, REAL / weights if weights else None)
    x = (np.random.default_rng(1).uniform(-1, 1, shape) * scale).astype(np.float32)
    errors = max_relative_errors(model, x)
    assert len(errors) >= len(model.network.layers) // 2
    assert max(errors.values()) <= REL_TOLERANCE, max(errors.items(), key=lambda e: e[1])


def test_coverage_net_agrees_with_onnxruntime_on_every_blob(tmp_path):
    path = tmp_path / "coverage.prototxt"
    path.write_text(COVERAGE_PROTOTXT)
    model = read_caffe(path)
    assert model.random_weights
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 19, 17)).astype(np.float32)
    errors = max_relative_errors(model, x)
    # conv2's BatchNorm and Scale fold into it: conv2@bn2 is no tensor of its own any more
    assert model.network.resolve("conv2@bn2") == "conv2@scale2"
    assert {"conv2@scale2", "conv2@relu2", "sum", "prod", "gpool", "prob"} <= set(errors)
    assert max(errors.values()) <= REL_TOLERANCE, max(errors.items(), key=lambda e: e[1])
    # the pooled sizes exercise Caffe's rules: pool1's last column window starts in the padding
    # and is dropped; pool3's last windows hang past the padding
    assert model.network.shape("pool1")[2:] == (4, 6)
    assert model.network.shape("pool3")[2:] == (3, 4)


def test_random_weights_are_seeded_and_fixed(tmp_path):
    path = tmp_path / "coverage.prototxt"
    path.write_text(COVERAGE_PROTOTXT)
    first, second = read_caffe(path), read_caffe(path)
    assert first.blobs.keys() == second.blobs.keys()
    for name, blobs in first.blobs.items():
        for a, b in zip(blobs, second.blobs[name], strict=True):
            np.testing.assert_array_equal(a, b)


POOL_GRID = [
    (size, kernel, stride, pad)
    for size in (1, 2, 3, 5, 6, 7, 8, 13)
    for kernel in (1, 2, 3, 4)
    for stride in (1, 2, 3, 5)
    for pad in range(kernel)
    if size + 2 * pad >= kernel
]


def _pool_prototxt(path, size, kernel, stride, pad, method):
    path.write_text(
        f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 2 '
        f"dim: {size} dim: {size + 1} }} }} }}\n"
        f'layer {{ name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param {{ pool: {method} '
        f"kernel_h: {kernel} kernel_w: {kernel} stride: {stride} pad: {pad} }} }}\n"
    )
    return path


def _caffe_pool_loops(x, kernel, stride, pad, method, out_hw):
    """Caffe's PoolingLayer::Forward_cpu, loop by loop, in float64."""
    n, c, h, w = x.shape
    y = np.empty((n, c) + out_hw)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            hs, ws = i * stride - pad, j * stride - pad
            he, we = min(hs + kernel, h + pad), min(ws + kernel, w + pad)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we].astype(np.float64)
            if method == "MAX":
                y[:, :, i, j] = window.max(axis=(2, 3))
            else:
                y[:, :, i, j] = window.sum(axis=(2, 3)) / size
    return y


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_follows_caffes_size_rule_and_divisors(tmp_path, method):
    rng = np.random.default_rng(3)
    checked = refused = 0
    for size, kernel, stride, pad in POOL_GRID:
        path = _pool_prototxt(tmp_path / "pool.prototxt", size, kernel, stride, pad, method)
        out_hw = (caffe_pooled_size(size, kernel, stride, pad),
                  caffe_pooled_size(size + 1, kernel, stride, pad))  # fmt: skip
        # without padding Caffe keeps a last window that starts past the input
        outside = any(
            (o - 1) * stride - pad >= s for o, s in zip(out_hw, (size, size + 1), strict=True)
        )
        if outside:
            with pytest.raises(RsimError, match="wholly outside"):
                read_caffe(path)
            refused += 1
            continue
        network = read_caffe(path).network
        assert network.shape("p")[2:] == out_hw, (size, kernel, stride, pad)
        x = rng.normal(0, 1, (1, 2, size, size + 1)).astype(np.float32)
        got = network.run_float(x, dtype=np.float64)["p"]
        want = _caffe_pool_loops(x, kernel, stride, pad, method, out_hw)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked > 200 and refused > 0


def test_ave_divisor_reference_counts_padding_but_not_the_overhang():
    # size 8, kernel 3, stride 2, pad 1: windows start at -1, 1, 3, 5, 7; the last covers 7 and
    # the padding cell 8, not 9 (past the padding)
    assert caffe_pooled_size(8, 3, 2, 1) == 5
    np.testing.assert_array_equal(caffe_ave_divisors(8, 3, 2, 1, 5), [3, 3, 3, 3, 2])


def _within_channel_lrn_loops(x, size, alpha, beta):
    """Caffe's WITHIN_CHANNEL LRN: x * (1 + alpha * mean of x^2 over a size x size window,
    zero padded, divided by size^2)^-beta, in float64."""
    n, c, h, w = x.shape
    pad = (size - 1) // 2
    y = np.empty(x.shape)
    for i in range(h):
        for j in range(w):
            window = x[:, :, max(i - pad, 0) : i - pad + size, max(j - pad, 0) : j - pad + size]
            mean = (window.astype(np.float64) ** 2).sum(axis=(2, 3)) / size**2
            y[:, :, i, j] = x[:, :, i, j] * (1 + alpha * mean) ** -beta
    return y


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn_within_channel_matches_caffes_formula(size):
    x = np.random.default_rng(4).normal(0, 2, (2, 3, 6, 5))
    layer = Layer("norm", "lrn", ("x",), ("y",),
                  {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 1.0,
                   "region": "within_channel"})  # fmt: skip
    got = layer.forward(x, dtype=np.float64)
    np.testing.assert_allclose(got, _within_channel_lrn_loops(x, size, 0.3, 0.75), rtol=1e-13)


def test_lrn_region_defaults_to_across_channels():
    x = np.random.default_rng(5).normal(0, 2, (1, 6, 3, 3))
    attrs = {"size": 3, "alpha": 0.3, "beta": 0.75, "bias": 2.0}
    plain = Layer("n", "lrn", ("x",), ("y",), dict(attrs)).forward(x, dtype=np.float64)
    across = Layer("n", "lrn", ("x",), ("y",), dict(attrs, region="across_channels"))
    np.testing.assert_array_equal(plain, across.forward(x, dtype=np.float64))
    squares = np.pad(x**2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    sums = squares[:, :-2] + squares[:, 1:-1] + squares[:, 2:]
    np.testing.assert_allclose(plain, x / (2.0 + 0.1 * sums) ** 0.75, rtol=1e-13)


AXES_PROTOTXT = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
        inner_product_param { num_output: 6 axis: 2 } }
layer { name: "flat" type: "Flatten" bottom: "x" top: "flat" flatten_param { axis: 1 end_axis: 2 } }
layer { name: "soft" type: "Softmax" bottom: "x" top: "soft" softmax_param { axis: -2 } }
layer { name: "one" type: "Scale" bottom: "x" top: "one"
        scale_param { num_axes: 0 bias_term: true } }
layer { name: "fc2" type: "InnerProduct" bottom: "x" top: "fc2"
        inner_product_param { num_output: 4 } }
layer { name: "bn" type: "BatchNorm" bottom: "fc2" top: "bn" }
layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" }
"""


def test_axis_parameters_follow_caffes_shapes(tmp_path):
    """InnerProduct from axis 2, Flatten of axes 1..2, Softmax on a negative axis, a single
    Scale (num_axes 0) and BatchNorm/Scale on 2-D data, against numpy on the same blobs."""
    path = tmp_path / "axes.prototxt"
    path.write_text(AXES_PROTOTXT)
    model = read_caffe(path)
    x = np.random.default_rng(6).normal(0, 1, (2, 3, 4, 5)).astype(np.float32).astype(np.float64)
    got = model.network.run_float(x, collect=True, dtype=np.float64)
    b = {name: [v.astype(np.float64) for v in blobs] for name, blobs in model.blobs.items()}
    w, bias = b["fc"]
    np.testing.assert_allclose(got["fc"], x.reshape(2, 3, 20) @ w.T + bias, rtol=1e-12)
    np.testing.assert_array_equal(got["flat"], x.reshape(2, 12, 5))
    e = np.exp(x - x.max(axis=2, keepdims=True))
    np.testing.assert_allclose(got["soft"], e / e.sum(axis=2, keepdims=True), rtol=1e-12)
    gamma, beta = b["one"]
    assert gamma.shape == beta.shape == ()
    np.testing.assert_allclose(got["one"], x * gamma + beta, rtol=1e-12)
    fc2 = x.reshape(2, -1) @ b["fc2"][0].T + b["fc2"][1]
    mean, var, factor = b["bn"]
    bn = (fc2 - mean / factor) / np.sqrt(var / factor + 1e-5)
    # BatchNorm and Scale fold into fc2 (one reader each): "bn" is an alias of "sc"
    assert model.network.resolve("bn") == "sc" and "bn" not in got
    np.testing.assert_allclose(got["sc"], bn * b["sc"][0], rtol=1e-6)
    assert [layer.op for layer in model.network.layers] == [
        "reshape", "gemm", "reshape", "softmax", "batchnorm", "flatten", "gemm",
    ]  # fmt: skip
