"""Benchmark: schedule a 50-layer CNN on 100 accelerator configs, against SCALE-Sim 3.0.0.

rsim's scheduler uses closed forms; SCALE-Sim generates the cycle-by-cycle operand traces. Both
run the same 50-layer topology (written to a temporary SCALE-Sim CSV); SCALE-Sim runs in its own
venv (numpy < 2.4) through a subprocess, on one array per dataflow, when that venv exists
(--scalesim-python, default /work/scalesim-venv/bin/python). The ratio compares seconds per
(layer x config); SCALE-Sim's cycles are also checked against rsim's on the same runs.

    python benchmarks/bench_schedule.py [--dataflows os,ws,is] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _timing import best_time

import hwconfigs
from rsim import scalesim_io
from rsim.schedule import schedule

GOLDEN_SCRIPT_DIR = REPO / "tests" / "data" / "scalesim"

SCALESIM_DRIVER = """
import json, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, {script_dir!r})
import make_goldens
results = []
for rows, cols, dataflow in {arrays!r}:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.cfg"
        cfg.write_text(make_goldens.CFG_TEMPLATE.format(name="bench", rows=rows, cols=cols,
                                                        dataflow=dataflow))
        start = time.perf_counter()
        layers = make_goldens.run_one(cfg, Path({topology!r}), Path(tmp))
        seconds = time.perf_counter() - start
    results.append({{"array": [rows, cols, dataflow], "seconds": seconds,
                     "cycles": [row["total_cycles"] for row in layers]}})
print(json.dumps(results))
"""


def fifty_layer_topology() -> str:
    """A ResNet-style CIFAR network: stem, 3 stages of 16 3x3 convs (stride 2 entering a
    stage, ifmap pre-padded), and a classifier: 50 layers."""
    rows = [("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
            "Num Filter, Strides,"), "stem, 34, 34, 3, 3, 3, 16, 1,"]
    size, channels = 32, 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(16):
            stride = 2 if stage and i == 0 else 1
            padded = size + 2 if stride == 1 else size + 1  # the extent the windows cover
            rows.append(f"s{stage}_conv{i}, {padded}, {padded}, 3, 3, {channels}, {width}, "
                        f"{stride},")
            size, channels = (size // stride), width
    rows.append(f"fc, 1, 1, 1, 1, {channels}, 10, 1,")
    assert len(rows) - 1 == 50
    return "\n".join(rows) + "\n"


def hundred_configs() -> list[hwconfigs.Accelerator]:
    base = hwconfigs.load("mid-ws-int8").model_dump(mode="json")
    sizes = [(8, 8), (16, 16), (32, 32), (64, 64), (128, 128), (16, 8), (8, 32), (32, 16),
             (64, 32), (128, 64), (12, 12), (24, 24), (48, 48), (96, 96), (256, 256), (4, 64),
             (64, 4), (20, 10), (10, 20), (40, 40), (80, 80), (56, 56), (28, 28), (14, 14),
             (7, 7), (100, 100), (36, 36), (72, 72), (18, 18), (128, 32), (32, 128), (6, 6),
             (9, 9)]
    configs = []
    for (rows, cols), dataflow in itertools.product(sizes, ("os", "ws", "is")):
        data = json.loads(json.dumps(base))
        data["array"].update(rows=rows, cols=cols, dataflow=dataflow)
        data["name"] = f"{rows}x{cols}-{dataflow}"
        configs.append(hwconfigs.from_dict(data))
    return (configs + [hwconfigs.load()])[:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim-python", default="/work/scalesim-venv/bin/python")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dataflows", default="os,ws,is",
                        help="dataflows of the 32x32 arrays SCALE-Sim runs (each ~1-2 min)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(tmp) / "resnet50ish.csv"
        topology.write_text(fifty_layer_topology())
        layers = scalesim_io.read_topology(topology)
        configs = hundred_configs()
        assert len(layers) == 50 and len(configs) == 100

        def schedule_all() -> None:
            for accel in configs:
                schedule(layers, accel)

        best = best_time(schedule_all, args.repeat, warmup=False)
        per_layer_config = best / (len(layers) * len(configs))
        print(f"rsim: 50 layers x 100 configs in {best * 1e3:.1f} ms "
              f"({per_layer_config * 1e6:.1f} us per layer-config, best of {args.repeat})")

        if not Path(args.scalesim_python).exists():
            print(f"SCALE-Sim baseline skipped: {args.scalesim_python} not found (make a venv "
                  "with `pip install scalesim \"numpy<2.4\"`)")
            return
        arrays = [(32, 32, dataflow) for dataflow in args.dataflows.split(",")]
        driver = SCALESIM_DRIVER.format(script_dir=str(GOLDEN_SCRIPT_DIR), arrays=arrays,
                                        topology=str(topology))
        done = subprocess.run([args.scalesim_python, "-c", driver], capture_output=True,
                              text=True, check=True)
        results = json.loads(done.stdout.strip().splitlines()[-1])
        seconds = sum(r["seconds"] for r in results)
        scalesim_per = seconds / (len(layers) * len(results))
        for result in results:
            rows, cols, dataflow = result["array"]
            config = scalesim_io.ScaleSimConfig("bench", rows, cols, dataflow, 64, 64, 32)
            ours = [row[1] for row in scalesim_io.compute_report(config, layers)]
            agree = sum(a == b for a, b in zip(ours, result["cycles"]))
            print(f"SCALE-Sim {rows}x{cols} {dataflow}: {result['seconds']:.1f} s for 50 layers; "
                  f"cycles equal to rsim's on {agree}/{len(ours)} layers")
        print(f"SCALE-Sim: {scalesim_per * 1e3:.1f} ms per layer-config; 100 configs would take "
              f"{scalesim_per * 50 * 100:.0f} s")
        print(f"ratio: rsim is {scalesim_per / per_layer_config:,.0f}x faster per layer-config")


if __name__ == "__main__":
    main()
