"""Real topologies that ship without weights (BVLC AlexNet, CaffeNet, GoogLeNet deploy nets,
SqueezeNet v1.1) load with random weights and lower to exactly the GEMMs of the SCALE-Sim
topologies in examples/topologies, which were read off the same prototxts by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from caffe_reference import REAL

import hwconfigs
from rsim import scalesim_io
from rsim.frontends.caffe import read_caffe
from rsim.schedule import schedule
from rsim.schedule.from_network import network_work

TOPOLOGIES = Path(__file__).parents[1] / "examples" / "topologies"
DEPLOY = REAL / "caffe-bvlc-deploy"
CASES = {
    "alexnet": DEPLOY / "bvlc_alexnet.deploy.prototxt",
    "googlenet": DEPLOY / "bvlc_googlenet.deploy.prototxt",
    "squeezenet_v1.1": REAL / "caffe-squeezenet" / "v1.1" / "deploy.prototxt",
}


def gemm_rows(work) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) per GEMM, named as the topology CSVs name them (one row per group)."""
    rows = []
    for w in work:
        name = w.name.replace("/", "_")
        for g in range(w.count):
            rows.append((f"{name}_g{g}" if w.count > 1 else name, w.m, w.k, w.n))
    return rows


@pytest.mark.parametrize("topology", list(CASES))
def test_deploy_net_lowers_to_the_gemms_of_its_topology(topology):
    if not CASES[topology].exists():
        pytest.skip(f"{CASES[topology]} is not present")
    model = read_caffe(CASES[topology])
    assert model.random_weights and model.network.is_bound
    ours = gemm_rows(network_work(model.network, batch=1))
    theirs = gemm_rows(scalesim_io.read_topology(TOPOLOGIES / f"{topology}.csv"))
    assert ours == theirs


def test_caffenet_schedules_like_alexnet_on_an_accelerator():
    if not DEPLOY.is_dir():
        pytest.skip(f"{DEPLOY} is not present")
    accelerator = hwconfigs.load("mid-ws-int8")
    results = {}
    for name in ("bvlc_alexnet", "bvlc_reference_caffenet"):
        network = read_caffe(DEPLOY / f"{name}.deploy.prototxt").network
        work = network_work(network)
        assert [w.m // 10 for w in work][:2] == [55 * 55, 27 * 27]  # batch 10 in the prototxts
        results[name] = schedule(work, accelerator, batch=10)
    alexnet, caffenet = results.values()
    assert [layer.cycles for layer in alexnet.layers] == [layer.cycles for layer in caffenet.layers]
    assert all(layer.cycles > 0 for layer in alexnet.layers)
