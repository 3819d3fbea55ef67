"""RTL test vectors: one layer's input codes, weight codes, bias, expected accumulator values and
output codes as `$readmemh` files, with a JSON manifest a testbench can be written from.

Every file holds one word per line, in hexadecimal two's complement of the word's width
(ceil(bits / 4) digits), in row-major order of the shape the manifest gives (NCHW for
activations, OIHW for convolution weights, K x N for FC weights); lines starting with `//` are
comments, which `$readmemh` skips.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from formats import FixedPoint
from formats.errors import RsimError
from rsim import __version__
from rsim.quant.layer import LayerQuant
from rsim.quant.tensor import Outcome, QTensor
from rsim.simulation import Prepared


def hex_words(codes: np.ndarray, bits: int) -> list[str]:
    """Two's-complement hex words of `bits` bits, one per code (row-major)."""
    digits = max(1, math.ceil(bits / 4))
    mask = (1 << bits) - 1
    flat = np.asarray(codes, dtype=np.int64).ravel()
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise RsimError(f"vectors: codes {flat.min()}..{flat.max()} do not fit {bits} bits")
    return [format(int(code) & mask, f"0{digits}x") for code in flat]


def _write_hex(path: Path, codes: np.ndarray, bits: int, what: str) -> dict[str, Any]:
    words = hex_words(codes, bits)
    header = (f"// rsim {__version__} vectors: {what}, shape {list(codes.shape)}, "
              f"{bits}-bit two's complement, row-major\n")
    path.write_text(header + "\n".join(words) + "\n")
    return {"file": path.name, "shape": list(codes.shape), "bits": bits, "words": len(words)}


def _register_bits(quant: LayerQuant) -> int:
    """Width of the register that holds the result: the partial sum when there is one."""
    plan = quant.plan
    return (plan.partial_sum or plan.accumulator).bits


def write_vectors(run: Prepared, layer_name: str, x: np.ndarray, out_dir: str | Path,
                  seed: int = 0) -> dict[str, Any]:
    """Simulate the batch `x` up to `layer_name` and write its vectors and manifest to
    `out_dir`; returns the manifest."""
    names = [quant.layer.name for quant in run.quants]
    if layer_name not in names:
        shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
        raise RsimError(f"vectors: the model has no layer {layer_name!r}; layers: {shown}")
    rng = np.random.default_rng(seed)
    found: tuple[LayerQuant, list[QTensor], Outcome] | None = None
    for quant, inputs, outcome in run.propagate(x, rng):
        if quant.layer.name == layer_name:
            found = (quant, inputs, outcome)
            break
    quant, inputs, outcome = found
    if quant.float_emulated or not all(isinstance(t.fmt, FixedPoint) for t in inputs) or (
            quant.plan is not None and not quant.plan.is_integer):
        raise RsimError(f"vectors: layer {layer_name!r} ({quant.layer.op}) has no integer "
                        "datapath on this accelerator; pick a layer with fixed-point "
                        "inputs and outputs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for index, tensor in enumerate(inputs):
        key = "input" if len(inputs) == 1 else f"input{index}"
        files[key] = _write_hex(out / f"{key}.hex", tensor.data, tensor.fmt.bits,
                                f"{key} codes ({tensor.fmt})")
    files["output"] = _write_hex(out / "output.hex", outcome.out.data, outcome.out.fmt.bits,
                                 f"output codes ({outcome.out.fmt})")
    manifest: dict[str, Any] = {
        "rsim_version": __version__,
        "model_sha256": run.network.sha256,
        "accelerator": run.hw.name,
        "layer": layer_name,
        "op": quant.layer.op,
        "attributes": {key: _jsonable(value) for key, value in quant.layer.attrs.items()},
        "samples": int(x.shape[0]),
        "formats": quant.formats(),
        "fractional_lengths": {
            "input": [t.fmt.fl for t in inputs], "output": outcome.out.fmt.fl},
        "layout": "one word per line, two's complement hex, row-major (C order) over the given "
                  "shape: activations NCHW, conv weights OIHW, FC weights K x N",
        "files": files,
    }
    if quant.spec.is_mac and quant.weights is not None:
        files["weights"] = _write_hex(out / "weights.hex", quant.weights,
                                      _bits_of(quant.weights, quant.weight_fmt),
                                      f"weight codes ({quant.weight_fmt})")
        if quant.bias is not None:
            files["bias"] = _write_hex(out / "bias.hex", quant.bias,
                                       quant.plan.bias_register.bits,
                                       "bias at the accumulator's scale")
        files["accumulator"] = _write_hex(out / "accumulator.hex", outcome.acc,
                                          _register_bits(quant),
                                          "accumulator values before requantization")
        plan = quant.plan
        manifest["fractional_lengths"]["weights"] = quant.constants.weight_fl
        manifest["fractional_lengths"]["accumulator"] = quant.acc_fl
        manifest["reduction_plan"] = {
            "k_order": "input channel in group, kernel row, kernel column" if quant.layer.op
                       .startswith("conv") else "k ascending",
            "k_chunk": plan.k_chunk,
            "accumulator": {"bits": plan.accumulator.bits,
                            "overflow": plan.accumulator.overflow.value},
            "partial_sum": None if plan.partial_sum is None else {
                "bits": plan.partial_sum.bits, "overflow": plan.partial_sum.overflow.value},
            "bias_mode": plan.bias_mode,
        }
        manifest["requantization"] = {
            "shift": quant.acc_fl - outcome.out.fmt.fl,
            "rounding": quant.datapath.requant_rounding.value,
            "overflow": "saturate",
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _bits_of(codes: np.ndarray, fmt) -> int:
    """Word width of weight codes: the format's bits, or (pow2 as shifts) the codes' span."""
    if isinstance(fmt, FixedPoint):
        return fmt.bits
    magnitude = int(np.max(np.abs(codes))) if codes.size else 0
    return max(2, magnitude.bit_length() + 1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
