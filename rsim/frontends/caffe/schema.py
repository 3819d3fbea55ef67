"""rsim's own protobuf schema for the part of Caffe's format it reads, built in code.

The messages below declare the fields of Caffe's `caffe.proto` (BVLC/caffe 9b89154) and of
Ristretto's `QuantizationParameter` (pmgysel/caffe 614963c) that rsim interprets or that real
network files carry (fillers, data sources, learning-rate multipliers), so that a parsed net can
be written back without losing them. Field numbers, types, defaults and enum values are the
format's; anything else a file carries is skipped by the text parser (and kept as unknown fields
by the binary parser).

`quantization_param` is LayerParameter field 149 in Ristretto since November 2018; binaries
written by older Ristretto builds carry the same message as field 147 (June 2016 to February
2018) or 148 (April to November 2018), declared here as `quantization_param_147` / `_148`. (The
April 2016 "Ristretto V1" used field 145 with another layout; it is not read.)
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "rsim_caffe"

_ENGINE = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}

# enum name -> values; an enum is nested in the message named before the dot (or top level)
ENUMS: dict[str, dict[str, int]] = {
    "Phase": {"TRAIN": 0, "TEST": 1},
    "FillerParameter.VarianceNorm": {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2},
    "ParamSpec.DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1},
    "LossParameter.NormalizationMode": {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3},
    "ConvolutionParameter.Engine": _ENGINE,
    "DataParameter.DB": {"LEVELDB": 0, "LMDB": 1},
    "EltwiseParameter.EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2},
    "LRNParameter.NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1},
    "LRNParameter.Engine": _ENGINE,
    "PoolingParameter.PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "PoolingParameter.Engine": _ENGINE,
    "PoolingParameter.RoundMode": {"CEIL": 0, "FLOOR": 1},
    "ReLUParameter.Engine": _ENGINE,
    "SigmoidParameter.Engine": _ENGINE,
    "SoftmaxParameter.Engine": _ENGINE,
    "TanHParameter.Engine": _ENGINE,
    "QuantizationParameter.Precision": {
        "DYNAMIC_FIXED_POINT": 0,
        "MINIFLOAT": 1,
        "INTEGER_POWER_OF_2_WEIGHTS": 2,
    },
    "QuantizationParameter.Rounding": {"NEAREST": 0, "STOCHASTIC": 1},
    "V1LayerParameter.LayerType": {
        "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
        "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
        "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
        "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
        "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
        "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
        "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
        "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24,
        "THRESHOLD": 31,
    },
    "V1LayerParameter.DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1},
}  # fmt: skip

# A field: (name, number, type, label, default). type: a scalar type, a message or an enum
# name (enums as "Message.Enum"); label: "?" optional, "*" repeated, "*p" repeated packed.
Field = tuple[str, int, str, str, Any]


def _opt(name: str, number: int, kind: str, default: Any = None) -> Field:
    return (name, number, kind, "?", default)


def _rep(name: str, number: int, kind: str, packed: bool = False) -> Field:
    return (name, number, kind, "*p" if packed else "*", None)


_LAYER_PARAMS: list[tuple[str, str, int, int]] = [
    # (field, message, number in LayerParameter, number in V1LayerParameter or 0)
    ("transform_param", "TransformationParameter", 100, 36),
    ("loss_param", "LossParameter", 101, 42),
    ("accuracy_param", "AccuracyParameter", 102, 27),
    ("batch_norm_param", "BatchNormParameter", 139, 0),
    ("concat_param", "ConcatParameter", 104, 9),
    ("convolution_param", "ConvolutionParameter", 106, 10),
    ("data_param", "DataParameter", 107, 11),
    ("dropout_param", "DropoutParameter", 108, 12),
    ("dummy_data_param", "DummyDataParameter", 109, 26),
    ("eltwise_param", "EltwiseParameter", 110, 24),
    ("flatten_param", "FlattenParameter", 135, 0),
    ("hdf5_data_param", "HDF5DataParameter", 112, 13),
    ("image_data_param", "ImageDataParameter", 115, 15),
    ("inner_product_param", "InnerProductParameter", 117, 17),
    ("input_param", "InputParameter", 143, 0),
    ("lrn_param", "LRNParameter", 118, 18),
    ("memory_data_param", "MemoryDataParameter", 119, 22),
    ("pooling_param", "PoolingParameter", 121, 19),
    ("relu_param", "ReLUParameter", 123, 30),
    ("scale_param", "ScaleParameter", 142, 0),
    ("sigmoid_param", "SigmoidParameter", 124, 38),
    ("softmax_param", "SoftmaxParameter", 125, 39),
    ("tanh_param", "TanHParameter", 127, 37),
]

MESSAGES: dict[str, list[Field]] = {
    "BlobShape": [_rep("dim", 1, "int64", packed=True)],
    "BlobProto": [
        _opt("shape", 7, "BlobShape"),
        _rep("data", 5, "float", packed=True),
        _rep("diff", 6, "float", packed=True),
        _rep("double_data", 8, "double", packed=True),
        _rep("double_diff", 9, "double", packed=True),
        _opt("num", 1, "int32", 0),
        _opt("channels", 2, "int32", 0),
        _opt("height", 3, "int32", 0),
        _opt("width", 4, "int32", 0),
    ],
    "FillerParameter": [
        _opt("type", 1, "string", "constant"),
        _opt("value", 2, "float", 0),
        _opt("min", 3, "float", 0),
        _opt("max", 4, "float", 1),
        _opt("mean", 5, "float", 0),
        _opt("std", 6, "float", 1),
        _opt("sparse", 7, "int32", -1),
        _opt("variance_norm", 8, "FillerParameter.VarianceNorm", "FAN_IN"),
    ],
    "NetParameter": [
        _opt("name", 1, "string"),
        _rep("input", 3, "string"),
        _rep("input_shape", 8, "BlobShape"),
        _rep("input_dim", 4, "int32"),
        _opt("force_backward", 5, "bool", False),
        _opt("state", 6, "NetState"),
        _opt("debug_info", 7, "bool", False),
        _rep("layer", 100, "LayerParameter"),
        _rep("layers", 2, "V1LayerParameter"),
    ],
    "NetState": [
        _opt("phase", 1, "Phase", "TEST"),
        _opt("level", 2, "int32", 0),
        _rep("stage", 3, "string"),
    ],
    "NetStateRule": [
        _opt("phase", 1, "Phase"),
        _opt("min_level", 2, "int32"),
        _opt("max_level", 3, "int32"),
        _rep("stage", 4, "string"),
        _rep("not_stage", 5, "string"),
    ],
    "ParamSpec": [
        _opt("name", 1, "string"),
        _opt("share_mode", 2, "ParamSpec.DimCheckMode"),
        _opt("lr_mult", 3, "float", 1.0),
        _opt("decay_mult", 4, "float", 1.0),
    ],
    "LayerParameter": [
        _opt("name", 1, "string"),
        _opt("type", 2, "string"),
        _rep("bottom", 3, "string"),
        _rep("top", 4, "string"),
        _opt("phase", 10, "Phase"),
        _rep("loss_weight", 5, "float"),
        _rep("param", 6, "ParamSpec"),
        _rep("blobs", 7, "BlobProto"),
        _rep("propagate_down", 11, "bool"),
        _rep("include", 8, "NetStateRule"),
        _rep("exclude", 9, "NetStateRule"),
        *(_opt(name, number, message) for name, message, number, _ in _LAYER_PARAMS),
        _opt("quantization_param", 149, "QuantizationParameter"),
        _opt("quantization_param_148", 148, "QuantizationParameter"),
        _opt("quantization_param_147", 147, "QuantizationParameter"),
    ],
    "V1LayerParameter": [
        _rep("bottom", 2, "string"),
        _rep("top", 3, "string"),
        _opt("name", 4, "string"),
        _rep("include", 32, "NetStateRule"),
        _rep("exclude", 33, "NetStateRule"),
        _opt("type", 5, "V1LayerParameter.LayerType"),
        _rep("blobs", 6, "BlobProto"),
        _rep("param", 1001, "string"),
        _rep("blob_share_mode", 1002, "V1LayerParameter.DimCheckMode"),
        _rep("blobs_lr", 7, "float"),
        _rep("weight_decay", 8, "float"),
        _rep("loss_weight", 35, "float"),
        *(_opt(name, v1, message) for name, message, _, v1 in _LAYER_PARAMS if v1),
        # the pre-2014 (V0) layer definition, declared only to recognise such files
        _opt("layer", 1, "V0LayerParameter"),
    ],
    "V0LayerParameter": [],
    "TransformationParameter": [
        _opt("scale", 1, "float", 1),
        _opt("mirror", 2, "bool", False),
        _opt("crop_size", 3, "uint32", 0),
        _opt("mean_file", 4, "string"),
        _rep("mean_value", 5, "float"),
        _opt("force_color", 6, "bool", False),
        _opt("force_gray", 7, "bool", False),
    ],
    "LossParameter": [
        _opt("ignore_label", 1, "int32"),
        _opt("normalization", 3, "LossParameter.NormalizationMode", "VALID"),
        _opt("normalize", 2, "bool"),
    ],
    "AccuracyParameter": [
        _opt("top_k", 1, "uint32", 1),
        _opt("axis", 2, "int32", 1),
        _opt("ignore_label", 3, "int32"),
    ],
    "BatchNormParameter": [
        _opt("use_global_stats", 1, "bool"),
        _opt("moving_average_fraction", 2, "float", 0.999),
        _opt("eps", 3, "float", 1e-5),
    ],
    "ConcatParameter": [
        _opt("axis", 2, "int32", 1),
        _opt("concat_dim", 1, "uint32", 1),
    ],
    "ConvolutionParameter": [
        _opt("num_output", 1, "uint32"),
        _opt("bias_term", 2, "bool", True),
        _rep("pad", 3, "uint32"),
        _rep("kernel_size", 4, "uint32"),
        _rep("stride", 6, "uint32"),
        _rep("dilation", 18, "uint32"),
        _opt("pad_h", 9, "uint32", 0),
        _opt("pad_w", 10, "uint32", 0),
        _opt("kernel_h", 11, "uint32"),
        _opt("kernel_w", 12, "uint32"),
        _opt("stride_h", 13, "uint32"),
        _opt("stride_w", 14, "uint32"),
        _opt("group", 5, "uint32", 1),
        _opt("weight_filler", 7, "FillerParameter"),
        _opt("bias_filler", 8, "FillerParameter"),
        _opt("engine", 15, "ConvolutionParameter.Engine", "DEFAULT"),
        _opt("axis", 16, "int32", 1),
        _opt("force_nd_im2col", 17, "bool", False),
    ],
    "DataParameter": [
        _opt("source", 1, "string"),
        _opt("batch_size", 4, "uint32"),
        _opt("rand_skip", 7, "uint32", 0),
        _opt("backend", 8, "DataParameter.DB", "LEVELDB"),
        _opt("scale", 2, "float", 1),
        _opt("mean_file", 3, "string"),
        _opt("crop_size", 5, "uint32", 0),
        _opt("mirror", 6, "bool", False),
        _opt("force_encoded_color", 9, "bool", False),
        _opt("prefetch", 10, "uint32", 4),
    ],
    "DropoutParameter": [_opt("dropout_ratio", 1, "float", 0.5)],
    "DummyDataParameter": [
        _rep("data_filler", 1, "FillerParameter"),
        _rep("shape", 6, "BlobShape"),
        _rep("num", 2, "uint32"),
        _rep("channels", 3, "uint32"),
        _rep("height", 4, "uint32"),
        _rep("width", 5, "uint32"),
    ],
    "EltwiseParameter": [
        _opt("operation", 1, "EltwiseParameter.EltwiseOp", "SUM"),
        _rep("coeff", 2, "float"),
        _opt("stable_prod_grad", 3, "bool", True),
    ],
    "FlattenParameter": [
        _opt("axis", 1, "int32", 1),
        _opt("end_axis", 2, "int32", -1),
    ],
    "HDF5DataParameter": [
        _opt("source", 1, "string"),
        _opt("batch_size", 2, "uint32"),
        _opt("shuffle", 3, "bool", False),
    ],
    "ImageDataParameter": [
        _opt("source", 1, "string"),
        _opt("batch_size", 4, "uint32", 1),
        _opt("rand_skip", 7, "uint32", 0),
        _opt("shuffle", 8, "bool", False),
        _opt("new_height", 9, "uint32", 0),
        _opt("new_width", 10, "uint32", 0),
        _opt("is_color", 11, "bool", True),
        _opt("scale", 2, "float", 1),
        _opt("mean_file", 3, "string"),
        _opt("crop_size", 5, "uint32", 0),
        _opt("mirror", 6, "bool", False),
        _opt("root_folder", 12, "string", ""),
    ],
    "InnerProductParameter": [
        _opt("num_output", 1, "uint32"),
        _opt("bias_term", 2, "bool", True),
        _opt("weight_filler", 3, "FillerParameter"),
        _opt("bias_filler", 4, "FillerParameter"),
        _opt("axis", 5, "int32", 1),
        _opt("transpose", 6, "bool", False),
    ],
    "InputParameter": [_rep("shape", 1, "BlobShape")],
    "LRNParameter": [
        _opt("local_size", 1, "uint32", 5),
        _opt("alpha", 2, "float", 1),
        _opt("beta", 3, "float", 0.75),
        _opt("norm_region", 4, "LRNParameter.NormRegion", "ACROSS_CHANNELS"),
        _opt("k", 5, "float", 1),
        _opt("engine", 6, "LRNParameter.Engine", "DEFAULT"),
    ],
    "MemoryDataParameter": [
        _opt("batch_size", 1, "uint32"),
        _opt("channels", 2, "uint32"),
        _opt("height", 3, "uint32"),
        _opt("width", 4, "uint32"),
    ],
    "PoolingParameter": [
        _opt("pool", 1, "PoolingParameter.PoolMethod", "MAX"),
        _opt("pad", 4, "uint32", 0),
        _opt("pad_h", 9, "uint32", 0),
        _opt("pad_w", 10, "uint32", 0),
        _opt("kernel_size", 2, "uint32"),
        _opt("kernel_h", 5, "uint32"),
        _opt("kernel_w", 6, "uint32"),
        _opt("stride", 3, "uint32", 1),
        _opt("stride_h", 7, "uint32"),
        _opt("stride_w", 8, "uint32"),
        _opt("engine", 11, "PoolingParameter.Engine", "DEFAULT"),
        _opt("global_pooling", 12, "bool", False),
        _opt("round_mode", 13, "PoolingParameter.RoundMode", "CEIL"),
    ],
    "ReLUParameter": [
        _opt("negative_slope", 1, "float", 0),
        _opt("engine", 2, "ReLUParameter.Engine", "DEFAULT"),
    ],
    "ScaleParameter": [
        _opt("axis", 1, "int32", 1),
        _opt("num_axes", 2, "int32", 1),
        _opt("filler", 3, "FillerParameter"),
        _opt("bias_term", 4, "bool", False),
        _opt("bias_filler", 5, "FillerParameter"),
    ],
    "SigmoidParameter": [_opt("engine", 1, "SigmoidParameter.Engine", "DEFAULT")],
    "SoftmaxParameter": [
        _opt("engine", 1, "SoftmaxParameter.Engine", "DEFAULT"),
        _opt("axis", 2, "int32", 1),
    ],
    "TanHParameter": [_opt("engine", 1, "TanHParameter.Engine", "DEFAULT")],
    "QuantizationParameter": [
        _opt("precision", 1, "QuantizationParameter.Precision", "DYNAMIC_FIXED_POINT"),
        _opt("rounding_scheme", 2, "QuantizationParameter.Rounding", "NEAREST"),
        _opt("bw_layer_in", 3, "uint32", 32),
        _opt("bw_layer_out", 4, "uint32", 32),
        _opt("bw_params", 5, "uint32", 32),
        _opt("fl_layer_in", 6, "int32", 16),
        _opt("fl_layer_out", 7, "int32", 16),
        _opt("fl_params", 8, "int32", 16),
        _opt("mant_bits", 9, "uint32", 23),
        _opt("exp_bits", 10, "uint32", 8),
        _opt("exp_min", 11, "int32", -8),
        _opt("exp_max", 12, "int32", -1),
    ],
}

# V1LayerParameter -> LayerParameter: the layer-specific messages both carry, by field name
V1_SHARED_PARAMS: tuple[str, ...] = tuple(name for name, _, _, v1 in _LAYER_PARAMS if v1)

_SCALARS = {
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
}


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="rsim_caffe_subset.proto", package=PACKAGE, syntax="proto2"
    )
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        messages[name] = message
        for field_name, number, kind, label, default in fields:
            field = message.field.add(name=field_name, number=number)
            field.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if label.startswith("*")
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if label == "*p":
                field.options.packed = True
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
            elif kind in ENUMS:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
                field.type_name = f".{PACKAGE}.{kind}"
            else:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{kind}"
            if default is not None:
                field.default_value = _default_text(default)
    for qualified, values in ENUMS.items():
        owner, _, enum_name = qualified.rpartition(".")
        enum = (messages[owner].enum_type if owner else file.enum_type).add(name=enum_name)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())


def message_class(name: str) -> type:
    """The generated message class of one of MESSAGES (e.g. "NetParameter")."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


NetParameter = message_class("NetParameter")
LayerParameter = message_class("LayerParameter")
BlobProto = message_class("BlobProto")
QuantizationParameter = message_class("QuantizationParameter")
