"""Independent references for the Caffe frontend tests.

`caffe_onnx_oracle` writes the TEST net of a read Caffe model as an ONNX graph with onnx.helper,
straight from the Caffe layer parameters and blobs (Caffe's semantics written out here, not
rsim's translation), so that onnxruntime can be the oracle of rsim's float path. Pooling uses
Caffe's output-size rule (`caffe_pooled_size`, written out below) and chooses explicit end pads
that give that size; Caffe's average divisor (padding cells count, cells past the padding do not)
is a constant correction map. `quantization_blocks` reads Ristretto `quantization_param` blocks
with regular expressions, without protobuf.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REAL = Path(__file__).parents[2] / "shared" / "real"
IR_VERSION = 8
OPSET = 13


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe PoolingLayer::Reshape (CEIL rounding): ceil((size + 2 pad - kernel) / stride) + 1,
    minus one when there is padding and the last window would start at or past size + pad."""
    pooled = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad > 0 and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def caffe_ave_divisors(size: int, kernel: int, stride: int, pad: int, pooled: int) -> np.ndarray:
    """Caffe's AVE pool_size along one axis: hend = min(hstart + kernel, size + pad) - hstart."""
    out = np.empty(pooled)
    for i in range(pooled):
        start = i * stride - pad
        out[i] = min(start + kernel, size + pad) - start
    return out


def _pair(p, name: str, default):
    """A 2-D Caffe parameter: `name_h`/`name_w` when set, else `name` (repeated in
    convolution_param: one value for both axes or one per axis), else `default`."""
    fields = p.DESCRIPTOR.fields_by_name
    if f"{name}_h" in fields and p.HasField(f"{name}_h"):
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    plural = "kernel_size" if name == "kernel" else name
    value = getattr(p, plural)
    values = list(value) if not isinstance(value, int) else [value] * p.HasField(plural)
    if not values:
        return default, default
    return int(values[0]), int(values[-1])


class _Oracle:
    def __init__(self, model, feeds: dict[str, np.ndarray]):
        self.model = model
        self.nodes, self.inits, self.inputs = [], [], []
        self.current: dict[str, str] = {}
        self.versions: dict[str, list[str]] = {}
        self.shapes: dict[str, tuple] = {}
        self.count = 0
        for name, x in feeds.items():
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, x.shape))
            self.current[name] = name
            self.versions[name] = [name]

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}#{self.count}"

    def const(self, value) -> str:
        name = self.fresh("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.fresh(op)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def model_of(self, outputs: list[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "caffe_oracle", self.inputs,
            [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in outputs],
            self.inits,
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model

    def shape_of(self, tensor: str) -> tuple[int, ...]:
        """The static shape of `tensor`, by ONNX shape inference on the graph so far."""
        if tensor in self.shapes:
            return self.shapes[tensor]
        inferred = onnx.shape_inference.infer_shapes(self.model_of([]), strict_mode=True)
        for value in list(inferred.graph.value_info) + list(inferred.graph.input):
            self.shapes[value.name] = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
        return self.shapes[tensor]

    def write(self, blob: str, tensor: str) -> None:
        self.versions.setdefault(blob, []).append(tensor)
        self.current[blob] = tensor

    def run(self, layers) -> None:
        for layer in layers:
            kind = layer.type.replace("Ristretto", "").replace("Fc", "InnerProduct")
            if kind in ("Input", "Data", "Silence", "Accuracy", "SoftmaxWithLoss"):
                continue
            x = [self.current[b] for b in layer.bottom]
            if kind in ("Dropout", "Split"):
                for top in layer.top:
                    if top != layer.bottom[0]:
                        self.versions[top] = [x[0]]
                        self.current[top] = x[0]
                continue
            self.write(layer.top[0], getattr(self, kind.lower())(layer, x))

    # ----- one method per Caffe layer type ----------------------------------------------------
    def blobs(self, layer):
        return [np.asarray(b, dtype=np.float32) for b in self.model.blobs[layer.name]]

    def conv_attrs(self, p):
        kh, kw = _pair(p, "kernel", None)
        ph, pw = _pair(p, "pad", 0)
        sh, sw = _pair(p, "stride", 1)
        dh, dw = _pair(p, "dilation", 1)
        return dict(kernel_shape=[kh, kw], pads=[ph, pw, ph, pw], strides=[sh, sw],
                    dilations=[dh, dw], group=int(p.group))  # fmt: skip

    def convolution(self, layer, x):
        p = layer.convolution_param
        inputs = [x[0]] + [self.const(b) for b in self.blobs(layer)]
        return self.node("Conv", inputs, **self.conv_attrs(p))

    def deconvolution(self, layer, x):
        p = layer.convolution_param
        inputs = [x[0]] + [self.const(b) for b in self.blobs(layer)]
        return self.node("ConvTranspose", inputs, **self.conv_attrs(p))

    def innerproduct(self, layer, x):
        p = layer.inner_product_param
        blobs = self.blobs(layer)
        flat = self.node("Flatten", [x[0]], axis=int(p.axis))
        inputs = [flat, self.const(blobs[0])] + ([self.const(blobs[1])] if len(blobs) > 1 else [])
        return self.node("Gemm", inputs, transB=0 if p.transpose else 1)

    def relu(self, layer, x):
        slope = layer.relu_param.negative_slope
        if slope:
            return self.node("LeakyRelu", x, alpha=float(slope))
        return self.node("Relu", x)

    def sigmoid(self, layer, x):
        return self.node("Sigmoid", x)

    def tanh(self, layer, x):
        return self.node("Tanh", x)

    def softmax(self, layer, x):
        return self.node("Softmax", x, axis=int(layer.softmax_param.axis))

    def flatten(self, layer, x):
        return self.node("Flatten", x, axis=int(layer.flatten_param.axis))

    def concat(self, layer, x):
        return self.node("Concat", x, axis=int(layer.concat_param.axis))

    def eltwise(self, layer, x):
        p = layer.eltwise_param
        if p.operation == 0:  # PROD
            product = x[0]
            for factor in x[1:]:
                product = self.node("Mul", [product, factor])
            return product
        coeffs = list(p.coeff) or [1.0] * len(x)
        terms = [t if c == 1 else self.node("Mul", [t, self.const(c)])
                 for t, c in zip(x, coeffs, strict=True)]  # fmt: skip
        return self.node("Sum", terms)

    def batchnorm(self, layer, x):
        mean, var, factor = self.blobs(layer)
        f = 0.0 if factor[0] == 0 else 1.0 / factor[0]
        c = mean.size
        return self.node(
            "BatchNormalization",
            [x[0], self.const(np.ones(c)), self.const(np.zeros(c)), self.const(mean * f),
             self.const(var * f)],
            epsilon=float(layer.batch_norm_param.eps),
        )  # fmt: skip

    def scale(self, layer, x):
        blobs = self.blobs(layer)
        view = (-1, 1, 1) if len(self.shape_of(x[0])) == 4 else (-1,)
        y = self.node("Mul", [x[0], self.const(blobs[0].reshape(view))])
        if len(blobs) > 1:
            y = self.node("Add", [y, self.const(blobs[1].reshape(view))])
        return y

    def lrn(self, layer, x):
        p = layer.lrn_param
        if p.norm_region == 0:  # ACROSS_CHANNELS
            return self.node("LRN", x, size=int(p.local_size), alpha=float(p.alpha),
                             beta=float(p.beta), bias=float(p.k))  # fmt: skip
        pad = (p.local_size - 1) // 2
        square = self.node("Mul", [x[0], x[0]])
        mean = self.node("AveragePool", [square], kernel_shape=[p.local_size] * 2,
                         pads=[pad] * 4, count_include_pad=1)  # fmt: skip
        base = self.node("Add", [self.const(1.0), self.node("Mul", [mean, self.const(p.alpha)])])
        return self.node("Mul", [x[0], self.node("Pow", [base, self.const(-p.beta)])])

    def pooling(self, layer, x):
        p = layer.pooling_param
        n, c, h, w = self.shape_of(x[0])
        if p.global_pooling:
            return self.node("GlobalAveragePool" if p.pool == 1 else "GlobalMaxPool", x)
        kh, kw = _pair(p, "kernel", None)
        ph, pw = _pair(p, "pad", 0)
        sh, sw = _pair(p, "stride", 1)
        oh, ow = caffe_pooled_size(h, kh, sh, ph), caffe_pooled_size(w, kw, sw, pw)
        eh = max((oh - 1) * sh + kh - (h + 2 * ph), 0)
        ew = max((ow - 1) * sw + kw - (w + 2 * pw), 0)
        if p.pool == 0:  # MAX: ONNX's pads never win a max
            return self.node("MaxPool", x, kernel_shape=[kh, kw], strides=[sh, sw],
                             pads=[ph, pw, ph + eh, pw + ew])  # fmt: skip
        padded = self.node("Pad", [x[0], self.const_int([0, 0, ph, pw, 0, 0, ph + eh, pw + ew])])
        mean = self.node("AveragePool", [padded], kernel_shape=[kh, kw], strides=[sh, sw])
        divisors = np.outer(caffe_ave_divisors(h, kh, sh, ph, oh),
                            caffe_ave_divisors(w, kw, sw, pw, ow))  # fmt: skip
        return self.node("Mul", [mean, self.const((kh * kw / divisors)[None, None])])

    def const_int(self, values) -> str:
        name = self.fresh("pads")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name


def caffe_onnx_oracle(model, feeds: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Run `model`'s TEST net (parameters and blobs as read) in onnxruntime on `feeds`:
    Caffe blob -> the values of its successive versions (in-place layers add versions)."""
    oracle = _Oracle(model, feeds)
    oracle.run(model.test_net.layer)
    outputs = sorted({t for vs in oracle.versions.values() for t in vs if t not in feeds})
    onnx_model = oracle.model_of(outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values = dict(zip(outputs, session.run(outputs, feeds), strict=True))
    values.update(feeds)
    return {blob: [values[t] for t in tensors] for blob, tensors in oracle.versions.items()}


def quantization_blocks(path: Path) -> dict[str, dict[str, str]]:
    """Layer name -> the fields of its `quantization_param { ... }` block, read from the text
    with regular expressions (layers and blocks are not nested in these files)."""
    text = re.sub(r"#.*", "", path.read_text())
    found = {}
    for block in re.findall(r"\blayers?\s*\{(.*?)\n\}", text, re.S):
        name = re.search(r'\bname\s*:\s*"([^"]+)"', block).group(1)
        q = re.search(r"quantization_param\s*\{([^}]*)\}", block)
        if q:
            found[name] = dict(re.findall(r"(\w+)\s*:\s*(\S+)", q.group(1)))
    return found


# ----- protobuf wire format, written by hand (caffemodels and binaryprotos for tests) ------------
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 values take ten bytes, two's complement
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def wire_int(number: int, value: int) -> bytes:
    """A varint field (int32, uint32, int64, bool, enum)."""
    return _varint(number << 3) + _varint(value)


def wire_bytes(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (string, bytes, sub-message, packed repeated)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def wire_blob(values: np.ndarray, legacy: bool = False) -> bytes:
    """A BlobProto: data (field 5, packed floats) and shape (7: BlobShape, dims packed in 1), or
    with `legacy` the 4-D num/channels/height/width (fields 1-4) of V1 files, padded with 1s."""
    values = np.asarray(values, dtype="<f4")
    data = wire_bytes(5, values.tobytes())
    if legacy:
        dims = (1,) * (4 - values.ndim) + values.shape
        return b"".join(wire_int(i + 1, d) for i, d in enumerate(dims)) + data
    return wire_bytes(7, wire_bytes(1, b"".join(_varint(d) for d in values.shape))) + data
