"""A Caffe data layer's `transform_param` at TEST time, applied to raw samples: `CaffeTransform`.

Caffe's data transformer takes each stored sample (channels, height, width; pixels 0..255 for
image databases), crops the centre `crop_size` square (TEST phase; TRAIN crops at random),
subtracts the mean (a per-pixel mean image read from `mean_file`, taken at the crop's position,
or per-channel `mean_value`s) and multiplies by `scale`, in float32: (x - mean) * scale.
`mirror` flips samples at random in both phases; a deterministic replay cannot, so `apply` does
not mirror (the field is kept for the record).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.errors import RsimError
from rsim.frontends.caffe.parse import read_mean_file


@dataclass(frozen=True)
class CaffeTransform:
    """What a data layer does to each sample before the network sees it (see the module doc).
    `mean_file` is read when `apply` first needs it; `source` names the layer in errors."""

    scale: float = 1.0
    mean_values: tuple[float, ...] = ()
    mean_file: Path | None = None
    crop_size: int = 0
    mirror: bool = False
    source: str = "transform_param"

    def __post_init__(self) -> None:
        if self.mean_file is not None and self.mean_values:
            raise RsimError(
                f"{self.source}: give mean_file or mean_value, not both (Caffe refuses both)"
            )

    @property
    def is_identity(self) -> bool:
        return (
            self.scale == 1.0 and not self.mean_values and self.mean_file is None
            and not self.crop_size
        )  # fmt: skip

    def output_hw(self, height: int | None, width: int | None) -> tuple[int | None, int | None]:
        """Height and width of a transformed sample, given the stored ones (None: unknown)."""
        if self.crop_size:
            return self.crop_size, self.crop_size
        return height, width

    def sample_shape(self, stored: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of a transformed sample (channels, height, width), given the stored one."""
        return tuple(stored[:-2]) + tuple(self.output_hw(*stored[-2:]))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform a batch (N, C, H, W), or one sample (C, H, W), of stored samples; float32."""
        x = np.asarray(x)
        if x.ndim not in (3, 4) or x.dtype.kind not in "uif":
            raise RsimError(
                f"{self.source}: CaffeTransform.apply takes numeric samples of shape (N, C, H, W) "
                f"or (C, H, W), got {x.dtype} {list(x.shape)}"
            )
        channels, height, width = x.shape[-3:]
        top, left = 0, 0
        out_h, out_w = height, width
        if self.crop_size:
            if self.crop_size > min(height, width):
                raise RsimError(
                    f"{self.source}: crop_size {self.crop_size} is larger than the "
                    f"{height}x{width} samples"
                )
            out_h = out_w = self.crop_size
            top, left = (height - out_h) // 2, (width - out_w) // 2
        rows, cols = slice(top, top + out_h), slice(left, left + out_w)
        data = x[..., rows, cols].astype(np.float32)
        mean = self._mean(channels, height, width)
        if mean is not None:
            data -= mean if mean.shape[1:] == (1, 1) else mean[:, rows, cols]
        data *= np.float32(self.scale)
        return data

    def _mean(self, channels: int, height: int, width: int) -> np.ndarray | None:
        """The mean to subtract: (C, 1, 1) per-channel values or the (C, H, W) mean image."""
        if self.mean_values:
            if len(self.mean_values) not in (1, channels):
                raise RsimError(
                    f"{self.source}: {len(self.mean_values)} mean_value entries for "
                    f"{channels}-channel samples; give 1 or {channels}"
                )
            values = np.broadcast_to(np.asarray(self.mean_values, dtype=np.float32), (channels,))
            return values.reshape(channels, 1, 1)
        if self.mean_file is None:
            return None
        if not self.mean_file.is_file():
            raise RsimError(
                f"{self.source}: mean_file {self.mean_file} does not exist; point "
                "CaffeTransform.mean_file at the binaryproto mean (dataclasses.replace)"
            )
        mean = _mean_image(self.mean_file, self.mean_file.stat().st_mtime_ns)
        if mean.shape != (channels, height, width):
            raise RsimError(
                f"{self.source}: the mean in {self.mean_file} has shape {list(mean.shape)}; "
                f"the samples are {[channels, height, width]} (before cropping)"
            )
        return mean


@functools.lru_cache(maxsize=4)
def _mean_image(path: Path, mtime_ns: int) -> np.ndarray:
    """A mean file read once per version of the file (`apply` runs batch after batch)."""
    return read_mean_file(path)
