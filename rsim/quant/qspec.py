"""Quantization spec (qspec): per-layer overrides of the accelerator's datapath, and how dynamic
fixed point is calibrated.

A qspec is a YAML file:

    calibration:
      rule: max            # max | ristretto | percentile | mse
      percentile: 99.99    # the percentile rule's percentile of |x|
      samples: 256         # calibration samples, taken from the start of the data
    layers:
      - match: "conv*"     # a layer name or a glob over layer names (fnmatch)
        weights: {bits: 6, fl: dynamic}
        activations: fixed<8,3>
        accumulator: {bits: 16, overflow: saturate}

Every key of a `layers` entry other than `match` is a `hwconfigs.Datapath` key with the same
meaning and syntax; entries apply in order, a later match overriding an earlier one. An entry
whose `match` selects no layer is an error (a typo would otherwise go unnoticed).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import Field, PositiveInt, create_model

from formats.errors import RsimError
from hwconfigs.loader import read_yaml, validate
from hwconfigs.schema import Datapath, StrictModel

CalibrationRule = Literal["max", "ristretto", "percentile", "mse"]


class Calibration(StrictModel):
    """How the fractional length of a dynamic fixed-point tensor is chosen.

    max: the smallest integer length that holds max|x| (il = ceil(log2 max|x|) + 1, Ristretto's
    weights rule) for every tensor; ristretto: Ristretto's two rules, weights as max, activations
    il = ceil(log2 max|x|) (one bit less: the top of the range clips); percentile: activations
    use the `percentile`-th percentile of |x| instead of the max; mse: activations take the fl
    that minimises the squared quantization error on the calibration samples. Weights always use
    the max rule on their own values (ristretto: the same, it is Ristretto's weights rule).
    """

    rule: CalibrationRule = "max"
    percentile: float = Field(99.99, gt=0, le=100)
    samples: PositiveInt = Field(256, description="samples from the start of the data")


class _Override(StrictModel):
    def update(self) -> dict[str, Any]:
        """The datapath keys this entry sets."""
        return {key: getattr(self, key) for key in self.model_fields_set if key != "match"}


# every Datapath key, optional: a key added to the datapath can be overridden at once
LayerOverride = create_model(
    "LayerOverride", __base__=_Override,
    __doc__="Datapath keys that replace the accelerator's for the layers `match` selects.",
    match=(str, Field(description="a layer name, or a glob over layer names")),
    **{name: (hint | None, None)
       for name, hint in get_type_hints(Datapath, include_extras=True).items()})


class QSpec(StrictModel):
    """A quantization spec: calibration settings and ordered per-layer datapath overrides."""

    calibration: Calibration = Calibration()
    layers: list[LayerOverride] = []

    def check_layers(self, layer_names: Sequence[str], source: str = "qspec") -> None:
        """Every entry must select at least one layer."""
        for index, entry in enumerate(self.layers):
            if not fnmatch.filter(layer_names, entry.match):
                shown = ", ".join(layer_names[:20]) + (" ..." if len(layer_names) > 20 else "")
                raise RsimError(f"{source}: layers[{index}].match {entry.match!r} selects no "
                                f"layer; the model's layers are: {shown}")

    def datapath_for(self, layer_name: str, base: Datapath) -> Datapath:
        """The datapath of `layer_name`: `base` with every matching entry applied in order."""
        update: dict[str, Any] = {}
        for entry in self.layers:
            if fnmatch.fnmatchcase(layer_name, entry.match):
                update.update(entry.update())
        if not update:
            return base
        return Datapath.model_validate({**dict(base), **update})


def with_model_quantization(spec: QSpec, network) -> QSpec:
    """`spec` after the per-layer entries the model file carries (`network.quantization`), so a
    user's entry overrides the model's for the layers both select."""
    carried = getattr(network, "quantization", None)
    if carried is None:
        return spec
    entries = [validate(LayerOverride, entry, carried.source) for entry in carried.layers]
    return spec.model_copy(update={"layers": entries + list(spec.layers)})


def load_qspec(source: str | Path | QSpec | dict | None) -> tuple[QSpec, str]:
    """A QSpec from a YAML path, a mapping or a QSpec (None: the empty spec), with its text for
    traces."""
    if source is None:
        return QSpec(), ""
    if isinstance(source, QSpec):
        return source, source.model_dump_json()
    if isinstance(source, dict):
        return validate(QSpec, source, "qspec"), repr(source)
    path = Path(source)
    data, text = read_yaml(path, "qspec")
    return validate(QSpec, data if data is not None else {}, str(path)), text
