"""Input data for simulation, read batch by batch so memory does not grow with the data set.

`open_dataset(source, ...)` accepts:

- a numpy array (and optional labels);
- `.npy`: memory-mapped, so only the batch being read is in memory;
- `.npz`: array `x` and optional labels `y` (names are options); `x` is streamed from the archive
  (compressed or not) one batch at a time; labels are small and read at once; a damaged
  compressed member is detected by its checksum once its end is read;
- HDF5 (`.h5`, `.hdf5`, `.hdf`): datasets `x` and optional `y` (names are options), read by slicing;
- CSV (`.csv`, `.csv.gz`): one sample per row of comma-separated numbers, read row by row; a
  non-numeric first row is a header; `label_column` (e.g. -1) names the column holding labels;
- a folder of images (Pillow, the optional extra `images`): files sorted by name; when the folder
  holds class sub-folders instead, each sub-folder is a class whose label is its name if every
  name is an integer, else its position in sorted order. `ImagePreprocess` says how a picture
  becomes an array.

Every dataset has `len()`, `sample_shape`, `labels` (or None) and
`iter_batches(batch_size, limit=None)` yielding `(x, y_or_None)`; `check_input_shape(shape)`
checks the samples against a model's input shape (without the batch axis). A problem with the
data raises RsimError naming the file and what was expected.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import pydantic

from formats.errors import RsimError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _integer_labels(labels: Any, count: int, source: str) -> np.ndarray:
    """Labels as an int64 vector of `count` class indices, or an RsimError naming `source`."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise RsimError(
            f"labels of '{source}': expected one class index per sample, shape ({count},), "
            f"got shape {labels.shape}"
        )
    if len(labels) != count:
        raise RsimError(
            f"labels of '{source}': {len(labels)} labels for {count} samples; "
            "expected exactly one label per sample"
        )
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.number):
        raise RsimError(f"labels of '{source}': expected integer class indices, got {labels.dtype}")
    as_int = labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(as_int, labels):
        raise RsimError(f"labels of '{source}': expected integer class indices, got fractions")
    if as_int.size and as_int.min() < 0:
        raise RsimError(f"labels of '{source}': class indices must be >= 0, got {as_int.min()}")
    return as_int


def _load_labels_file(path: Path) -> np.ndarray:
    """Labels from a .npy file or a text file with one integer per line."""
    if not path.is_file():
        raise RsimError(f"labels file '{path}' does not exist")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (ValueError, OSError) as error:
        raise RsimError(f"labels file '{path}' is unreadable: {error}") from None


def _is_wildcard(dimension: Any) -> bool:
    """ONNX-style unknown dimensions: None, a symbolic name, or a non-positive number."""
    return not isinstance(dimension, (int, np.integer)) or dimension <= 0


class Dataset:
    """Samples (and optional labels) from one source, read in batches.

    Subclasses provide `_read_batches(stop, batch_size)`: the stored samples 0..stop in order,
    as arrays of at most `batch_size` samples.
    """

    def __init__(
        self,
        source: str,
        count: int,
        stored_shape: tuple[int, ...],
        labels: np.ndarray | None,
        sample_shape: Sequence[int] | None,
        dtype: Any,
    ) -> None:
        self.source = source
        self._count = count
        self._stored_shape = tuple(stored_shape)
        self.sample_shape = self._stored_shape if sample_shape is None else tuple(sample_shape)
        if math.prod(self.sample_shape) != math.prod(self._stored_shape) or any(
            d < 0 for d in self.sample_shape
        ):
            raise RsimError(
                f"data '{source}': cannot reshape samples of shape {self._stored_shape} to "
                f"{self.sample_shape}; the number of values per sample must stay "
                f"{math.prod(self._stored_shape)}"
            )
        self.labels = None if labels is None else _integer_labels(labels, count, source)
        self.dtype = None if dtype is None else np.dtype(dtype)

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        labelled = "with labels" if self.labels is not None else "no labels"
        return (
            f"{type(self).__name__}('{self.source}', {self._count} × {self.sample_shape}, "
            f"{labelled})"
        )

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def iter_batches(
        self, batch_size: int, limit: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yield (x, y) for the first `limit` samples (all by default); y is None without labels.

        x has shape (n, *sample_shape) and the dataset's dtype; y holds int64 class indices.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise RsimError(f"batch size must be a positive integer, got {batch_size!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise RsimError(f"sample limit must be a non-negative integer, got {limit!r}")
        stop = self._count if limit is None else min(limit, self._count)
        start = 0
        for raw in self._read_batches(stop, batch_size):
            dtype = raw.dtype if self.dtype is None else self.dtype
            x = np.array(raw, dtype=dtype).reshape(len(raw), *self.sample_shape)
            y = None if self.labels is None else self.labels[start : start + len(raw)]
            start += len(raw)
            yield x, y

    def check_input_shape(self, expected: Sequence[Any]) -> None:
        """Raise RsimError unless the samples fit a model input of shape `expected` (without the
        batch axis); None, symbolic names and non-positive sizes match any size."""
        expected = tuple(expected)
        fits = len(expected) == len(self.sample_shape) and all(
            _is_wildcard(want) or want == have
            for want, have in zip(expected, self.sample_shape, strict=True)
        )
        if fits:
            return
        hint = ""
        if all(not _is_wildcard(d) for d in expected) and math.prod(expected) == math.prod(
            self.sample_shape
        ):
            hint = f"; the values per sample match, so reshape them with sample_shape={expected}"
        raise RsimError(
            f"data '{self.source}': samples have shape {self.sample_shape}, but the model expects "
            f"{expected} per sample{hint}"
        )


class MappedDataset(Dataset):
    """Another dataset's batches passed through `function` (a model's input transform), whose
    samples then have `sample_shape`."""

    def __init__(self, base: Dataset, function: Any, sample_shape: Sequence[int],
                 what: str) -> None:
        self._base, self._function = base, function
        self.source = base.source
        self._count = len(base)
        self._stored_shape = self.sample_shape = tuple(sample_shape)
        self.labels = base.labels
        self.dtype = base.dtype
        self.what = what

    def iter_batches(self, batch_size: int, limit: int | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for x, y in self._base.iter_batches(batch_size, limit):
            yield np.asarray(self._function(x), dtype=x.dtype), y


class ArrayDataset(Dataset):
    """Samples from an array-like indexable along axis 0 (numpy array, memory map)."""

    def __init__(
        self,
        x: Any,
        labels: Any = None,
        source: str = "<array>",
        sample_shape: Sequence[int] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        if len(x.shape) < 1:
            raise RsimError(f"data '{source}': expected an array with a sample axis, got a scalar")
        _check_numeric(x.dtype, source)
        self._x = x
        super().__init__(source, x.shape[0], x.shape[1:], labels, sample_shape, dtype)

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, stop, batch_size):
            yield self._x[start : min(start + batch_size, stop)]


def _check_numeric(dtype: np.dtype, source: str) -> None:
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise RsimError(f"data '{source}': expected numeric samples, got dtype {dtype}")


def _open_npy(path: Path, labels: Any, sample_shape: Any, dtype: Any) -> ArrayDataset:
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise RsimError(f"data file '{path}' is not a readable .npy array ({error})") from None
    return ArrayDataset(x, labels, str(path), sample_shape, dtype)


class _NamedArraysDataset(Dataset):
    """Samples from a file of named arrays (HDF5, .npz): the samples under `x_name`, labels
    from `labels`, else under `y_name`, else under `y` when the file has one.

    One constructor for both formats, so the label rule, the checks and their messages cannot
    drift apart. Subclasses give `_open_file()` (a context manager yielding a handle), `_has`,
    `_describe` (stored shape and dtype; an RsimError naming the file's arrays when missing) and
    `_read_labels`, plus the words their messages use.
    """

    _kind = "array"  # what the format calls a named array
    _file_kind = "file"  # what a readable file is, in "is not a readable ..."
    _errors: tuple[type[BaseException], ...] = (OSError,)  # what a damaged file raises

    def __init__(
        self,
        path: Path,
        x_name: str = "x",
        y_name: str | None = None,
        labels: Any = None,
        sample_shape: Sequence[int] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.path, self.x_name = path, x_name
        try:
            with self._open_file() as file:
                shape, self._stored_dtype = self._describe(file, x_name)
                _check_numeric(self._stored_dtype, str(path))
                label_name = y_name or ("y" if self._has(file, "y") else None)
                if labels is None and label_name is not None:
                    labels = self._read_labels(file, label_name)
        except RsimError:
            raise
        except self._errors as error:
            raise RsimError(
                f"data file '{path}' is not a readable {self._file_kind} ({error})"
            ) from None
        if len(shape) < 1:
            raise RsimError(f"data file '{path}': {self._kind} '{x_name}' has no sample axis")
        super().__init__(str(path), shape[0], shape[1:], labels, sample_shape, dtype)

    def _open_file(self) -> Any:
        raise NotImplementedError

    def _has(self, file: Any, name: str) -> bool:
        raise NotImplementedError

    def _describe(self, file: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
        raise NotImplementedError

    def _read_labels(self, file: Any, name: str) -> Any:
        raise NotImplementedError


class Hdf5Dataset(_NamedArraysDataset):
    """Samples from an HDF5 dataset, read slice by slice (the file is open only while reading)."""

    _kind, _file_kind, _errors = "dataset", "HDF5 file", (OSError,)

    def _open_file(self) -> h5py.File:
        return h5py.File(self.path, "r")

    def _has(self, file: h5py.File, name: str) -> bool:
        return name in file

    def _describe(self, file: h5py.File, name: str) -> tuple[tuple[int, ...], np.dtype]:
        x = self._dataset(file, name)
        return x.shape, x.dtype

    def _read_labels(self, file: h5py.File, name: str) -> Any:
        return self._dataset(file, name)[()]

    def _dataset(self, file: h5py.File, name: str) -> h5py.Dataset:
        found = file.get(name)
        if not isinstance(found, h5py.Dataset):
            available = []
            file.visititems(
                lambda key, item: available.append(key) if isinstance(item, h5py.Dataset) else None
            )
            raise RsimError(
                f"data file '{self.path}' has no dataset '{name}'; datasets: "
                f"{', '.join(available) or '(none)'}"
            )
        return found

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        try:
            with h5py.File(self.path, "r") as file:
                x = file[self.x_name]
                for start in range(0, stop, batch_size):
                    yield x[start : min(start + batch_size, stop)]
        except OSError as error:
            raise RsimError(f"data file '{self.path}' could not be read ({error})") from None


_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What a damaged archive raises: zip and deflate errors, or numpy's header parser choking on junk.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    SyntaxError,
    tokenize.TokenError,
)


class NpzDataset(_NamedArraysDataset):
    """Samples from an array in a `.npz` archive, streamed from the (possibly compressed) member
    in order, one batch at a time."""

    _kind, _file_kind, _errors = "array", ".npz archive", _ZIP_ERRORS

    @contextlib.contextmanager
    def _open_file(self) -> Iterator[tuple[zipfile.ZipFile, list[str]]]:
        with zipfile.ZipFile(self.path) as archive:
            yield archive, [n.removesuffix(".npy") for n in archive.namelist()]

    def _has(self, file: tuple[zipfile.ZipFile, list[str]], name: str) -> bool:
        return name in file[1]

    def _check_name(self, names: list[str], name: str) -> None:
        if name not in names:
            raise RsimError(
                f"data file '{self.path}' has no array '{name}'; arrays: "
                f"{', '.join(names) or '(none)'}"
            )

    def _describe(
        self, file: tuple[zipfile.ZipFile, list[str]], name: str
    ) -> tuple[tuple[int, ...], np.dtype]:
        archive, names = file
        self._check_name(names, name)
        with archive.open(name + ".npy") as member:
            shape, fortran_order, dtype = self._read_header(member)
        if fortran_order:
            raise RsimError(
                f"data file '{self.path}': array '{name}' is stored in Fortran order, which cannot "
                "be streamed; save it with np.ascontiguousarray"
            )
        return shape, dtype

    def _read_labels(self, file: tuple[zipfile.ZipFile, list[str]], name: str) -> Any:
        """The labels, read whole in one pass (read_array parses their header itself; they are
        not streamed, so any memory order does)."""
        archive, names = file
        self._check_name(names, name)
        with archive.open(name + ".npy") as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def _read_header(self, member: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
        version = np.lib.format.read_magic(member)
        reader = _NPY_HEADER_READERS.get(version)
        if reader is None:
            raise RsimError(f"data file '{self.path}': unsupported .npy version {version}")
        return reader(member)

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        sample_bytes = math.prod(self._stored_shape) * self._stored_dtype.itemsize
        try:
            with (
                zipfile.ZipFile(self.path) as archive,
                archive.open(self.x_name + ".npy") as member,
            ):
                self._read_header(member)
                for start in range(0, stop, batch_size):
                    count = min(batch_size, stop - start)
                    raw = member.read(count * sample_bytes)
                    if len(raw) != count * sample_bytes:
                        raise RsimError(
                            f"data file '{self.path}' is truncated: array '{self.x_name}' ends "
                            f"before sample {start + len(raw) // max(sample_bytes, 1)}"
                        )
                    yield np.frombuffer(raw, dtype=self._stored_dtype).reshape(
                        count, *self._stored_shape
                    )
        except RsimError:
            raise
        except _ZIP_ERRORS as error:
            raise RsimError(f"data file '{self.path}' could not be read ({error})") from None


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


class CsvDataset(Dataset):
    """Samples as rows of a (possibly gzipped) CSV file, parsed batch by batch.

    Counting the rows takes one pass when the dataset is opened; memory holds one batch.
    """

    def __init__(
        self,
        path: Path,
        label_column: int | None = None,
        labels: Any = None,
        sample_shape: Sequence[int] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.path = path
        label_fields: list[str] = []
        try:
            with _open_text(path) as text:
                first = text.readline()
                self._header_rows = 0 if self._is_numeric(first) else 1
                first_numbers = first if self._header_rows == 0 else text.readline()
                self._columns = len(first_numbers.split(","))
                if label_column is not None and not -self._columns <= label_column < self._columns:
                    raise RsimError(
                        f"data file '{path}': label column {label_column} does not exist; rows "
                        f"have {self._columns} columns"
                    )
                self._label_index = None if label_column is None else label_column % self._columns
                count = 0
                for line in itertools.chain([first_numbers], text):
                    if line.strip():
                        count += 1
                        if self._label_index is not None:
                            label_fields.append(line.split(",")[self._label_index])
        except (OSError, EOFError, UnicodeDecodeError, zlib.error, IndexError) as error:
            raise RsimError(f"data file '{path}' is not a readable CSV file ({error})") from None
        if count == 0:
            raise RsimError(f"data file '{path}' holds no rows of numbers")
        if labels is None and self._label_index is not None:
            try:
                labels = np.array(label_fields, dtype=np.float64)
            except ValueError as error:
                raise RsimError(f"labels of '{path}': not numbers ({error})") from None
        features = self._columns - (self._label_index is not None)
        super().__init__(str(path), count, (features,), labels, sample_shape, dtype)

    @staticmethod
    def _is_numeric(line: str) -> bool:
        try:
            [float(field) for field in line.split(",")]
        except ValueError:
            return False
        return True

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        start = 0
        try:
            with _open_text(self.path) as text:
                lines = (line for line in itertools.islice(text, self._header_rows, None)
                         if line.strip())
                for start in range(0, stop, batch_size):
                    chunk = list(itertools.islice(lines, min(batch_size, stop - start)))
                    rows = np.loadtxt(chunk, delimiter=",", dtype=np.float64, ndmin=2)
                    if rows.shape[1] != self._columns:
                        raise ValueError(f"{rows.shape[1]} columns, expected {self._columns}")
                    if self._label_index is not None:
                        rows = np.delete(rows, self._label_index, axis=1)
                    yield rows
        except (OSError, EOFError, UnicodeDecodeError, zlib.error, ValueError) as error:
            raise RsimError(
                f"data file '{self.path}': unreadable rows in samples "
                f"{start}..{start + batch_size - 1} ({error})"
            ) from None


@dataclass(frozen=True)
class DataOptions:
    """Where the samples come from and how to read them: the options `open_dataset` takes, as
    one object the CLI's data options build (`rsim.cli._options.data_options`)."""

    source: Path
    x_name: str = "x"
    y_name: str | None = None
    label_column: int | None = None
    sample_shape: tuple[int, ...] | None = None
    preprocess: ImagePreprocess | None = None
    labels: Path | None = None

    def open(self) -> Dataset:
        return open_dataset(self.source, labels=self.labels, x_name=self.x_name,
                            y_name=self.y_name, label_column=self.label_column,
                            sample_shape=self.sample_shape, preprocess=self.preprocess)


_Size = pydantic.PositiveInt | tuple[pydantic.PositiveInt, pydantic.PositiveInt]


class ImagePreprocess(pydantic.BaseModel):
    """How a picture becomes a model input, applied in this order:

    convert to RGB (or grayscale) → `resize` (an int scales the shorter side to it keeping the
    aspect ratio; [height, width] resizes exactly; bilinear) → `center_crop` (int = square) →
    float pixels 0..255 → `channel_order` → (pixel − `mean`) · `scale` → `layout`.
    `mean` is one value or one per channel, in the output channel order. Caffe's
    `scale: 0.00390625` is scale=1/256; ImageNet-style BGR with per-channel means is
    channel_order="BGR", mean=[104, 117, 123].
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    resize: _Size | None = None
    center_crop: _Size | None = None
    grayscale: bool = False
    channel_order: Literal["RGB", "BGR"] = "RGB"
    mean: float | tuple[float, ...] = 0.0
    scale: float = 1.0
    layout: Literal["CHW", "HWC"] = "CHW"


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise RsimError(
            "reading images needs Pillow, which is not installed: pip install 'rsim[images]'"
        ) from None
    return Image


def preprocess_image(image: Any, options: ImagePreprocess, source: str = "<image>") -> np.ndarray:
    """A Pillow image as a float32 array, following `options` (see ImagePreprocess)."""
    Image = _pillow()
    image = image.convert("L" if options.grayscale else "RGB")
    if options.resize is not None:
        width, height = image.size
        if isinstance(options.resize, int):
            ratio = options.resize / min(width, height)
            size = (
                (options.resize, int(height * ratio))
                if width <= height
                else (int(width * ratio), options.resize)
            )
        else:
            size = (options.resize[1], options.resize[0])
        image = image.resize(size, Image.BILINEAR)
    if options.center_crop is not None:
        crop_h, crop_w = (
            (options.center_crop, options.center_crop)
            if isinstance(options.center_crop, int)
            else options.center_crop
        )
        width, height = image.size
        if crop_h > height or crop_w > width:
            raise RsimError(
                f"image '{source}': center crop {crop_h}×{crop_w} is larger than the image "
                f"{height}×{width}; resize it first"
            )
        top, left = round((height - crop_h) / 2), round((width - crop_w) / 2)
        image = image.crop((left, top, left + crop_w, top + crop_h))
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if options.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    mean = np.asarray(options.mean, dtype=np.float32).reshape(-1)
    if mean.size not in (1, pixels.shape[2]):
        raise RsimError(
            f"image preprocessing: mean has {mean.size} values for {pixels.shape[2]} channels; "
            "give one value or one per channel"
        )
    pixels = (pixels - mean) * np.float32(options.scale)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1) if options.layout == "CHW" else pixels)


def _image_files(folder: Path) -> tuple[list[Path], np.ndarray | None]:
    """The folder's images in order and their labels (None for a flat folder)."""
    entries = sorted(folder.iterdir())
    classes = [entry for entry in entries if entry.is_dir()]
    if not classes:
        files = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES]
        return files, None
    names = [entry.name for entry in classes]
    numbered = all(name.isdigit() for name in names)
    files, labels = [], []
    for position, class_folder in enumerate(classes):
        label = int(class_folder.name) if numbered else position
        for entry in sorted(class_folder.iterdir()):
            if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
                files.append(entry)
                labels.append(label)
    return files, np.asarray(labels, dtype=np.int64)


class ImageFolderDataset(Dataset):
    """Pictures in a folder (or in class sub-folders), preprocessed one by one as read."""

    def __init__(
        self,
        folder: Path,
        preprocess: ImagePreprocess | None = None,
        labels: Any = None,
        sample_shape: Sequence[int] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.folder = folder
        self.preprocess = preprocess or ImagePreprocess()
        self.files, folder_labels = _image_files(folder)
        if not self.files:
            raise RsimError(
                f"data folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        first_shape = self._load(self.files[0]).shape
        super().__init__(
            str(folder),
            len(self.files),
            first_shape,
            folder_labels if labels is None else labels,
            sample_shape,
            dtype,
        )

    def _load(self, file: Path) -> np.ndarray:
        Image = _pillow()
        try:
            with Image.open(file) as image:
                return preprocess_image(image, self.preprocess, str(file))
        except (OSError, Image.UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise RsimError(f"image '{file}' is not a readable picture ({error})") from None

    def _read_batches(self, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, stop, batch_size):
            pictures = []
            for file in self.files[start : min(start + batch_size, stop)]:
                picture = self._load(file)
                if picture.shape != self._stored_shape:
                    raise RsimError(
                        f"image '{file}' becomes shape {picture.shape}, the first image "
                        f"{self._stored_shape}; set resize and center_crop so all images match"
                    )
                pictures.append(picture)
            yield np.stack(pictures)


def open_dataset(
    source: Dataset | np.ndarray | str | os.PathLike[str],
    *,
    labels: np.ndarray | str | os.PathLike[str] | None = None,
    x_name: str = "x",
    y_name: str | None = None,
    label_column: int | None = None,
    sample_shape: Sequence[int] | None = None,
    dtype: Any = np.float32,
    preprocess: ImagePreprocess | None = None,
) -> Dataset:
    """The dataset at `source` (see the module docstring).

    `labels` (an array, a .npy file or a text file of integers) replaces labels stored with the
    data; `x_name`/`y_name` name the arrays in .npz and HDF5 files (`y_name=None`: use `y` when
    present); `label_column` is the CSV column holding labels (None: every column is a value);
    `sample_shape` reshapes each sample (e.g. 784 values to (1, 28, 28)); `dtype` is the
    dtype of the yielded batches (None keeps the stored one).
    """
    if isinstance(source, Dataset):
        return source
    if isinstance(labels, (str, os.PathLike)):
        labels = _load_labels_file(Path(labels))
    if isinstance(source, np.ndarray):
        return ArrayDataset(source, labels, sample_shape=sample_shape, dtype=dtype)
    path = Path(source)
    if not path.exists():
        raise RsimError(f"data file '{path}' does not exist")
    if path.is_dir():
        return ImageFolderDataset(path, preprocess, labels, sample_shape, dtype)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _open_npy(path, labels, sample_shape, dtype)
    if suffix == ".npz":
        return NpzDataset(path, x_name, y_name, labels, sample_shape, dtype)
    if suffix in HDF5_SUFFIXES:
        return Hdf5Dataset(path, x_name, y_name, labels, sample_shape, dtype)
    if path.name.lower().endswith((".csv", ".csv.gz")):
        return CsvDataset(path, label_column, labels, sample_shape, dtype)
    raise RsimError(
        f"data file '{path}': unknown kind '{suffix}'; use .npz, .npy, "
        f"{', '.join(HDF5_SUFFIXES)}, .csv, .csv.gz or a folder of images"
    )
