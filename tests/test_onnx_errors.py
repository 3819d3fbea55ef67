"""Bad input gives one RsimError whose message names the problem, and the CLI turns it into one
line on stderr with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import rsim
from rsim import RsimError
from tests.onnx_graphs import IR_VERSION, mobilenet_style


def _save(nodes, path: Path, inits=(), inputs=None, outputs=None, opset: int = 13) -> Path:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION
    )
    onnx.save(model, path)
    return path


@pytest.fixture
def mobilenet_file(tmp_path) -> Path:
    path = tmp_path / "mobilenet.onnx"
    onnx.save(mobilenet_style(13), path)
    return path


def test_truncated_file_is_reported_as_truncated_or_corrupt(mobilenet_file, tmp_path):
    data = mobilenet_file.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(RsimError, match="truncated or corrupt"):
        rsim.load(bad)


def test_garbage_bytes_are_reported_as_corrupt(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\xff\x00 this is not a protobuf \x13\x37" * 10)
    with pytest.raises(RsimError, match="truncated or corrupt"):
        rsim.load(bad)


def test_input_of_wrong_shape_names_the_input_and_expected_shape(mobilenet_file):
    net = rsim.load(mobilenet_file)
    with pytest.raises(
        RsimError, match=r"input 'input' has shape \(2, 3, 30, 32\).*\[N, 3, 32, 32\]"
    ):
        net.run_float(np.zeros((2, 3, 30, 32), np.float32))
    with pytest.raises(RsimError, match="has shape"):
        net.run_float(np.zeros((3, 32, 32), np.float32))


def test_input_of_integer_dtype_is_refused_with_the_fix(mobilenet_file):
    net = rsim.load(mobilenet_file)
    with pytest.raises(RsimError, match=r"dtype uint8.*astype\(np.float32\)"):
        net.run_float(np.zeros((1, 3, 32, 32), np.uint8))


def test_wrong_input_names_are_listed(mobilenet_file):
    net = rsim.load(mobilenet_file)
    with pytest.raises(RsimError, match=r"missing \['input'\], unknown \['image'\]"):
        net.run_float({"image": np.zeros((1, 3, 32, 32), np.float32)})


def test_unsupported_operator_names_node_op_and_supported_list(tmp_path):
    path = _save([helper.make_node("Hardmax", ["x"], ["y"], name="my_hardmax")],
                 tmp_path / "hardmax.onnx")
    with pytest.raises(RsimError) as info:
        rsim.load(path)
    message = str(info.value)
    assert "'my_hardmax' (Hardmax) is not supported" in message
    assert "Conv, ConvTranspose" in message and "Gemm" in message and "HardSwish" in message


def test_operator_of_a_foreign_domain_is_unsupported(tmp_path):
    node = helper.make_node("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)],
    )
    path = tmp_path / "ms.onnx"
    onnx.save(model, path)
    with pytest.raises(
        RsimError, match="'fused' \\(FusedConv\\) in domain 'com.microsoft' is not supported"
    ):
        rsim.load(path)


def _external_model(tmp_path: Path, location: str) -> Path:
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        weight.external_data.add(key=key, value=value)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    return _save(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        folder / "ext.onnx",
        inits=[weight],
    )


def test_external_data_inside_the_model_folder_is_read(tmp_path):
    path = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(
        np.arange(16, dtype=np.float32).reshape(4, 4).tobytes()
    )
    net = rsim.load(path)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(
        net.run_float(x)["y"], x @ np.arange(16, dtype=np.float32).reshape(4, 4)
    )


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(bytes(64))
    path = _external_model(tmp_path, location)
    with pytest.raises(RsimError, match="outside the model's folder"):
        rsim.load(path)


def test_cycle_is_reported(tmp_path):
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Relu", ["b"], ["y"], name="out"),
    ]
    path = _save(nodes, tmp_path / "cycle.onnx")
    with pytest.raises(RsimError, match="cycle"):
        rsim.load(path)


def test_dangling_tensor_names_node_and_tensor(tmp_path):
    path = _save(
        [helper.make_node("Add", ["x", "nowhere"], ["y"], name="adder")], tmp_path / "d.onnx"
    )
    with pytest.raises(RsimError, match="'adder' \\(Add\\) reads tensor 'nowhere'.*dangling"):
        rsim.load(path)


def test_every_opset_the_installed_onnx_knows_is_read_and_others_are_refused(tmp_path):
    newest = onnx.defs.onnx_opset_version()
    for opset in (22, newest):
        path = _save([helper.make_node("Relu", ["x"], ["y"])], tmp_path / f"{opset}.onnx",
                     opset=opset)
        x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
        assert rsim.load(path).run_float(x)["y"].tolist() == [[0.0, 2.0, 0.0, 4.0]]
    for opset in (6, newest + 1):
        path = _save([helper.make_node("Relu", ["x"], ["y"])], tmp_path / "bad.onnx", opset=opset)
        with pytest.raises(RsimError, match=f"opset {opset}; rsim reads opsets 7..{newest}"):
            rsim.load(path)


def test_a_model_without_the_default_domain_names_the_domains_it_imports(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("com.microsoft", 1)],
                              ir_version=IR_VERSION)
    path = tmp_path / "ms.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(RsimError, match="imports no opset of the default ONNX domain .*"
                                        "'com.microsoft'"):
        rsim.load(path)


def test_missing_file_and_unknown_suffix_are_reported(tmp_path):
    with pytest.raises(RsimError, match="does not exist"):
        rsim.load(tmp_path / "absent.onnx")
    other = tmp_path / "model.tflite"
    other.write_bytes(b"x")
    with pytest.raises(RsimError, match="unknown model format '.tflite'"):
        rsim.load(other)


def test_conv_weight_that_is_not_constant_is_reported(tmp_path):
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 3, 3]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])]
    path = _save(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
        tmp_path / "c.onnx",
        inputs=inputs,
        outputs=outputs,
    )
    with pytest.raises(RsimError, match="'c' \\(Conv\\): the Conv weight must be a constant"):
        rsim.load(path)


@pytest.mark.parametrize("case", ["corrupt", "unsupported", "outside", "cycle"])
def test_cli_prints_one_error_line_and_exits_2(tmp_path, case):
    from rsim.cli import cli

    if case == "corrupt":
        path = tmp_path / "bad.onnx"
        path.write_bytes(b"\x0a\xff\xff")
    elif case == "unsupported":
        path = _save([helper.make_node("Hardmax", ["x"], ["y"], name="e")],
                     tmp_path / "hardmax.onnx")
    elif case == "outside":
        (tmp_path / "secret.bin").write_bytes(bytes(64))
        path = _external_model(tmp_path, "../secret.bin")
    else:
        path = _save(
            [
                helper.make_node("Add", ["x", "b"], ["a"]),
                helper.make_node("Relu", ["a"], ["b"]),
                helper.make_node("Relu", ["b"], ["y"]),
            ],
            tmp_path / "cyc.onnx",
        )
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsim: error: ") and str(path) in lines[0]


def test_cli_reports_a_malformed_input_shape_option(mobilenet_file):
    from rsim.cli import cli

    result = CliRunner().invoke(cli, ["info", str(mobilenet_file), "--input-shape", "input:1x3"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "rsim: error: --input-shape 'input:1x3' is not NAME=DIMS (e.g. input=1x3x224x224)"
    )
