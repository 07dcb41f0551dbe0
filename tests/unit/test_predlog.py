"""The prediction log: records round-trip, nothing blocks or vanishes silently, a SIGKILL
loses at most the last flush interval, segments rotate, readers only see complete files."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from threadline.domain import errors
from threadline.serving import predlog, predlog_files

T0 = datetime(2024, 5, 17, 23, 59, 59, 123456, tzinfo=timezone.utc)


def _rec(i: int, *, deployment: str = "churn", inputs: dict[str, object] | None = None,
         when: datetime | None = None) -> predlog.PredictionRecord:
    return predlog.PredictionRecord(
        prediction_id=f"p{i}", trace_id=f"t{i}", time=when or T0 + timedelta(milliseconds=i),
        deployment=deployment, model="churn-model", version=3,
        inputs={"age": i} if inputs is None else inputs, outputs={"label": i % 2},
        confidence=0.9, latency_ms=1.5, escalated=False,
    )


def _files(root: Path, prefix: str) -> list[Path]:
    return sorted(root.glob(f"deployment=*/date=*/{prefix}-*.parquet"))


def test_records_round_trip_with_typed_input_columns(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    inputs = {"age": 41, "income": 52000.5, "plan": "gold", "member": True,
              "Sepal Length (cm)": 5.1, "image": [[0.1, 0.2], [0.3, 0.4]], "missing": None}
    local = T0.astimezone(timezone(timedelta(hours=2)))
    first = predlog.PredictionRecord(
        prediction_id="p1", trace_id="t1", time=local, deployment="churn", model="churn-model",
        version=3, inputs=inputs, outputs={"label": 1, "proba": [0.2, 0.8]}, confidence=0.8,
        latency_ms=12.25, escalated=True, status="ok")
    other = _rec(2, deployment="fraud", when=T0 + timedelta(seconds=1))
    assert log.record(first) and log.record(other)
    log.close()

    table = predlog.read_log(tmp_path, "churn")
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    assert {k: row[k] for k in ("prediction_id", "trace_id", "deployment", "model", "version",
                                "confidence", "latency_ms", "escalated", "status", "date")} == {
        "prediction_id": "p1", "trace_id": "t1", "deployment": "churn", "model": "churn-model",
        "version": 3, "confidence": 0.8, "latency_ms": 12.25, "escalated": True, "status": "ok",
        "date": "2024-05-17"}
    assert row["time"] == T0
    assert json.loads(row["inputs"]) == inputs
    assert json.loads(row["outputs"]) == {"label": 1, "proba": [0.2, 0.8]}
    sepal = predlog_files.column_name("Sepal Length (cm)")
    assert table.schema.field(sepal).type == pa.float64() and row[sepal] == 5.1
    assert [table.schema.field(f"in_{n}").type for n in ("age", "income", "plan", "member")] == [
        pa.int64(), pa.float64(), pa.string(), pa.bool_()]
    typed = (row["in_age"], row["in_income"], row["in_plan"], row["in_member"])
    assert typed == (41, 52000.5, "gold", True)
    assert "in_image" not in table.column_names and "in_missing" not in table.column_names

    both = predlog.read_log(tmp_path)
    assert both["prediction_id"].to_pylist() == ["p1", "p2"]
    assert both["in_age"].to_pylist() == [41, 2]
    assert both["deployment"].to_pylist() == ["churn", "fraud"]
    assert predlog.read_log(tmp_path, "nobody").num_rows == 0


def test_column_names_are_safe_distinct_and_stable() -> None:
    assert predlog_files.column_name("sepal_length") == "in_sepal_length"
    upper, spaced = predlog_files.column_name("Age"), predlog_files.column_name("a b")
    assert upper.startswith("in_age_") and upper != "in_age"
    assert spaced != predlog_files.column_name("a_b") and spaced == predlog_files.column_name("a b")
    assert predlog_files.column_name("a-b") == "in_a_b_" + hashlib.sha256(b"a-b").hexdigest()[:8]
    long = predlog_files.column_name("x" * 500 + "!")
    assert len(long) < 70 and long.replace("_", "").isalnum()


def test_invalid_records_and_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidInput, match="time"):
        _rec(1, when=datetime(2024, 1, 1))
    with pytest.raises(errors.InvalidInput, match="deployment"):
        _rec(1, deployment="../etc")
    fields = {"prediction_id": "p", "trace_id": "t", "time": T0, "deployment": "churn", "model": "m",
              "version": 1, "inputs": {}, "outputs": {}, "confidence": None, "latency_ms": 1.0,
              "escalated": False}
    for name, bad in [("trace_id", "t\ud800"), ("model", b"m"), ("version", 1 << 64), ("version", 1.5),
                      ("latency_ms", "fast"), ("confidence", "high")]:
        with pytest.raises(errors.InvalidInput) as caught:
            predlog.PredictionRecord(**(fields | {name: bad}))  # type: ignore[arg-type]
        assert caught.value.field == name
    plain = predlog.PredictionRecord(**(fields | {"version": np.int64(2), "latency_ms": np.float32(0.5),
                                                 "confidence": 1, "escalated": np.bool_(True)}))
    assert (type(plain.version), type(plain.latency_ms), type(plain.confidence), plain.escalated) == (
        int, float, float, True)
    with pytest.raises(errors.ConfigurationError):
        predlog.PredictionLog(tmp_path, flush_interval=0)


def test_close_flushes_everything_and_later_records_count_as_dropped(tmp_path: Path) -> None:
    flushed: list[int] = []
    log = predlog.PredictionLog(tmp_path, flush_interval=60, on_flush=flushed.append)
    for i in range(1000):
        log.record(_rec(i))
    assert predlog.read_log(tmp_path).num_rows == 0
    log.close()
    assert predlog.read_log(tmp_path).num_rows == 1000 and log.logged == 1000 and flushed == [1000]
    assert not log.record(_rec(1001)) and log.dropped == 1


def test_the_background_thread_flushes_every_interval(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=0.05)
    try:
        log.record(_rec(1))
        deadline = time.monotonic() + 5
        while predlog.read_log(tmp_path).num_rows == 0:
            assert time.monotonic() < deadline, "nothing was flushed"
            time.sleep(0.02)
    finally:
        log.close()


def test_full_buffer_drops_are_counted_and_record_never_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    publish = predlog_files._publish

    def slow_publish(final: Path, encoded: object) -> int:
        time.sleep(0.2)
        return publish(final, encoded)  # type: ignore[arg-type]

    monkeypatch.setattr(predlog_files, "_publish", slow_publish)
    reported: list[int] = []
    log = predlog.PredictionLog(tmp_path, flush_interval=0.02, max_buffer=500,
                                on_drop=reported.append)
    durations: list[float] = []

    def produce(worker: int) -> None:
        for i in range(3000):
            start = time.perf_counter()
            log.record(_rec(worker * 10_000 + i))
            durations.append(time.perf_counter() - start)
            if i % 100 == 0:
                time.sleep(0.005)  # spread over several slow flushes

    with caplog.at_level(logging.WARNING, logger=predlog.__name__):
        threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.close()

    assert log.dropped > 0 and log.logged + log.dropped == 12_000
    assert sum(reported) == log.dropped
    assert max(durations) < 0.1, "record() waited for a write"  # a write takes >= 0.2 s here
    assert sum(durations) / len(durations) < 0.001
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited during the run, plus the total at close
    assert predlog.read_log(tmp_path).num_rows == log.logged


def test_the_buffer_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    big = _rec(1, inputs={"text": "x" * 5_000})
    log = predlog.PredictionLog(tmp_path, flush_interval=60, max_buffer_bytes=3 * big.size)
    assert [log.record(_rec(i, inputs={"text": "x" * 5_000})) for i in range(4)] == [True] * 3 + [False]
    assert log.record(_rec(5, inputs={})) is False  # even a small one, until the next flush
    log.flush()
    assert log.record(_rec(6, inputs={})) and log.dropped == 2
    log.close()
    assert predlog.read_log(tmp_path)["prediction_id"].to_pylist() == ["p0", "p1", "p2", "p6"]
    with pytest.raises(errors.ConfigurationError, match="max_buffer_bytes"):
        predlog.PredictionLog(tmp_path, max_buffer_bytes=1 << 31)


def test_a_failed_write_is_counted_and_logged_and_the_writer_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def full_disk(final: Path, write: object) -> int:
        raise OSError(28, "No space left on device")

    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    with monkeypatch.context() as patch:
        patch.setattr(predlog_files, "_publish", full_disk)
        log.record(_rec(1))
        log.record(_rec(2))
        log.flush()
    assert log.dropped == 2 and "could not write 2 records" in caplog.text
    log.record(_rec(3))
    log.close()
    assert predlog.read_log(tmp_path)["prediction_id"].to_pylist() == ["p3"]


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    from threadline.serving import predlog

    log = predlog.PredictionLog(Path(sys.argv[1]), flush_interval=0.1)
    def rec(i):
        return predlog.PredictionRecord(
            prediction_id=f"p{i}", trace_id="t", time=datetime.now(timezone.utc),
            deployment="churn", model="m", version=1, inputs={"age": i}, outputs={"label": 1},
            confidence=None, latency_ms=1.0, escalated=False)
    for i in range(500):
        log.record(rec(i))
    time.sleep(0.5)  # several flush intervals
    for i in range(500, 600):  # the last interval: these may be lost
        log.record(rec(i))
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    src = Path(predlog.__file__).parents[2]
    path = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env, timeout=60,
                            capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    ids = predlog.read_log(tmp_path)["prediction_id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert {f"p{i}" for i in range(500)} <= set(ids) <= {f"p{i}" for i in range(600)}
    for path in _files(tmp_path, "part") + _files(tmp_path, "seg"):
        pq.read_metadata(path)  # every file under its final name is complete


def test_rotation_by_size_seals_each_segment(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60, rotate_bytes=1)
    for i in range(3):
        log.record(_rec(i))
        log.flush()
    assert len(_files(tmp_path, "seg")) == 3 and _files(tmp_path, "part") == []
    log.close()
    assert predlog.read_log(tmp_path).num_rows == 3


def test_rotation_by_time_seals_an_old_segment_even_when_idle(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60, rotate_seconds=0.2)
    log.record(_rec(1))
    log.flush()
    assert len(_files(tmp_path, "part")) == 1 and _files(tmp_path, "seg") == []
    time.sleep(0.25)
    log.flush()
    assert len(_files(tmp_path, "seg")) == 1 and _files(tmp_path, "part") == []
    log.record(_rec(2))
    log.flush()
    [part] = _files(tmp_path, "part")
    [sealed] = _files(tmp_path, "seg")
    assert sealed.name[len("seg-"):-len(".parquet")] not in part.name
    log.close()
    assert predlog.read_log(tmp_path)["prediction_id"].to_pylist() == ["p1", "p2"]


def test_parts_of_a_segment_are_compacted_into_one_file(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    for i in range(3):
        log.record(_rec(i, inputs={"age": i}))
        log.flush()
    parts = _files(tmp_path, "part")
    assert len(parts) == 3
    assert {_compression(part) for part in parts} == {"UNCOMPRESSED"}  # quick to write, short-lived
    log.close()
    [sealed] = _files(tmp_path, "seg")
    assert _files(tmp_path, "part") == [] and pq.read_metadata(sealed).num_row_groups == 1
    assert _compression(sealed) == "ZSTD"
    assert predlog.read_log(tmp_path)["in_age"].to_pylist() == [0, 1, 2]


def test_a_large_flush_is_one_part_of_several_row_groups_read_back_in_order(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    count = 2 * predlog_files._ENCODE_ROWS + 7
    for i in range(count):
        log.record(_rec(i, inputs={"age": i, "note": f"n{i}"}))
    log.flush()
    [part] = _files(tmp_path, "part")
    metadata = pq.read_metadata(part)
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    assert sizes == [predlog_files._ENCODE_ROWS, predlog_files._ENCODE_ROWS, 7]
    table = predlog.read_log(tmp_path)
    assert table["prediction_id"].to_pylist() == [f"p{i}" for i in range(count)]
    assert table["in_note"].to_pylist() == [f"n{i}" for i in range(count)]
    assert json.loads(table["inputs"][count - 1].as_py()) == {"age": count - 1, "note": f"n{count - 1}"}
    log.close()


def _compression(path: Path) -> str:
    row_group = pq.read_metadata(path).row_group(0)
    kinds = {row_group.column(i).compression for i in range(row_group.num_columns)}
    assert len(kinds) == 1, kinds
    return kinds.pop()


def test_new_input_names_start_a_new_segment_and_ints_widen(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    log.record(_rec(1, inputs={"a": 1}))
    log.flush()
    log.record(_rec(2, inputs={"a": 2}))  # same schema: same segment
    log.flush()
    assert len(_files(tmp_path, "part")) == 2 and _files(tmp_path, "seg") == []
    log.record(_rec(3, inputs={"a": 2.5, "b": "x"}))
    log.flush()
    assert len(_files(tmp_path, "seg")) == 1 and len(_files(tmp_path, "part")) == 1
    log.close()
    table = predlog.read_log(tmp_path)
    assert table.schema.field("in_a").type == pa.float64()
    assert table["in_a"].to_pylist() == [1.0, 2.0, 2.5]
    assert table["in_b"].to_pylist() == [None, None, "x"]


def test_parts_left_behind_by_a_crash_during_sealing_are_not_read_twice(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    for i in range(2):
        log.record(_rec(i))
        log.flush()
    parts = {path: path.read_bytes() for path in _files(tmp_path, "part")}
    log.close()
    for path, data in parts.items():  # as if the writer died between sealing and deleting
        path.write_bytes(data)
    assert predlog.read_log(tmp_path)["prediction_id"].to_pylist() == ["p0", "p1"]


def test_readers_never_see_partial_or_duplicated_records(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=0.01, rotate_bytes=30_000)
    stop = threading.Event()
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            for path in tmp_path.glob("deployment=*/date=*/*.parquet"):
                try:
                    pq.read_metadata(path)
                except FileNotFoundError:
                    continue  # a part deleted once its segment was sealed
                except Exception as exc:  # noqa: BLE001 - any other failure is the bug
                    problems.append(f"{path.name}: {exc}")
            ids = predlog.read_log(tmp_path)["prediction_id"].to_pylist()
            if len(ids) != len(set(ids)):
                problems.append("duplicated records")

    reader = threading.Thread(target=read)
    reader.start()
    count = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        log.record(_rec(count, inputs={"age": count, "note": "x" * 50}))
        count += 1
        if count % 50 == 0:
            time.sleep(0.002)
    log.close()
    stop.set()
    reader.join()
    assert problems == []
    assert len(_files(tmp_path, "seg")) > 2
    assert sorted(predlog.read_log(tmp_path)["prediction_id"].to_pylist()) == sorted(
        f"p{i}" for i in range(count))


def test_records_go_to_the_folder_of_their_utc_day_across_midnight_and_before_1970(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, flush_interval=60)
    before_midnight = T0 + timedelta(microseconds=876_543)  # 23:59:59.999999 UTC
    times = [before_midnight, before_midnight + timedelta(microseconds=1),
             datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone.utc)]
    for i, when in enumerate(times):
        log.record(_rec(i, when=when.astimezone(timezone(timedelta(hours=-5)))))
    log.close()
    table = predlog.read_log(tmp_path).sort_by("prediction_id")
    assert table["date"].to_pylist() == ["2024-05-17", "2024-05-18", "1969-12-31"]
    assert table["time"].to_pylist() == times


def test_a_record_keeps_what_the_log_writes_not_the_inputs_and_outputs_themselves() -> None:
    class Value(list):  # a list that can be weakly referenced
        pass

    features, scores = Value([0.5, 1.5]), Value([0.25, 0.75])
    alive = [weakref.ref(features), weakref.ref(scores)]
    rec = predlog.PredictionRecord(
        prediction_id="p1", trace_id="t1", time=T0, deployment="churn", model="m", version=1,
        inputs={"features": features, "age": 41}, outputs={"proba": scores}, confidence=0.75,
        latency_ms=1.0, escalated=False)
    del features, scores
    gc.collect()
    assert [ref() for ref in alive] == [None, None]  # freed where the record was made
    assert json.loads(rec.inputs_json) == {"features": [0.5, 1.5], "age": 41}
    assert json.loads(rec.outputs_json) == {"proba": [0.25, 0.75]}
    assert rec.scalars == {"age": (int, 41)}
