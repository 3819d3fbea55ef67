"""The scheduler: lowering to GEMMs, folds, traffic and energy rules, the reduction plan, real
networks on every shipped config, and the `rsim schedule` command."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hwconfigs
from formats import RsimError
from rsim import scalesim_io
from rsim.schedule import (
    ROW_COLUMNS,
    conv_work,
    fold_timing,
    gemm_work,
    schedule,
    schedule_layer,
    schedule_rows,
)

REPO = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
MNIST = REAL / "onnx-mnist8" / "model.onnx"
TOPOLOGIES = sorted((REPO / "examples" / "topologies").glob("*.csv"))
SHIPPED = hwconfigs.list_configs()


def _with(accel: hwconfigs.Accelerator, **sections) -> hwconfigs.Accelerator:
    """A copy of `accel` with some fields of its sections replaced (validated again)."""
    data = accel.model_dump(mode="json")
    for section, fields in sections.items():
        data[section].update(fields)
    return hwconfigs.from_dict(data)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("rows, cols", [(4, 4), (3, 5), (8, 2)])
def test_mapping_efficiency_is_the_mean_share_of_mapped_pes_over_enumerated_folds(dataflow, rows,
                                                                                   cols):
    for m, k, n in [(1, 1, 1), (7, 5, 3), (10, 12, 9), (16, 4, 8)]:
        timing = fold_timing(m, k, n, rows=rows, cols=cols, dataflow=dataflow)
        spatial = {"os": (m, n), "ws": (k, n), "is": (k, m)}[dataflow]
        shares = []
        for r0, c0 in itertools.product(range(0, spatial[0], rows), range(0, spatial[1], cols)):
            used = min(rows, spatial[0] - r0) * min(cols, spatial[1] - c0)
            shares.append(used / (rows * cols))
        assert timing.folds == len(shares)
        assert timing.mapping_efficiency == pytest.approx(sum(shares) / len(shares), rel=1e-12)


def test_conv_lowering_gives_one_gemm_per_group_with_the_group_slice():
    work = conv_work("g", in_h=10, in_w=12, in_channels=8, out_h=5, out_w=6, out_channels=12,
                     kernel_h=3, kernel_w=2, groups=4, batch=3)
    assert (work.m, work.k, work.n, work.count) == (3 * 5 * 6, 3 * 2 * 2, 3, 4)
    loops = sum(1 for _ in itertools.product(range(3), range(12), range(5), range(6), range(2),
                                             range(3), range(2)))  # n, o, y, x, c/g, kh, kw
    assert work.macs == loops
    assert work.ifmap_elements * work.count == 3 * 8 * 10 * 12


@pytest.mark.parametrize("kwargs, key", [
    ({"groups": 3}, "groups=3 must divide"),
    ({"out_h": 0}, "out_h must be a positive integer"),
    ({"kernel_w": -1}, "kernel_w must be a positive integer"),
])
def test_bad_geometry_names_the_layer_and_the_field(kwargs, key):
    geometry = {"in_h": 4, "in_w": 4, "in_channels": 4, "out_h": 2, "out_w": 2, "out_channels": 4, "kernel_h": 3,
                    "kernel_w": 3}
    geometry.update(kwargs)
    with pytest.raises(RsimError, match=f"layer 'bad': {key}"):
        conv_work("bad", **geometry)


def test_bad_dataflow_and_os_fill_are_rejected_with_the_valid_names():
    with pytest.raises(RsimError, match="dataflow: must be one of os, ws, is"):
        fold_timing(1, 1, 1, rows=2, cols=2, dataflow="rs")
    with pytest.raises(RsimError, match="os_fill: must be one of scalesim, paper"):
        fold_timing(1, 1, 1, rows=2, cols=2, dataflow="os", os_fill="both")


@pytest.mark.parametrize("name", SHIPPED)
def test_reduction_plan_chunks_k_by_array_rows_for_ws_is_and_not_for_os(name):
    accel = hwconfigs.load(name)
    result = schedule([gemm_work("fc", 2, 300, 10)], accel)
    plan = result.layer("fc").plan
    assert plan.accumulator == accel.datapath.accumulator
    assert plan.bias_mode == accel.datapath.bias_mode
    if accel.array.dataflow == "os":
        assert plan.k_chunk is None and plan.partial_sum is None
    else:
        assert plan.k_chunk == accel.array.rows and plan.partial_sum == (
            accel.datapath.partial_sum or accel.datapath.accumulator)


def _tiny_buffers(accel, **kib):
    sizes = {"ifmap_sram_kib": 1e6, "filter_sram_kib": 1e6, "ofmap_sram_kib": 1e6}
    sizes.update(kib)
    return _with(accel, memory=sizes)


CONV = {"in_h": 16, "in_w": 16, "in_channels": 8, "out_h": 14, "out_w": 14, "out_channels": 40, "kernel_h": 3,
            "kernel_w": 3}


@pytest.mark.parametrize("name", ["edge-int8", "os-int16", "fp8-e4m3"])
def test_dram_traffic_is_the_unique_footprint_when_every_buffer_fits(name):
    accel = _tiny_buffers(hwconfigs.load(name))
    layer = schedule_layer(conv_work("c", batch=2, **CONV), accel)
    w_bits = hwconfigs.format_bits(accel.datapath.weights)
    a_bits = hwconfigs.format_bits(accel.datapath.activations)
    traffic = layer.traffic
    assert traffic.ifmap_dram_read * 8 == 2 * 16 * 16 * 8 * a_bits
    assert traffic.filter_dram_read * 8 == 40 * 8 * 3 * 3 * w_bits
    assert traffic.ofmap_dram_write * 8 == 2 * 40 * 14 * 14 * a_bits
    assert traffic.ofmap_dram_read == 0


def test_too_small_buffers_force_the_documented_refetches():
    work = conv_work("c", **CONV)
    ws = hwconfigs.load("edge-int8")  # 16x16 WS, int8, 16-bit partial_sums
    roomy = schedule_layer(work, _tiny_buffers(ws)).traffic
    timing = fold_timing(work.m, work.k, work.n, rows=16, cols=16, dataflow="ws")
    small_ifmap = schedule_layer(work, _tiny_buffers(ws, ifmap_sram_kib=1)).traffic
    assert small_ifmap.ifmap_dram_read == timing.col_folds * roomy.ifmap_dram_read
    small_ofmap = schedule_layer(work, _tiny_buffers(ws, ofmap_sram_kib=1)).traffic
    spill = (timing.row_folds - 1) * work.m * work.n * 2
    assert small_ofmap.ofmap_dram_write == roomy.ofmap_dram_write + spill
    assert small_ofmap.ofmap_dram_read == spill

    is_accel = _with(ws, array={"dataflow": "is"})
    is_timing = fold_timing(work.m, work.k, work.n, rows=16, cols=16, dataflow="is")
    roomy_is = schedule_layer(work, _tiny_buffers(is_accel)).traffic
    small_filter = schedule_layer(work, _tiny_buffers(is_accel, filter_sram_kib=0.25)).traffic
    assert small_filter.filter_dram_read == is_timing.col_folds * roomy_is.filter_dram_read

    os_accel = _with(ws, array={"dataflow": "os"})
    os_timing = fold_timing(work.m, work.k, work.n, rows=16, cols=16, dataflow="os")
    roomy_os = schedule_layer(work, _tiny_buffers(os_accel)).traffic
    small_os = schedule_layer(work, _tiny_buffers(os_accel, ifmap_sram_kib=1,
                                                  filter_sram_kib=0.05)).traffic
    assert small_os.ifmap_dram_read == os_timing.col_folds * roomy_os.ifmap_dram_read
    assert small_os.filter_dram_read == os_timing.row_folds * roomy_os.filter_dram_read


def test_batch_multiplies_m_and_shares_the_weights():
    accel = _tiny_buffers(hwconfigs.load("mid-ws-int8"))
    one = schedule_layer(conv_work("c", batch=1, **CONV), accel)
    four = schedule_layer(conv_work("c", batch=4, **CONV), accel)
    assert four.work.m == 4 * one.work.m and four.work.macs == 4 * one.work.macs
    assert four.traffic.filter_dram_read == one.traffic.filter_dram_read
    assert four.traffic.ifmap_dram_read == 4 * one.traffic.ifmap_dram_read
    # WS streams M in time: the fill/drain is paid once per fold, so a batch raises utilization
    assert four.timing.folds == one.timing.folds and four.utilization > one.utilization


def test_a_hand_worked_two_layer_schedule_on_a_2x2_ws_array():
    """Worked by hand from the documented rules (int8 operands, 16-bit partial sums, roomy
    buffers, 0.5 pJ per MAC, 1 pJ per SRAM byte, 10 pJ per DRAM byte, 4 DRAM bytes a cycle).

    fc1, (4 x 6) @ (6 x 3): K=6 on the rows, N=3 on the columns, M=4 in time: 3 row folds x 2
    column folds of 2R + C + T - 2 = 8 cycles = 48 cycles; SRAM: ifmap 24 B read per column fold
    (48 B), filter 18 B once, 3 partial sums per output written (36 x 2 B) and 2 read back
    (24 x 2 B): 186 B; DRAM: 24 + 18 + 12 = 54 B (14 cycles); energy 72 MACs x 0.5 + 186 + 540
    = 762 pJ. fc2, (2 x 2) @ (2 x 2): one fold of 6 cycles; SRAM 4 + 4 + 8 = 16 B; DRAM 12 B
    (3 cycles); 8 MACs: 4 + 16 + 120 = 140 pJ. Totals: 54 cycles, 902 pJ, utilization
    80 / (4 x 54)."""
    data = hwconfigs.load("edge-int8").model_dump(mode="json")
    data["array"].update(rows=2, cols=2, dataflow="ws")
    data["datapath"]["partial_sum"] = {"bits": 16, "overflow": "saturate"}
    data["memory"] = {"ifmap_sram_kib": 64, "filter_sram_kib": 64, "ofmap_sram_kib": 64,
                      "dram_bytes_per_cycle": 4}
    data["energy"] = {"mac_pj": {8: 0.5}, "sram_pj_per_byte": 1.0, "dram_pj_per_byte": 10.0}
    result = schedule([gemm_work("fc1", 4, 6, 3), gemm_work("fc2", 2, 2, 2)],
                      hwconfigs.from_dict(data))
    fc1, fc2 = result.layers
    assert (fc1.folds, fc1.cycles, fc1.traffic.sram_bytes, fc1.traffic.dram_bytes,
            fc1.dram_cycles) == (6, 48, 186, 54, 14)
    assert fc1.energy_pj == pytest.approx(762.0, rel=1e-12)
    assert (fc2.folds, fc2.cycles, fc2.traffic.sram_bytes, fc2.traffic.dram_bytes,
            fc2.dram_cycles) == (1, 6, 16, 12, 3)
    assert fc2.energy_pj == pytest.approx(140.0, rel=1e-12)
    assert (result.cycles, result.macs) == (54, 80)
    assert result.energy_pj == pytest.approx(902.0, rel=1e-12)
    assert result.utilization == pytest.approx(80 / 216, rel=1e-12)
    total = schedule_rows(result)[-1]
    assert (total["cycles"], total["dram_bytes"], total["dram_cycles"]) == (54, 66, 17)
    assert total["energy_uj"] == pytest.approx(902e-6, rel=1e-12)


def test_alexnet_topology_has_alexnets_mac_count():
    layers = scalesim_io.read_topology(REPO / "examples" / "topologies" / "alexnet.csv")
    # Caffe AlexNet (grouped conv2/4/5): 666 M conv MACs + 58.6 M FC MACs, about 0.72 GMAC
    conv = sum(w.macs for w in layers if not w.name.startswith("fc"))
    fc = sum(w.macs for w in layers if w.name.startswith("fc"))
    assert fc == 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert conv == pytest.approx(666e6, rel=0.01)


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("name", SHIPPED)
def test_example_topologies_schedule_on_every_shipped_config(topology, name):
    layers = scalesim_io.read_topology(topology)
    result = schedule(layers, hwconfigs.load(name))
    assert len(result.layers) == len(layers) > 10
    for layer in result.layers:
        assert 0 < layer.utilization <= layer.mapping_efficiency <= 1
        assert layer.cycles > 0 and layer.traffic.dram_bytes > 0 and layer.energy_pj > 0


def test_example_topologies_cover_alexnet_squeezenet_and_googlenet():
    """The CSVs were read off the Caffe deploy prototxts: every conv (a grouped one as one row
    per group) and FC layer, the ifmap given as the padded extent the windows cover,
    (out - 1) x stride + kernel, so SCALE-Sim's ceil rule reproduces Caffe's output size."""
    assert {p.stem for p in TOPOLOGIES} >= {"alexnet", "squeezenet_v1.1", "googlenet"}
    googlenet = scalesim_io.read_topology(REPO / "examples" / "topologies" / "googlenet.csv")
    assert len(googlenet) == 57 + 1  # 57 convolutions and the classifier of the deploy net
    assert googlenet[0].m == 112 * 112  # 7x7/2 conv, pad 3, on 224x224 (Caffe floor rule)
    alexnet = scalesim_io.read_topology(REPO / "examples" / "topologies" / "alexnet.csv")
    assert alexnet[0].m == 55 * 55 and alexnet[1].m == 27 * 27


def _mnist():
    if not MNIST.exists():
        pytest.skip(f"real model not present: {MNIST}")
    import rsim

    return rsim.load(MNIST)


@pytest.mark.parametrize("name", SHIPPED)
def test_mnist8_schedules_on_every_shipped_config_with_the_networks_mac_count(name):
    from rsim.schedule.from_network import network_work

    net = _mnist()
    for batch in (1, 3):
        work = network_work(net, batch=batch)
        assert [w.name for w in work] == [l.name for l in net.layers
                                          if l.op in ("conv", "gemm", "matmul")]
        result = schedule(work, hwconfigs.load(name), batch=batch)
        assert result.macs == net.macs(batch)


@pytest.fixture(scope="module")
def test_graphs(tmp_path_factory):
    """The IR engineer's ResNet- and MobileNet-style ONNX graphs, saved and loaded by rsim."""
    import onnx

    import rsim
    from tests.onnx_graphs import mobilenet_style, resnet_style

    folder = tmp_path_factory.mktemp("graphs")
    graphs = {}
    for name, build in (("resnet", resnet_style), ("mobilenet", mobilenet_style)):
        path = folder / f"{name}.onnx"
        onnx.save(build(17), path)
        graphs[name] = rsim.load(path)
    return graphs


@pytest.mark.parametrize("name", SHIPPED)
def test_test_graphs_schedule_on_every_shipped_config_with_the_networks_mac_count(name,
                                                                                  test_graphs):
    from rsim.schedule.from_network import network_work

    for net in test_graphs.values():
        result = schedule(network_work(net, batch=2), hwconfigs.load(name), batch=2)
        assert result.macs == net.macs(2) > 0
        assert all(0 < layer.utilization <= 1 for layer in result.layers)


def test_depthwise_conv_of_the_ir_is_one_gemm_per_channel(test_graphs):
    from rsim.schedule.from_network import network_work

    net = test_graphs["mobilenet"]
    depthwise = [layer for layer in net.layers
                 if layer.op == "conv" and layer.attrs["groups"] > 1]
    assert depthwise
    work = {w.name: w for w in network_work(net, batch=1)}
    for layer in depthwise:
        w = work[layer.name]
        assert (w.count, w.k, w.n) == (layer.attrs["groups"], 9, 1)


def _cli(*args: str):
    from rsim.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_schedule_json_matches_the_api():
    net = _mnist()
    result = _cli("schedule", str(MNIST), "--hw", "edge-int8", "--batch", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    from rsim.schedule.from_network import network_work

    api = schedule_rows(schedule(network_work(net, batch=2), hwconfigs.load("edge-int8")))
    assert data["layers"] == api[:-1] and data["total"] == api[-1]
    assert data["hw"] == "edge-int8" and data["batch"] == 2


def test_cli_schedule_csv_and_table_of_a_topology():
    topology = str(REPO / "examples" / "topologies" / "squeezenet_v1.1.csv")
    result = _cli("schedule", topology, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == ROW_COLUMNS and rows[-1]["layer"] == "total"
    assert rows[0]["layer"] == "conv1" and int(rows[0]["M"]) == 113 * 113
    table = _cli("schedule", topology, "--hw", "os-int16", "--batch", "2")
    assert table.exit_code == 0 and "fire9_expand3x3" in table.output
    assert "batch 2" in table.output


def test_cli_schedule_errors_are_one_line(tmp_path):
    result = _cli("schedule", str(REPO / "examples" / "topologies" / "alexnet.csv"), "--hw",
                  "nope")
    assert result.exit_code == 2 and "unknown hwconfig 'nope'" in result.stderr
    result = _cli("schedule", "--scalesim-config", "a.cfg")
    assert result.exit_code == 2 and "go together" in result.stderr
