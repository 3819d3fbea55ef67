"""The scheduler against SCALE-Sim 3.0.0: stall-free cycles, utilization, mapping efficiency,
compute util and SRAM counts equal the numbers scalesim itself reported (tests/data/scalesim,
made by make_goldens.py), for all three dataflows on square and non-square arrays."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from formats import RsimError
from rsim import scalesim_io
from rsim.schedule import fold_timing, schedule_layer
from rsim.schedule.traffic import scalesim_sram_counts

DATA = Path(__file__).parent / "data" / "scalesim"
GOLDENS = json.loads((DATA / "goldens.json").read_text())
RUNS = GOLDENS["runs"]


def _run_id(run: dict) -> str:
    return f"{run['config'][:-4]}-{run['topology'][:-4]}"


@pytest.mark.parametrize("run", RUNS, ids=_run_id)
def test_compute_report_equals_scalesim(run):
    config = scalesim_io.read_config(DATA / "configs" / run["config"])
    layers = scalesim_io.read_topology(DATA / "topologies" / run["topology"])
    report = scalesim_io.compute_report(config, layers)
    assert len(report) == len(run["layers"])
    for row, golden in zip(report, run["layers"]):
        layer_id, cycles, stalls, overall, mapping, compute = row
        assert layer_id == golden["layer_id"]
        assert cycles == golden["total_cycles"] - golden["stall_cycles"]
        assert stalls == golden["stall_cycles"] == 0
        assert overall == pytest.approx(golden["overall_util_percent"], rel=1e-12)
        assert mapping == pytest.approx(golden["mapping_efficiency_percent"], rel=1e-12)
        assert compute == pytest.approx(golden["compute_util_percent"], rel=1e-12)


@pytest.mark.parametrize("run", RUNS, ids=_run_id)
def test_sram_access_counts_equal_scalesim(run):
    config = scalesim_io.read_config(DATA / "configs" / run["config"])
    layers = scalesim_io.read_topology(DATA / "topologies" / run["topology"])
    for layer, golden in zip(layers, run["layers"]):
        timing = fold_timing(layer.m, layer.k, layer.n, rows=config.rows, cols=config.cols,
                             dataflow=config.dataflow)
        assert scalesim_sram_counts(layer, timing) == (
            golden["ifmap_sram_reads"], golden["filter_sram_reads"], golden["ofmap_sram_writes"])


@pytest.mark.parametrize("run", RUNS, ids=_run_id)
def test_dram_reads_equal_scalesim_calc_mode_for_ifmaps_and_ws_is_filters(run):
    """Unique footprint plus the refetches of an operand too big for its SRAM's active half: the
    ifmap (and, in WS/IS, the filter) DRAM reads of an int8 accelerator with the .cfg's array and
    SRAMs equal what SCALE-Sim counted in CALC mode. OS filter reads are not compared: SCALE-Sim's
    prefetch window re-reads a few percent more there."""
    config = scalesim_io.read_config(DATA / "configs" / run["config"])
    accel = config.to_accelerator()
    layers = scalesim_io.read_topology(DATA / "topologies" / run["topology"])
    traffic = [schedule_layer(layer, accel).traffic for layer in layers]
    assert [t.ifmap_dram_read for t in traffic] == [
        golden["ifmap_dram_reads"] for golden in run["layers"]]
    if config.dataflow != "os":
        assert [t.filter_dram_read for t in traffic] == [
            golden["filter_dram_reads"] for golden in run["layers"]]


def test_scalesim_config_becomes_an_int8_accelerator_with_its_array_and_srams():
    config = scalesim_io.read_config(DATA / "configs" / "array16x8_is.cfg")
    accel = config.to_accelerator()
    assert (accel.array.rows, accel.array.cols, accel.array.dataflow) == (16, 8, "is")
    assert (accel.memory.ifmap_sram_kib, accel.memory.filter_sram_kib,
            accel.memory.ofmap_sram_kib) == (64, 64, 32)
    assert accel.datapath.weights.bits == accel.datapath.activations.bits == 8  # 1-byte words


def test_goldens_cover_every_dataflow_square_and_non_square_arrays_and_topology_kinds():
    configs = {scalesim_io.read_config(DATA / "configs" / run["config"]) for run in RUNS}
    assert {c.dataflow for c in configs} == {"os", "ws", "is"}
    assert {c.rows == c.cols for c in configs} == {True, False}
    topologies = {run["topology"] for run in RUNS}
    assert {"gemm.csv", "depthwise.csv", "mixed_conv.csv", "cifar10_quick.csv",
            "squeezenet11_fire9.csv"} <= topologies
    assert GOLDENS["scalesim_version"] == "3.0.0"
    assert sum(len(run["layers"]) for run in RUNS) >= 100


def test_paper_os_fill_adds_r_cycles_per_fold():
    layers = scalesim_io.read_topology(DATA / "topologies" / "mixed_conv.csv")
    config = scalesim_io.read_config(DATA / "configs" / "array16x8_os.cfg")
    code = scalesim_io.compute_report(config, layers, os_fill="scalesim")
    paper = scalesim_io.compute_report(config, layers, os_fill="paper")
    for layer, a, b in zip(layers, code, paper):
        timing = fold_timing(layer.m, layer.k, layer.n, rows=16, cols=8, dataflow="os")
        assert b[1] - a[1] == timing.folds * config.rows


def test_depthwise_rows_unroll_per_channel_like_scalesim():
    layers = scalesim_io.read_topology(DATA / "topologies" / "depthwise.csv")
    assert [layer.name for layer in layers] == ["DPconvChannel_0", "DPconvChannel_1",
                                                "DPconvChannel_2", "pointwise_after"]
    assert {(layer.m, layer.k, layer.n) for layer in layers[:3]} == {(100, 9, 1)}


def test_scalesim_output_size_keeps_the_last_partial_window():
    (layer,) = [w for w in scalesim_io.read_topology(DATA / "topologies" / "mixed_conv.csv")
                if w.name == "conv_stride2_uneven"]
    assert layer.m == 10 * 10  # ceil((20 - 3 + 2) / 2) = 10, where valid convolution gives 9


def _cli(*args: str):
    from rsim.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_prints_compute_report_csv_with_scalesim_columns():
    run = next(r for r in RUNS if r["config"] == "array8x8_ws.cfg" and r["topology"] == "gemm.csv")
    result = _cli("schedule", "--scalesim-config", str(DATA / "configs" / run["config"]),
                  "--scalesim-topology", str(DATA / "topologies" / run["topology"]),
                  "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output), skipinitialspace=True))
    assert rows[0][:6] == ["LayerID", "Total Cycles", "Stall Cycles", "Overall Util %",
                           "Mapping Efficiency %", "Compute Util %"]
    for row, golden in zip(rows[1:], run["layers"]):
        assert int(row[1]) == golden["total_cycles"] and int(row[2]) == 0
        assert float(row[4]) == pytest.approx(golden["mapping_efficiency_percent"], rel=1e-12)


BAD_TOPOLOGIES = {
    "missing fields": (("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                       "Channels, Num Filter, Strides,\nconv1, 8, 8, 3, 3,\n"),
                       r":2: conv row has 5 fields, missing Channels, Num Filter, Strides"),
    "not an integer": ("Layer, M, N, K,\ng, 4, x, 3,\n", r":2: N = 'x' is not an integer"),
    "zero size": ("Layer, M, N, K,\ng, 4, 0, 3,\n", r":2: layer 'g': N must be a positive"),
    "filter larger than ifmap": (("Layer name, IFMAP Height, IFMAP Width, Filter Height, "
                                 "Filter Width, Channels, Num Filter, Strides,\n"
                                 "c, 2, 2, 3, 3, 1, 1, 1,\n"), r":2: .*larger than the ifmap"),
    "empty": ("\n", "empty topology"),
}


@pytest.mark.parametrize("case", BAD_TOPOLOGIES)
def test_bad_topology_row_is_one_error_naming_file_and_line(tmp_path, case):
    text, pattern = BAD_TOPOLOGIES[case]
    path = tmp_path / "topo.csv"
    path.write_text(text)
    with pytest.raises(RsimError, match=pattern) as info:
        scalesim_io.read_topology(path)
    assert str(info.value).startswith(str(path))


def test_row_without_trailing_comma_keeps_its_stride(tmp_path):
    path = tmp_path / "topo.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides\nc, 9, 9, 3, 3, 2, 4, 2\n")
    (layer,) = scalesim_io.read_topology(path)
    assert layer.m == 4 * 4


BAD_CONFIG_EDITS = {
    "dataflow typo": (("Dataflow = ws", "Dataflow = wss"), r"\[architecture_presets\] Dataflow"),
    "zero rows": (("ArrayHeight = 8", "ArrayHeight = 0"), r"ArrayHeight = '0'.*positive"),
    "missing key": (("ArrayWidth = 8\n", ""), r"missing \[architecture_presets\] ArrayWidth"),
}


@pytest.mark.parametrize("case", BAD_CONFIG_EDITS)
def test_bad_scalesim_config_names_file_section_and_key(tmp_path, case):
    (old, new), pattern = BAD_CONFIG_EDITS[case]
    path = tmp_path / "bad.cfg"
    path.write_text((DATA / "configs" / "array8x8_ws.cfg").read_text().replace(old, new))
    with pytest.raises(RsimError, match=pattern) as info:
        scalesim_io.read_config(path)
    assert str(info.value).startswith(str(path))
