"""`write_ristretto_prototxt`: a net as a Ristretto prototxt, its quantized layers retyped
(Convolution -> ConvolutionRistretto, InnerProduct -> FcRistretto, Deconvolution ->
DeconvolutionRistretto, LRN -> LRNRistretto for minifloat, the only precision Ristretto's LRN
accepts) and given a `quantization_param` with every field spelled as Ristretto's caffe.proto
spells it. Every phase of the net is written (Ristretto fine-tunes with the TRAIN phase), in the
V2 layer format, atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from google.protobuf import text_format

from formats.errors import RsimError
from rsim.files import write_atomically
from rsim.frontends.caffe import schema
from rsim.frontends.caffe.model import CaffeModel
from rsim.frontends.caffe.ristretto import FLOAT_TYPES, RISTRETTO_TYPES, RistrettoParams


def write_ristretto_prototxt(
    model: CaffeModel, params: Mapping[str, RistrettoParams], path: str | Path
) -> Path:
    """Write `model`'s net with the layers named in `params` quantized as given (layers that
    are Ristretto layers already keep their type and take the new parameters; Ristretto layers
    not named keep theirs). The file is written beside its final place and renamed into it, so
    a failure leaves nothing half written. Returns the path."""
    path = Path(path)
    net = schema.NetParameter()
    net.CopyFrom(model.net)
    names = {layer.name for layer in net.layer}
    unknown = sorted(set(params) - names)
    if unknown:
        raise RsimError(
            f"Ristretto parameters name layers {unknown} that {model.prototxt} does not have"
        )
    for layer in net.layer:
        if layer.name not in params:
            continue
        setting = params[layer.name]
        if not isinstance(setting, RistrettoParams):
            raise RsimError(
                f"the parameters of layer {layer.name!r} must be a RistrettoParams, "
                f"got {type(setting).__name__}"
            )
        base = FLOAT_TYPES.get(layer.type, layer.type)
        if base not in RISTRETTO_TYPES:
            raise RsimError(
                f"layer {layer.name!r} is a {layer.type}; Ristretto quantizes "
                f"{', '.join(RISTRETTO_TYPES)} layers only"
            )
        if base == "LRN" and setting.precision != "MINIFLOAT":
            raise RsimError(
                f"layer {layer.name!r}: LRNRistretto supports precision MINIFLOAT only, "
                f"not {setting.precision}"
            )
        layer.type = RISTRETTO_TYPES[base]
        for name in ("quantization_param_148", "quantization_param_147"):
            layer.ClearField(name)
        setting.to_proto(layer.quantization_param)
    header = f"# written by rsim from {model.prototxt}\n"
    if model.skipped_fields:
        header += (
            "# fields of the source rsim did not carry over (line:column message.field): "
            + ", ".join(model.skipped_fields)
            + "\n"
        )
    write_atomically(path, (header + text_format.MessageToString(net)).encode())
    return path
