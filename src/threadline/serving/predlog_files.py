"""The prediction log on disk: folder layout, file names, columns, compaction and reading.

Parquet is only readable once its footer is written, so one long-lived file would lose
everything since it was opened on SIGKILL. Instead every flush writes one small, complete
*part* per deployment and day, and parts are later compacted into one *segment* file::

    root/deployment=<deployment>/date=YYYY-MM-DD/part-<segment>-<seq>.parquet
    root/deployment=<deployment>/date=YYYY-MM-DD/seg-<segment>.parquet

``<segment>`` is ``<UTC start, YYYYmmddTHHMMSS>-<writer id>-<count>``, unique per writer.
Every file is written as ``.<name>.<random>.inprogress`` (ignored by pyarrow, and by DuckDB globs of
``*.parquet``), fsynced, then renamed, so a file under its final name is always complete
(the folder is not fsynced: a power cut may lose the newest rename, never half a file).
Parts are written uncompressed (they are short-lived, and writing them shares the serving
core); sealing compresses with zstd. Sealing a segment writes its ``seg-`` file and then
deletes its parts. A reader listing the folder in between, or after a crash in between,
could see rows twice, so ``read_log`` skips parts whose ``seg-`` file exists; other readers
should do the same (DuckDB: ``read_parquet('<root>/*/*/*.parquet', hive_partitioning=true, union_by_name=true)``).
Parts left behind by a crashed writer stay readable, only small.

Columns: the fixed fields of ``_FIXED``, ``inputs`` and ``outputs`` as JSON text, and for
every input whose values are scalars (bool, integer, float, string) a typed column
``in_<name>``, so monitoring can scan one feature without parsing JSON. Names matching
``[a-z_][a-z0-9_]*`` (up to 60 characters) are kept; any other name is lowercased, every
character outside ``[a-z0-9_]`` becomes ``_``, and ``_`` plus the first 8 hex digits of the
name's SHA-256 are appended, so distinct names never share a column (DuckDB compares column
names case-insensitively). All parts of a segment share one schema; integers widen to float
when a float arrives, and a value that fits no column type stays only in the JSON.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import operator
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, Mapping

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from threadline import files

if TYPE_CHECKING:
    from threadline.serving.predlog import PredictionRecord

_COMPACT_ROWS = 65_536
# A part lives until its segment is sealed (minutes), and its writing shares the serving core:
# written plain, without dictionaries for the columns where every value differs and with
# statistics only for the time (what readers prune by), it costs a quarter of a default write.
# Sealing compresses. Each row group of a part is encoded between two yields (see ``_starts``).
_PART_OPTIONS = {"compression": "none", "use_dictionary": ["deployment", "model", "status"],
                 "write_statistics": ["time"]}
_ENCODE_ROWS = 256
_WRITE_BYTES = 128 << 10
_SEGMENT_COMPRESSION = "zstd"
_PACE = 32  # records looked at between two yields (see ``_starts``)
_CONVERT_ROWS = 1024  # records of a column turned into Arrow in one call
_READ_ATTEMPTS = 5
_SAFE_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,59}$")
_PLAIN: dict[type, type] = {bool: bool, int: int, float: float, str: str}
_NOT_SCALAR = frozenset({list, dict, tuple, type(None)})
_ARROW = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
_FIXED = pa.schema([
    ("prediction_id", pa.string()), ("trace_id", pa.string()),
    ("time", pa.timestamp("us", tz="UTC")), ("deployment", pa.string()), ("model", pa.string()),
    ("version", pa.int64()), ("confidence", pa.float64()), ("latency_ms", pa.float64()),
    ("escalated", pa.bool_()), ("status", pa.string()), ("inputs", pa.string()),
    ("outputs", pa.string()),
])
# The record attribute of each fixed column: the time as microseconds since the epoch, inputs
# and outputs as JSON text.
_ATTRIBUTES = {field.name: field.name for field in _FIXED} | {
    "time": "time_us", "inputs": "inputs_json", "outputs": "outputs_json"}
_DATE = pa.field("date", pa.string())
_PARTITIONING = ds.partitioning(pa.schema([("deployment", pa.string()), _DATE]), flavor="hive")


def column_name(name: str) -> str:
    """The typed column of input ``name`` (see the module docstring for the rule)."""
    if _SAFE_COLUMN.match(name):
        return "in_" + name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return "in_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:50] + "_" + digest


def _kind(value: object) -> type | None:
    if type(value) in _NOT_SCALAR:  # exact lookups first: ABC isinstance checks are slow
        return None
    kind = _PLAIN.get(type(value))
    if kind is None:
        if isinstance(value, (bool, np.bool_)):
            return bool
        if not isinstance(value, numbers.Real):
            return str if isinstance(value, str) else None
        kind = int if isinstance(value, numbers.Integral) else float
    if kind is int and not -(1 << 63) <= value < (1 << 63):  # type: ignore[operator]
        return None  # beyond int64: kept in the JSON only
    return kind


def _fits(column: type, value: type | None) -> bool:
    return value is column or (column is float and value is int)


def _starts(total: int, step: int) -> Iterator[int]:
    """``0, step, 2*step ...`` below ``total``, yielding the CPU, and with it the GIL, between two.

    The writer thread holds the GIL while it turns records into columns, and the core while it
    encodes them. Without a pause, a request arriving meanwhile waits for the rest of that work
    (up to the interpreter's 5 ms switch interval), and the serving p99 follows the longest wait.
    """
    for start in range(0, total, step):
        if start:
            os.sched_yield()
        yield start


def paced(records: list[PredictionRecord]) -> Iterator[PredictionRecord]:
    """``records`` one by one, with a pause after every ``_PACE`` (see ``_starts``)."""
    for start in _starts(len(records), _PACE):
        yield from records[start:start + _PACE]


def release(records: list[PredictionRecord]) -> None:
    """Empty ``records`` a slice of ``_PACE`` at a time, with a pause between two (see ``_starts``).

    Freeing a flush's records is a burst of deallocations under the GIL. When records still kept
    their inputs' and outputs' Python values, freeing ~1,300 at once held it for milliseconds, and
    with the log's writing switched off that burst alone took one connection's p99 from 0.55 to
    1.35 ms. Records are lighter now (see ``PredictionRecord``), but thousands still add up.
    """
    for _ in _starts(len(records), _PACE):
        del records[-_PACE:]


def scalars(inputs: Mapping[str, object]) -> dict[str, tuple[type, object]]:
    """The inputs of one record that can have a typed column: name to (scalar type, value)."""
    found: dict[str, tuple[type, object]] = {}
    for name, value in inputs.items():
        kind = _kind(value)
        if kind is not None:
            found[name] = (kind, value)
    return found


def input_kinds(records: Iterable[PredictionRecord]) -> dict[str, type]:
    """The scalar type of each input name across ``records``; names that clash are left out."""
    kinds: dict[str, type] = {}
    clashes: set[str] = set()
    for rec in records:
        for name, (kind, _) in rec.scalars.items():
            if name in clashes:
                continue
            seen = kinds.setdefault(name, kind)
            if _fits(kind, seen):
                kinds[name] = kind
            elif not _fits(seen, kind):
                clashes.add(name)
                del kinds[name]
    return kinds


def merge_kinds(old: Mapping[str, type], new: Mapping[str, type]) -> dict[str, type]:
    """``old`` extended by ``new``: an old type is kept where the new one fits it, else replaced."""
    merged = dict(old)
    for name, kind in new.items():
        if not (name in merged and _fits(merged[name], kind)):
            merged[name] = kind
    return merged


def _schema(kinds: Mapping[str, type]) -> pa.Schema:
    typed = sorted((column_name(name), _ARROW[kind]) for name, kind in kinds.items())
    return pa.schema(list(_FIXED) + [pa.field(name, arrow) for name, arrow in typed])


def json_text(values: Mapping[str, object]) -> str:
    """``values`` as the JSON text of the ``inputs`` and ``outputs`` columns (numpy values as
    their Python equivalents, anything else JSON cannot hold as its ``repr``)."""
    plain = values if type(values) is dict else dict(values)
    try:
        return orjson.dumps(plain, default=repr,
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        return json.dumps(plain, default=repr)


def _table(records: list[PredictionRecord], kinds: Mapping[str, type]) -> pa.Table:
    """The part of ``records``: each column of a slice of ``_CONVERT_ROWS`` records turned into
    Arrow in one call, with a pause between two columns (see ``_starts``).

    A call per column rather than per handful of records: the fixed cost of each conversion was
    most of the writer's work (1.3 ms instead of 3.7 ms for 1,000 records here).
    """
    schema = _schema(kinds)
    typed = {column_name(name): (name, kind) for name, kind in kinds.items()}
    batches = []
    for start in range(0, len(records), _CONVERT_ROWS):
        chunk = records[start:start + _CONVERT_ROWS]
        arrays = []
        for index in _starts(len(schema), 1):
            column = schema.field(index)
            arrays.append(pa.array(_values(chunk, column.name, typed), type=column.type))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def _values(records: list[PredictionRecord], column: str,
            typed: Mapping[str, tuple[str, type]]) -> list[object]:
    """The values of ``column`` in ``records``: a fixed field, or the typed column of an input
    (``typed``: its input name and scalar type by column name)."""
    attribute = _ATTRIBUTES.get(column)
    if attribute is not None:
        return list(map(operator.attrgetter(attribute), records))
    name, kind = typed[column]
    missing = (None, None)
    found = (r.scalars.get(name, missing) for r in records)
    return [kind(value) if _fits(kind, seen) else None for seen, value in found]


def _write_paced(file: BinaryIO, data: memoryview) -> None:
    """Write ``data`` a slice of ``_WRITE_BYTES`` at a time (see ``_starts``)."""
    for start in _starts(len(data), _WRITE_BYTES):
        file.write(data[start:start + _WRITE_BYTES])


def _publish(final: Path, write: Callable[[BinaryIO], None]) -> int:
    """Write ``final`` under a hidden name, fsync, rename; return its size in bytes."""
    return files.atomic_write(final, write)


@dataclass(eq=False)
class Segment:
    """The parts of one deployment and day that share one schema, until sealed."""

    folder: Path
    ident: str
    kinds: dict[str, type]
    started: float = field(default_factory=time.monotonic)
    parts: list[Path] = field(default_factory=list)
    size: int = 0

    def write(self, records: list[PredictionRecord]) -> None:
        """Publish ``records`` as the next part."""
        table = _table(records, self.kinds)
        encoded = pa.BufferOutputStream()  # encoded in memory by the native writer, one write
        with pq.ParquetWriter(encoded, table.schema, **_PART_OPTIONS) as writer:
            for start in _starts(table.num_rows, _ENCODE_ROWS):
                writer.write_table(table.slice(start, _ENCODE_ROWS))
        part = self.folder / f"part-{self.ident}-{len(self.parts):05d}.parquet"
        self.size += _publish(part, lambda file: _write_paced(file, memoryview(encoded.getvalue())))
        self.parts.append(part)

    def seal(self) -> Path:
        """Compact the parts into ``seg-<ident>.parquet``, delete them, return the new file."""
        def write(file: BinaryIO) -> None:
            schema = _schema(self.kinds)
            with pq.ParquetWriter(file, schema, compression=_SEGMENT_COMPRESSION) as writer:
                pending: list[pa.Table] = []
                for part in self.parts:
                    pending.append(pq.ParquetFile(part).read())
                    if sum(t.num_rows for t in pending) >= _COMPACT_ROWS:
                        writer.write_table(pa.concat_tables(pending))
                        pending = []
                if pending:
                    writer.write_table(pa.concat_tables(pending))

        sealed = self.folder / f"seg-{self.ident}.parquet"
        _publish(sealed, write)
        for part in self.parts:
            part.unlink(missing_ok=True)
        return sealed


def complete_files(root: Path, deployment: str | None) -> list[Path]:
    """The log files to read: sealed segments, and parts whose segment is not sealed yet."""
    listed = sorted(root.glob(f"deployment={deployment or '*'}/date=*/*.parquet"))
    return [Path(f) for f in complete([str(f) for f in listed])]


def complete(paths: list[str]) -> list[str]:
    """Of the listed files, those to read: sealed segments, and parts whose segment is not sealed
    yet (a reader listing while a segment is sealed would otherwise count rows twice)."""
    names = [p.rsplit("/", 1)[-1] for p in paths]
    sealed = {n[len("seg-"):-len(".parquet")] for n in names if n.startswith("seg-")}
    return [p for p, n in zip(paths, names) if n.startswith("seg-") or (
        n.startswith("part-") and n[len("part-"):].rsplit("-", 1)[0] not in sealed)]


def read_log(root: Path, deployment: str | None = None) -> pa.Table:
    """Every record in complete files under ``root`` (one deployment or all), sorted by time.

    Columns are the union over files (integers widened to float where files disagree), plus
    ``date`` from the partition folder.
    """
    for _ in range(_READ_ATTEMPTS - 1):
        try:
            return _read(root, deployment)
        except FileNotFoundError:  # a part was deleted as its segment was sealed: list again
            continue
    return _read(root, deployment)


def _read(root: Path, deployment: str | None) -> pa.Table:
    files = complete_files(root, deployment)
    if not files:
        return _schema({}).append(_DATE).empty_table()
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    dataset = ds.dataset([str(f) for f in files], schema=schema.append(_DATE), format="parquet",
                         partitioning=_PARTITIONING, partition_base_dir=str(root))
    return dataset.to_table().sort_by("time")
