"""`read_caffe`: a Caffe prototxt (+ caffemodel) as a `CaffeModel` (the Network and what Caffe
keeps beside the graph: data transforms, scoring layers, Ristretto parameters)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsim.frontends.caffe import schema
from rsim.frontends.caffe.build import Translation
from rsim.frontends.caffe.parse import (
    parse_net_binary,
    parse_net_text,
    read_bytes,
    select_phase,
)
from rsim.frontends.caffe.plan import ScoreLayer, plan_net
from rsim.frontends.caffe.ristretto import FLOAT_TYPES, RistrettoParams, model_quantization
from rsim.frontends.caffe.transform import CaffeTransform
from rsim.network import Network, Scoring

# LayerParameter fields Ristretto builds have stored quantization_param in, newest first
_QUANTIZATION_FIELDS = ("quantization_param", "quantization_param_148", "quantization_param_147")


@dataclass
class CaffeModel:
    """A Caffe net read for rsim.

    - `network`: the TEST-phase net as rsim's IR (tensor names: see `plan`'s docstring).
    - `transforms`: input tensor -> its data layer's TEST-time transform (`transform` for the
      first input); inputs of Input layers take their data as is.
    - `scores`: the Accuracy / loss layers (what they read, top_k, the label blob).
    - `quantization`: Ristretto layer name -> its `quantization_param` (from the prototxt);
      `weights_quantization` the same as stored in the caffemodel, if any.
    - `random_weights`: True when no caffemodel was given and the weights were drawn (seeded).
    - `blobs`: layer name -> its weights in Caffe's layout, filled when the network is built
      (at load once every input shape is known, else at its first run).
    - `blob_versions`: Caffe blob -> the IR tensors holding its successive values (in-place
      layers add versions).
    - `net` / `test_net`: the parsed prototxt (upgraded to V2 layers; every phase) and its
      TEST-phase selection; `skipped_fields`: fields of the prototxt rsim's schema does not
      declare ("line:column Message.field"), which `net` does not hold.
    """

    network: Network
    transforms: dict[str, CaffeTransform]
    scores: list[ScoreLayer]
    quantization: dict[str, RistrettoParams]
    weights_quantization: dict[str, RistrettoParams]
    random_weights: bool
    blobs: dict[str, tuple[np.ndarray, ...]]
    blob_versions: dict[str, list[str]]
    net: Any
    test_net: Any
    prototxt: Path
    weights: Path | None
    skipped_fields: tuple[str, ...]

    @property
    def transform(self) -> CaffeTransform:
        """The transform of the first input (the identity for an Input layer's)."""
        return self.transforms.get(self.network.inputs[0], CaffeTransform())


def read_caffe(
    prototxt: str | Path,
    weights: str | Path | None = None,
    input_shapes: Mapping[str, Any] | None = None,
) -> CaffeModel:
    """Read a Caffe network prototxt (V1 or V2 layers, Ristretto layer types) and optionally
    its caffemodel. Without weights the layers get seeded random weights (`random_weights`).
    `input_shapes` binds the inputs whose shape the prototxt leaves open (data layers read
    from databases); otherwise the first run binds them."""
    prototxt = Path(prototxt)
    text = read_bytes(prototxt, "model file")
    net, skipped = parse_net_text(text, prototxt)
    layers = select_phase(net, prototxt)
    digest = hashlib.sha256()
    _hash_file(digest, text)
    stored = None
    weights_quantization: dict[str, RistrettoParams] = {}
    if weights is not None:
        weights = Path(weights)
        data = read_bytes(weights, "weights file")
        _hash_file(digest, data)
        weights_net = parse_net_binary(data, weights)
        stored = {layer.name: list(layer.blobs) for layer in weights_net.layer}
        for layer in weights_net.layer:
            quantization = _stored_quantization(layer)
            if quantization is not None:
                weights_quantization[layer.name] = quantization
    plan = plan_net(layers, prototxt, dict(input_shapes) if input_shapes else None)
    translation = Translation(plan, prototxt, weights, stored)
    quantization = {layer.name: RistrettoParams.from_proto(layer.quantization_param)
                    for layer in layers if layer.type in FLOAT_TYPES}
    network = Network(
        translation.build,
        plan.input_specs,
        plan.outputs,
        source=prototxt,
        sha256=digest.hexdigest(),
        input_shapes=input_shapes,
        quantization=model_quantization(quantization, str(prototxt)),
        input_transforms={name: t for name, t in plan.transforms.items() if not t.is_identity},
        scoring=_scoring(plan.scores),
        final_versions={version: versions[-1] for versions in plan.blob_versions.values()
                        for version in versions},
        notes=() if weights is not None else (
            f"{prototxt.name}: no caffemodel given, so the layers hold seeded random weights "
            "(schedules are exact; accuracies are meaningless)",),
    )
    test_net = schema.NetParameter(name=net.name, state=net.state)
    test_net.layer.extend(layers)
    return CaffeModel(
        network=network,
        transforms=plan.transforms,
        scores=plan.scores,
        quantization=quantization,
        weights_quantization=weights_quantization,
        random_weights=weights is None,
        blobs=translation.blobs,
        blob_versions=plan.blob_versions,
        net=net,
        test_net=test_net,
        prototxt=prototxt,
        weights=weights,
        skipped_fields=skipped,
    )


def load_caffe(
    prototxt: str | Path,
    weights: str | Path | None = None,
    input_shapes: Mapping[str, Any] | None = None,
) -> Network:
    """The Network of `read_caffe(prototxt, weights, input_shapes)`."""
    return read_caffe(prototxt, weights, input_shapes).network


def _scoring(scores: list[ScoreLayer]) -> Scoring | None:
    """The network's Scoring from its Accuracy and loss layers (those reading the first scored
    tensor)."""
    if not scores:
        return None
    prediction = scores[0].prediction
    read = [s for s in scores if s.prediction == prediction]
    return Scoring(prediction,
                   tuple(sorted({s.top_k for s in read if s.top_k is not None})) or (1,),
                   any(s.type == "SoftmaxWithLoss" for s in read))


def _hash_file(digest, data: bytes) -> None:
    """Length-prefixed, so (prototxt, caffemodel) pairs hash apart however their bytes split."""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _stored_quantization(layer) -> RistrettoParams | None:
    if layer.type not in FLOAT_TYPES:
        return None
    for name in _QUANTIZATION_FIELDS:
        if layer.HasField(name):
            return RistrettoParams.from_proto(getattr(layer, name))
    return None
