"""Records waiting for the next flush of the prediction log, kept as columns in Arrow's layout.

A flush used to turn thousands of record objects into Arrow columns: a Python pass over every
record for every column, holding the GIL in the writer thread for milliseconds while requests
arriving meanwhile waited for it (the serving p99 at one connection followed). Instead,
``Columns.append`` adds one record's fields to growing buffers (text as UTF-8 bytes and
offsets, numbers as machine integers and floats) where the server makes the record, after it
has answered, a few microseconds each; ``Columns.table`` then wraps the buffers as Arrow arrays
without looking at a single value. Only the typed input columns (``in_<name>``, see
``predlog_files``) stay Python lists, converted by one native call per column.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pyarrow as pa

from threadline.serving import predlog_files

if TYPE_CHECKING:
    from threadline.serving.predlog import PredictionRecord

# Text buffers use Arrow's 32-bit offsets; the log bounds a buffer's bytes well below this.
MAX_TEXT_BYTES = (1 << 31) - 1
_TIME = predlog_files.FIXED.field("time").type
# The text columns in the order ``Columns.append`` fills them.
_TEXT = ("prediction_id", "trace_id", "deployment", "model", "status", "inputs", "outputs")


class Columns:
    """The records of one deployment and UTC day buffered since the last flush.

    Not thread-safe: the log appends under its lock and hands a ``Columns`` to the writer only
    once it has replaced it with a new one.
    """

    def __init__(self) -> None:
        self.rows = 0
        # Each text column: its values' UTF-8 bytes end to end, and where each value ends.
        self._text = tuple(bytearray() for _ in _TEXT)
        self._ends = tuple(array("i", [0]) for _ in _TEXT)
        self._time = array("q")
        self._version = array("q")
        self._latency = array("d")
        self._confidence = array("d")
        self._no_confidence = bytearray()
        self._escalated = bytearray()
        self._kinds: dict[str, type] = {}
        self._clashes: set[str] = set()
        self._typed: dict[str, list[object]] = {}

    def append(self, rec: PredictionRecord) -> None:
        """Add ``rec``, which cannot fail half-way: a record checked its fields when it was made.

        Spelled out rather than looped: this runs once per prediction, and a loop over the
        columns or a method call per value doubles its cost.
        """
        ids, traces, deployments, models, statuses, inputs, outputs = self._text
        ids_end, traces_end, deployments_end, models_end, statuses_end, inputs_end, outputs_end = self._ends
        ids += rec.prediction_id.encode()
        ids_end.append(len(ids))
        traces += rec.trace_id.encode()
        traces_end.append(len(traces))
        deployments += rec.deployment.encode()
        deployments_end.append(len(deployments))
        models += rec.model.encode()
        models_end.append(len(models))
        statuses += rec.status.encode()
        statuses_end.append(len(statuses))
        inputs += rec.inputs_json
        inputs_end.append(len(inputs))
        outputs += rec.outputs_json
        outputs_end.append(len(outputs))
        self._time.append(rec.time_us)
        self._version.append(rec.version)
        self._latency.append(rec.latency_ms)
        confidence = rec.confidence
        self._confidence.append(0.0 if confidence is None else confidence)
        self._no_confidence.append(confidence is None)
        self._escalated.append(rec.escalated)
        if rec.scalars:
            self._add_scalars(rec.scalars)
        self.rows += 1

    def _add_scalars(self, scalars: Mapping[str, tuple[type, object]]) -> None:
        """Add the typed inputs of the record being appended (row ``self.rows``)."""
        for name, (kind, value) in scalars.items():
            if name in self._clashes:
                continue
            seen = self._kinds.setdefault(name, kind)
            if not predlog_files.fits(seen, kind):
                if not predlog_files.fits(kind, seen):  # e.g. a string after integers
                    self._clashes.add(name)
                    del self._kinds[name], self._typed[name]
                    continue
                self._kinds[name] = kind  # integers so far, now a float: the column widens
            values = self._typed.setdefault(name, [])
            if len(values) < self.rows:
                values.extend([None] * (self.rows - len(values)))
            values.append(value)

    @property
    def kinds(self) -> dict[str, type]:
        """The scalar type of each typed input seen; names whose types clashed are left out."""
        return dict(self._kinds)

    def table(self, kinds: Mapping[str, type]) -> pa.Table:
        """The buffered records with the columns of ``kinds`` (a segment's, which may be wider
        than ours: columns we did not see, or whose type does not fit, are null)."""
        rows = self.rows
        arrays = {name: pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(ends), pa.py_buffer(data)])
                  for name, data, ends in zip(_TEXT, self._text, self._ends)}
        arrays["time"] = pa.Array.from_buffers(_TIME, rows, [None, pa.py_buffer(self._time)])
        arrays["version"] = pa.array(np.frombuffer(self._version, np.int64))
        arrays["latency_ms"] = pa.array(np.frombuffer(self._latency, np.float64))
        arrays["confidence"] = pa.array(np.frombuffer(self._confidence, np.float64),
                                        mask=np.frombuffer(self._no_confidence, np.bool_))
        arrays["escalated"] = pa.array(np.frombuffer(self._escalated, np.bool_))
        schema = predlog_files.schema(kinds)
        for name, kind in kinds.items():
            column, arrow = predlog_files.column_name(name), predlog_files.ARROW[kind]
            values = self._typed.get(name)
            if values is None or not predlog_files.fits(kind, self._kinds[name]):
                arrays[column] = pa.nulls(rows, arrow)
                continue
            values.extend([None] * (rows - len(values)))
            arrays[column] = pa.array(values, type=arrow)
        return pa.Table.from_arrays([arrays[field.name] for field in schema], schema=schema)
