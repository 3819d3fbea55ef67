"""The topology of a Caffe net (TEST phase, V2 layers) in IR terms: `plan_net` decides which
blobs are inputs (Input and data layers), which layers compute and under which IR tensor names,
which are identities (Dropout, Split: `identity` layers, which the shared IR passes remove),
which score (Accuracy, losses: metadata), and which tensors are the outputs. Shapes and weights
come later (`build`).

Tensor names (the rule later passes rely on): the first layer writing Caffe blob `B` writes IR
tensor `B`; a later layer writing `B` again (an in-place ReLU, BatchNorm, Scale, ...) writes
`B@<layer name>`, so "conv1" stays the convolution's output and "conv1@relu1" is it after the
in-place ReLU. Readers of `B` read its newest version; `Plan.blob_versions[B]` lists the IR
tensors holding `B`'s successive values. A Split writes each of its tops, a Dropout its new top,
as an identity of the input (an in-place Dropout adds nothing); once the passes have removed them,
those names are aliases of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from formats.errors import RsimError
from rsim.frontends.caffe.ristretto import FLOAT_TYPES
from rsim.frontends.caffe.transform import CaffeTransform

DATA_TYPES = ("Data", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData")
IDENTITY_TYPES = ("Dropout", "Split")
LOSS_TYPES = (
    "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "ContrastiveLoss",
)  # fmt: skip
SCORE_TYPES = ("Accuracy",) + LOSS_TYPES
IGNORED_TYPES = ("Silence",)
COMPUTE_TYPES = (
    "Convolution", "Deconvolution", "InnerProduct", "ReLU", "Pooling", "LRN", "Concat",
    "Eltwise", "BatchNorm", "Scale", "Softmax", "Flatten", "Sigmoid", "TanH",
)  # fmt: skip
SUPPORTED_TYPES = (
    ("Input",) + DATA_TYPES + COMPUTE_TYPES + tuple(FLOAT_TYPES) + IDENTITY_TYPES + SCORE_TYPES
    + IGNORED_TYPES
)  # fmt: skip



@dataclass(frozen=True)
class ScoreLayer:
    """An Accuracy or loss layer: not part of the IR, but how the net is scored. `prediction`
    is the IR tensor it reads (an output of the Network), `label` the Caffe blob of the labels
    (a data layer's second top) or None, `axis` the class axis; `top_k` is set for Accuracy
    only."""

    name: str
    type: str
    prediction: str
    label: str | None
    top_k: int | None
    axis: int
    ignore_label: int | None


@dataclass
class ComputeLayer:
    """A Caffe layer that becomes IR layers: its parameters and its IR tensor names."""

    param: object
    type: str
    inputs: tuple[str, ...]
    output: str


@dataclass
class Plan:
    """The topology of the TEST net in IR terms (see the module docstring)."""

    input_specs: dict[str, tuple[int | None, ...]]
    transforms: dict[str, CaffeTransform]
    compute: list[ComputeLayer]
    scores: list[ScoreLayer]
    outputs: list[str]
    blob_versions: dict[str, list[str]]


def plan_net(layers: list, path: Path, input_shapes: dict | None) -> Plan:
    """The Plan of the TEST-phase `layers` (V2 LayerParameters) of the prototxt at `path`."""
    return _Planner(path, input_shapes or {}).run(layers)


class _Planner:
    def __init__(self, path: Path, input_shapes: dict) -> None:
        self.path, self.input_shapes = path, input_shapes
        self.current: dict[str, str] = {}  # Caffe blob -> IR tensor holding its newest value
        self.versions: dict[str, list[str]] = {}
        self.names: set[str] = set()  # IR tensor names in use
        self.labels: set[str] = set()  # Caffe blobs of labels
        self.score_tops: dict[str, str] = {}  # Caffe blob -> the score layer writing it
        self.read: set[str] = set()  # IR tensors some IR layer reads
        self.order: list[str] = []  # IR tensors in the order they are written
        self.plan = Plan({}, {}, [], [], [], self.versions)

    def error(self, layer, message: str) -> RsimError:
        return RsimError(f"{self.path}: layer {layer.name!r} ({layer.type}): {message}")

    def run(self, layers: list) -> Plan:
        for layer in layers:
            kind = FLOAT_TYPES.get(layer.type, layer.type)
            if kind not in SUPPORTED_TYPES:
                raise RsimError(
                    f"{self.path}: layer {layer.name!r} has type {layer.type!r}, which rsim "
                    f"does not support; supported types: {', '.join(SUPPORTED_TYPES)}"
                )
            if kind == "Input":
                self._input(layer)
            elif kind in DATA_TYPES:
                self._data(layer, kind)
            elif kind in IDENTITY_TYPES:
                self._identity(layer)
            elif kind in SCORE_TYPES:
                self._score(layer, kind)
            elif kind in COMPUTE_TYPES:
                self._compute(layer, kind)
        wanted = {s.prediction for s in self.plan.scores}
        self.plan.outputs = [t for t in self.order if t not in self.read or t in wanted]
        if not self.plan.compute:
            raise RsimError(f"{self.path}: the TEST-phase net computes nothing (no layers)")
        return self.plan

    # ----- blobs --------------------------------------------------------------------------------
    def fresh(self, name: str) -> str:
        base, k = name, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def write(self, blob: str, layer) -> str:
        """The IR tensor a layer writes for Caffe blob `blob` (see the naming rule)."""
        name = self.fresh(blob if blob not in self.versions else f"{blob}@{layer.name}")
        self.versions.setdefault(blob, []).append(name)
        self.current[blob] = name
        self.score_tops.pop(blob, None)
        self.labels.discard(blob)
        return name

    def reads(self, layer, blob: str) -> str:
        if blob in self.score_tops:
            raise self.error(
                layer, f"reads {blob!r}, the output of score layer {self.score_tops[blob]!r}; "
                "rsim does not compute scores inside the network"
            )  # fmt: skip
        if blob in self.labels:
            raise self.error(layer, f"reads the labels {blob!r}; rsim feeds labels to scores only")
        if blob not in self.current:
            raise self.error(layer, f"reads blob {blob!r}, which no earlier layer writes")
        return self.current[blob]

    def add_input(self, layer, blob: str, spec: tuple[int | None, ...]) -> str:
        name = self.write(blob, layer)
        self.plan.input_specs[name] = spec
        return name

    # ----- layer kinds --------------------------------------------------------------------------
    def _input(self, layer) -> None:
        shapes = layer.input_param.shape
        if len(shapes) not in (1, len(layer.top)) or not layer.top:
            raise self.error(
                layer, f"has {len(layer.top)} tops and {len(shapes)} shapes; give one shape, "
                "or one per top"
            )  # fmt: skip
        for i, top in enumerate(layer.top):
            self.add_input(layer, top, tuple(int(d) for d in shapes[i % len(shapes)].dim))

    def _data(self, layer, kind: str) -> None:
        if not layer.top:
            raise self.error(layer, "has no tops")
        if kind == "DummyData":
            self._dummy_data(layer)
            return
        transform = self._transform(layer) if kind != "HDF5Data" else CaffeTransform()
        top = layer.top[0]
        if kind == "HDF5Data":
            given = self.input_shapes.get(top)
            if given is None:
                raise self.error(
                    layer, f"the shape of {top!r} is not in the prototxt (it is in the HDF5 "
                    f"files); pass input_shapes={{{top!r}: [N, ...]}}"
                )  # fmt: skip
            spec: tuple[int | None, ...] = (None,) * len(tuple(given))
        else:
            spec = self._image_spec(layer, kind, transform)
        name = self.add_input(layer, top, spec)
        self.plan.transforms[name] = transform
        for label in layer.top[1:]:
            self.current[label] = label
            self.labels.add(label)

    def _image_spec(self, layer, kind: str, transform) -> tuple[int | None, ...]:
        """(batch, channels, height, width) of a data layer's samples after its transform;
        None where the prototxt does not say (the database does)."""
        batch = channels = height = width = None
        if kind == "Data" and layer.data_param.batch_size:
            batch = layer.data_param.batch_size
        elif kind == "ImageData":
            p = layer.image_data_param
            batch, channels = p.batch_size, 3 if p.is_color else 1
            if p.new_height and p.new_width:
                height, width = p.new_height, p.new_width
        elif kind == "MemoryData":
            p = layer.memory_data_param
            batch, channels, height, width = (
                d or None for d in (p.batch_size, p.channels, p.height, p.width)
            )
        height, width = transform.output_hw(height, width)
        return (batch, channels, height, width)

    def _dummy_data(self, layer) -> None:
        p = layer.dummy_data_param
        count = len(layer.top)
        if p.shape:
            shapes = [tuple(int(d) for d in s.dim) for s in p.shape]
        else:
            legacy = (p.num, p.channels, p.height, p.width)
            if len({len(dims) for dims in legacy}) != 1:
                raise self.error(layer, "num, channels, height and width differ in count")
            shapes = [tuple(dims) for dims in zip(*legacy, strict=True)]
        if len(shapes) not in (1, count):
            raise self.error(layer, f"gives {len(shapes)} shapes for {count} tops")
        for i, top in enumerate(layer.top):
            self.add_input(layer, top, shapes[i % len(shapes)])

    def _transform(self, layer) -> CaffeTransform:
        t = layer.transform_param
        mean_file = None
        if t.HasField("mean_file"):
            mean_file = Path(t.mean_file)
            beside = self.path.parent / mean_file
            if not mean_file.is_absolute() and beside.exists():
                mean_file = beside
        return CaffeTransform(
            scale=float(t.scale),
            mean_values=tuple(float(v) for v in t.mean_value),
            mean_file=mean_file,
            crop_size=int(t.crop_size),
            mirror=bool(t.mirror),
            source=f"{self.path}: layer {layer.name!r} transform_param",
        )

    def _identity(self, layer) -> None:
        if len(layer.bottom) != 1 or (layer.type == "Dropout" and len(layer.top) != 1):
            raise self.error(
                layer, f"has {len(layer.bottom)} bottoms and {len(layer.top)} tops; "
                f"{layer.type} takes one bottom"
            )  # fmt: skip
        source = self.reads(layer, layer.bottom[0])
        self.read.add(source)
        for top in layer.top:
            if top == layer.bottom[0]:  # in place: the blob keeps its value and its version
                continue
            output = self.write(top, layer)
            self.order.append(output)
            self.plan.compute.append(ComputeLayer(layer, "Identity", (source,), output))

    def _score(self, layer, kind: str) -> None:
        if len(layer.bottom) < 1:
            raise self.error(layer, "has no bottoms")
        prediction = self.reads(layer, layer.bottom[0])
        label = layer.bottom[1] if len(layer.bottom) > 1 else None
        if label is not None and label not in self.current:
            raise self.error(layer, f"reads blob {label!r}, which no earlier layer writes")
        accuracy = kind == "Accuracy"
        param = layer.accuracy_param if accuracy else layer.loss_param
        ignore = param.ignore_label if param.HasField("ignore_label") else None
        self.plan.scores.append(
            ScoreLayer(
                name=layer.name,
                type=layer.type,
                prediction=prediction,
                label=label,
                top_k=int(layer.accuracy_param.top_k) if accuracy else None,
                axis=int(layer.accuracy_param.axis if accuracy else layer.softmax_param.axis),
                ignore_label=ignore,
            )
        )
        for top in layer.top:
            self.score_tops[top] = layer.name

    def _compute(self, layer, kind: str) -> None:
        if len(layer.top) != 1:
            raise self.error(
                layer, f"has {len(layer.top)} tops; rsim computes layers with exactly one top"
            )
        if not layer.bottom:
            raise self.error(layer, "has no bottoms")
        inputs = tuple(self.reads(layer, b) for b in layer.bottom)
        self.read.update(inputs)
        output = self.write(layer.top[0], layer)
        self.order.append(output)
        self.plan.compute.append(ComputeLayer(layer, kind, inputs, output))
