"""The schedule's reduction plan drives the bit-accurate kernels: with the same narrow saturating
accumulator, a WS array (K chunked by its rows, chunk sums into the partial-sum buffer) and an OS array
(whole K in one PE) give different exact results, each equal to a plain Python-int loop that
follows its plan."""

from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
import kernels
from kernels import ReductionPlan
from rsim.schedule import gemm_work, schedule_layer


def _accelerator(dataflow: str, rows: int) -> hwconfigs.Accelerator:
    data = hwconfigs.load("edge-int8").model_dump(mode="json")
    data["array"].update(dataflow=dataflow, rows=rows)
    data["datapath"].update(accumulator={"bits": 12, "overflow": "saturate"},
                            partial_sum={"bits": 14, "overflow": "saturate"}, bias_mode="post")
    return hwconfigs.from_dict(data)


def _saturate(value: int, bits: int) -> int:
    hi = (1 << (bits - 1)) - 1
    return max(-hi - 1, min(hi, value))


def reference_gemm(a: np.ndarray, b: np.ndarray, bias: np.ndarray,
                   plan: ReductionPlan) -> np.ndarray:
    """Python ints, one addition at a time, in the order the plan describes."""
    acc_bits = plan.accumulator.bits
    m, k = a.shape
    out = np.zeros((m, b.shape[1]), dtype=np.int64)
    chunk = plan.k_chunk or k
    for i in range(m):
        for j in range(b.shape[1]):
            chunk_sums = []
            for start in range(0, k, chunk):
                acc = int(bias[j]) if plan.bias_mode == "preload" and start == 0 else 0
                for kk in range(start, min(start + chunk, k)):
                    acc = _saturate(acc + int(a[i, kk]) * int(b[kk, j]), acc_bits)
                chunk_sums.append(acc)
            if plan.k_chunk is None:
                total, bits = chunk_sums[0], acc_bits
            else:
                total, bits = 0, plan.partial_sum.bits
                for value in chunk_sums:
                    total = _saturate(total + value, bits)
            if plan.bias_mode == "post":
                total = _saturate(total + int(bias[j]), bits)
            out[i, j] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ws_and_os_plans_give_different_exact_outputs_each_matching_its_reference(seed):
    rng = np.random.default_rng(seed)
    m, k, n = 6, 40, 5
    # large products of one sign first, then the other: a 12-bit accumulator saturates mid-sum
    a = rng.integers(-128, 128, size=(m, k), dtype=np.int64)
    b = np.concatenate([np.full((k // 2, n), 100), np.full((k - k // 2, n), -100)])
    b = (b * np.sign(a[0])[:, None]).astype(np.int64)
    bias = rng.integers(-300, 300, size=n, dtype=np.int64)
    work = gemm_work("fc", m, k, n)
    results = {}
    for dataflow in ("ws", "os"):
        plan = schedule_layer(work, _accelerator(dataflow, rows=8)).plan
        out, stats = kernels.gemm(a, b, plan, bias=bias)
        np.testing.assert_array_equal(out, reference_gemm(a, b, bias, plan))
        results[dataflow] = out
        assert stats.acc_saturations > 0
    assert not np.array_equal(results["ws"], results["os"])


def test_the_plan_holds_the_configs_registers_and_chunks_k_by_the_rows():
    ws = schedule_layer(gemm_work("fc", 1, 4, 1), _accelerator("ws", rows=2)).plan
    assert (ws.k_chunk, str(ws.accumulator), str(ws.partial_sum), ws.bias_mode) == (
        2, "int12/saturate", "int14/saturate", "post")
    os_ = schedule_layer(gemm_work("fc", 1, 4, 1), _accelerator("os", rows=2)).plan
    assert (os_.k_chunk, os_.partial_sum) == (None, None)


def test_hand_worked_example_of_the_two_orders():
    a = np.array([[100, 100, 100, 100]])
    b = np.array([[100], [100], [-100], [-100]])  # exact result 0; every product is +-10000
    ws = schedule_layer(gemm_work("fc", 1, 4, 1), _accelerator("ws", rows=2)).plan
    os_ = schedule_layer(gemm_work("fc", 1, 4, 1), _accelerator("os", rows=2)).plan
    # WS: chunks [+,+] -> 2047 and [-,-] -> -2048 in the 12-bit accumulator; partial_sum 2047 - 2048
    assert kernels.gemm(a, b, ws)[0][0, 0] == -1
    # OS: one accumulator: 2047, 2047, 2047 - 10000 -> -2048, -2048
    assert kernels.gemm(a, b, os_)[0][0, 0] == -2048
