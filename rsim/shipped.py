"""The model and data shipped inside the package, used when the user names none."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_file(name: str) -> Path:
    return Path(str(resources.files("rsim") / "data" / name))


def default_model_path() -> Path:
    """The default model: a LeNet-style CNN trained on 8x8 digits (examples/train_default_model.py)."""
    return _data_file("default_model.onnx")


def default_data_path() -> Path:
    """Held-out validation digits for the default model (npz: x, y), never seen in training."""
    return _data_file("digits_val.npz")
