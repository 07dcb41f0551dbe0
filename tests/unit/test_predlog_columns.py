"""Buffered records as Arrow columns: every field, typed inputs that come and go, widen or
clash, and a segment's wider schema, give exactly the table of the records appended."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from threadline.serving import predlog, predlog_columns, predlog_files

T0 = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)


def _rec(i: int, inputs: dict[str, object], **fields: object) -> predlog.PredictionRecord:
    values: dict[str, object] = dict(
        prediction_id=f"p{i}", trace_id=f"t{i}", time=T0 + timedelta(microseconds=i),
        deployment="churn", model="churn-model", version=3, inputs=inputs,
        outputs={"label": i % 2}, confidence=0.5 + i / 100, latency_ms=float(i), escalated=False)
    return predlog.PredictionRecord(**(values | fields))  # type: ignore[arg-type]


def _columns(records: list[predlog.PredictionRecord]) -> predlog_columns.Columns:
    columns = predlog_columns.Columns()
    for rec in records:
        columns.append(rec)
    return columns


def test_every_fixed_field_round_trips_including_missing_confidence_and_non_ascii_text() -> None:
    records = [
        _rec(0, {"features": [0.5, 1.5]}),
        _rec(1, {"mot": "crème brûlée ☕"}, trace_id="trace-ü", model="modèle", confidence=None,
             escalated=True, status="error", version=7),
        _rec(2, {}, outputs={"proba": [0.25, 0.75]}),
    ]
    columns = _columns(records)
    assert columns.rows == 3
    table = columns.table(columns.kinds)
    assert table.schema == predlog_files.schema({"mot": str})
    rows = table.to_pylist()
    for row, rec in zip(rows, records):
        assert {k: row[k] for k in ("prediction_id", "trace_id", "deployment", "model", "version",
                                    "confidence", "latency_ms", "escalated", "status", "time")} == {
            "prediction_id": rec.prediction_id, "trace_id": rec.trace_id,
            "deployment": rec.deployment, "model": rec.model, "version": rec.version,
            "confidence": rec.confidence, "latency_ms": rec.latency_ms,
            "escalated": rec.escalated, "status": rec.status, "time": rec.time}
        assert row["inputs"].encode() == rec.inputs_json
        assert row["outputs"].encode() == rec.outputs_json
    assert json.loads(rows[1]["inputs"]) == {"mot": "crème brûlée ☕"}
    assert [row["in_mot"] for row in rows] == [None, "crème brûlée ☕", None]
    table.validate(full=True)  # offsets and UTF-8 of every text column are sound


def test_typed_inputs_that_come_and_go_widen_or_clash() -> None:
    columns = _columns([
        _rec(0, {"age": 41, "plan": "gold", "member": True}),
        _rec(1, {"plan": 3, "member": np.bool_(False)}),  # age missing; plan now clashes
        _rec(2, {"age": 2.5, "score": np.float32(0.25), "count": np.int64(7)}),
        _rec(3, {"member": True}),  # age, score and count missing at the end
    ])
    assert columns.kinds == {"age": float, "member": bool, "score": float, "count": int}
    table = columns.table(columns.kinds)
    assert "in_plan" not in table.column_names  # a string and an integer: left out
    assert table["in_age"].to_pylist() == [41.0, None, 2.5, None]
    assert table["in_member"].to_pylist() == [True, False, None, True]
    assert table["in_score"].to_pylist() == [None, None, 0.25, None]
    assert table["in_count"].to_pylist() == [None, None, 7, None]
    assert table.schema.field("in_count").type == pa.int64()


def test_text_that_utf8_cannot_encode_stays_in_the_json_only() -> None:
    columns = _columns([_rec(0, {"note": "ok"}), _rec(1, {"note": "bad \ud800"})])
    table = columns.table(columns.kinds)
    table.validate(full=True)
    assert table["in_note"].to_pylist() == ["ok", None]
    assert json.loads(table["inputs"][1].as_py()) == {"note": "bad \ud800"}


def test_a_segments_wider_schema_gets_nulls_where_the_buffer_has_nothing_that_fits() -> None:
    columns = _columns([_rec(0, {"age": 41}), _rec(1, {"age": 42, "note": "x"})])
    wider = {"age": float, "note": str, "region": str, "flag": bool}
    table = columns.table(wider)
    assert table.schema == predlog_files.schema(wider)
    assert table["in_age"].to_pylist() == [41.0, 42.0]  # integers in a float column
    assert table["in_note"].to_pylist() == [None, "x"]
    assert table["in_region"].null_count == 2 and table["in_flag"].null_count == 2
    assert columns.table({"age": str})["in_age"].null_count == 2  # integers never go in as text


def test_an_empty_buffer_is_an_empty_table() -> None:
    table = predlog_columns.Columns().table({"age": int})
    assert table.num_rows == 0 and table.schema == predlog_files.schema({"age": int})
