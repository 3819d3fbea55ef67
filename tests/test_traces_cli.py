"""`rsim trace show|diff|plot` on real trace files, and their one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import traces
from rsim.cli import cli
from traces import LayerRecord, RunMetadata, TraceWriter


def _trace(path: Path, sqnr_by_layer: dict[str, float], agreement: float) -> Path:
    metadata = RunMetadata(model="mnist-8.onnx", seed=7, hwconfig="array:\n  rows: 8\n",
                           command="rsim simulate mnist-8.onnx")
    with TraceWriter(path, metadata) as writer:
        for name, sqnr in sqnr_by_layer.items():
            writer.add_layer(LayerRecord(
                name=name, op="Conv", formats={"weights": "fx8.6"},
                schedule={"cycles": 5000.0, "utilization": 0.5},
                isolated={"sqnr_db": sqnr + 1.0},
                propagated={"sqnr_db": sqnr, "clipped_share": 0.02},
                acc_saturations=3, float_emulated=name == "softmax",
            ))
        writer.set_results({"agreement": agreement, "cycles": 1234567.0})
    return path


def _run(*args: str):
    return CliRunner(env={"COLUMNS": "220"}).invoke(cli, ["trace", *args])


def test_show_prints_metadata_and_one_row_per_layer(tmp_path):
    path = _trace(tmp_path / "a.h5", {"conv1/Conv": 31.25, "relu": math.inf, "softmax": 12.0,
                                      "[bold]odd[/] name": 1.0}, 0.99)
    result = _run("show", str(path))
    assert result.exit_code == 0, result.output
    for text in ("mnist-8.onnx", "array: … (2 lines)", "result: agreement", "0.9900",
                 "conv1/Conv", "31.25", "32.25", "∞", "Conv (float)", "5,000", "50.00", "2.00",
                 "[bold]odd[/] name", "1,234,567"):
        assert text in result.output


def test_diff_names_the_layers_that_drift_more_and_less(tmp_path):
    a = _trace(tmp_path / "a.h5", {"conv1": 40.0, "conv2": 30.0, "fc[red]": 20.0}, 0.99)
    b = _trace(tmp_path / "b.h5", {"conv1": 34.0, "conv2": 30.0, "fc[red]": 25.0}, 0.95)
    result = _run("diff", str(a), str(b))
    assert result.exit_code == 0, result.output
    assert "B drifts more at 1 layer(s); most at 'conv1' (-6.00 dB)" in result.output
    assert "B drifts less at 1 layer(s); most at 'fc[red]' (+5.00 dB)" in result.output
    assert "agreement: 0.9900 → 0.9500 (-0.0400)" in result.output
    quiet = _run("diff", str(a), str(a))
    assert "no layer's SQNR changed by more than 0.1 dB" in quiet.output


def test_plot_writes_the_png_named_by_out(tmp_path):
    pytest.importorskip("matplotlib")
    path = _trace(tmp_path / "a.h5", {"conv1": 40.0, "fc": 20.0}, 0.99)
    out = tmp_path / "drift.png"
    result = _run("plot", str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}"
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("command", ["show", "plot"])
def test_a_missing_trace_is_one_line_on_stderr_and_exit_2(tmp_path, command):
    missing = tmp_path / "missing.h5"
    result = CliRunner().invoke(cli, ["trace", command, str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rsim: error: trace file '{missing}' does not exist"


def test_a_file_that_is_not_a_trace_is_refused_by_diff(tmp_path):
    good = _trace(tmp_path / "a.h5", {"conv1": 40.0}, 0.99)
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    result = CliRunner().invoke(cli, ["trace", "diff", str(good), str(bad)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(bad) in result.stderr
    assert traces.load(good).layers[0].name == "conv1"
