"""Reference data profiles: what the training data looked like, kept with the version.

Drift monitoring compares live traffic against this profile, so it is computed once, at
registration, from the exact data the model was trained on, and stored as plain JSON next
to a small uniform sample of rows. Everything here is vectorised (pyarrow.compute, numpy):
a million rows by twenty columns profile in about a second.

Profile layout::

    {"row_count": N,
     "columns": {
        name: {"kind": "numeric", "datatype": "FP64", "count": ..., "nulls": ...,
               "infinite": ..., "mean": ..., "std": ..., "min": ..., "max": ...,
               "bin_edges": [...], "bin_counts": [...]},
        name: {"kind": "categorical", "datatype": "BYTES", "count": ..., "nulls": ...,
               "distinct": ..., "frequencies": {value: count}, "other": ...}}}

Numeric ``count`` is the number of finite values; ``nulls`` counts nulls and NaN;
``infinite`` counts +/-inf, which are left out of every statistic. ``std`` is the
population standard deviation (ddof=0). ``bin_edges`` are quantile edges (deciles by
default) deduplicated, from min to max; ``bin_counts`` has one entry per bin, each bin
half-open ``[lo, hi)`` except the last, which includes max. A constant column has edges
``[v, v]`` and a single bin. Boolean, string and dictionary columns are categorical; their
``frequencies`` keep the ``top_k`` most frequent values (ties broken by value, ascending)
and ``other`` counts the rest; booleans are keyed ``"true"``/``"false"``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from threadline.domain import errors

_INTEGER_TYPES = {
    pa.int8(): "INT8", pa.int16(): "INT16", pa.int32(): "INT32", pa.int64(): "INT64",
    pa.uint8(): "UINT8", pa.uint16(): "UINT16", pa.uint32(): "UINT32", pa.uint64(): "UINT64",
}
_FLOAT_TYPES = {pa.float16(): "FP16", pa.float32(): "FP32", pa.float64(): "FP64"}
_BYTES_CHECKS = (
    pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
    pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view,
)
_READERS = {".parquet": pq.read_table, ".pq": pq.read_table, ".csv": pa_csv.read_csv}


def oip_datatype(arrow_type: pa.DataType, *, column: str | None = None) -> str:
    """The Open Inference Protocol datatype of an Arrow type; InvalidInput if it has none."""
    if arrow_type in _INTEGER_TYPES:
        return _INTEGER_TYPES[arrow_type]
    if arrow_type in _FLOAT_TYPES:
        return _FLOAT_TYPES[arrow_type]
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if any(check(arrow_type) for check in _BYTES_CHECKS):
        return "BYTES"
    if pa.types.is_dictionary(arrow_type):
        return oip_datatype(arrow_type.value_type, column=column)
    where = f"column {column!r} has type {arrow_type}" if column else f"type {arrow_type}"
    raise errors.InvalidInput(
        f"{where}, which a model input cannot carry: use booleans, integers, floats, strings "
        "or categoricals, convert it, or leave it out with exclude=[...]"
    )


def load_table(data: object, *, field: str = "training_data") -> pa.Table:
    """Read training data given as a DataFrame, an Arrow table or a .parquet/.csv path."""
    if isinstance(data, pa.Table):
        return data
    # Not imported here: pandas takes a fifth of a second to import, and a serving process
    # loads this module (through the flavors) without ever profiling data. Data can only be a
    # DataFrame if the caller imported pandas.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise errors.InvalidInput(
                f"cannot convert the DataFrame to Arrow: {exc}", field=field) from exc
    path = _data_path(data, field=field)
    try:
        return _READERS[path.suffix.lower()](path)
    except (OSError, pa.ArrowException) as exc:
        raise errors.InvalidInput(f"cannot read {path.name}: {exc}", field=field) from exc


def data_digest(data: object, *, field: str = "training_data") -> str:
    """SHA-256 (hex) of a data file's bytes, or of the Arrow IPC stream of in-memory data.

    In-memory data is hashed without schema metadata and as one record batch, so the same
    values give the same digest whatever pandas version or chunking produced them.
    """
    digest = hashlib.sha256()
    if isinstance(data, (str, Path)):
        with _data_path(data, field=field).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    table = load_table(data, field=field).replace_schema_metadata(None).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue())
    return digest.hexdigest()


def compute_profile(
    table: pa.Table,
    *,
    exclude: Iterable[str] = (),
    bins: int = 10,
    top_k: int = 20,
    sample_size: int = 10_000,
    seed: int = 0,
) -> tuple[dict[str, Any], pa.Table]:
    """Profile every column not in ``exclude``; return (profile, uniform row sample)."""
    _check_parameters(bins=bins, top_k=top_k, sample_size=sample_size)
    if table.num_rows == 0:
        raise errors.InvalidInput(
            "the table has no rows: cannot profile empty training data", field="training_data")
    names = _profiled_columns(table, exclude)
    columns: dict[str, Any] = {}
    for name in names:
        column = table.column(name)
        datatype = oip_datatype(column.type, column=name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns[name] = _numeric_profile(column, datatype, bins)
        else:
            columns[name] = _categorical_profile(column, datatype, top_k)
    profile = {"row_count": table.num_rows, "columns": columns}
    return profile, _uniform_sample(table.select(names), sample_size, seed)


def _data_path(data: object, *, field: str) -> Path:
    if not isinstance(data, (str, Path)):
        raise errors.InvalidInput(
            f"expected a pandas DataFrame, a pyarrow Table or a path to a .parquet or .csv file, "
            f"got {type(data).__name__}",
            field=field,
        )
    path = Path(data)
    if path.suffix.lower() not in _READERS:
        raise errors.InvalidInput(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
            "use .parquet or .csv", field=field)
    if not path.is_file():
        raise errors.InvalidInput(f"{path}: no such file", field=field)
    return path


def _check_parameters(*, bins: int, top_k: int, sample_size: int) -> None:
    if bins < 1:
        raise errors.InvalidInput(f"must be at least 1, got {bins}", field="bins")
    if top_k < 0:
        raise errors.InvalidInput(f"must not be negative, got {top_k}", field="top_k")
    if sample_size < 0:
        raise errors.InvalidInput(f"must not be negative, got {sample_size}", field="sample_size")


def _profiled_columns(table: pa.Table, exclude: Iterable[str]) -> list[str]:
    names = table.column_names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise errors.InvalidInput(
            f"duplicate column names: {', '.join(duplicates)}", field="training_data")
    excluded = set(exclude)
    unknown = sorted(excluded.difference(names))
    if unknown:
        raise errors.InvalidInput(
            f"excluded columns not in the data: {', '.join(unknown)} (columns: {', '.join(names)})",
            field="exclude",
        )
    kept = [name for name in names if name not in excluded]
    if not kept:
        raise errors.InvalidInput(
            "every column is excluded: nothing left to profile", field="exclude")
    return kept


def _numeric_profile(column: pa.ChunkedArray, datatype: str, bins: int) -> dict[str, Any]:
    # Nulls become NaN here, so one isnan mask counts both.
    values = pc.cast(column, pa.float64(), safe=False).to_numpy()
    missing = np.isnan(values)
    infinite = np.isinf(values)
    finite = values[~(missing | infinite)]
    profile: dict[str, Any] = {
        "kind": "numeric", "datatype": datatype, "count": int(finite.size),
        "nulls": int(missing.sum()), "infinite": int(infinite.sum()),
        "mean": None, "std": None, "min": None, "max": None, "bin_edges": [], "bin_counts": [],
    }
    if finite.size == 0:
        return profile
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    index = np.clip(np.searchsorted(edges, finite, side="right") - 1, 0, edges.size - 2)
    profile.update(
        mean=float(finite.mean()), std=float(finite.std()),
        min=float(finite.min()), max=float(finite.max()), bin_edges=edges.tolist(),
        bin_counts=np.bincount(index, minlength=edges.size - 1).tolist(),
    )
    return profile


def _categorical_profile(column: pa.ChunkedArray, datatype: str, top_k: int) -> dict[str, Any]:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    counts = pc.value_counts(column)
    ranked = (
        pa.table({"value": counts.field("values"), "count": counts.field("counts")})
        .drop_null()
        .sort_by([("count", "descending"), ("value", "ascending")])
    )
    top = ranked.slice(0, top_k)
    keys = map(_category_key, top.column("value").to_pylist())
    frequencies = dict(zip(keys, top.column("count").to_pylist()))
    present = len(column) - column.null_count
    return {
        "kind": "categorical", "datatype": datatype, "count": present, "nulls": column.null_count,
        "distinct": ranked.num_rows, "frequencies": frequencies,
        "other": present - sum(frequencies.values()),
    }


def _category_key(value: object) -> str:
    """JSON object keys are strings; render booleans and bytes so they stay readable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _uniform_sample(table: pa.Table, size: int, seed: int) -> pa.Table:
    """At most ``size`` rows drawn uniformly without replacement, in their original order.

    This is the distribution a reservoir sample yields; the table is already in memory,
    so the row indices are drawn directly, which is deterministic for a seed.
    """
    if table.num_rows <= size:
        return table
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(table.num_rows, size=size, replace=False))
    return table.take(pa.array(rows))
