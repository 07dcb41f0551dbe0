"""Reading one column of a deployment's prediction log over a time window, file by file.

Drift over millions of rows must fit in bounded memory: a window is never loaded as a table.
Each complete Parquet file of the deployment (see ``serving.predlog_files``), from a local
folder or an S3 prefix (``log_location``), is opened on its own and only the ``time`` column
and the one feature column are read, then filtered to the window; a corrupted file is skipped
and reported, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from threadline.monitoring.log_location import LogLocation


@dataclass
class Window:
    """The files of one deployment's log and the span to read from them."""

    location: LogLocation
    files: list[str]
    start: datetime
    end: datetime
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, location: LogLocation, deployment: str, start: datetime, end: datetime) -> Window:
        """Only the files of the days the window touches are read (the log is partitioned by UTC day)."""
        first, last = start.astimezone(timezone.utc).date(), end.astimezone(timezone.utc).date()
        return cls(location, [path for path in location.files(deployment)
                              if (day := _day(path)) is None or first <= day <= last], start, end)

    def column(self, name: str) -> pa.ChunkedArray | None:
        """The values of ``name`` in the window (None when no file has the column)."""
        chunks: list[pa.Array] = []
        seen = False
        for path in list(self.files):
            try:
                parquet = self.location.open(path)
                if name not in parquet.schema_arrow.names:
                    continue
                seen = True
                table = parquet.read(columns=["time"] if name == "time" else ["time", name])
            except (OSError, pa.ArrowInvalid) as exc:
                self._skip(path, exc)
                continue
            chunks.extend(table[name].filter(self._inside(table)).chunks)
        if not seen:
            return None
        return pa.chunked_array(chunks) if chunks else pa.chunked_array([], type=pa.float64())

    def matching(self, columns: list[str], ids: set[str]) -> pa.Table:
        """The rows of the window whose prediction id is in ``ids``, with ``columns``: small
        however large the window, since labels cover few predictions."""
        wanted = pa.array(sorted(ids), pa.string())
        tables: list[pa.Table] = []
        for path in list(self.files):
            try:
                parquet = self.location.open(path)
                present = [c for c in columns if c in parquet.schema_arrow.names]
                table = parquet.read(columns=sorted({"time", "prediction_id", *present}))
            except (OSError, pa.ArrowInvalid) as exc:
                self._skip(path, exc)
                continue
            keep = pc.and_(self._inside(table), pc.is_in(table["prediction_id"], value_set=wanted))
            tables.append(table.filter(keep).select(["prediction_id", "time", *present]))
        tables = [t for t in tables if t.num_rows]
        return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table(
            {"prediction_id": pa.array([], pa.string()), "time": pa.array([], pa.timestamp("us", tz="UTC"))})

    def _inside(self, table: pa.Table) -> pa.ChunkedArray:
        return pc.and_(pc.greater_equal(table["time"], pa.scalar(self.start, pa.timestamp("us", tz="UTC"))),
                       pc.less(table["time"], pa.scalar(self.end, pa.timestamp("us", tz="UTC"))))

    def _skip(self, path: str, exc: Exception) -> None:
        self.files.remove(path)
        name = path.rsplit("/", 1)[-1]
        self.problems.append(f"{name}: unreadable, skipped ({str(exc).splitlines()[0][:200]})")

    def numbers(self, name: str) -> np.ndarray | None:
        column = self.column(name)
        if column is None:
            return None
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)

    def counts(self, name: str) -> dict[str, int] | None:
        column = self.column(name)
        if column is None:
            return None
        counted = pc.value_counts(column.cast(pa.string()).drop_null() if len(column) else column.cast(pa.string()))
        return {str(v["values"]): int(v["counts"]) for v in counted.to_pylist()}

    def rows(self) -> int:
        column = self.column("time")
        return 0 if column is None else len(column)


def _day(path: str) -> date | None:
    folder = path.rsplit("/", 2)[-2] if path.count("/") >= 1 else ""
    try:
        return date.fromisoformat(folder.removeprefix("date=")) if folder.startswith("date=") else None
    except ValueError:
        return None
