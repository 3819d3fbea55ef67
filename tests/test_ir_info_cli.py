"""`rsim info [MODEL]`: a table of the IR's layers (op, shapes, params, MACs) with totals."""

from __future__ import annotations

from pathlib import Path

import onnx
from click.testing import CliRunner

import rsim
from rsim.shipped import default_model_path
from tests.onnx_graphs import resnet_style


def _info(*args: str) -> str:
    from rsim.cli import cli

    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_info_without_a_model_shows_the_shipped_default_model():
    out = _info()
    net = rsim.load(default_model_path())
    assert "default_model.onnx" in out and net.sha256 in out
    for layer in net.layers:
        assert layer.name in out
    total_line = next(line for line in out.splitlines() if "total" in line)
    assert f"{len(net.layers)} layers" in total_line
    assert f"{net.param_count:,}" in total_line and f"{net.macs():,}" in total_line


def test_info_shows_shapes_and_macs_at_the_requested_batch(tmp_path: Path):
    path = tmp_path / "resnet.onnx"
    onnx.save(resnet_style(13), path)
    out = _info(str(path), "--batch", "4")
    net = rsim.load(path)
    assert "4x3x32x32" in out and "outputs " in out and "4x10" in out
    assert f"{net.macs(4):,}" in out and net.macs(4) == 4 * net.macs(1)


def test_info_binds_symbolic_dimensions_from_input_shape(tmp_path: Path):
    model = resnet_style(13)
    for i in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[i].dim_param = "HW"[i - 2]
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, path)
    out = _info(str(path), "--input-shape", "input=2x3x64x48")
    assert "2x3x64x48" in out and "2x8x32x24" in out
    from rsim.cli import cli

    unbound = CliRunner().invoke(cli, ["info", str(path)])
    assert unbound.exit_code == 2
    assert "input=?x3x?x?" in unbound.stderr and "--input-shape NAME=DIMS" in unbound.stderr
