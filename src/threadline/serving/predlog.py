"""The prediction log: every prediction recorded, with no disk I/O in the request path.

``PredictionLog.record`` appends to a bounded in-memory list under a lock and returns at
once, so it is safe from any thread and from asyncio code (it never awaits or blocks on
I/O). A background thread wakes every ``flush_interval`` (default 1 s) and writes what has
accumulated as one complete Parquet part per deployment and day (layout, columns and
compaction: ``predlog_files``). A SIGKILL therefore loses only the records of the last
interval (plus a flush that was being written); ``close()`` loses nothing.

When the disk cannot keep up and the list is full, ``record`` refuses the record and
returns False. Refused records (and those of a failed write) are counted in ``dropped``,
passed to ``on_drop`` and logged as a warning at most every 10 s, never lost silently.

Parts of a deployment and day form a segment, which is sealed (compacted into one file)
when its parts reach ``rotate_bytes``, when it is ``rotate_seconds`` old, when records bring
new input names or types, and at ``close()``.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import InitVar, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping

from threadline.domain import errors
from threadline.serving import predlog_files

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

    What the log writes is taken from them when the record is made: their JSON text, and the
    scalar inputs (with their types) for the typed ``in_`` columns. The record keeps only that,
    not the values themselves: the server makes records after answering, where the work waits
    for nobody, while the writer thread's work (freeing thousands of inputs' Python values each
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
    inputs_json: str = field(init=False)
    outputs_json: str = field(init=False)
    scalars: dict[str, tuple[type, object]] = field(init=False)

    def __post_init__(self, inputs: Mapping[str, object], outputs: Mapping[str, object]) -> None:
        if self.time.utcoffset() is None:
            raise errors.InvalidInput("must be timezone-aware (UTC)", field="time")
        if not _SAFE_DEPLOYMENT.match(self.deployment):
            raise errors.InvalidInput(f"{self.deployment!r} cannot name a folder",
                                      field="deployment")
        # Microseconds since the epoch are what the time column holds: Arrow converts a list
        # of integers 15 times as fast as one of timezone-aware datetimes.
        self.time_us = (self.time - _EPOCH) // _MICROSECOND
        self.inputs_json = predlog_files.json_text(inputs)
        self.outputs_json = predlog_files.json_text(outputs)
        self.scalars = predlog_files.scalars(inputs)


class PredictionLog:
    """Buffers records and writes them from a background thread (see the module docstring).

    ``on_flush(n)`` runs on the writer thread after ``n`` records reached disk; ``on_drop(n)``
    after ``n`` more were dropped; ``on_seal(path)`` after a segment was sealed into ``path``.
    All must be quick; they delay the next flush.
    """

    def __init__(self, root: Path, *, flush_interval: float = 1.0, max_buffer: int = 100_000,
                 rotate_bytes: int = 64 << 20, rotate_seconds: float = 300.0,
                 on_flush: Callable[[int], None] | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 on_seal: Callable[[Path], None] | None = None) -> None:
        if flush_interval <= 0 or max_buffer < 1 or rotate_bytes < 1 or rotate_seconds <= 0:
            raise errors.ConfigurationError(
                "prediction log: flush_interval, max_buffer, rotate_bytes and rotate_seconds "
                "must be positive")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.ConfigurationError(
                f"prediction log location {root} is not usable: {exc.strerror}") from exc
        self.root = root
        self._interval, self._max_buffer = flush_interval, max_buffer
        self._rotate_bytes, self._rotate_seconds = rotate_bytes, rotate_seconds
        self._on_flush, self._on_drop, self._on_seal = on_flush, on_drop, on_seal
        self._writer_id = secrets.token_hex(4)
        self._lock = threading.Lock()  # guards the buffer and counters; never held during I/O
        self._io_lock = threading.Lock()  # one flush at a time
        self._buffer: list[PredictionRecord] = []
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
        with self._lock:
            if self._closed or len(self._buffer) >= self._max_buffer:
                self._dropped += 1
                return False
            self._buffer.append(rec)
            return True

    def flush(self, *, seal_all: bool = False) -> None:
        """Write everything buffered now, then seal the segments that are due (all if asked)."""
        with self._io_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            written = self._write(batch)
            predlog_files.release(batch)
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

    def _write(self, batch: list[PredictionRecord]) -> int:
        """Write ``batch`` as one part per deployment and day; return how many reached disk."""
        written = 0
        groups: dict[tuple[str, int], list[PredictionRecord]] = {}
        for rec in predlog_files.paced(batch):
            groups.setdefault((rec.deployment, rec.time_us // _DAY_US), []).append(rec)
        for (deployment, days), records in groups.items():
            key = (deployment, (_EPOCH + timedelta(days=days)).date().isoformat())
            try:
                self._segment_for(key, records).write(records)
            except Exception:
                with self._lock:
                    self._dropped += len(records)
                logger.exception("prediction log: could not write %d records of deployment %s "
                                 "under %s; counted as dropped", len(records), key[0], self.root)
                continue
            written += len(records)
        self._logged += written
        return written

    def _segment_for(self, key: tuple[str, str],
                     records: list[PredictionRecord]) -> predlog_files.Segment:
        """The open segment of ``key``, or a new one if there is none or its schema differs."""
        segment = self._segments.get(key)
        old = segment.kinds if segment is not None else {}
        kinds = predlog_files.merge_kinds(old, predlog_files.input_kinds(predlog_files.paced(records)))
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
