"""Scaled dot-product attention (ONNX Attention, opsets 23 on): softmax(Q·Kᵀ·scale + bias)·V,
with the key/value cache, grouped-query heads, masks, causal masking, the sliding window and
the soft cap.

Operands (`rsim.ops.registry.named_operands` roles): `q`, `k`, `v` and the optional `mask`,
`past_key`, `past_value`, each an activation or a constant. Attributes: `scale` (None:
1/sqrt(head size)), `is_causal`, `q_num_heads`/`kv_num_heads` (3-D inputs: heads are split off
the hidden axis), `softcap` (0: none), `window` (left, right: how far before and after its
position a query sees, -1 without bound; opset 25), `mask_bool` (the mask holds truth values:
0 masks a position out; otherwise it is added), `qk_mode` (which scores output "qk" returns, as
onnx's reference computes them: 0 and 1 the scaled product after the soft cap, 2 after the bias
too, 3 the probabilities) and `output`: the one result a layer computes, "y", "present_key",
"present_value" or "qk" (a node with several used outputs becomes several layers).

Semantics (the ONNX definition): Q and K are each scaled by sqrt(scale); past keys/values are
concatenated before the new ones (the present outputs); a mask shorter than the keys is padded
with masked positions; causal masking lets query i see keys j <= i + (number of past keys); the
soft cap c maps the scores to c·tanh(s/c) before the bias; a query whose every key is masked
gets zero probabilities; K/V heads are repeated (h0, h0, h1, h1, ...) to the query heads.

Float-emulated on the accelerator: a frontend that wants the two products on the MAC array
maps attention onto matmul and softmax layers instead (as exporters before opset 23 do).
"""

from __future__ import annotations

import math

import numpy as np

from rsim.ops.registry import OpSpec, named_operands, register


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, S, heads·D) to (B, heads, S, D)."""
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _bias(q_len: int, kv_len: int, past: int, mask, attrs, dtype) -> np.ndarray:
    """The additive bias of the scores: the mask (0/-inf for a truth-value mask), padded to the
    keys with masked positions, plus the causal frontier and the sliding window."""
    inf = dtype.type(np.inf)
    bias = np.zeros((q_len, kv_len), dtype)
    if mask is not None:
        if attrs["mask_bool"]:
            mask = np.where(mask != 0, dtype.type(0), -inf)
        width = kv_len - mask.shape[-1]
        if width > 0:
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, width)],
                          constant_values=-inf)
        bias = bias + mask.astype(dtype)
    # distance of each key before its query's position (past keys shift the queries)
    before = np.arange(q_len)[:, None] + past - np.arange(kv_len)[None, :]
    if attrs["is_causal"]:
        bias = bias + np.where(before >= 0, dtype.type(0), -inf)
    left, right = attrs.get("window", (-1, -1))
    if left >= 0 or right >= 0:
        inside = ((left < 0) | (before <= left)) & ((right < 0) | (-before <= right))
        bias = bias + np.where(inside, dtype.type(0), -inf)
    return bias


def _attention(arrays, attrs, params):
    ops = named_operands(arrays, attrs, params)
    q, k, v = ops["q"], ops["k"], ops["v"]
    dtype = q.dtype
    three_d = q.ndim == 3
    if three_d:
        q = _split_heads(q, attrs["q_num_heads"])
        k = _split_heads(k, attrs["kv_num_heads"])
        v = _split_heads(v, attrs["kv_num_heads"])
    past = 0
    if "past_key" in ops:
        past = ops["past_key"].shape[2]
        k = np.concatenate([ops["past_key"].astype(dtype), k], axis=2)
        v = np.concatenate([ops["past_value"].astype(dtype), v], axis=2)
    if attrs["output"] == "present_key":
        return k
    if attrs["output"] == "present_value":
        return v
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads != kv_heads:
        k, v = np.repeat(k, heads // kv_heads, axis=1), np.repeat(v, heads // kv_heads, axis=1)
    scale = attrs["scale"] if attrs["scale"] is not None else 1 / math.sqrt(q.shape[3])
    root = dtype.type(math.sqrt(scale))
    scores = np.matmul(q * root, np.swapaxes(k * root, -1, -2))
    if attrs["softcap"] > 0:
        cap = dtype.type(attrs["softcap"])
        scores = cap * np.tanh(scores / cap)
    if attrs["qk_mode"] in (0, 1) and attrs["output"] == "qk":
        return scores
    bias = _bias(q.shape[2], k.shape[2], past, ops.get("mask"), attrs, dtype)
    scores = scores + bias
    if attrs["qk_mode"] == 2 and attrs["output"] == "qk":
        return scores
    blocked = np.isneginf(bias.max(axis=-1, keepdims=True))
    top = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isneginf(top), dtype.type(0), top))
    total = e.sum(axis=-1, keepdims=True)
    probs = np.where(blocked | (total == 0), dtype.type(0),
                     e / np.where(total == 0, dtype.type(1), total))
    if attrs["output"] == "qk":
        return probs
    y = np.matmul(probs, v)
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return y


def _attention_shape(shapes, attrs, params):
    ops = {r: tuple(s.shape) if isinstance(s, np.ndarray) else tuple(s)
           for r, s in named_operands(shapes, attrs, params).items()}
    q, k, v = ops["q"], ops["k"], ops["v"]
    if len(q) == 3:
        qh, kvh = attrs["q_num_heads"], attrs["kv_num_heads"]
        if q[2] % qh or k[2] % kvh or v[2] % kvh:
            raise ValueError(f"attention hidden sizes {q[2]}, {k[2]}, {v[2]} do not split into "
                             f"{qh} query and {kvh} key/value heads")
        q = (q[0], qh, q[1], q[2] // qh)
        k = (k[0], kvh, k[1], k[2] // kvh)
        v = (v[0], kvh, v[1], v[2] // kvh)
    if len(q) != 4 or len(k) != 4 or len(v) != 4 or q[3] != k[3] or q[1] % k[1]:
        raise ValueError(f"attention operands {ops['q']}, {ops['k']}, {ops['v']} do not fit")
    kv_len = k[2] + (ops["past_key"][2] if "past_key" in ops else 0)
    output = attrs["output"]
    if output == "present_key":
        return k[:2] + (kv_len, k[3])
    if output == "present_value":
        return v[:2] + (kv_len, v[3])
    if output == "qk":
        return (q[0], q[1], q[2], kv_len)
    if len(ops["q"]) == 3:
        return (q[0], q[2], q[1] * v[3])
    return (q[0], q[1], q[2], v[3])


register(OpSpec("attention", _attention, _attention_shape))
