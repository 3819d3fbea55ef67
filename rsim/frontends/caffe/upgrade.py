"""In-memory upgrades of old Caffe nets to the current form, as Caffe applies them on reading:
V1 layers (`layers { type: CONVOLUTION ... }`) become V2 layers (`layer { type: "Convolution" }`),
data-layer transformation fields move into `transform_param`, and net-level `input` /
`input_shape` / `input_dim` become an Input layer in front. Applies to prototxts and caffemodels.
"""

from __future__ import annotations

from formats.errors import RsimError
from rsim.frontends.caffe import schema

# V1LayerParameter.LayerType name -> the V2 type string
V1_LAYER_TYPES: dict[str, str] = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}  # fmt: skip

_V1_TYPE_NAMES = {v: k for k, v in schema.ENUMS["V1LayerParameter.LayerType"].items()}
_SHARE_MODES = {v: k for k, v in schema.ENUMS["V1LayerParameter.DimCheckMode"].items()}
# the transformation fields old data layers kept in their own parameter message
_DATA_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_DATA_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param"}


def upgrade_net(net, source: str) -> None:
    """Upgrade `net` in place (see the module docstring); `source` names the file in errors."""
    if net.layers:
        if net.layer:
            raise RsimError(
                f"{source} mixes 'layer' (V2) and 'layers' (V1) definitions; Caffe refuses such "
                "a net: write every layer in one form"
            )
        for v1 in net.layers:
            if v1.HasField("layer"):
                raise RsimError(
                    f"{source} uses the pre-2014 V0 layer format (layers {{ layer {{ ... }} }}); "
                    "upgrade it with Caffe's upgrade_net_proto_text first"
                )
            _move_data_transform(v1)
            _upgrade_v1_layer(v1, net.layer.add())
        net.ClearField("layers")
    if net.input:
        _upgrade_inputs(net, source)


def _move_data_transform(v1) -> None:
    field = _DATA_PARAMS.get(_V1_TYPE_NAMES.get(v1.type, ""))
    if field is None or not v1.HasField(field):
        return
    params = getattr(v1, field)
    for name in _DATA_TRANSFORM_FIELDS:
        if params.HasField(name):
            setattr(v1.transform_param, name, getattr(params, name))
            params.ClearField(name)


def _upgrade_v1_layer(v1, layer) -> None:
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        layer.type = V1_LAYER_TYPES[_V1_TYPE_NAMES[v1.type]]
    layer.blobs.extend(v1.blobs)

    def param(index: int):
        while len(layer.param) <= index:
            layer.param.add()
        return layer.param[index]

    for i, name in enumerate(v1.param):
        param(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        param(i).share_mode = schema.ENUMS["ParamSpec.DimCheckMode"][_SHARE_MODES[mode]]
    for i, lr in enumerate(v1.blobs_lr):
        param(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        param(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for name in schema.V1_SHARED_PARAMS:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))


def _upgrade_inputs(net, source: str) -> None:
    """Net-level inputs become one Input layer named "input" in front of the others (inputs
    without any shape, as old caffemodels carry them, are dropped)."""
    names = list(net.input)
    if net.input_shape or net.input_dim:
        if net.input_shape and len(net.input_shape) != len(names):
            raise RsimError(
                f"{source}: {len(names)} inputs but {len(net.input_shape)} input_shape entries"
            )
        if not net.input_shape and len(net.input_dim) != 4 * len(names):
            raise RsimError(
                f"{source}: {len(names)} inputs need {4 * len(names)} input_dim values "
                f"(num, channels, height, width each), found {len(net.input_dim)}"
            )
        layer = schema.LayerParameter(name="input", type="Input", top=names)
        for i in range(len(names)):
            shape = layer.input_param.shape.add()
            if net.input_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i : 4 * i + 4])
        layers = [layer] + list(net.layer)
        net.ClearField("layer")
        net.layer.extend(layers)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")
