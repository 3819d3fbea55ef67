"""Regenerate the SCALE-Sim 3.0.0 golden values the scheduler tests compare against.

Run with the Python of a separate venv that has `pip install scalesim "numpy<2.4"` (scalesim 3.0.0
crashes under numpy 2.4), from anywhere:

    /work/scalesim-venv/bin/python tests/data/scalesim/make_goldens.py

For every array shape x dataflow it writes a SCALE-Sim .cfg into `configs/` (CALC bandwidth mode,
so no stalls), runs every topology CSV in `topologies/` through scalesim's Python API with
save_disk_space=True, and writes the per-layer COMPUTE_REPORT and DETAILED_ACCESS_REPORT items to
`goldens.json` (rewritten after every run, so an interrupted run keeps what it finished). A
topology whose file name starts with `gemm` is read in SCALE-Sim's M,N,K format.
The topology file doubles as the layout file SCALE-Sim insists on parsing (custom layouts are off).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARRAYS = [(8, 8), (16, 8), (4, 12)]
HEAVY_TOPOLOGY_ARRAYS = {"squeezenet11_fire9.csv": [(8, 8), (16, 8)]}
"""SCALE-Sim takes minutes on these; one square and one non-square array are enough."""
DATAFLOWS = ["os", "ws", "is"]

CFG_TEMPLATE = """\
[general]
run_name = {name}

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 64
FilterSramSzkB = 64
OfmapSramSzkB = 32
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = 10
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""

COMPUTE_COLUMNS = ["total_cycles_incl_prefetch", "total_cycles", "stall_cycles",
                   "overall_util_percent", "mapping_efficiency_percent", "compute_util_percent"]
ACCESS_COLUMNS = ["ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes",
                  "ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes"]


def run_one(cfg: Path, topology: Path, out_dir: Path) -> list[dict]:
    """Run scalesim on one config and topology; return one dict per reported layer."""
    from scalesim.scale_sim import scalesim

    sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topology),
                   layout=str(topology), input_type_gemm=topology.name.startswith("gemm"))
    with contextlib.redirect_stdout(io.StringIO()):
        sim.run_scale(top_path=str(out_dir))
    rows = []
    for layer_id, layer in enumerate(sim.runner.single_layer_sim_object_list):
        compute = [float(x) for x in layer.get_compute_report_items()]
        detail = [int(x) for x in layer.get_detail_report_items()]
        row = {"layer_id": layer_id, **dict(zip(COMPUTE_COLUMNS, compute))}
        row.update(dict(zip(ACCESS_COLUMNS, detail[2::3])))
        rows.append(row)
    return rows


def main() -> None:
    from importlib.metadata import version

    import numpy
    import scalesim  # noqa: F401  (fail early when run from the wrong venv)

    (HERE / "configs").mkdir(exist_ok=True)
    configs = {}
    for rows, cols in ARRAYS:
        for dataflow in DATAFLOWS:
            name = f"array{rows}x{cols}_{dataflow}"
            configs[rows, cols, dataflow] = HERE / "configs" / f"{name}.cfg"
            configs[rows, cols, dataflow].write_text(
                CFG_TEMPLATE.format(name=name, rows=rows, cols=cols, dataflow=dataflow))
    goldens = {"scalesim_version": version("scalesim"), "numpy_version": numpy.__version__,
               "runs": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for topology in sorted((HERE / "topologies").glob("*.csv")):
            arrays = HEAVY_TOPOLOGY_ARRAYS.get(topology.name, ARRAYS)
            for (rows, cols), dataflow in itertools.product(arrays, DATAFLOWS):
                cfg = configs[rows, cols, dataflow]
                layers = run_one(cfg, topology, Path(tmp))
                goldens["runs"].append({"config": cfg.name, "topology": topology.name,
                                        "layers": layers})
                (HERE / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")
                print(f"{cfg.stem} {topology.name}: {len(layers)} layers, "
                      f"{time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
