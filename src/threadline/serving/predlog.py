"""The prediction log: every prediction recorded, with no disk I/O in the request path.

``PredictionLog.record`` appends the record's fields to bounded in-memory columns
(``predlog_columns``) under a lock and returns at once, so it is safe from any thread and from
asyncio code (it never awaits or blocks on I/O). A background thread wakes every
``flush_interval`` (default 1 s) and writes what has accumulated as one complete Parquet part
per deployment and day (layout, columns and compaction: ``predlog_files``). A SIGKILL therefore
loses only the records of the last interval (plus a flush that was being written);
``close()`` loses nothing.

When the disk cannot keep up and the buffer is full (``max_buffer`` records or
``max_buffer_bytes`` of text), ``record`` refuses the record and returns False. Refused
records (and those of a failed write) are counted in ``dropped``, passed to ``on_drop`` and
logged as a warning at most every 10 s, never lost silently.

Parts of a deployment and day form a segment, which is sealed (compacted into one file)
when its parts reach ``rotate_bytes``, when it is ``rotate_seconds`` old, when records bring
new input names or types, and at ``close()``.
"""

from __future__ import annotations

import logging
import numbers
import operator
import re
import secrets
import threading
import time
from dataclasses import InitVar, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from threadline.domain import errors
from threadline.serving import predlog_columns, predlog_files

logger = logging.getLogger(__name__)

_DROP_LOG_SECONDS = 10.0
_SAFE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

read_log = predlog_files.read_log


@dataclass(slots=True)
class PredictionRecord:
    """One prediction; ``inputs``/``outputs`` map names to a scalar or a list per row.

    What the log writes is taken from them when the record is made: their JSON, and the scalar
    inputs (with their types) for the typed ``in_`` columns. The record keeps only that, not the
    values themselves: the server makes records after answering, where the work waits for
    nobody, while the writer thread's work (freeing thousands of inputs' Python values each
    flush, or typing them) would hold up the requests arriving meanwhile.

    Not frozen, though nothing changes a record once made: one is built per prediction, and a
    frozen dataclass's ``__init__``, which sets every field through ``object.__setattr__``, costs
    several times as much.
    """

    prediction_id: str
    trace_id: str
    time: datetime
    deployment: str
    model: str
    version: int
    inputs: InitVar[Mapping[str, object]]
    outputs: InitVar[Mapping[str, object]]
    confidence: float | None
    latency_ms: float
    escalated: bool
    status: str = "ok"
    time_us: int = field(init=False)
    inputs_json: bytes = field(init=False)
    outputs_json: bytes = field(init=False)
    scalars: dict[str, tuple[type, object]] = field(init=False)
    size: int = field(init=False)  # at least the bytes of its text columns: what the buffer bounds

    def __post_init__(self, inputs: Mapping[str, object], outputs: Mapping[str, object]) -> None:
        if self.time.utcoffset() is None:
            raise errors.InvalidInput("must be timezone-aware (UTC)", field="time")
        if not _SAFE_DEPLOYMENT.match(self.deployment):
            raise errors.InvalidInput(f"{self.deployment!r} cannot name a folder",
                                      field="deployment")
        # Checked here, where a bad record fails alone: the log's buffer takes it field by field.
        for name in ("prediction_id", "trace_id", "model", "status"):
            _check_text(getattr(self, name), name)
        self.version = _number(int, self.version, "version")
        if not -(1 << 63) <= self.version < (1 << 63):
            raise errors.InvalidInput("must fit in 64 bits", field="version")
        self.latency_ms = _number(float, self.latency_ms, "latency_ms")
        if self.confidence is not None:
            self.confidence = _number(float, self.confidence, "confidence")
        self.escalated = bool(self.escalated)
        # Microseconds since the epoch are what the time column holds: Arrow converts a list
        # of integers 15 times as fast as one of timezone-aware datetimes.
        self.time_us = (self.time - _EPOCH) // _MICROSECOND
        self.inputs_json = predlog_files.json_bytes(inputs)
        self.outputs_json = predlog_files.json_bytes(outputs)
        self.scalars = predlog_files.scalars(inputs)
        # UTF-8 takes at most 4 bytes per character.
        self.size = len(self.inputs_json) + len(self.outputs_json) + 4 * (
            len(self.prediction_id) + len(self.trace_id) + len(self.deployment) + len(self.model)
            + len(self.status))


def _check_text(value: object, name: str) -> None:
    if type(value) is not str:
        raise errors.InvalidInput(f"must be text, not {type(value).__name__}", field=name)
    if not predlog_files.encodable(value):
        raise errors.InvalidInput("is not valid Unicode text (a lone surrogate)", field=name)


def _number(kind: type, value: object, name: str) -> Any:
    """``value`` as a plain ``kind`` (an int from a numpy integer, a float from any real)."""
    if type(value) is kind:
        return value
    if kind is float and isinstance(value, numbers.Real):
        return float(value)
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError as exc:
        raise errors.InvalidInput(f"must be a number ({kind.__name__}), not {value!r}", field=name) from exc


class PredictionLog:
    """Buffers records and writes them from a background thread (see the module docstring).

    ``on_flush(n)`` runs on the writer thread after ``n`` records reached disk; ``on_drop(n)``
    after ``n`` more were dropped; ``on_seal(path)`` after a segment was sealed into ``path``.
    All must be quick; they delay the next flush.
    """

    def __init__(self, root: Path, *, flush_interval: float = 1.0, max_buffer: int = 100_000,
                 max_buffer_bytes: int = 256 << 20, rotate_bytes: int = 64 << 20,
                 rotate_seconds: float = 300.0, on_flush: Callable[[int], None] | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 on_seal: Callable[[Path], None] | None = None) -> None:
        if flush_interval <= 0 or max_buffer < 1 or max_buffer_bytes < 1 or rotate_bytes < 1 \
                or rotate_seconds <= 0:
            raise errors.ConfigurationError(
                "prediction log: flush_interval, max_buffer, max_buffer_bytes, rotate_bytes and "
                "rotate_seconds must be positive")
        if max_buffer_bytes > predlog_columns.MAX_TEXT_BYTES:
            raise errors.ConfigurationError(
                f"prediction log: max_buffer_bytes must be at most {predlog_columns.MAX_TEXT_BYTES}")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.ConfigurationError(
                f"prediction log location {root} is not usable: {exc.strerror}") from exc
        self.root = root
        self._interval, self._max_buffer, self._max_bytes = flush_interval, max_buffer, max_buffer_bytes
        self._rotate_bytes, self._rotate_seconds = rotate_bytes, rotate_seconds
        self._on_flush, self._on_drop, self._on_seal = on_flush, on_drop, on_seal
        self._writer_id = secrets.token_hex(4)
        self._lock = threading.Lock()  # guards the buffer and counters; never held during I/O
        self._io_lock = threading.Lock()  # one flush at a time
        self._pending: dict[tuple[str, int], predlog_columns.Columns] = {}  # by deployment, UTC day
        self._pending_rows = self._pending_bytes = 0
        self._logged = self._dropped = self._drops_reported = self._drops_logged = 0
        self._last_drop_log = float("-inf")
        self._segments: dict[tuple[str, str], predlog_files.Segment] = {}
        self._segment_count = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadline-predlog", daemon=True)
        self._thread.start()

    @property
    def logged(self) -> int:
        """Records written to disk so far."""
        return self._logged

    @property
    def dropped(self) -> int:
        """Records refused (buffer full, or log closed) or lost to a failed write."""
        return self._dropped

    def record(self, rec: PredictionRecord) -> bool:
        """Queue ``rec`` for the next flush; False (counted as dropped) if the buffer is full."""
        key = (rec.deployment, rec.time_us // _DAY_US)
        with self._lock:
            if self._closed or self._pending_rows >= self._max_buffer \
                    or self._pending_bytes + rec.size > self._max_bytes:
                self._dropped += 1
                return False
            columns = self._pending.get(key)
            if columns is None:
                columns = self._pending[key] = predlog_columns.Columns()
            columns.append(rec)
            self._pending_rows += 1
            self._pending_bytes += rec.size
            return True

    def flush(self, *, seal_all: bool = False) -> None:
        """Write everything buffered now, then seal the segments that are due (all if asked)."""
        with self._io_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._pending_rows = self._pending_bytes = 0
            written = self._write(pending)
            now = time.monotonic()
            for key, segment in list(self._segments.items()):
                if (seal_all or segment.size >= self._rotate_bytes
                        or now - segment.started >= self._rotate_seconds):
                    self._seal(self._segments.pop(key))
            dropped = self._new_drops(force_log=seal_all)
        # Callbacks run last and outside the lock: one that raises or flushes loses nothing.
        if written and self._on_flush is not None:
            self._on_flush(written)
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)

    def close(self) -> None:
        """Stop the writer thread, write every buffered record and seal every segment."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._thread.join()
        self.flush(seal_all=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # a failing callback must not stop the writer
                logger.exception("prediction log: flush failed under %s", self.root)

    def _write(self, pending: dict[tuple[str, int], predlog_columns.Columns]) -> int:
        """Write one part per deployment and day; return how many records reached disk."""
        written = 0
        for (deployment, days), columns in pending.items():
            key = (deployment, (_EPOCH + timedelta(days=days)).date().isoformat())
            try:
                segment = self._segment_for(key, columns.kinds)
                segment.write(columns.table(segment.kinds))
            except Exception:
                with self._lock:
                    self._dropped += columns.rows
                logger.exception("prediction log: could not write %d records of deployment %s "
                                 "under %s; counted as dropped", columns.rows, key[0], self.root)
                continue
            written += columns.rows
        self._logged += written
        return written

    def _segment_for(self, key: tuple[str, str], kinds: dict[str, type]) -> predlog_files.Segment:
        """The open segment of ``key``, or a new one if there is none or its schema differs."""
        segment = self._segments.get(key)
        old = segment.kinds if segment is not None else {}
        kinds = predlog_files.merge_kinds(old, kinds)
        if segment is not None and kinds == old:
            return segment
        if segment is not None:
            self._seal(self._segments.pop(key))
        folder = self.root / f"deployment={key[0]}" / f"date={key[1]}"
        folder.mkdir(parents=True, exist_ok=True)
        self._segment_count += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        ident = f"{stamp}-{self._writer_id}-{self._segment_count:05d}"
        segment = self._segments[key] = predlog_files.Segment(folder, ident, kinds)
        return segment

    def _seal(self, segment: predlog_files.Segment) -> None:
        if not segment.parts:  # its first write failed
            return
        try:
            sealed = segment.seal()
        except Exception:  # the parts stay complete and readable; only compaction is lost
            logger.exception("prediction log: could not compact segment %s in %s",
                             segment.ident, segment.folder)
            return
        if self._on_seal is not None:
            self._on_seal(sealed)

    def _new_drops(self, *, force_log: bool) -> int:
        """Drops since the last call; log them if the last warning is old enough (or forced)."""
        total = self._dropped
        new, self._drops_reported = total - self._drops_reported, total
        now = time.monotonic()
        due = force_log or now - self._last_drop_log >= _DROP_LOG_SECONDS
        if total > self._drops_logged and due:
            logger.warning("prediction log dropped %d records (%d in total): the buffer of %d was "
                           "full or writes failed; the disk under %s is not keeping up",
                           total - self._drops_logged, total, self._max_buffer, self.root)
            self._drops_logged, self._last_drop_log = total, now
        return new
