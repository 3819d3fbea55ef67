"""`rsim.load`: open a model file with the frontend its suffix names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from formats.errors import RsimError
from rsim.network import Network


def load(
    path: str | Path,
    weights: str | Path | None = None,
    input_shapes: Mapping[str, Any] | None = None,
) -> Network:
    """Load a model as a Network.

    `path`: an ONNX file (.onnx) or a Caffe network prototxt (.prototxt). `weights`: a separate
    weights file, for formats that keep them apart (a Caffe .caffemodel; without one a Caffe net
    gets seeded random weights; not ONNX, whose weights are inside the model or in external-data
    files beside it). `input_shapes`: {input name: shape} binding symbolic dimensions; otherwise
    they are bound by the first run (a symbolic batch alone defaults to 1 until then).
    """
    path = Path(path)
    if not path.exists():
        raise RsimError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        if weights is not None:
            raise RsimError(f"{path}: an ONNX model carries its own weights; do not pass weights=")
        from rsim.frontends.onnx import load_onnx

        return load_onnx(path, dict(input_shapes) if input_shapes else None)
    if suffix == ".prototxt":
        from rsim.frontends.caffe import load_caffe

        return load_caffe(path, weights, dict(input_shapes) if input_shapes else None)
    if suffix == ".caffemodel":
        raise RsimError(
            f"{path} holds Caffe weights; load the network prototxt and pass this file as weights="
        )
    raise RsimError(
        f"{path}: unknown model format {suffix!r}; rsim reads .onnx models and Caffe .prototxt "
        "networks"
    )
