"""hwconfigs: the shipped accelerator descriptions, the schema, and errors that name file and key."""

from __future__ import annotations

import re

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import hwconfigs
from rsim.schedule import reduction_plan
from formats import FixedPoint, RsimError, parse
from hwconfigs import Accelerator, DynamicFixed, Energy

SHIPPED = hwconfigs.list_configs()


def _write(tmp_path: Path, data: dict, name: str = "accel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _edge_dict() -> dict:
    return yaml.safe_load(hwconfigs.config_path("edge-int8").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads_and_round_trips_through_its_serialisation(name):
    accel = hwconfigs.load(name)
    assert accel.name == name
    assert accel.description
    dumped = accel.model_dump(mode="json")
    assert hwconfigs.from_dict(dumped) == accel
    assert yaml.safe_load(yaml.safe_dump(dumped)) == dumped


def test_at_least_six_distinct_design_points_and_the_default_is_int8():
    assert len(SHIPPED) >= 6
    points = {(a.array.rows, a.array.cols, a.array.dataflow, str(a.datapath.weights),
               a.datapath.accumulator.bits, str(a.datapath.accumulator.format))
              for a in map(hwconfigs.load, SHIPPED)}
    assert len(points) == len(SHIPPED)
    default = hwconfigs.load()
    assert default.name == hwconfigs.DEFAULT in SHIPPED
    int8 = DynamicFixed(bits=8, fl="dynamic")
    assert default.datapath.weights == int8 == default.datapath.activations
    assert default.datapath.accumulator.bits >= 32


def test_the_readme_table_describes_every_shipped_config_as_it_is():
    """The README's table of design points is what users read: each row's array column and the
    register widths it names must be the config's, and every shipped config has a row."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)`(?: \(default\))? \| (.+?) \|", readme, re.M))
    assert set(SHIPPED) <= set(rows)
    for name in SHIPPED:
        accel = hwconfigs.load(name)
        array = accel.array
        assert rows[name].startswith(f"{array.rows}×{array.cols} {array.dataflow.upper()}"), name
        described = readme[readme.index(f"| `{name}`"):].splitlines()[0]
        for register in (accel.datapath.accumulator, accel.datapath.partial_sum):
            if register is not None and register.bits is not None:
                assert f"{register.bits}-bit" in described, (name, register)


def test_dynamic_fixed_point_resolves_to_a_fixed_point_format_per_layer():
    dynamic = hwconfigs.load("ristretto-dfp8").datapath.activations
    assert dynamic.at(5) == FixedPoint(8, 5) == parse("fixed<8,5>")
    assert dynamic.at(-3).max == 127 * 8
    assert DynamicFixed(bits=6, fl="dynamic", signed=False).at(2) == parse("ufixed<6,2>")


def test_partial_sum_defaults_to_the_accumulator():
    data = _edge_dict()
    del data["datapath"]["partial_sum"]
    accel = hwconfigs.from_dict(data)
    assert accel.datapath.partial_sum is None
    assert reduction_plan(accel.array, accel.datapath).partial_sum == accel.datapath.accumulator


def test_mac_energy_uses_the_smallest_table_width_that_covers_the_operands():
    energy = Energy(mac_pj={8: 0.3, 16: 0.9, 32: 3.2})
    assert [energy.mac_energy_pj(w) for w in (4, 8, 9, 16, 17, 32)] == [0.3, 0.3, 0.9, 0.9, 3.2,
                                                                        3.2]
    with pytest.raises(ValueError, match="32"):
        energy.mac_energy_pj(33)


def _edited(change) -> dict:
    data = _edge_dict()
    change(data)
    return data


BAD_CONFIGS = {
    "unknown top-level key": (lambda d: d.update(arary={}), ["arary", "unknown key",
                                                             "array, datapath, memory"]),
    "unknown nested key": (lambda d: d["datapath"]["accumulator"].update(bitz=3),
                           ["datapath.accumulator.bitz", "bits, overflow, format"]),
    "zero rows": (lambda d: d["array"].update(rows=0), ["array.rows", "greater than 0"]),
    "negative SRAM": (lambda d: d["memory"].update(ifmap_sram_kib=-4),
                      ["memory.ifmap_sram_kib", "greater than 0"]),
    "unparsable format": (lambda d: d["datapath"].update(weights="int8x"),
                          ["datapath.weights", "int8x"]),
    "dataflow typo": (lambda d: d["array"].update(dataflow="wss"),
                      ["array.dataflow", "'os', 'ws' or 'is'"]),
    "overflow typo": (lambda d: d["datapath"]["accumulator"].update(overflow="clamp"),
                      ["datapath.accumulator.overflow", "saturate"]),
    "rounding typo": (lambda d: d["datapath"].update(requant_rounding="round"),
                      ["datapath.requant_rounding", "nearest_even"]),
    "register with bits and format": (lambda d: d["datapath"]["accumulator"].update(
        format="fp16"), ["datapath.accumulator", "exactly one of bits"]),
    "dynamic operand typo": (lambda d: d["datapath"].update(weights={"bits": 8, "fl": "auto"}),
                             ["datapath.weights.fl", "dynamic"]),
    "missing section": (lambda d: d.pop("memory"), ["memory", "required"]),
    "energy table too narrow": (lambda d: d.update(energy={"mac_pj": {4: 0.1}}),
                                ["energy.mac_pj", "8-bit"]),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_gives_one_error_naming_file_key_and_what_is_allowed(tmp_path, case):
    change, expected = BAD_CONFIGS[case]
    path = _write(tmp_path, _edited(change))
    with pytest.raises(RsimError) as info:
        hwconfigs.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for text in expected:
        assert text in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("array:\n  rows: 4\n  cols: [8\n")
    with pytest.raises(RsimError, match=rf"^{path}:\d+: not valid YAML"):
        hwconfigs.load(path)


def test_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(RsimError, match="unknown hwconfig 'tpu'.*edge-int8"):
        hwconfigs.load("tpu")


def test_json_schema_forbids_unknown_keys_and_documents_the_sections():
    schema = json.loads(hwconfigs.json_schema())
    assert schema == Accelerator.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"array", "datapath", "memory", "energy"} <= set(schema["properties"])
    register = schema["$defs"]["Register"]
    assert register["additionalProperties"] is False and "bits" in register["properties"]


def _cli(*args: str):
    from rsim.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_hw_list_shows_every_config_and_marks_the_default():
    result = _cli("hw", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(SHIPPED)
    assert [line.lstrip("* ").split()[0] for line in lines] == SHIPPED
    assert [line.split()[1] for line in lines if line.startswith("*")] == [hwconfigs.DEFAULT]


def test_cli_hw_show_prints_yaml_that_loads_back_to_the_same_config(tmp_path):
    result = _cli("hw", "show", "edge-int8")
    assert result.exit_code == 0, result.output
    assert "K in chunks of 16 rows" in result.output
    path = tmp_path / "copy.yaml"
    path.write_text(result.output)
    assert hwconfigs.load(path) == hwconfigs.load("edge-int8")


def test_cli_hw_schema_prints_the_json_schema():
    result = _cli("hw", "schema")
    assert result.exit_code == 0
    assert json.loads(result.output) == Accelerator.model_json_schema()


def test_cli_hw_show_of_a_bad_file_is_one_stderr_line_and_exit_2(tmp_path):
    path = _write(tmp_path, _edited(lambda d: d["array"].update(dataflow="rs")))
    result = _cli("hw", "show", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "array.dataflow" in result.stderr
