"""Reference profiles: numbers agree with numpy; categoricals, nulls, samples, refusals."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from threadline.domain import errors
from threadline.registry import profiling


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    return frame.rename(columns={"target": "label"})


def test_numeric_columns_match_numpy() -> None:
    frame = load_breast_cancer(as_frame=True).data
    profile, _ = profiling.compute_profile(pa.Table.from_pandas(frame))
    assert profile["row_count"] == len(frame)
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=float)
        column = profile["columns"][name]
        edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
        assert column["kind"] == "numeric" and column["datatype"] == "FP64"
        assert column["count"] == len(values) and column["nulls"] == 0
        assert column["mean"] == pytest.approx(values.mean())
        assert column["std"] == pytest.approx(values.std(ddof=0))
        assert (column["min"], column["max"]) == (values.min(), values.max())
        assert column["bin_edges"] == pytest.approx(edges.tolist())
        # np.histogram uses the same bins: half-open, the last one closed.
        assert column["bin_counts"] == np.histogram(values, bins=edges)[0].tolist()


def test_profile_is_strict_json(iris: pd.DataFrame) -> None:
    profile, _ = profiling.compute_profile(profiling.load_table(iris), exclude=["label"])
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    assert list(profile["columns"]) == [c for c in iris.columns if c != "label"]


def test_integer_column_keeps_its_datatype_and_bins_are_deduplicated() -> None:
    table = pa.table({"n": pa.array([1, 1, 1, 1, 1, 1, 2, 3], pa.int32())})
    column = profiling.compute_profile(table)[0]["columns"]["n"]
    assert column["datatype"] == "INT32"
    assert column["bin_edges"] == sorted(set(column["bin_edges"]))
    assert column["bin_edges"][0] == 1 and column["bin_edges"][-1] == 3
    assert len(column["bin_counts"]) == len(column["bin_edges"]) - 1
    assert sum(column["bin_counts"]) == 8


def test_constant_column_has_one_bin() -> None:
    column = profiling.compute_profile(pa.table({"c": [2.5] * 5}))[0]["columns"]["c"]
    assert column["bin_edges"] == [2.5, 2.5] and column["bin_counts"] == [5]
    assert column["std"] == 0.0


def test_categorical_top_k_and_other_with_ties_broken_by_value() -> None:
    values = ["a"] * 5 + ["c"] * 3 + ["b"] * 3 + ["d"] + [None] * 2
    column = profiling.compute_profile(pa.table({"s": values}), top_k=2)[0]["columns"]["s"]
    assert column == {
        "kind": "categorical", "datatype": "BYTES", "count": 12, "nulls": 2, "distinct": 4,
        "frequencies": {"a": 5, "b": 3}, "other": 4,
    }


def test_dictionary_and_bool_columns_are_categorical() -> None:
    frame = pd.DataFrame({"cat": pd.Categorical(["x", "y", "x"]), "flag": [True, False, True]})
    columns = profiling.compute_profile(profiling.load_table(frame))[0]["columns"]
    assert columns["cat"]["kind"] == "categorical" and columns["cat"]["datatype"] == "BYTES"
    assert columns["cat"]["frequencies"] == {"x": 2, "y": 1}
    assert columns["flag"]["datatype"] == "BOOL"
    assert columns["flag"]["frequencies"] == {"true": 2, "false": 1}


def test_nan_counts_as_null_and_infinity_is_left_out() -> None:
    table = pa.table({"x": pa.array([1.0, float("nan"), None, 3.0, float("inf")])})
    column = profiling.compute_profile(table)[0]["columns"]["x"]
    assert (column["count"], column["nulls"], column["infinite"]) == (2, 2, 1)
    assert (column["mean"], column["min"], column["max"]) == (2.0, 1.0, 3.0)


def test_all_null_numeric_column_has_no_statistics() -> None:
    table = pa.table({"x": pa.array([None, None], pa.float64())})
    column = profiling.compute_profile(table)[0]["columns"]["x"]
    assert column["count"] == 0 and column["nulls"] == 2
    assert column["mean"] is None and column["bin_edges"] == [] and column["bin_counts"] == []


def test_exclude_leaves_columns_out_and_refuses_unknown_names(iris: pd.DataFrame) -> None:
    table = profiling.load_table(iris)
    profile, sample = profiling.compute_profile(table, exclude=["label"])
    assert "label" not in profile["columns"] and "label" not in sample.column_names
    with pytest.raises(errors.InvalidInput, match="target"):
        profiling.compute_profile(table, exclude=["target"])
    with pytest.raises(errors.InvalidInput, match="every column"):
        profiling.compute_profile(table, exclude=table.column_names)


def test_sample_is_bounded_deterministic_and_drawn_from_the_data() -> None:
    table = pa.table({"i": np.arange(5000), "x": np.arange(5000) * 0.5})
    _, first = profiling.compute_profile(table, sample_size=100, seed=7)
    _, again = profiling.compute_profile(table, sample_size=100, seed=7)
    _, other = profiling.compute_profile(table, sample_size=100, seed=8)
    assert first.num_rows == 100 and first.equals(again) and not first.equals(other)
    rows = first.column("i").to_numpy()
    assert len(set(rows)) == 100 and np.all(np.diff(rows) > 0)
    assert np.array_equal(first.column("x").to_numpy(), rows * 0.5)
    _, whole = profiling.compute_profile(table, sample_size=10_000)
    assert whole.num_rows == 5000


def test_load_table_reads_parquet_and_csv(tmp_path, iris: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(iris), tmp_path / "train.parquet")
    iris.to_csv(tmp_path / "train.csv", index=False)
    assert profiling.load_table(tmp_path / "train.parquet").num_rows == len(iris)
    assert profiling.load_table(str(tmp_path / "train.csv")).column_names == list(iris.columns)


def test_digest_of_file_is_sha256_of_its_bytes(tmp_path, iris: pd.DataFrame) -> None:
    path = tmp_path / "train.csv"
    iris.to_csv(path, index=False)
    assert profiling.data_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_digest_of_in_memory_data_is_deterministic(iris: pd.DataFrame) -> None:
    table = profiling.load_table(iris)
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    assert profiling.data_digest(iris) == profiling.data_digest(iris.copy())
    assert profiling.data_digest(table) == profiling.data_digest(rechunked)
    changed = iris.copy()
    changed.iloc[0, 0] += 1
    assert profiling.data_digest(changed) != profiling.data_digest(iris)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2, 3], "got list"),
        ("train.txt", "unsupported file type '.txt'"),
        ("missing.parquet", "no such file"),
    ],
)
def test_load_table_refuses_bad_inputs(tmp_path, monkeypatch, data, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.txt").write_text("a,b\n")
    with pytest.raises(errors.InvalidInput, match=message):
        profiling.load_table(data)


def test_unreadable_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(errors.InvalidInput, match="broken.parquet"):
        profiling.load_table(path)


def test_empty_table_and_unsupported_column_types_are_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="no rows"):
        profiling.compute_profile(pa.table({"x": pa.array([], pa.float64())}))
    nested = pa.table({"ok": [1, 2], "vec": [[1, 2], [3]]})
    with pytest.raises(errors.InvalidInput, match="column 'vec'"):
        profiling.compute_profile(nested)
    with pytest.raises(errors.InvalidInput, match="bins"):
        profiling.compute_profile(pa.table({"x": [1.0]}), bins=0)


@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.bool_(), "BOOL"), (pa.int8(), "INT8"), (pa.uint64(), "UINT64"), (pa.float16(), "FP16"),
        (pa.float32(), "FP32"), (pa.float64(), "FP64"), (pa.large_string(), "BYTES"),
        (pa.dictionary(pa.int8(), pa.string()), "BYTES"),
    ],
)
def test_oip_datatype(arrow_type, expected) -> None:
    assert profiling.oip_datatype(arrow_type) == expected


def test_oip_datatype_refuses_structs_naming_the_column() -> None:
    with pytest.raises(errors.InvalidInput, match="column 'address'"):
        profiling.oip_datatype(pa.struct([("street", pa.string())]), column="address")
