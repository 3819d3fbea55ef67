"""The integer models of the selection, comparison, reduction, resize and rounding ops, each run
on random codes in random formats and checked against Python ints and Fractions: an exact
value, rounded once (nearest even) onto the output grid and saturated, or codes moved
unchanged."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import hwconfigs
import rsim
from formats import FixedPoint
from rsim.network import Layer
from rsim.ops import OPS
from rsim.ops.resize import WEIGHT_FL, axis_weights, integer_weights
from rsim.quant.assignment import INDEX_FORMAT
from rsim.quant.layer import LayerQuant
from rsim.quant.tensor import QTensor
from rsim.schedule import schedule
from rsim.schedule.from_network import network_work

DATAPATH = hwconfigs.load("mid-ws-int8").datapath  # requant_rounding: nearest_even
SEEDS = range(6)


def _nearest_even(q: Fraction) -> int:
    floor = q.numerator // q.denominator
    rest = q - floor
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


def _code(value: Fraction, fmt: FixedPoint) -> int:
    """`value` rounded once onto `fmt`'s grid (nearest even) and saturated."""
    return max(fmt.min_code, min(fmt.max_code, _nearest_even(value * Fraction(2) ** fmt.fl)))


def _value(code, fmt: FixedPoint) -> Fraction:
    return Fraction(int(code)) * Fraction(2) ** -fmt.fl


def _tensor(rng, shape, fmt=None) -> QTensor:
    fmt = fmt or FixedPoint(int(rng.choice([4, 8, 12])), int(rng.integers(-3, 9)))
    codes = rng.integers(fmt.min_code, fmt.max_code + 1, size=shape)
    return QTensor(codes.astype(fmt.code_dtype), fmt)


def _out_fmt(rng) -> FixedPoint:
    return FixedPoint(8, int(rng.integers(-2, 8)))


def _run(op, inputs, out_fmt, attrs=None, params=None, rng=None):
    attrs, params = attrs or {}, params or {}
    layer = Layer("layer", op, tuple(f"x{i}" for i in range(len(inputs))), ("y",), attrs,
                  {k: np.asarray(v, np.float32) for k, v in params.items()})
    spec = OPS[op]
    if spec.index_output(attrs, layer.params, len(inputs)):
        out_fmt = INDEX_FORMAT
    elif spec.keeps_format(attrs, layer.params, len(inputs)):
        out_fmt = inputs[0].fmt
    quant = LayerQuant(layer, spec, DATAPATH, tuple(t.fmt for t in inputs), out_fmt)
    assert spec.integer is not None and spec.integer_applies(attrs, layer.params, len(inputs))
    return quant.run(inputs, rng).out


# ----- max, min, sum, mean --------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", ["max", "min", "sum", "mean"])
def test_variadic_ops_of_activations_in_different_formats_round_the_exact_result_once(op, seed):
    rng = np.random.default_rng(seed)
    inputs = [_tensor(rng, (2, 5)), _tensor(rng, (5,)), _tensor(rng, (2, 1))][:2 + seed % 2]
    out_fmt = _out_fmt(rng)
    out = _run(op, inputs, out_fmt, {"count": len(inputs)})
    assert out.fmt == out_fmt
    combine = {"max": max, "min": min, "sum": sum, "mean": lambda v: sum(v) / len(v)}[op]
    for index in np.ndindex(out.data.shape):
        values = [_value(t.data[_broadcast_index(index, t.data.shape)], t.fmt) for t in inputs]
        assert out.data[index] == _code(combine(values), out_fmt), index


def _broadcast_index(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element of an operand of `shape` that numpy broadcasting puts at output `index`."""
    return tuple(i if d > 1 else 0 for i, d in zip(index[len(index) - len(shape):], shape,
                                                    strict=True))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_against_a_constant_keep_the_format_with_the_constant_rounded_onto_it(op, seed):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (3, 4))
    constant = rng.normal(0, 2.0 ** (x.fmt.bits - 1 - x.fmt.fl) / 2, (4,)).astype(np.float32)
    constant[0] = 1e9  # beyond the format: saturates
    out = _run(op, [x], None, {"count": 2}, {"constant": constant})
    assert out.fmt == x.fmt
    pick = max if op == "max" else min
    for (i, j), code in np.ndenumerate(out.data):
        bound = _code(Fraction(float(constant[j])), x.fmt)
        assert code == pick(int(x.data[i, j]), bound)


# ----- reductions -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean"])
def test_reduce_sum_and_mean_sum_exactly_and_round_once(op, seed):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (2, 3, 5))
    axes = [(1,), (2,), (1, 2), (0, 2)][seed % 4]
    keepdims = bool(seed % 2)
    out_fmt = _out_fmt(rng)
    out = _run(op, [x], out_fmt, {"axes": axes, "keepdims": keepdims})
    kept = [a for a in range(3) if a not in axes]
    for index in np.ndindex(*(x.data.shape[a] for a in kept)):
        cells = [cell for cell in np.ndindex(x.data.shape)
                 if all(cell[a] == i for a, i in zip(kept, index, strict=True))]
        total = sum(_value(x.data[cell], x.fmt) for cell in cells)
        want = total / len(cells) if op == "reduce_mean" else total
        at = tuple(index[kept.index(a)] if a in kept else 0 for a in range(3)) if keepdims \
            else index
        assert out.data[at] == _code(want, out_fmt)


@pytest.mark.parametrize("seed", SEEDS)
def test_selections_compare_codes_and_keep_the_format(seed):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (2, 3, 4, 4))
    ints = x.data.astype(object)
    top = _run("reduce_max", [x], None, {"axes": (1, 3), "keepdims": False})
    gmax = _run("global_maxpool", [x], None)
    arg = _run("argmax", [x], None, {"axis": 2, "keepdims": True, "select_last_index": seed % 2})
    k = 1 + seed % 4
    values = _run("topk", [x], None, {"k": k, "axis": 3, "largest": bool(seed % 2),
                                      "output": "values"})
    indices = _run("topk", [x], None, {"k": k, "axis": 3, "largest": bool(seed % 2),
                                       "output": "indices"})
    assert top.fmt == gmax.fmt == values.fmt == x.fmt and arg.fmt == indices.fmt == INDEX_FORMAT
    for n, h in np.ndindex(2, 4):
        assert top.data[n, h] == max(ints[n, c, h, w] for c in range(3) for w in range(4))
    for n, c in np.ndindex(2, 3):
        assert gmax.data[n, c, 0, 0] == max(ints[n, c].ravel())
        for w in range(4):
            column = list(ints[n, c, :, w])
            best = max(column)
            spots = [i for i, v in enumerate(column) if v == best]
            assert arg.data[n, c, 0, w] == (spots[-1] if seed % 2 else spots[0])
        for h in range(4):
            row = list(ints[n, c, h])
            order = sorted(range(4), key=lambda i: (-row[i] if seed % 2 else row[i], i))[:k]
            assert list(indices.data[n, c, h]) == order
            assert list(values.data[n, c, h]) == [row[i] for i in order]


# ----- moves -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_gather_slice_expand_tile_move_codes_unchanged(seed):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (2, 3, 4))
    values = x.values()
    idx = np.array([[2, -1], [0, 0]])
    cases = [
        ("gather", {"axis": 2, "roles": ("data",)}, {"indices": idx},
         np.take(values, idx, axis=2)),
        ("slice", {"slices": ((2, 3, -5, -1), (1, 1, 99, 1))}, {}, values[:, 1:, 3:-5:-1]),
        ("expand", {"shape": (3, 2, 1, 4)}, {}, np.broadcast_to(values, (3, 2, 3, 4))),
        ("tile", {"repeats": (1, 2, 3)}, {}, np.tile(values, (1, 2, 3))),
    ]
    for op, attrs, params, expected in cases:
        out = _run(op, [x], None, attrs, params)
        assert out.fmt == x.fmt, op
        np.testing.assert_array_equal(out.values(), expected, err_msg=op)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_embedding_gather_rounds_the_selected_rows_once(seed):
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 1.5, (10, 6)).astype(np.float32)
    ids = QTensor(rng.integers(0, 10, (3, 4)).astype(np.int32), INDEX_FORMAT)
    out_fmt = _out_fmt(rng)
    out = _run("gather", [ids], out_fmt, {"axis": 0, "roles": ("indices",)}, {"data": table})
    for (b, t, d), code in np.ndenumerate(out.data):
        assert code == _code(Fraction(float(table[ids.data[b, t], d])), out_fmt)


@pytest.mark.parametrize("seed", SEEDS)
def test_where_keeps_the_first_value_format_and_rounds_the_other_operand_onto_it(seed):
    rng = np.random.default_rng(seed)
    x, y = _tensor(rng, (3, 4)), _tensor(rng, (4,))
    condition = rng.integers(0, 2, (3, 4)).astype(np.float32)
    fill = float(rng.normal(0, 4))
    both = _run("where", [x, y], None, {"roles": ("x", "y")}, {"condition": condition})
    constant = _run("where", [x], None, {"roles": ("x",)},
                    {"condition": condition, "y": np.float32(fill)})
    assert both.fmt == constant.fmt == x.fmt
    for (i, j), code in np.ndenumerate(both.data):
        other = _code(_value(y.data[j], y.fmt), x.fmt)
        assert code == (x.data[i, j] if condition[i, j] else other)
        assert constant.data[i, j] == (x.data[i, j] if condition[i, j]
                                       else _code(Fraction(float(np.float32(fill))), x.fmt))


@pytest.mark.parametrize("seed", SEEDS)
def test_equal_compares_values_exactly_across_formats(seed):
    rng = np.random.default_rng(seed)
    a = _tensor(rng, (50,), FixedPoint(6, 2))
    b = QTensor((a.data.astype(np.int64) * 2 + rng.integers(-1, 2, 50)).astype(np.int16),
                FixedPoint(12, 3))
    c = np.float32(_value(a.data[0], a.fmt))
    out = _run("equal", [a, b], None, {"roles": ("a", "b")})
    against = _run("equal", [a], None, {"roles": ("a",)}, {"b": np.array([c, c + 0.1])[:1]})
    assert out.fmt == INDEX_FORMAT
    for i in range(50):
        assert out.data[i] == (_value(a.data[i], a.fmt) == _value(b.data[i], b.fmt))
        assert against.data[i] == (_value(a.data[i], a.fmt) == Fraction(float(c)))


# ----- resize ---------------------------------------------------------------------------------

RESIZE = {"coordinate_mode": "half_pixel", "nearest_mode": "round_prefer_floor",
          "cubic_coeff_a": -0.75, "exclude_outside": False, "extrapolation_value": 0.0,
          "antialias": False}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("coordinate_mode", ["half_pixel", "align_corners", "asymmetric"])
def test_nearest_resize_moves_codes(seed, coordinate_mode):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (1, 2, 3, 4))
    attrs = dict(RESIZE, mode="nearest", coordinate_mode=coordinate_mode,
                 axes=((2, 7 / 3, 7, 0.0, 1.0), (3, 0.5, 2, 0.0, 1.0)))
    out = _run("resize", [x], None, attrs)
    assert out.fmt == x.fmt
    np.testing.assert_array_equal(out.values(), OPS["resize"].forward([x.values()], attrs, {}))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("coordinate_mode", ["half_pixel", "align_corners", "pytorch_half_pixel"])
def test_linear_resize_sums_exactly_with_its_integer_weights_and_rounds_once(seed,
                                                                             coordinate_mode):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (1, 2, 3, 4))
    out_fmt = _out_fmt(rng)
    axes = ((2, 2.0, 6, 0.0, 1.0), (3, 5 / 4, 5, 0.0, 1.0))
    attrs = dict(RESIZE, mode="linear", coordinate_mode=coordinate_mode, axes=axes)
    out = _run("resize", [x], out_fmt, attrs)
    rows, cols = (integer_weights(axis_weights(4 - 1 + a, size, scale, (0.0, 1.0), attrs)[0])
                  for a, (_, scale, size, _, _) in zip((0, 1), axes, strict=True))
    for (n, c, i, j), code in np.ndenumerate(out.data):
        total = sum(int(rows[i, p]) * int(cols[j, q]) * _value(x.data[n, c, p, q], x.fmt)
                    for p in range(3) for q in range(4))
        assert code == _code(total / 2 ** (2 * WEIGHT_FL), out_fmt)


@pytest.mark.parametrize("coordinate_mode", ["half_pixel", "align_corners", "asymmetric",
                                             "pytorch_half_pixel", "half_pixel_symmetric"])
def test_integer_interpolation_weights_sum_to_one_and_stay_within_a_step(coordinate_mode):
    attrs = dict(RESIZE, mode="linear", coordinate_mode=coordinate_mode)
    for in_size, out_size in [(3, 7), (4, 5), (5, 3), (7, 2)]:
        weights, _ = axis_weights(in_size, out_size, out_size / in_size, (0.0, 1.0), attrs)
        whole = integer_weights(weights)
        assert (whole.sum(axis=1) == 2**WEIGHT_FL).all()
        assert np.abs(whole / 2**WEIGHT_FL - weights).max() <= 2.0**-WEIGHT_FL


# ----- element-wise on codes ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_sign_changes_and_whole_value_rounding_keep_the_format(seed):
    rng = np.random.default_rng(seed)
    x = _tensor(rng, (40,))
    rounders = {"neg": lambda v: -v, "abs": abs, "floor": math.floor, "ceil": math.ceil,
                "round": _nearest_even}
    for op, function in rounders.items():
        out = _run(op, [x], None)
        assert out.fmt == x.fmt
        for code, value in zip(out.data, (_value(c, x.fmt) for c in x.data), strict=True):
            exact = Fraction(function(value))
            assert code == max(x.fmt.min_code, min(x.fmt.max_code, exact * 2**x.fmt.fl)), op


@pytest.mark.parametrize("seed", SEEDS)
def test_a_batch_constant_is_its_value_rounded_once_at_the_run_batch(seed):
    rng = np.random.default_rng(seed)
    like = _tensor(rng, (3, 2))
    value = rng.normal(0, 3, (1, 2, 5)).astype(np.float32)
    out_fmt = _out_fmt(rng)
    out = _run("batch_constant", [like], out_fmt, {}, {"value": value})
    assert out.data.shape == (3, 2, 5)
    for (b, i, j), code in np.ndenumerate(out.data):
        assert code == _code(Fraction(float(value[0, i, j])), out_fmt)


# ----- matmul with broadcast batch dimensions ----------------------------------------------------

def test_a_matmul_of_activations_with_broadcast_batch_dims_is_exact_per_matrix_pair(tmp_path):
    """(N, 3, 1, 3, 4) x (N, 1, 2, 4, 2): every broadcast pair of matrices is an integer GEMM of
    the codes on the layer's scheduled plan, rounded once from fl_a + fl_b to the output."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="product")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 1, 3, 4]),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1, 2, 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 2, 3, 2])])
    path = tmp_path / "bmm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    network = rsim.load(path)
    hw = hwconfigs.load("mid-ws-int8")
    plan = schedule(network_work(network, batch=1), hw, batch=1,
                    datapaths={"product": hw.datapath})
    (layer,) = network.layers
    fmt_a, fmt_b, out_fmt = FixedPoint(8, 5), FixedPoint(8, 6), FixedPoint(8, 4)
    quant = LayerQuant(layer, OPS["matmul"], hw.datapath, (fmt_a, fmt_b), out_fmt,
                       plan.layer("product").plan)
    rng = np.random.default_rng(8)
    qa, qb = _tensor(rng, (2, 3, 1, 3, 4), fmt_a), _tensor(rng, (2, 1, 2, 4, 2), fmt_b)
    out = quant.run([qa, qb]).out
    assert out.data.shape == (2, 3, 2, 3, 2)
    for n, i, j, r, c in np.ndindex(out.data.shape):
        exact = sum(int(qa.data[n, i, 0, r, k]) * int(qb.data[n, 0, j, k, c]) for k in range(4))
        assert out.data[n, i, j, r, c] == _code(Fraction(exact, 2 ** (fmt_a.fl + fmt_b.fl)),
                                                out_fmt)
