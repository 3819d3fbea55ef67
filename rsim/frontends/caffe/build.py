"""The IR layers of a `Plan` at bound input shapes: attributes from the Caffe layer parameters,
weights from the caffemodel (checked against the shapes Caffe would give them, as Caffe checks
them) or seeded random ones. `Translation.build` is the Network's builder.

The IR layer computing a Caffe layer carries the Caffe layer's name; IR tensors and layers a
Caffe layer needs besides (the flatten in front of an InnerProduct, the steps of an Eltwise) are
named `<layer>/<role>`. Translation only: BatchNorm and Scale become `batchnorm` layers and
Dropout/Split `identity` layers, which the shared IR passes (`rsim.passes`) fold and remove.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from formats.errors import RsimError
from rsim.frontends.caffe.parse import blob_array, blob_shape, has_legacy_shape
from rsim.frontends.caffe.plan import ComputeLayer, Plan
from rsim.frontends.caffe.schema import ENUMS
from rsim.network import Graph, Layer, Shape
from rsim.passes import run_passes
from rsim.ops.pooling import pool_out_hw

RANDOM_WEIGHTS_SEED = 20240611

_POOL_METHODS = {v: k for k, v in ENUMS["PoolingParameter.PoolMethod"].items()}
_ELTWISE_OPS = {v: k for k, v in ENUMS["EltwiseParameter.EltwiseOp"].items()}
_NORM_REGIONS = {v: k for k, v in ENUMS["LRNParameter.NormRegion"].items()}


@dataclass
class Translation:
    """Builds the IR layers of a Plan at bound input shapes (`build` is a Network builder).
    `weights`: Caffe layer name -> its caffemodel blobs (None: random weights). `blobs` receives
    every layer's weights in Caffe's layout, as used (from the caffemodel or drawn)."""

    plan: Plan
    path: Path
    weights_path: Path | None
    weights: dict[str, list] | None
    blobs: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    def build(self, bound: dict[str, Shape]) -> Graph:
        builder = _Builder(self, bound)
        for item in self.plan.compute:
            builder.convert(item)
        self.blobs.clear()
        self.blobs.update(builder.blobs)
        first = next(iter(bound.values()), ())
        graph = Graph(builder.layers, dict(bound), {}, first[0] if first else 1)
        return run_passes(graph, self.plan.outputs)


class _Builder:
    def __init__(self, translation: Translation, bound: dict[str, Shape]) -> None:
        self.t = translation
        self.shapes: dict[str, Shape] = dict(bound)
        self.layers: list[Layer] = []
        self.blobs: dict[str, tuple[np.ndarray, ...]] = {}
        self.layer_names: set[str] = set()
        self.tensor_names = set(bound) | {c.output for c in translation.plan.compute}
        self.item: ComputeLayer | None = None

    def error(self, message: str) -> RsimError:
        p = self.item.param
        return RsimError(f"{self.t.path}: layer {p.name!r} ({p.type}): {message}")

    def convert(self, item: ComputeLayer) -> None:
        self.item = item
        getattr(self, f"_{item.type.lower()}")(item.param, [self.shapes[t] for t in item.inputs])

    # ----- emitting -----------------------------------------------------------------------------
    def emit(self, op: str, inputs, attrs=None, params=None, role: str | None = None) -> str:
        """One IR layer; the layer named after the Caffe layer (or `<layer>/<role>` for the
        extra steps some layers need) writes the Caffe layer's output unless `role` is given."""
        caffe_name = self.item.param.name
        output = self.item.output
        name = caffe_name
        if role:
            output = self._fresh(self.tensor_names, f"{caffe_name}/{role}")
            name = f"{caffe_name}/{role}"
        layer = Layer(
            self._fresh(self.layer_names, name),
            op,
            tuple(inputs),
            (output,),
            attrs or {},
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (params or {}).items()},
        )
        try:
            self.shapes[output] = layer.infer_shape(*(self.shapes[t] for t in inputs))
        except ValueError as error:
            raise self.error(str(error)) from None
        self.layers.append(layer)
        return output

    @staticmethod
    def _fresh(used: set[str], name: str) -> str:
        base, k = name, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    # ----- weights ------------------------------------------------------------------------------
    def layer_blobs(self, expected: list[tuple[str, Shape]], random: Callable) -> list[np.ndarray]:
        """The layer's blobs in Caffe's layout, checked against the `expected` (role, shape)
        list as Caffe checks them; `random(rng, role, shape)` draws them without a caffemodel."""
        name = self.item.param.name
        if self.t.weights is None:
            rng = np.random.default_rng([RANDOM_WEIGHTS_SEED, zlib.crc32(name.encode())])
            arrays = [
                np.asarray(random(rng, role, shape), dtype=np.float32) for role, shape in expected
            ]
        else:
            arrays = self._stored_blobs(name, expected)
        self.blobs[name] = tuple(arrays)
        return arrays

    def _stored_blobs(self, name: str, expected: list[tuple[str, Shape]]) -> list[np.ndarray]:
        where = f"{self.t.weights_path}: layer {name!r}"
        stored = self.t.weights.get(name)
        if stored is None:
            raise RsimError(
                f"{where} is missing: the caffemodel holds no weights for it "
                f"(its layers with weights: {sorted(k for k, v in self.t.weights.items() if v)})"
            )
        if len(stored) != len(expected):
            raise RsimError(
                f"{where} holds {len(stored)} blobs; the prototxt's layer needs "
                f"{len(expected)} ({', '.join(role for role, _ in expected)})"
            )
        arrays = []
        for blob, (role, shape) in zip(stored, expected, strict=True):
            if not _blob_fits(blob, shape):
                raise RsimError(
                    f"{where}: the {role} blob has shape {list(blob_shape(blob))}; the prototxt "
                    f"gives {list(shape)}"
                )
            arrays.append(blob_array(blob, where).reshape(shape))
        return arrays

    # ----- shared parameter readers -------------------------------------------------------------
    def spatial_pair(self, p, name: str, default: int | None) -> tuple[int, int]:
        """A 2-D conv parameter: `<name>_h`/`<name>_w` (where the message has them), or the
        repeated `<name>` (one value for both axes, or one per axis), or `default`."""
        h, w = f"{name}_h", f"{name}_w"
        plural = {"kernel": "kernel_size"}.get(name, name)
        values = list(getattr(p, plural))
        if h in p.DESCRIPTOR.fields_by_name and (p.HasField(h) or p.HasField(w)):
            if values:
                raise self.error(f"give either {plural} or {h}/{w}, not both")
            if name == "kernel" and not (p.HasField(h) and p.HasField(w)):
                raise self.error(f"give both {h} and {w}")
            return int(getattr(p, h)), int(getattr(p, w))
        if not values:
            if default is None:
                raise self.error(f"{plural} is not given")
            return default, default
        if len(values) == 1:
            return int(values[0]), int(values[0])
        if len(values) == 2:
            return int(values[0]), int(values[1])
        raise self.error(f"{plural} has {len(values)} values; rsim supports 2-D layers only")

    def positive(self, pair: tuple[int, int], what: str) -> tuple[int, int]:
        if min(pair) < 1:
            raise self.error(f"{what} {list(pair)} must be at least 1")
        return pair

    def axis(self, value: int, rank: int, what: str) -> int:
        if not -rank <= value < rank:
            raise self.error(f"{what} {value} is out of range for a {rank}-D input")
        return value % rank

    def one_input(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 1:
            raise self.error(f"takes one bottom, got {len(shapes)}")
        return shapes[0]

    # ----- converters, by Caffe type ------------------------------------------------------------
    def _conv_attrs(self, p, x: Shape) -> dict:
        if len(x) != 4:
            raise self.error(f"rsim supports 2-D convolution (NCHW input), got shape {list(x)}")
        if self.axis(p.axis, len(x), "axis") != 1:
            raise self.error(f"axis {p.axis}: rsim convolves NCHW data (channel axis 1)")
        if not p.num_output:
            raise self.error("num_output is not given")
        groups = int(p.group)
        if groups < 1 or p.num_output % groups or x[1] % groups:
            raise self.error(
                f"group {groups} does not divide num_output {p.num_output} and the "
                f"{x[1]} input channels"
            )
        pad_h, pad_w = self.spatial_pair(p, "pad", 0)
        return {
            "kernel": self.positive(self.spatial_pair(p, "kernel", None), "kernel size"),
            "strides": self.positive(self.spatial_pair(p, "stride", 1), "stride"),
            "dilations": self.positive(self.spatial_pair(p, "dilation", 1), "dilation"),
            "pads": (pad_h, pad_w, pad_h, pad_w),
            "groups": groups,
        }

    def _conv_blobs(self, p, weight_shape: Shape, fan_in: int) -> dict[str, np.ndarray]:
        expected = [("weight", weight_shape)]
        if p.bias_term:
            expected.append(("bias", (int(p.num_output),)))
        arrays = self.layer_blobs(expected, _random_mac_blob(fan_in))
        params = {"weight": arrays[0]}
        if p.bias_term:
            params["bias"] = arrays[1]
        return params

    def _convolution(self, param, shapes):
        x = self.one_input(shapes)
        p = param.convolution_param
        attrs = self._conv_attrs(p, x)
        kh, kw = attrs["kernel"]
        c = x[1] // attrs["groups"]
        params = self._conv_blobs(p, (int(p.num_output), c, kh, kw), c * kh * kw)
        self.emit("conv", self.item.inputs, attrs, params)

    def _deconvolution(self, param, shapes):
        x = self.one_input(shapes)
        p = param.convolution_param
        attrs = self._conv_attrs(p, x)
        kh, kw = attrs["kernel"]
        per_group = int(p.num_output) // attrs["groups"]
        params = self._conv_blobs(p, (x[1], per_group, kh, kw), x[1] // attrs["groups"])
        self.emit("conv_transpose", self.item.inputs, dict(attrs, output_padding=(0, 0)), params)

    def _innerproduct(self, param, shapes):
        x = self.one_input(shapes)
        p = param.inner_product_param
        if not p.num_output:
            raise self.error("num_output is not given")
        axis = self.axis(p.axis, len(x), "axis")
        k, n = math.prod(x[axis:]), int(p.num_output)
        expected = [("weight", (k, n) if p.transpose else (n, k))]
        if p.bias_term:
            expected.append(("bias", (n,)))
        arrays = self.layer_blobs(expected, _random_mac_blob(k, transposed=not p.transpose))
        params = {"weight": arrays[0] if p.transpose else arrays[0].T}
        if p.bias_term:
            params["bias"] = arrays[1]
        source = self.item.inputs[0]
        if len(x) > axis + 1:
            source = self._flatten_from(source, axis, len(x) - 1)
        self.emit("gemm", [source], {}, params)

    def _flatten_from(self, source: str, axis: int, end: int, role: str | None = "flatten"):
        """Merge axes axis..end of `source` (Caffe's Flatten): the `flatten` op when that
        leaves (batch, rest), else a `reshape` that keeps the axes before `axis`."""
        shape = self.shapes[source]
        if axis == 1 and end == len(shape) - 1:
            return self.emit("flatten", [source], {"axis": 1}, role=role)
        target = (0,) * axis + (-1,) + tuple(shape[end + 1 :])
        return self.emit("reshape", [source], {"shape": target}, role=role)

    def _relu(self, param, shapes):
        self.one_input(shapes)
        slope = float(param.relu_param.negative_slope)
        if slope:
            self.emit("leaky_relu", self.item.inputs, {"alpha": slope})
        else:
            self.emit("relu", self.item.inputs)

    def _pooling(self, param, shapes):
        x = self.one_input(shapes)
        p = param.pooling_param
        method = _POOL_METHODS[p.pool]
        if method == "STOCHASTIC":
            raise self.error("pool STOCHASTIC is not supported; rsim pools MAX and AVE")
        if len(x) != 4:
            raise self.error(f"rsim pools NCHW data, got shape {list(x)}")
        if p.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise self.error("global_pooling takes no kernel size")
            if p.pad or p.pad_h or p.pad_w or p.stride != 1 or p.stride_h > 1 or p.stride_w > 1:
                raise self.error("global_pooling needs pad 0 and stride 1")
            if method == "AVE":
                self.emit("global_avgpool", self.item.inputs)
                return
            kernel, strides, pads = (x[2], x[3]), (1, 1), (0, 0)
        else:
            kernel = self._pool_pair(p, "kernel_size", "kernel_h", "kernel_w", None)
            pads = self._pool_pair(p, "pad", "pad_h", "pad_w", 0)
            strides = self._pool_pair(p, "stride", "stride_h", "stride_w", 1)
            self.positive(kernel, "kernel size")
            self.positive(strides, "stride")
        if pads[0] >= kernel[0] or pads[1] >= kernel[1]:
            raise self.error(f"pad {list(pads)} must be smaller than the kernel {list(kernel)}")
        ceil = ENUMS["PoolingParameter.RoundMode"]["CEIL"] == p.round_mode
        attrs = {
            "kernel": kernel,
            "strides": strides,
            "dilations": (1, 1),
            "pads": (pads[0], pads[1], pads[0], pads[1]),
            "ceil_mode": ceil,
        }
        caffe_hw = tuple(
            caffe_pool_size(x[2 + a], kernel[a], strides[a], pads[a], ceil) for a in (0, 1)
        )
        if min(caffe_hw) < 1:
            raise self.error(f"the kernel {list(kernel)} is larger than the padded input {list(x)}")
        if pool_out_hw(x, attrs) != caffe_hw:
            raise self.error(
                f"Caffe's output size {list(caffe_hw)} places a last window wholly outside the "
                f"{x[2]}x{x[3]} input (stride larger than kernel, no padding); rsim does not "
                "model such windows"
            )
        if method == "AVE":
            self.emit("avgpool", self.item.inputs, dict(attrs, count_include_pad=True))
        else:
            self.emit("maxpool", self.item.inputs, attrs)

    def _pool_pair(self, p, both: str, h: str, w: str, default: int | None) -> tuple[int, int]:
        if p.HasField(h) or p.HasField(w):
            if p.HasField(both):
                raise self.error(f"give either {both} or {h}/{w}, not both")
            if not (p.HasField(h) and p.HasField(w)):
                raise self.error(f"give both {h} and {w}")
            return int(getattr(p, h)), int(getattr(p, w))
        if not p.HasField(both) and default is None:
            raise self.error(f"{both} is not given")
        value = int(getattr(p, both)) if p.HasField(both) else default
        return value, value

    def _lrn(self, param, shapes):
        x = self.one_input(shapes)
        p = param.lrn_param
        if len(x) != 4:
            raise self.error(f"LRN takes NCHW data, got shape {list(x)}")
        if p.local_size % 2 == 0:
            raise self.error(f"local_size {p.local_size} must be odd (as Caffe requires)")
        attrs = {"size": int(p.local_size), "alpha": float(p.alpha), "beta": float(p.beta)}
        if _NORM_REGIONS[p.norm_region] == "WITHIN_CHANNEL":
            # Caffe's WITHIN_CHANNEL computes (1 + alpha/size^2 * sum)^-beta: k is not used
            attrs.update(bias=1.0, region="within_channel")
        else:
            attrs.update(bias=float(p.k), region="across_channels")
        self.emit("lrn", self.item.inputs, attrs)

    def _concat(self, param, shapes):
        p = param.concat_param
        axis = p.axis if p.HasField("axis") or not p.HasField("concat_dim") else p.concat_dim
        self.emit("concat", self.item.inputs, {"axis": self.axis(axis, len(shapes[0]), "axis")})

    def _eltwise(self, param, shapes):
        p = param.eltwise_param
        op = _ELTWISE_OPS[p.operation]
        if len(shapes) < 2:
            raise self.error(f"takes at least 2 bottoms, got {len(shapes)}")
        if any(s != shapes[0] for s in shapes):
            raise self.error(f"inputs must have one shape, got {[list(s) for s in shapes]}")
        if op == "MAX":
            raise self.error("operation MAX is not supported yet; rsim supports SUM and PROD")
        if p.coeff and (op != "SUM" or len(p.coeff) != len(shapes)):
            raise self.error(
                f"{len(p.coeff)} coeff values for {len(shapes)} bottoms with operation {op}; "
                "give one per bottom, for SUM only"
            )
        terms = list(self.item.inputs)
        for i, c in enumerate(p.coeff):
            if c != 1.0:
                terms[i] = self.emit(
                    "mul", [terms[i]], {"constant_first": False},
                    {"constant": np.array(c, dtype=np.float32)}, role=f"coeff{i}",
                )  # fmt: skip
        total = terms[0]
        for i, term in enumerate(terms[1:], start=1):
            last = i == len(terms) - 1
            total = self.emit(
                "mul" if op == "PROD" else "add", [total, term], role=None if last else f"step{i}"
            )

    def _batchnorm(self, param, shapes):
        x = self.one_input(shapes)
        p = param.batch_norm_param
        if p.HasField("use_global_stats") and not p.use_global_stats:
            raise self.error(
                "use_global_stats is false: the TEST net would normalise by batch statistics, "
                "which rsim does not model"
            )
        channels = x[1] if len(x) > 1 else 1
        mean, variance, factor = self.layer_blobs(
            [("mean", (channels,)), ("variance", (channels,)), ("moving-average factor", (1,))],
            _random_batchnorm_blob,
        )
        f = 0.0 if factor[0] == 0 else 1.0 / float(factor[0])
        scale = 1.0 / np.sqrt(variance.astype(np.float64) * f + float(p.eps))
        shift = -mean.astype(np.float64) * f * scale
        self.emit("batchnorm", self.item.inputs, {}, {"scale": scale, "shift": shift})

    def _scale(self, param, shapes):
        if len(shapes) != 1:
            raise self.error("a scale taken from a second bottom is not supported")
        x = shapes[0]
        p = param.scale_param
        axis = self.axis(p.axis, len(x), "axis")
        count = len(x) - axis if p.num_axes == -1 else p.num_axes
        shape = tuple(x[axis : axis + count])
        if count < 0 or axis + count > len(x):
            raise self.error(f"num_axes {p.num_axes} does not fit axis {axis} of shape {list(x)}")
        if not (shape == () or (axis == 1 and count == 1)):
            raise self.error(
                f"scales over shape {list(shape)} from axis {axis}; rsim supports one scale per "
                "channel (axis 1, num_axes 1) or a single scale (num_axes 0)"
            )
        expected = [("scale", shape)] + ([("bias", shape)] if p.bias_term else [])
        arrays = self.layer_blobs(expected, _random_scale_blob)
        channels = x[1]
        gamma = np.broadcast_to(arrays[0].astype(np.float64).reshape(-1), (channels,))
        beta = (
            np.broadcast_to(arrays[1].astype(np.float64).reshape(-1), (channels,))
            if p.bias_term
            else np.zeros(channels)
        )
        self.emit("batchnorm", self.item.inputs, {}, {"scale": gamma, "shift": beta})

    def _softmax(self, param, shapes):
        x = self.one_input(shapes)
        axis = self.axis(param.softmax_param.axis, len(x), "axis")
        self.emit("softmax", self.item.inputs, {"axes": (axis,)})

    def _flatten(self, param, shapes):
        x = self.one_input(shapes)
        p = param.flatten_param
        axis = self.axis(p.axis, len(x), "axis")
        end = self.axis(p.end_axis, len(x), "end_axis")
        if end < axis:
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis}")
        self._flatten_from(self.item.inputs[0], axis, end, role=None)

    def _identity(self, param, shapes):
        self.emit("identity", self.item.inputs)

    def _sigmoid(self, param, shapes):
        self.one_input(shapes)
        self.emit("sigmoid", self.item.inputs)

    def _tanh(self, param, shapes):
        self.one_input(shapes)
        self.emit("tanh", self.item.inputs)


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's pooled size along one axis: ceil (or floor) of (size + 2 pad - kernel) / stride,
    plus 1, then one less when padded and the last window would start in the end padding."""
    room = size + 2 * pad - kernel
    out = (-(-room // stride) if ceil else room // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _blob_fits(blob, shape: Shape) -> bool:
    """Caffe's Blob::ShapeEquals: a legacy 4-D blob matches a shape of at most 4 axes padded
    with leading 1s; a blob with `shape` matches it exactly."""
    if has_legacy_shape(blob):
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == blob_shape(blob)
    return blob_shape(blob) == tuple(shape)


def _random_mac_blob(fan_in: int, transposed: bool = False) -> Callable:
    """Weights uniform in +-sqrt(6 / fan_in) (variance 2 / fan_in: activations keep their scale
    through ReLU layers), drawn in the layout the IR keeps (`transposed`: the transpose of
    Caffe's, so no copy is needed); biases uniform in +-0.01."""

    def draw(rng, role, shape):
        weight = role == "weight"
        bound = np.float32(math.sqrt(6.0 / max(fan_in, 1)) if weight else 0.01)
        flip = transposed and weight
        values = rng.random(shape[::-1] if flip else shape, dtype=np.float32)
        values *= 2 * bound
        values -= bound
        return values.T if flip else values

    return draw


def _random_batchnorm_blob(rng, role, shape):
    if role == "mean":
        return rng.normal(0.0, 0.1, shape)
    if role == "variance":
        return rng.uniform(0.5, 1.5, shape)
    return np.ones(shape)


def _random_scale_blob(rng, role, shape):
    return rng.uniform(0.5, 1.5, shape) if role == "scale" else rng.normal(0.0, 0.1, shape)
