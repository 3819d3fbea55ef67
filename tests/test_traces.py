"""traces: schema round trip, atomic writing, reader errors, diff, Pareto front and plots."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traces
from formats.errors import RsimError
from traces import LayerRecord, RunMetadata, TraceWriter

SCHEMA_DOC = Path(traces.__file__).parent / "SCHEMA.md"


def _record(name: str, op: str = "Conv", sqnr: float = 30.0, **fields) -> LayerRecord:
    return LayerRecord(
        name=name,
        op=op,
        formats={"weights": "fx8.6", "activations": "fx8.4", "accumulator": "fx32.10"},
        schedule={"cycles": 1234.0, "utilization": 0.75, "mapping_efficiency": 0.9,
                  "sram_bytes": 4096.0, "dram_bytes": 1024.0, "energy_pj": 55.5},
        isolated={"count": 100.0, "sqnr_db": sqnr + 3.0, "max_abs_error": 0.01, "cosine": 1.0},
        propagated={"count": 100.0, "sqnr_db": sqnr, "max_abs_error": 0.02, "clipped_share": 0.01},
        **fields,
    )


METADATA = RunMetadata(
    rsim_version="0.1.0",
    model="models/mnist-8.onnx",
    model_sha256="ab" * 32,
    hwconfig="array:\n  rows: 16\n  cols: 16\n",
    qspec="layers:\n  conv1: {weights: fx8.6}\n",
    seed=42,
    command="rsim simulate models/mnist-8.onnx --trace run.h5",
    time="2026-11-27T08:00:00+00:00",
)


def _write(path: Path, records: list[LayerRecord], results=None, metadata=METADATA) -> Path:
    with TraceWriter(path, metadata) as writer:
        for record in records:
            writer.add_layer(record)
        writer.set_results(results or {})
    return path


def test_records_and_metadata_round_trip_unchanged(tmp_path):
    records = [
        _record("conv1/Conv", acc_saturations=3, acc_saturations_per_channel=np.array([1, 0, 2])),
        _record("relu_1", op="Relu", sqnr=math.inf),
        _record("fc/Gemm:0 ünïcode", op="Gemm", partial_sum_saturations=7,
                partial_sum_saturations_per_channel=[7, 0]),
        _record("softmax", op="Softmax", float_emulated=True, sqnr=-math.inf),
    ]
    results = {"agreement": 0.995, "accuracy_float_top1": 0.99, "accuracy_sim_top1": None}
    trace = traces.load(_write(tmp_path / "run.h5", records, results))
    assert trace.layers == records
    assert trace.metadata == {
        **METADATA.model_dump(),
        "format": "rsim-trace",
        "schema_version": traces.SCHEMA_VERSION,
        "results": {"agreement": 0.995, "accuracy_float_top1": 0.99},
    }
    assert RunMetadata.model_validate(
        {k: v for k, v in trace.metadata.items() if k not in ("format", "schema_version")}
    ) == METADATA.model_copy(update={"results": trace.metadata["results"]})


text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
keys = text.filter(bool)
figures = st.floats(allow_nan=False)
records = st.builds(
    LayerRecord,
    name=text,
    op=text,
    formats=st.dictionaries(keys, text, max_size=3),
    schedule=st.dictionaries(keys, figures, max_size=3),
    isolated=st.dictionaries(keys, figures, max_size=3),
    propagated=st.dictionaries(keys, figures, max_size=3),
    acc_saturations=st.integers(0, 2**62),
    partial_sum_saturations=st.integers(0, 2**62),
    bias_saturations=st.integers(0, 2**62),
    acc_saturations_per_channel=st.none() | st.lists(st.integers(0, 2**62), max_size=4),
    partial_sum_saturations_per_channel=st.none() | st.lists(st.integers(0, 2**62), max_size=4),
    float_emulated=st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(records, max_size=4, unique_by=lambda r: r.name))
def test_any_records_round_trip_unchanged(tmp_path_factory, generated):
    path = tmp_path_factory.mktemp("roundtrip") / "t.h5"
    assert traces.load(_write(path, generated)).layers == generated


def test_empty_keys_are_refused_before_they_reach_the_file(tmp_path):
    with pytest.raises(RsimError, match="formats"), TraceWriter(tmp_path / "t.h5") as writer:
        writer.add_layer({"name": "a", "op": "Conv", "formats": {"": "fx8.4"}})


def test_layers_come_back_in_network_order_beyond_ten_layers(tmp_path):
    names = [f"block{i}/conv" for i in (3, 1, 12, 0, 7, 10, 2, 11, 4, 9, 5, 8, 6)]
    trace = traces.load(_write(tmp_path / "t.h5", [_record(n) for n in names]))
    assert [layer.name for layer in trace.layers] == names
    with h5py.File(tmp_path / "t.h5") as file:
        assert [file["layers"][g].attrs["index"] for g in sorted(file["layers"])] == list(range(13))


def test_metadata_defaults_fill_version_and_an_iso_8601_time(tmp_path):
    trace = traces.load(_write(tmp_path / "t.h5", [_record("a")], metadata=None))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", trace.metadata["time"])
    assert trace.metadata["rsim_version"] == "0.1.0"


def test_rows_flatten_the_figures_a_table_shows(tmp_path):
    trace = traces.load(_write(tmp_path / "t.h5", [_record("conv1", acc_saturations=5)]))
    (row,) = trace.rows()
    assert row["layer"] == "conv1" and row["acc_saturations"] == 5
    assert (row["sqnr_isolated_db"], row["sqnr_propagated_db"]) == (33.0, 30.0)
    assert list(row["formats"].items()) == [
        ("weights", "fx8.6"), ("activations", "fx8.4"), ("accumulator", "fx32.10")]
    assert (row["cycles"], row["utilization"], row["clipped_share"]) == (1234.0, 0.75, 0.01)


def test_tensors_appended_batch_by_batch_read_back_as_their_concatenation(tmp_path):
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 2, 3)).astype(np.float32) for n in (4, 4, 1)]
    path = tmp_path / "t.h5"
    with TraceWriter(path) as writer:
        for batch in batches:
            writer.append_tensors("conv1/Conv", reference=batch,
                                  codes=np.round(batch * 16).astype(np.int8), decoded=batch * 2)
        writer.add_layer(_record("conv1/Conv"))
        writer.add_layer(_record("fc"))
    trace = traces.load(path)
    stored = trace.tensors("conv1/Conv")
    whole = np.concatenate(batches)
    np.testing.assert_array_equal(stored["reference"], whole)
    np.testing.assert_array_equal(stored["codes"], np.round(whole * 16).astype(np.int8))
    assert stored["codes"].dtype == np.int8 and stored["reference"].dtype == np.float32
    np.testing.assert_array_equal(trace.tensors("conv1/Conv", 3, 6)["decoded"], whole[3:6] * 2)
    with h5py.File(path) as file:
        dataset = file["layers/0000/tensors/reference"]
        assert (dataset.compression, dataset.maxshape[0], dataset.chunks is not None) == (
            "gzip", None, True)
    with pytest.raises(RsimError, match="stores no tensors for layer 'fc'"):
        trace.tensors("fc")
    with pytest.raises(RsimError, match="has no layer 'nope'"):
        trace.tensors("nope")


def test_a_batch_of_another_sample_shape_is_refused(tmp_path):
    path = tmp_path / "t.h5"
    with pytest.raises(ValueError, match="earlier batches"), TraceWriter(path) as writer:
        writer.append_tensors("a", reference=np.zeros((2, 3)))
        writer.append_tensors("a", reference=np.zeros((2, 4)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interruption", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_no_file_and_keeps_a_previous_trace(tmp_path, interruption):
    path = _write(tmp_path / "run.h5", [_record("old")])
    before = path.read_bytes()
    with pytest.raises(type(interruption)), TraceWriter(path) as writer:
        writer.add_layer(_record("new"))
        writer.append_tensors("new", reference=np.zeros((5, 3)))
        raise interruption
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]
    fresh = tmp_path / "fresh.h5"
    with pytest.raises(type(interruption)), TraceWriter(fresh):
        raise interruption
    assert not fresh.exists() and [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_the_temporary_file_sits_beside_the_destination_until_close(tmp_path):
    writer = TraceWriter(tmp_path / "run.h5")
    (temporary,) = tmp_path.iterdir()
    assert temporary.name.startswith(".run.h5.") and temporary.suffix == ".tmp"
    writer.add_layer(_record("a"))
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_tensors_without_a_record_fail_the_close_and_leave_no_file(tmp_path):
    writer = TraceWriter(tmp_path / "run.h5")
    writer.append_tensors("orphan", codes=np.zeros((1, 2), dtype=np.int8))
    with pytest.raises(ValueError, match="orphan"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_a_layer_cannot_be_added_twice(tmp_path):
    with pytest.raises(ValueError, match="already added"), TraceWriter(tmp_path / "t.h5") as writer:
        writer.add_layer(_record("a"))
        writer.add_layer(_record("a"))


def test_unwritable_destinations_fail_up_front_naming_the_path(tmp_path):
    missing = tmp_path / "no" / "such" / "run.h5"
    for check in (traces.check_writable, TraceWriter):
        with pytest.raises(RsimError, match=re.escape(str(missing))):
            check(missing)
        with pytest.raises(RsimError, match="is a directory"):
            check(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RsimError, match="run.h5"):
        traces.check_writable(blocker / "run.h5")
    traces.check_writable(tmp_path / "ok.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_invalid_metadata_and_records_are_rejected_by_key(tmp_path):
    with pytest.raises(RsimError, match="colour"):
        TraceWriter(tmp_path / "t.h5", {"colour": "red"})
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "t.h5"
    with pytest.raises(RsimError, match="acc_saturations"), TraceWriter(path) as writer:
        writer.add_layer({"name": "a", "op": "Conv", "acc_saturations": "many"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not an hdf5 file at all", "not a readable HDF5 file"),
    ],
)
def test_missing_and_foreign_files_are_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "x.h5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RsimError, match=f"{re.escape(str(path))}.*{message}|{message}"):
        traces.load(path)


def test_hdf5_files_that_are_not_traces_or_are_newer_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["x"] = np.zeros(3)
    with pytest.raises(RsimError, match="not an rsim trace"):
        traces.load(other)
    newer = _write(tmp_path / "newer.h5", [_record("a")])
    with h5py.File(newer, "a") as file:
        file.attrs["schema_version"] = traces.SCHEMA_VERSION + 1
    with pytest.raises(RsimError, match="schema version"):
        traces.load(newer)
    with pytest.raises(RsimError, match="is a directory"):
        traces.load(tmp_path)


def test_a_truncated_trace_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path / "t.h5", [_record(f"l{i}") for i in range(5)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RsimError, match=re.escape(str(path))):
        traces.load(path)


def test_a_layer_group_missing_its_fields_is_reported_as_corrupt(tmp_path):
    path = _write(tmp_path / "t.h5", [_record("a")])
    with h5py.File(path, "a") as file:
        del file["layers/0000"].attrs["op"]
    with pytest.raises(RsimError, match="layer group '0000'.*op"):
        traces.load(path)


def test_plain_h5py_finds_everything_where_the_schema_says(tmp_path):
    record = _record("conv/1", acc_saturations=4, acc_saturations_per_channel=[3, 1])
    path = tmp_path / "t.h5"
    with TraceWriter(path, METADATA) as writer:
        writer.append_tensors("conv/1", codes=np.arange(6, dtype=np.int8).reshape(2, 3))
        writer.add_layer(record)
        writer.set_results({"agreement": 0.5})
    with h5py.File(path) as file:
        assert (file.attrs["format"], file.attrs["schema_version"]) == ("rsim-trace", 2)
        assert file.attrs["hwconfig"] == METADATA.hwconfig and file.attrs["seed"] == 42
        assert file["results"].attrs["agreement"] == 0.5
        layer = file["layers/0000"]
        assert (layer.attrs["index"], layer.attrs["name"], layer.attrs["op"]) == (0, "conv/1", "Conv")
        assert layer.attrs["acc_saturations"] == 4 and not layer.attrs["float_emulated"]
        assert layer["formats"].attrs["weights"] == "fx8.6"
        assert layer["schedule"].attrs["cycles"] == 1234.0
        assert layer["isolated"].attrs["sqnr_db"] == 33.0
        assert layer["propagated"].attrs["clipped_share"] == 0.01
        assert layer["saturation/accumulator_per_channel"][()].tolist() == [3, 1]
        assert "partial_sum_per_channel" not in layer["saturation"]
        assert layer["tensors/codes"][()].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_every_name_the_writer_stores_is_documented_in_the_schema(tmp_path):
    path = tmp_path / "t.h5"
    with TraceWriter(path, METADATA) as writer:
        writer.append_tensors("a", reference=np.zeros((1, 2)), codes=np.zeros((1, 2), np.int8),
                              decoded=np.zeros((1, 2)))
        writer.add_layer(
            _record("a", acc_saturations_per_channel=[1], partial_sum_saturations_per_channel=[2])
        )
        writer.set_results({"agreement": 1.0})
    names: set[str] = set()
    with h5py.File(path) as file:
        names.update(file.attrs)
        file.visititems(lambda key, item: names.update([key.split("/")[-1], *item.attrs]))
    names -= {"0000"}
    documented = set(re.findall(r"`([^`]+)`", SCHEMA_DOC.read_text()))
    documented |= {part for name in documented for part in name.split("/")}
    assert names - documented == set()


# --- diff ---------------------------------------------------------------------------------


def _trace_with(tmp_path, name, layers, results=None):
    return traces.load(_write(tmp_path / name, layers, results))


def test_diff_says_which_layers_drift_more_or_less_and_by_how_much(tmp_path):
    a = _trace_with(tmp_path, "a.h5", [_record("c1", sqnr=40.0), _record("c2", sqnr=30.0),
                                       _record("c3", sqnr=20.0), _record("gone", sqnr=10.0)],
                    {"agreement": 0.99})
    b = _trace_with(tmp_path, "b.h5", [_record("c1", sqnr=35.5, acc_saturations=9),
                                       _record("c2", sqnr=30.05), _record("c3", sqnr=22.0),
                                       _record("new", sqnr=1.0)], {"agreement": 0.97})
    comparison = traces.diff(a, b)
    assert [layer.drift for layer in comparison.layers] == ["more", "same", "less"]
    assert comparison.layers[0].sqnr_delta_db == pytest.approx(-4.5)
    assert comparison.layers[0].acc_saturations.delta == 9
    assert [layer.name for layer in comparison.more_drift] == ["c1"]
    assert [layer.name for layer in comparison.less_drift] == ["c3"]
    assert (comparison.only_in_a, comparison.only_in_b) == (["gone"], ["new"])
    assert comparison.results["agreement"].delta == pytest.approx(-0.02)
    assert traces.diff(a, b, tolerance_db=5.0).more_drift == []
    assert traces.diff(a.path, str(b.path)) == comparison
    assert comparison.rows()[0]["sqnr_propagated_db_delta"] == pytest.approx(-4.5)


def test_diff_treats_equal_infinite_sqnr_as_unchanged_and_losing_exactness_as_more_drift(tmp_path):
    a = _trace_with(tmp_path, "a.h5",
                    [_record("exact", sqnr=math.inf), _record("r", sqnr=math.inf)])
    b = _trace_with(tmp_path, "b.h5", [_record("exact", sqnr=math.inf), _record("r", sqnr=50.0)])
    exact, lost = traces.diff(a, b).layers
    assert (exact.drift, exact.sqnr_delta_db) == ("same", 0.0)
    assert (lost.drift, lost.sqnr_delta_db) == ("more", -math.inf)


def test_diff_falls_back_to_isolated_sqnr_without_propagated_figures(tmp_path):
    bare = {"propagated": {}}
    a = _trace_with(tmp_path, "a.h5", [_record("l", sqnr=10.0).model_copy(update=bare)])
    b = _trace_with(tmp_path, "b.h5", [_record("l", sqnr=20.0).model_copy(update=bare)])
    (layer,) = traces.diff(a, b).layers
    assert (layer.drift, layer.sqnr_delta_db) == ("less", 10.0)


# --- Pareto front and plots ---------------------------------------------------------------


def _dominated(i, costs, accuracies):
    return any(
        costs[j] <= costs[i] and accuracies[j] >= accuracies[i]
        and (costs[j] < costs[i] or accuracies[j] > accuracies[i])
        for j in range(len(costs))
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25))
def test_pareto_front_is_exactly_the_non_dominated_points_by_cost(points):
    costs = [float(c) for c, _ in points]
    accuracies = [float(a) for _, a in points]
    front = traces.pareto_front(costs, accuracies)
    assert sorted(front) == [i for i in range(len(points)) if not _dominated(i, costs, accuracies)]
    assert [costs[i] for i in front] == sorted(costs[i] for i in front)


def test_pareto_front_rejects_nan_and_ragged_input():
    with pytest.raises(RsimError, match="NaN"):
        traces.pareto_front([1.0, math.nan], [0.5, 0.6])
    with pytest.raises(RsimError, match="equally long"):
        traces.pareto_front([1.0], [0.5, 0.6])


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_drift_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    trace = _trace_with(tmp_path, "t.h5", [
        _record("conv1"), _record("relu", op="Relu", sqnr=math.inf),
        _record("a/very/long/layer/name/that/needs/shortening", op="Gemm"),
        _record("softmax", op="Softmax", float_emulated=True).model_copy(update={"propagated": {}}),
    ])
    out = traces.plot(trace, tmp_path / "drift.png")
    assert _is_png(out) and out.stat().st_size > 10_000
    assert _is_png(traces.plot(trace.path, tmp_path / "again.png"))


def test_pareto_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = traces.plot_pareto([3.0, 1.0, 2.0, 2.5], [0.9, 0.5, 0.8, 0.7], tmp_path / "p.png",
                             labels=["int16", "int4", "int8", "int6"], cost_label="energy (pJ)")
    assert _is_png(out)
    with pytest.raises(RsimError, match="3 labels for 4 points"):
        traces.plot_pareto([3.0, 1.0, 2.0, 2.5], [0.9, 0.5, 0.8, 0.7], tmp_path / "q.png",
                           labels=["a", "b", "c"])


def test_plot_errors_name_the_problem(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    trace = _trace_with(tmp_path, "t.h5", [_record("conv1")])
    with pytest.raises(RsimError, match="cannot write plot"):
        traces.plot(trace, tmp_path / "missing" / "drift.png")
    with pytest.raises(RsimError, match="no layers"):
        traces.plot(_trace_with(tmp_path, "empty.h5", []), tmp_path / "e.png")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RsimError, match=r"rsim\[plot\]"):
        traces.plot(trace, tmp_path / "drift.png")


def test_a_version_1_trace_reads_with_its_partial_sum_counters_renamed(tmp_path):
    """Schema 1 spelled the partial-sum counters psum_*; a reader of schema 2 maps them."""
    record = _record("conv/1", partial_sum_saturations=5, partial_sum_saturations_per_channel=[4, 1])
    record.isolated["partial_sum_saturations"] = 2.0
    path = _write(tmp_path / "t.h5", [record])
    with h5py.File(path, "a") as file:
        file.attrs["schema_version"] = 1
        layer = file["layers/0000"]
        layer.attrs["psum_saturations"] = layer.attrs.pop("partial_sum_saturations")
        layer["isolated"].attrs["psum_saturations"] = layer["isolated"].attrs.pop(
            "partial_sum_saturations")
        layer["saturation"].move("partial_sum_per_channel", "psum_per_channel")
    (loaded,) = traces.load(path).layers
    assert loaded.partial_sum_saturations == 5
    assert loaded.partial_sum_saturations_per_channel == [4, 1]
    assert loaded.isolated["partial_sum_saturations"] == 2.0
