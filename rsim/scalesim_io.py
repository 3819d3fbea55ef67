"""Read SCALE-Sim 3.0.0 inputs (.cfg and topology CSV) and write its COMPUTE_REPORT rows.

So that SCALE-Sim users can switch: the same files give the same stall-free numbers. SCALE-Sim's
conventions are kept where they change results: the ifmap in a topology is already padded and the
output size is ceil((H - F + S) / S); a layer whose name contains "DP" is depthwise and becomes one
single-channel layer per channel, named `<name>Channel_<i>`; the reported cycle count is the
0-based index of the last cycle (stall-free cycles - 1). Differences, on purpose: a row without
SCALE-Sim's trailing comma keeps its last field (SCALE-Sim silently drops it), and a bad row is an
error naming the file and line instead of an assert.
"""

from __future__ import annotations

import configparser
import csv
from dataclasses import dataclass
from pathlib import Path

import hwconfigs
from formats.errors import RsimError
from rsim.schedule.geometry import GemmWork, conv_work, gemm_work
from rsim.schedule.dataflows import DATAFLOWS
from rsim.schedule.systolic import fold_timing

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                "Channels", "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")
COMPUTE_REPORT_COLUMNS = ("LayerID", "Total Cycles", "Stall Cycles", "Overall Util %",
                          "Mapping Efficiency %", "Compute Util %")


@dataclass(frozen=True)
class ScaleSimConfig:
    """The parts of a SCALE-Sim .cfg that decide compute cycles and buffer sizes."""

    run_name: str
    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kib: int
    filter_sram_kib: int
    ofmap_sram_kib: int


    def to_accelerator(self, base: str = hwconfigs.DEFAULT) -> hwconfigs.Accelerator:
        """An rsim accelerator with this array and these SRAM sizes (SCALE-Sim words are one
        byte, so KiB carry over); the datapath, clock and DRAM port come from `base`."""
        data = hwconfigs.load(base).model_dump(mode="json")
        data["name"] = self.run_name
        data["array"].update(rows=self.rows, cols=self.cols, dataflow=self.dataflow)
        data["memory"].update(ifmap_sram_kib=self.ifmap_sram_kib,
                              filter_sram_kib=self.filter_sram_kib,
                              ofmap_sram_kib=self.ofmap_sram_kib)
        return hwconfigs.from_dict(data)


def read_config(path: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim .cfg (configparser syntax, case-insensitive keys)."""
    path = Path(path)
    parser = configparser.ConfigParser()
    try:
        with path.open() as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as error:
        raise RsimError(f"{path}: cannot read SCALE-Sim config: {error}") from None

    def get(section: str, key: str) -> str:
        try:
            return parser.get(section, key).strip()
        except (configparser.NoSectionError, configparser.NoOptionError):
            raise RsimError(f"{path}: missing [{section}] {key}") from None

    def positive(section: str, key: str) -> int:
        text = get(section, key)
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise RsimError(f"{path}: [{section}] {key} = {text!r}: must be a positive integer")
        return value

    arch = "architecture_presets"
    dataflow = get(arch, "Dataflow").lower()
    if dataflow not in DATAFLOWS:
        raise RsimError(f"{path}: [{arch}] Dataflow = {dataflow!r}: must be one of "
                        f"{', '.join(DATAFLOWS)}")
    return ScaleSimConfig(
        run_name=get("general", "run_name"),
        rows=positive(arch, "ArrayHeight"),
        cols=positive(arch, "ArrayWidth"),
        dataflow=dataflow,
        ifmap_sram_kib=positive(arch, "IfmapSramSzkB"),
        filter_sram_kib=positive(arch, "FilterSramSzkB"),
        ofmap_sram_kib=positive(arch, "OfmapSramSzkB"),
    )


def _detect_kind(header: list[str]) -> str:
    names = [field.strip().lower() for field in header if field.strip()]
    return "gemm" if names[1:4] == ["m", "n", "k"] else "conv"


def read_topology(path: str | Path, kind: str | None = None, *, batch: int = 1) -> list[GemmWork]:
    """Read a SCALE-Sim topology CSV into GEMM work, one entry per SCALE-Sim report row.

    `kind` is "conv" (Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
    Num Filter, Strides) or "gemm" (Layer, M, N, K); None picks it from the header row.
    `batch` > 1 multiplies M (SCALE-Sim itself always runs batch 1).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RsimError(f"{path}: cannot read SCALE-Sim topology: {error}") from None
    rows = [(number, fields) for number, fields in enumerate(csv.reader(lines), start=1)
            if any(field.strip() for field in fields)]
    if not rows:
        raise RsimError(f"{path}: empty topology (expected a header row, then one row per layer)")
    kind = kind or _detect_kind(rows[0][1])
    if kind not in ("conv", "gemm"):
        raise RsimError(f"{path}: topology kind must be conv or gemm, got {kind!r}")
    columns = CONV_COLUMNS if kind == "conv" else GEMM_COLUMNS
    layers: list[GemmWork] = []
    for number, fields in rows[1:]:
        if fields and not fields[-1].strip():
            fields = fields[:-1]
        where = f"{path}:{number}"
        if len(fields) < len(columns):
            missing = ", ".join(columns[len(fields):])
            raise RsimError(f"{where}: {kind} row has {len(fields)} fields, missing {missing} "
                            f"(expected: {', '.join(columns)})")
        name = fields[0].strip()
        values = []
        for column, text in zip(columns[1:], fields[1:len(columns)]):
            try:
                values.append(int(text))
            except ValueError:
                raise RsimError(f"{where}: {column} = {text.strip()!r} is not an integer") from None
        extra = [field.strip() for field in fields[len(columns):]]
        if kind == "conv" and extra and extra != ["1:1"]:
            raise RsimError(f"{where}: only the dense sparsity ratio 1:1 is modelled, got {extra}")
        try:
            if kind == "gemm":
                m, n, k = values
                layers.append(gemm_work(name, m, k, n, batch=batch))
            else:
                layers.extend(_conv_rows(name, *values, batch=batch))
        except RsimError as error:
            raise RsimError(f"{where}: {error}") from None
    return layers


def _conv_rows(name: str, height: int, width: int, filter_h: int, filter_w: int, channels: int,
               filters: int, stride: int, batch: int = 1) -> list[GemmWork]:
    """One conv topology row; depthwise ("DP" in the name) unrolls into one layer per channel."""
    if filter_h > height or filter_w > width:
        raise RsimError(f"layer {name!r}: filter {filter_h}x{filter_w} is larger than the ifmap "
                        f"{height}x{width}")
    if stride <= 0:
        raise RsimError(f"layer {name!r}: Strides must be a positive integer, got {stride}")
    out_h = -(-(height - filter_h + stride) // stride)
    out_w = -(-(width - filter_w + stride) // stride)
    geometry = {"in_h": height, "in_w": width, "out_h": out_h, "out_w": out_w, "kernel_h": filter_h,
                    "kernel_w": filter_w, "out_channels": filters, "batch": batch}
    if "DP" in name:
        return [conv_work(f"{name}Channel_{i}", in_channels=1, **geometry) for i in range(channels)]
    return [conv_work(name, in_channels=channels, **geometry)]


def compute_report(config: ScaleSimConfig, layers: list[GemmWork],
                   os_fill: str = "scalesim") -> list[tuple[int, int, int, float, float, float]]:
    """SCALE-Sim COMPUTE_REPORT rows (COMPUTE_REPORT_COLUMNS) of the stall-free model.

    Total Cycles is SCALE-Sim's last-cycle index, cycles - 1; utilizations are in percent.
    """
    report = []
    for layer_id, layer in enumerate(layers):
        timing = fold_timing(layer.m, layer.k, layer.n, rows=config.rows, cols=config.cols,
                             dataflow=config.dataflow, os_fill=os_fill)
        cycles = layer.count * timing.cycles - 1
        overall = layer.macs / (config.rows * config.cols * cycles)
        report.append((layer_id, cycles, 0, overall * 100, timing.mapping_efficiency * 100,
                       timing.scalesim_compute_util * 100))
    return report


def format_compute_report(report: list[tuple[int, int, int, float, float, float]]) -> str:
    """The rows as SCALE-Sim writes COMPUTE_REPORT.csv (", " separators, trailing comma)."""
    lines = [", ".join(COMPUTE_REPORT_COLUMNS) + ","]
    lines += [", ".join(str(value) for value in row) + "," for row in report]
    return "\n".join(lines) + "\n"
