"""Evidently half of the drift benchmark. Runs inside ``bench/.venv-evidently``, never in the
main environment; ``bench/drift.py`` starts it as a subprocess and measures its peak memory.

What a user of Evidently 0.7 does with a prediction log: load the reference and the current
Parquet files into pandas (only the feature columns: less work than loading the whole log),
wrap them in ``Dataset.from_pandas`` with an explicit ``DataDefinition`` (so no column is
mistaken for text or an id), and run ``Report([DataDriftPreset()])`` with its default methods
and thresholds. The per-column flags come from the preset's own per-column tests
("Value Drift for column ..."), so they are Evidently's verdicts, not re-derived here.

Prints one line ``BENCH_RESULT {json}`` on stdout: timings (import, load, report) measured
here, the peak RSS after the imports and at the end (``VmHWM``), and per column the method, statistic, threshold
and drifted flag.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

RESULT_PREFIX = "BENCH_RESULT "


def _peak_rss_bytes() -> int:
    """This process's peak RSS since exec (``VmHWM``). Not ``ru_maxrss``: Linux carries the
    parent's high-water mark over fork and exec into it, so a child's ``ru_maxrss`` is never
    below its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--numerical", required=True, help="comma-separated column names")
    parser.add_argument("--categorical", required=True, help="comma-separated column names")
    args = parser.parse_args()
    numerical = [c for c in args.numerical.split(",") if c]
    categorical = [c for c in args.categorical.split(",") if c]
    columns = numerical + categorical

    warnings.filterwarnings("ignore")
    t_import = time.perf_counter()
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - t_import
    rss_after_import = _peak_rss_bytes()

    t0 = time.perf_counter()
    reference = pd.read_parquet(args.reference, columns=columns)
    current = pd.read_parquet(args.current, columns=columns)
    t_loaded = time.perf_counter()

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    result = snapshot.dict()
    t_done = time.perf_counter()

    per_column: dict[str, dict] = {}
    share = None
    for metric in result["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("ValueDrift"):
            per_column[config["column"]] = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "statistic": metric.get("value"),
                "drifted": None,
            }
        elif kind.endswith("DriftedColumnsCount"):
            share = metric.get("value", {}).get("share")
    dataset_drifted = None
    for test in result.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        failed = test.get("status") == "FAIL"
        if params.get("type", "").endswith("ValueDrift") and params.get("column") in per_column:
            per_column[params["column"]]["drifted"] = failed
        elif params.get("type", "").endswith("DriftedColumnsCount"):
            dataset_drifted = failed
    missing = [c for c in columns if c not in per_column or per_column[c]["drifted"] is None]
    if missing:
        print(f"no drift verdict from Evidently for: {', '.join(missing)}", file=sys.stderr)
        return 2

    out = {
        "system": "evidently",
        "version": evidently.__version__,
        "pandas": pd.__version__,
        "import_s": import_s,
        "load_s": t_loaded - t0,
        "compute_s": t_done - t_loaded,
        "work_s": t_done - t0,
        "rows": [len(reference), len(current)],
        "rss_after_import": rss_after_import,
        "peak_rss": _peak_rss_bytes(),
        "columns": per_column,
        "drifted_share": share,
        "dataset_drifted": dataset_drifted,
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
