"""rsim on a ResNet-18-like and a MobileNetV2-like model (tests/imagenet_graphs.py: standard layer
shapes, random weights, seed 0), 224x224, batch 8, against onnxruntime float in the same run.

Rows per model, each the best and the median of 3 timed runs, and its best time over
onnxruntime's best (every row runs once before, for its note or the reference output: that run
absorbs JIT compilation and first-run allocations):
- onnxruntime float (the baseline) and rsim `Network.run_float` (with its max relative error);
- with `--simulate`: `rsim.simulate` on 8 random samples (one batch) on the shipped mid-ws-int8
  and edge-int8 configs, and on mid-ws-int8 with a qspec giving every layer a 16-bit saturating
  accumulator and partial sum (the sequential kernels run where saturation is possible);
- when torch imports: torch float, and torch with int8 fake quantization of every conv / FC input
  and weight (symmetric per tensor, scale max|t|/127 taken from the tensor at each call), both
  running the ONNX graph node by node with torch.nn.functional.

One thread each: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and NUMBA_NUM_THREADS are set to 1 before
numpy and numba load (they read them then), onnxruntime gets intra_op_num_threads=1, torch
set_num_threads(1). The load average is printed with the table: the machine may be shared.

Run: python benchmarks/bench_models.py [--simulate] [--models resnet18,mobilenet_v2]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _timing import timed_runs  # noqa: E402
from bench_float import ort_session  # noqa: E402

import rsim  # noqa: E402
from tests.imagenet_graphs import mobilenet_v2, resnet18  # noqa: E402

MODELS = {"resnet18": ("ResNet-18-like", resnet18), "mobilenet_v2": ("MobileNetV2-like",
                                                                    mobilenet_v2)}
SIZE, BATCH, REPEATS = 224, 8, 3
ACC16_QSPEC = {"layers": [{"match": "*", "accumulator": {"bits": 16, "overflow": "saturate"},
                           "partial_sum": {"bits": 16, "overflow": "saturate"}}]}


@dataclass
class Row:
    """One timed way of running a model: `run` is called with no argument; `note` is printed."""

    label: str
    run: Callable[[], object]
    note: str = ""


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| over max |want|, the figure bench_float prints."""
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


def float_rows(path: Path, x: np.ndarray, want: np.ndarray) -> list[Row]:
    network = rsim.load(path)
    got = network.run_float(x)[network.outputs[0]]
    return [Row("rsim run_float", lambda: network.run_float(x),
                f"max rel err {max_rel_err(got, want):.1e}")]  # fmt: skip


def simulate_rows(path: Path, x: np.ndarray) -> list[Row]:
    network = rsim.load(path)
    rows = []
    for label, hw, qspec in (("rsim simulate mid-ws-int8", "mid-ws-int8", None),
                             ("rsim simulate edge-int8", "edge-int8", None),
                             ("rsim simulate mid-ws-int8 acc/psum 16", "mid-ws-int8",
                              ACC16_QSPEC)):  # fmt: skip
        def run(hw=hw, qspec=qspec):
            return rsim.simulate(network, hw=hw, inputs=x, qspec=qspec, batch_size=len(x),
                                 threads=1)  # fmt: skip

        rows.append(Row(label, run, f"top-1 agreement {100 * run().agreement:.1f} %"))
    return rows


def torch_rows(model: onnx.ModelProto, x: np.ndarray, want: np.ndarray) -> list[Row]:
    """torch float and int8 fake-quant rows, or none when torch does not import."""
    try:
        import torch
    except ImportError:
        return []
    torch.set_num_threads(1)
    rows = []
    for label, fake_quant in (("torch float", False), ("torch int8 fake-quant", True)):
        forward = _torch_forward(torch, model, fake_quant)
        x_t = torch.from_numpy(x)
        note = f"max rel err {max_rel_err(forward(x_t).numpy(), want):.1e}"
        rows.append(Row(label, lambda forward=forward, x_t=x_t: forward(x_t), note))
    return rows


def _torch_forward(torch, model: onnx.ModelProto, fake_quant: bool) -> Callable:
    """A function running the ONNX graph's nodes in order with torch.nn.functional (the ops of
    tests/imagenet_graphs.py only), the conv / FC inputs and weights fake-quantized to int8 if
    asked."""
    functional = torch.nn.functional
    graph = model.graph
    consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}

    def q(t):
        if not fake_quant:
            return t
        scale = float(t.abs().max()) / 127 or 1.0
        return torch.fake_quantize_per_tensor_affine(t, scale, 0, -128, 127)

    def conv(ins, a):
        return functional.conv2d(q(ins[0]), q(ins[1]), ins[2] if len(ins) > 2 else None,
                                 a["strides"], a["pads"][:2], 1, a.get("group", 1))  # fmt: skip

    ops = {
        "Conv": conv,
        "BatchNormalization": lambda ins, a: functional.batch_norm(
            ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, a["epsilon"]),
        "Relu": lambda ins, a: torch.relu(ins[0]),
        "Clip": lambda ins, a: torch.clamp(ins[0], float(ins[1]), float(ins[2])),
        "MaxPool": lambda ins, a: functional.max_pool2d(ins[0], a["kernel_shape"], a["strides"],
                                                         a["pads"][:2]),
        "Add": lambda ins, a: ins[0] + ins[1],
        "GlobalAveragePool": lambda ins, a: ins[0].mean((2, 3), keepdim=True),
        "Flatten": lambda ins, a: ins[0].flatten(1),
        "Gemm": lambda ins, a: functional.linear(q(ins[0]), q(ins[1]), ins[2]),
    }  # fmt: skip
    nodes = [(ops[n.op_type], list(n.input), n.output[0],
              {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
             for n in graph.node]  # fmt: skip

    @torch.inference_mode()
    def forward(x):
        env = dict(consts, **{graph.input[0].name: x})
        for op, inputs, output, attrs in nodes:
            env[output] = op([env[i] for i in inputs], attrs)
        return env[graph.output[0].name]

    return forward


def bench(label: str, model: onnx.ModelProto, simulate: bool) -> None:
    x = np.random.default_rng(0).normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32)
    session = ort_session(model, 1)
    name = session.get_inputs()[0].name
    want = session.run(None, {name: x})[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        onnx.save(model, path)
        rows = [Row("onnxruntime float", lambda: session.run(None, {name: x}))]
        rows += float_rows(path, x, want)
        rows += torch_rows(model, x, want)
        if simulate:
            rows += simulate_rows(path, x)
        baseline = None
        for row in rows:
            best, times = timed_runs(row.run, REPEATS, warmup=False)
            baseline = baseline or best
            median = statistics.median(times)
            print(f"{label:<17} {row.label:<38} {best * 1e3:9.1f} {median * 1e3:9.1f} "
                  f"{best / baseline:7.2f}x  {row.note}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="add the rsim.simulate rows")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, of {', '.join(MODELS)}")  # fmt: skip
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    print(f"batch {BATCH}, {SIZE}x{SIZE}, one thread each; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'model':<17} {'run':<38} {'best ms':>9} {'median':>9} {'vs ort':>8}")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("(torch rows skipped: torch does not import)")
    for name in names:
        label, build = MODELS[name]
        bench(label, build(size=SIZE), args.simulate)


if __name__ == "__main__":
    main()
