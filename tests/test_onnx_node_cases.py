"""The official ONNX backend node tests, run through a small rsim backend adapter.

The onnx wheel ships no test data folder, so the cases come from the test-case generators in
`onnx.backend.test.case.node` (the same generators `collect_testcases()` runs; importing only the
modules of the operators rsim supports takes about 12 s, mostly MaxPool/AveragePool's 3-D
references, instead of the ~25 s of collecting all ~1,900 cases). Every case whose graph uses
only operators rsim supports is collected, then:

Included: all such cases with float16/bfloat16/float32/float64 data, and integer or boolean
indices and truth values where the operator takes them (Gather indices, Where conditions, Equal
operands, attention masks, ArgMax/TopK/Shape outputs), at the opset the case was written for
(rsim reads every opset the installed onnx knows). Graphs of function-expanded cases count too
(Constant, Shape and Size nodes are folded at import).

Excluded (each case is named in EXPECTED_EXCLUSIONS below, which a test checks), by reason:
- sequence and optional values (test_identity_sequence, test_identity_opt): rsim's tensors are
  plain arrays;
- integer or bool data elsewhere (test_add_int8, test_clip_default_int8_min, test_max_uint8,
  attention's nonpad_kv_seqlen, ...): rsim's float path runs float32/float64 only (the int32 test_edge_pad/test_reflect_pad/
  test_wrap_pad have float counterparts checked against onnxruntime in test_float_ops.py);
- empty tensors (test_reshape_allowzero_reordered feeds a (0, 3, 4) array; an empty CastLike
  "like" input, whose element type alone counts, or one no node reads (CastLike's expansions)
  becomes an initializer instead);
- strings (test_equal_string);
- ConstantOfShape and Range fed by graph inputs: made constant, the output depends on no input;
  fed as inputs, its shape follows their values (rsim's shapes are static);
- half-precision intermediates (six named cases: onnx's reference rounds the attention scores or
  an intermediate to float16/bfloat16; rsim's float path computes in float32);
- 1-D and 3-D convolution and pooling (test_conv*_1d, test_maxpool_3d_*, ...): rsim's conv and
  pooling are 2-D (the accelerators it models lower 2-D convolution);
- BatchNormalization and Dropout in training mode, Dropout's mask output and MaxPool's Indices
  output: rsim runs inference and computes values only;
- other element types (float8, float4, int4/int2, e8m0 casts): rsim's float path carries
  float16/bfloat16/float32/float64 values.

The adapter turns the operands rsim requires to be constant (CONSTANT_INPUTS: weights, bias,
statistics, pads, shapes, axes, sizes, scales) into initializers holding the case's data, saves
the model and loads it with `rsim.load`, exactly as a user's file would be read.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import rsim
from rsim.frontends.onnx import COMPUTE_OPS, REMOVED_OPS

CASE_MODULES = (
    "conv",
    "convtranspose",
    "gemm",
    "matmul",
    "relu",
    "leakyrelu",
    "clip",
    "sigmoid",
    "tanh",
    "hardsigmoid",
    "hardswish",
    "maxpool",
    "averagepool",
    "globalaveragepool",
    "batch_normalization",
    "add",
    "sub",
    "mul",
    "div",
    "concat",
    "flatten",
    "reshape",
    "transpose",
    "squeeze",
    "unsqueeze",
    "pad",
    "softmax",
    "lrn",
    "dropout",
    "identity",
    "cast",
    "castlike",
    "layernormalization",
    "rmsnormalization",
    "groupnormalization",
    "instance_normalization",
    "erf",
    "gelu",
    "exp",
    "log",
    "sqrt",
    "pow",
    "reciprocal",
    "neg",
    "abs",
    "sign",
    "floor",
    "ceil",
    "round",
    "max",
    "min",
    "sum",
    "mean",
    "softplus",
    "softsign",
    "mish",
    "elu",
    "selu",
    "celu",
    "thresholdedrelu",
    "prelu",
    "logsoftmax",
    "globalmaxpool",
    "reducesum",
    "reducemean",
    "reducemax",
    "argmax",
    "topk",
    "gather",
    "slice",
    "split",
    "expand",
    "tile",
    "where",
    "equal",
    "shape",
    "constantofshape",
    "rangeop",
    "resize",
    "upsample",
    "depthtospace",
    "spacetodepth",
    "einsum",
    "attention",
)

# input positions that rsim needs as constants (weights, statistics, shapes, axes, sizes), per
# op type; Gemm's C, Clip's bounds, Gather's indices, Where's condition, PRelu's slope and
# Attention's operands stay graph inputs (rsim computes on them)
CONSTANT_INPUTS = {
    "Conv": {1, 2},
    "ConvTranspose": {1, 2},
    "Gemm": {1},
    "BatchNormalization": {1, 2, 3, 4},
    "Pad": {1, 2, 3},
    "Reshape": {1},
    "Squeeze": {1},
    "Unsqueeze": {1},
    "Dropout": {1, 2},
    "LayerNormalization": {1, 2},
    "RMSNormalization": {1},
    "GroupNormalization": {1, 2},
    "InstanceNormalization": {1, 2},
    "Pow": {1},
    "ReduceSum": {1},
    "ReduceMean": {1},
    "ReduceMax": {1},
    "TopK": {1},
    "Slice": {1, 2, 3, 4},
    "Split": {1},
    "Expand": {1},
    "Tile": {1},
    "Resize": {1, 2, 3},
    "Upsample": {1},
    "ConstantOfShape": {0},
    "Range": {0, 1, 2},
}
# Constant nodes, Shape and Size are folded at import
SUPPORTED = set(COMPUTE_OPS) | set(REMOVED_OPS) | {"Constant", "Shape", "Size"}
# ops whose integer or boolean inputs are indices or truth values (rsim takes them as graph
# inputs), and ops whose outputs are (rsim carries them as whole-number floats)
INDEX_INPUT_OPS = {"Gather": {1}, "Where": {0}, "Equal": {0, 1}, "Attention": {3}}
INDEX_OUTPUT_OPS = {"ArgMax", "Equal", "Shape", "TopK"}


def _collect():
    from onnx.backend.test.case import node as node_cases

    with np.errstate(all="ignore"):
        for module in CASE_MODULES:
            importlib.import_module(f"onnx.backend.test.case.node.{module}")
    seen, cases = set(), []
    for case in node_cases._NodeTestCases:
        ops = {n.op_type for n in case.model.graph.node}
        if case.name not in seen and ops <= SUPPORTED and case.kind == "node":
            seen.add(case.name)
            cases.append(case)
    return cases


CASES = _collect()


# cases whose expected outputs onnx's reference computes with float16/bfloat16 intermediates
# (it rounds the scores, the probabilities or the result to the narrow type), which rsim's
# float path computes in float32: they differ by more than the cases' tolerance
HALF_PRECISION_INTERMEDIATES = {
    "test_celu_bfloat16",
    "test_celu_bfloat16_expanded",
    "test_attention_4d_gqa_with_past_and_present_fp16",
    "test_attention_4d_causal_bf16",
    "test_attention_4d_attn_mask_causal_bf16",
    "test_attention_3d_causal_bf16",
}


def exclusion_reason(case) -> str | None:
    graph = case.model.graph
    if case.name in HALF_PRECISION_INTERMEDIATES:
        return ("half-precision intermediates: onnx's reference rounds intermediate results "
                "to float16/bfloat16, rsim's float path computes in float32")
    if any(not v.type.HasField("tensor_type") for v in list(graph.input) + list(graph.output)):
        return "sequence/optional values: rsim's tensors are plain arrays"
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
            x = next(v for v in graph.input if v.name == node.input[0])
            if len(x.type.tensor_type.shape.dim) != 4:
                return "1-D/3-D convolution or pooling: rsim's spatial ops are 2-D"
        if node.op_type in ("BatchNormalization", "Dropout") and (
            attrs.get("training_mode")
            or len(node.input) > 2
            and node.op_type == "Dropout"
            or len(node.output) > 1
            and node.op_type == "BatchNormalization"
        ):
            return "training mode: rsim runs inference only"
        if node.op_type == "Dropout" and len(node.output) > 1:
            return "Dropout mask output: rsim removes Dropout"
        if node.op_type == "MaxPool" and len(node.output) > 1:
            return "MaxPool Indices output: rsim computes pooled values only"
        if node.op_type in ("ConstantOfShape", "Range") and node.input[0] in {
                v.name for v in graph.input}:
            return ("value-shaped outputs: an output made from constants alone depends on no "
                    "input, and one whose shape follows input values has no static shape")
    index_inputs = {node.input[p] for node in graph.node
                    for p in INDEX_INPUT_OPS.get(node.op_type, ()) if p < len(node.input)}
    index_outputs = {o for node in graph.node if node.op_type in INDEX_OUTPUT_OPS
                     for o in node.output}
    for inputs, outputs in case.data_sets:
        _, feeds = _adapted_model(case, inputs)
        values = [(n, v) for n, v in feeds.items()] + list(zip(
            [v.name for v in graph.output], [_array(v) for v in outputs], strict=True))
        for name, value in values:
            if value.dtype == object:
                return "strings: rsim's tensors hold numbers"
            if name in index_inputs | index_outputs and value.dtype.kind in "iub":
                continue
            if value.dtype.kind in "iub":
                return "integer/bool data: rsim's float path runs float32/float64 only"
            if value.dtype not in FLOAT_TYPES:
                return ("other element types (float8, float4, int4/int2, e8m0): rsim's float "
                        "path carries float16/bfloat16/float32/float64 values only")
            if np.asarray(value).size == 0:
                return "empty tensors: a batch or dimension of size 0 is not a network input"
    return None


FLOAT_TYPES = {np.dtype(t) for t in (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)}


def _array(value) -> np.ndarray:
    """A case's value as numpy (cases of exotic element types store TensorProtos)."""
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def _adapted_model(case, inputs) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The case's model with its constant operands as initializers, and the remaining feeds."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    names = [v.name for v in graph.input]
    values = dict(zip(names, (_array(v) for v in inputs), strict=True))
    constant = set()
    for node in graph.node:
        for position in CONSTANT_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] in values:
                constant.add(node.input[position])
        # CastLike reads only the element type of its (empty) second input
        if node.op_type == "CastLike" and node.input[1] in values and \
                values[node.input[1]].size == 0:
            constant.add(node.input[1])
    read = {name for node in graph.node for name in node.input}
    constant |= {name for name, value in values.items() if name not in read and value.size == 0}
    for name in constant:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values[name]), name))
    kept = [v for v in graph.input if v.name not in constant]
    del graph.input[:]
    graph.input.extend(kept)
    return model, {n: np.asarray(v) for n, v in values.items() if n not in constant}


REASONS = {c.name: exclusion_reason(c) for c in CASES}
INCLUDED = [c for c in CASES if REASONS[c.name] is None]
EXCLUDED = [c for c in CASES if REASONS[c.name] is not None]


@pytest.mark.parametrize("case", INCLUDED, ids=lambda c: c.name)
def test_onnx_node_case_matches_expected_outputs(case, tmp_path: Path):
    for index, (inputs, expected) in enumerate(case.data_sets):
        model, feeds = _adapted_model(case, inputs)
        path = tmp_path / f"{case.name}_{index}.onnx"
        onnx.save(model, path)
        net = rsim.load(path)
        dtype = np.float64 if any(v.dtype == np.float64 for v in feeds.values()) else np.float32
        got = net.run_float({n: v if v.dtype.kind in "iub" else v.astype(dtype)
                             for n, v in feeds.items()}, dtype=dtype)
        for name, want in zip(net.outputs, expected, strict=True):
            np.testing.assert_allclose(
                got[name],
                _array(want).astype(dtype),
                rtol=case.rtol,
                atol=case.atol,
                err_msg=f"{case.name} output {name}",
            )


def test_every_supported_operator_has_an_included_node_case():
    covered = {n.op_type for c in INCLUDED for n in c.model.graph.node}
    assert covered == SUPPORTED


EXPECTED_EXCLUSIONS = {
    "1-D/3-D convolution or pooling": [
        "test_averagepool_1d_default",
        "test_averagepool_3d_default",
        "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
        "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
        "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
        "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True",
        "test_averagepool_3d_dilations_small",
        "test_convtranspose_1d",
        "test_convtranspose_3d",
        "test_maxpool_1d_default",
        "test_maxpool_3d_default",
        "test_maxpool_3d_dilations",
        "test_maxpool_3d_dilations_use_ref_impl",
        "test_maxpool_3d_dilations_use_ref_impl_large",
    ],
    "Dropout mask output": [
        "test_dropout_default_mask",
        "test_dropout_default_mask_ratio",
    ],
    "MaxPool Indices output": [
        "test_maxpool_with_argmax_2d_precomputed_pads",
        "test_maxpool_with_argmax_2d_precomputed_strides",
    ],
    "empty tensors": [
        "test_reduce_max_empty_set",
        "test_reduce_sum_empty_set",
        "test_reduce_sum_empty_set_non_reduced_axis_zero",
        "test_reshape_allowzero_reordered",
        "test_slice_start_out_of_bounds",
        "test_split_zero_size_splits_opset13",
        "test_split_zero_size_splits_opset18",
    ],
    "half-precision intermediates": [
        "test_attention_3d_causal_bf16",
        "test_attention_4d_attn_mask_causal_bf16",
        "test_attention_4d_causal_bf16",
        "test_attention_4d_gqa_with_past_and_present_fp16",
        "test_celu_bfloat16",
        "test_celu_bfloat16_expanded",
    ],
    "integer/bool data": [
        "test_add_int16",
        "test_add_int8",
        "test_add_uint16",
        "test_add_uint32",
        "test_add_uint64",
        "test_add_uint8",
        "test_attention_4d_causal_nonpad_attn_mask_composition",
        "test_attention_4d_causal_nonpad_batch_prefill",
        "test_attention_4d_causal_nonpad_continued_prefill",
        "test_attention_4d_causal_nonpad_negative_offset_structural_empty",
        "test_attention_4d_causal_padded_kv_bf16",
        "test_attention_4d_diff_heads_mask4d_padded_kv",
        "test_attention_4d_gqa_causal_nonpad_decode",
        "test_attention_4d_gqa_causal_nonpad_decode_fp16",
        "test_attention_4d_padded_kv_bf16",
        "test_attention_local_window_ext_cache_float16_mask",
        "test_attention_local_window_ext_cache_rank2_mask",
        "test_attention_local_window_ext_cache_rank3_head_mask",
        "test_attention_local_window_ext_cache_rank4_batch_mask",
        "test_clip_default_int8_inbounds",
        "test_clip_default_int8_inbounds_expanded",
        "test_clip_default_int8_max",
        "test_clip_default_int8_min",
        "test_div_int16",
        "test_div_int32_trunc",
        "test_div_int8",
        "test_div_uint16",
        "test_div_uint32",
        "test_div_uint64",
        "test_div_uint8",
        "test_edge_pad",
        "test_max_int16",
        "test_max_int32",
        "test_max_int64",
        "test_max_int8",
        "test_max_uint16",
        "test_max_uint32",
        "test_max_uint64",
        "test_max_uint8",
        "test_maxpool_2d_uint8",
        "test_min_int16",
        "test_min_int32",
        "test_min_int64",
        "test_min_int8",
        "test_min_uint16",
        "test_min_uint32",
        "test_min_uint64",
        "test_min_uint8",
        "test_mul_int16",
        "test_mul_int8",
        "test_mul_uint16",
        "test_mul_uint32",
        "test_mul_uint64",
        "test_mul_uint8",
        "test_pow_types_int32_float32",
        "test_pow_types_int32_int32",
        "test_pow_types_int64_float32",
        "test_pow_types_int64_int64",
        "test_reduce_max_bool_inputs",
        "test_reduce_max_empty_set_bool",
        "test_reflect_pad",
        "test_sub_int16",
        "test_sub_int8",
        "test_sub_uint16",
        "test_sub_uint32",
        "test_sub_uint64",
        "test_sub_uint8",
        "test_top_k_same_values",
        "test_top_k_same_values_2d",
        "test_top_k_same_values_largest",
        "test_top_k_uint64",
        "test_where_long_example",
        "test_wrap_pad",
    ],
    "other element types (float8, float4, int4/int2, e8m0)": [
        "test_cast_FLOAT16_to_FLOAT4E2M1",
        "test_cast_FLOAT16_to_FLOAT8E4M3FN",
        "test_cast_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_cast_FLOAT16_to_FLOAT8E5M2",
        "test_cast_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_cast_FLOAT16_to_INT2",
        "test_cast_FLOAT16_to_INT4",
        "test_cast_FLOAT16_to_UINT2",
        "test_cast_FLOAT16_to_UINT4",
        "test_cast_FLOAT4E2M1_to_FLOAT",
        "test_cast_FLOAT4E2M1_to_FLOAT16",
        "test_cast_FLOAT8E4M3FNUZ_to_FLOAT",
        "test_cast_FLOAT8E4M3FNUZ_to_FLOAT16",
        "test_cast_FLOAT8E4M3FN_to_FLOAT",
        "test_cast_FLOAT8E4M3FN_to_FLOAT16",
        "test_cast_FLOAT8E5M2FNUZ_to_FLOAT",
        "test_cast_FLOAT8E5M2FNUZ_to_FLOAT16",
        "test_cast_FLOAT8E5M2_to_FLOAT",
        "test_cast_FLOAT8E5M2_to_FLOAT16",
        "test_cast_FLOAT_to_FLOAT4E2M1",
        "test_cast_FLOAT_to_FLOAT8E4M3FN",
        "test_cast_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_cast_FLOAT_to_FLOAT8E5M2",
        "test_cast_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_cast_FLOAT_to_INT2",
        "test_cast_FLOAT_to_INT4",
        "test_cast_FLOAT_to_UINT2",
        "test_cast_FLOAT_to_UINT4",
        "test_cast_INT2_to_FLOAT",
        "test_cast_INT2_to_FLOAT16",
        "test_cast_INT2_to_INT8",
        "test_cast_INT4_to_FLOAT",
        "test_cast_INT4_to_FLOAT16",
        "test_cast_INT4_to_INT8",
        "test_cast_UINT2_to_FLOAT",
        "test_cast_UINT2_to_FLOAT16",
        "test_cast_UINT2_to_UINT8",
        "test_cast_UINT4_to_FLOAT",
        "test_cast_UINT4_to_FLOAT16",
        "test_cast_UINT4_to_UINT8",
        "test_cast_e8m0_FLOAT16_to_FLOAT8E8M0",
        "test_cast_e8m0_FLOAT8E8M0_to_FLOAT",
        "test_cast_e8m0_FLOAT8E8M0_to_FLOAT16",
        "test_cast_e8m0_FLOAT_to_FLOAT8E8M0",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_FLOAT16_to_FLOAT4E2M1",
        "test_castlike_FLOAT16_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FN",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FN_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E5M2",
        "test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E5M2_expanded",
        "test_castlike_FLOAT16_to_INT2",
        "test_castlike_FLOAT16_to_INT2_expanded",
        "test_castlike_FLOAT16_to_INT4",
        "test_castlike_FLOAT16_to_INT4_expanded",
        "test_castlike_FLOAT16_to_UINT2",
        "test_castlike_FLOAT16_to_UINT2_expanded",
        "test_castlike_FLOAT16_to_UINT4",
        "test_castlike_FLOAT16_to_UINT4_expanded",
        "test_castlike_FLOAT4E2M1_to_FLOAT",
        "test_castlike_FLOAT4E2M1_to_FLOAT16",
        "test_castlike_FLOAT4E2M1_to_FLOAT16_expanded",
        "test_castlike_FLOAT4E2M1_to_FLOAT_expanded",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16_expanded",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT_expanded",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT16",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT16_expanded",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT_expanded",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16_expanded",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT_expanded",
        "test_castlike_FLOAT8E5M2_to_FLOAT",
        "test_castlike_FLOAT8E5M2_to_FLOAT16",
        "test_castlike_FLOAT8E5M2_to_FLOAT16_expanded",
        "test_castlike_FLOAT8E5M2_to_FLOAT_expanded",
        "test_castlike_FLOAT_to_FLOAT4E2M1",
        "test_castlike_FLOAT_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT_to_FLOAT8E4M3FN",
        "test_castlike_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_castlike_FLOAT_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_FLOAT_to_FLOAT8E4M3FN_expanded",
        "test_castlike_FLOAT_to_FLOAT8E5M2",
        "test_castlike_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_FLOAT_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_FLOAT_to_FLOAT8E5M2_expanded",
        "test_castlike_FLOAT_to_INT2",
        "test_castlike_FLOAT_to_INT2_expanded",
        "test_castlike_FLOAT_to_INT4",
        "test_castlike_FLOAT_to_INT4_expanded",
        "test_castlike_FLOAT_to_UINT2",
        "test_castlike_FLOAT_to_UINT2_expanded",
        "test_castlike_FLOAT_to_UINT4",
        "test_castlike_FLOAT_to_UINT4_expanded",
        "test_castlike_INT2_to_FLOAT",
        "test_castlike_INT2_to_FLOAT16",
        "test_castlike_INT2_to_FLOAT16_expanded",
        "test_castlike_INT2_to_FLOAT_expanded",
        "test_castlike_INT2_to_INT8",
        "test_castlike_INT2_to_INT8_expanded",
        "test_castlike_INT4_to_FLOAT",
        "test_castlike_INT4_to_FLOAT16",
        "test_castlike_INT4_to_FLOAT16_expanded",
        "test_castlike_INT4_to_FLOAT_expanded",
        "test_castlike_INT4_to_INT8",
        "test_castlike_INT4_to_INT8_expanded",
        "test_castlike_UINT2_to_FLOAT",
        "test_castlike_UINT2_to_FLOAT16",
        "test_castlike_UINT2_to_FLOAT16_expanded",
        "test_castlike_UINT2_to_FLOAT_expanded",
        "test_castlike_UINT2_to_UINT8",
        "test_castlike_UINT2_to_UINT8_expanded",
        "test_castlike_UINT4_to_FLOAT",
        "test_castlike_UINT4_to_FLOAT16",
        "test_castlike_UINT4_to_FLOAT16_expanded",
        "test_castlike_UINT4_to_FLOAT_expanded",
        "test_castlike_UINT4_to_UINT8",
        "test_castlike_UINT4_to_UINT8_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2_expanded",
    ],
    "sequence/optional values": [
        "test_identity_opt",
        "test_identity_sequence",
    ],
    "strings": [
        "test_equal_string",
        "test_equal_string_broadcast",
    ],
    "training mode": [
        "test_batchnorm_epsilon_training_mode",
        "test_batchnorm_example_training_mode",
        "test_training_dropout",
        "test_training_dropout_default",
        "test_training_dropout_default_mask",
        "test_training_dropout_mask",
        "test_training_dropout_zero_ratio",
        "test_training_dropout_zero_ratio_mask",
    ],
    "value-shaped outputs": [
        "test_constantofshape_float_ones",
        "test_constantofshape_int_shape_zero",
        "test_constantofshape_int_zeros",
        "test_range_bfloat16_type_positive_delta",
        "test_range_float16_type_positive_delta",
        "test_range_float_type_positive_delta",
        "test_range_int32_type_negative_delta",
    ],
}


def test_excluded_node_cases_are_exactly_the_listed_ones_for_the_listed_reasons():
    found: dict[str, list[str]] = {}
    for name, reason in REASONS.items():
        if reason is not None:
            found.setdefault(reason.split(":")[0], []).append(name)
    assert {k: sorted(v) for k, v in found.items()} == {
        k: sorted(v) for k, v in EXPECTED_EXCLUSIONS.items()
    }
