#!/usr/bin/env python
"""Drift benchmark: Threadline's drift statistics vs Evidently's data drift preset, same data.

    python bench/drift.py                          # 1,000,000 rows per side (a few minutes)
    python bench/drift.py --rows 100000            # quicker
    python bench/drift.py --skip-evidently         # Threadline only (vs the issue's figures)

Generates a reference and a current sample of N rows x 20 numeric (``in_f0``..``in_f19``) and
5 categorical (``in_c0``..``in_c4``, strings) columns, with drift planted in 8 known columns,
and writes each side as one Parquet file laid out like Threadline's prediction log (a few fixed
log columns, then one typed ``in_<name>`` column per input; row groups of 100,000 rows). Then,
one after the other, each system computes the drift of every column in its own child process,
so both peak memories are measured the same way (the child's ``VmHWM``, its peak RSS since exec):

- Threadline: reads one column at a time (``ParquetFile.read(columns=[name])``, never the whole
  table) and calls ``threadline.monitoring.drift.numeric`` / ``categorical`` (categories counted
  with ``pyarrow.compute.value_counts``) with default methods, then ``drift.dataset``.
- Evidently 0.7 (its own venv, ``bench/.venv-evidently``, created on first use):
  ``bench/_evidently_driver.py`` loads both files into pandas and runs
  ``Report([DataDriftPreset()])`` with its defaults.

Prints wall time and peak memory of each, the ratios against the targets (at 1M rows: at least
10x faster, at most a quarter of Evidently's peak memory), and which columns each flagged
against the planted ones (target: Threadline flags exactly those with default settings).
Nothing here asserts; every process started here is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _procs import (
    REPO_ROOT,
    BenchError,
    base_env,
    bench_run,
    ensure_venv,
    interrupt_on_term,
    once,
    stop_group,
    tail,
    threadline_importable,
)

RESULT_PREFIX = "BENCH_RESULT "
DRIVER = BENCH_DIR / "_evidently_driver.py"
EVIDENTLY_VENV = BENCH_DIR / ".venv-evidently"
# pandas 3 removed ``pandas.core.dtypes.common.infer_dtype_from_object``, which Evidently 0.7.23
# still imports at ``import evidently``, so its venv keeps pandas 2 (Evidently pins no upper bound).
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas==2.3.3")

SEED = 6
ROW_GROUP = 100_000
TARGET_SPEEDUP = 10.0  # Evidently's time / Threadline's, at 1M rows
TARGET_MEMORY_SHARE = 0.25  # Threadline's peak / Evidently's, at 1M rows
TARGET_ROWS = 1_000_000
MIB = 1024 * 1024

# Measured in the issue before any Threadline code existed (Evidently 0.7, data of the same shape
# from an earlier generator); shown when --skip-evidently is used with one of these row counts.
REFERENCE_EVIDENTLY = {
    1_000_000: {"work_s": 133.0, "peak_rss": int(1.9 * 1024 * MIB)},
    100_000: {"work_s": 9.0, "peak_rss": 490 * MIB},
}

# --------------------------------------------------------------------------- the data

Sampler = Callable[[Any, int], Any]  # (numpy Generator, n) -> numpy array or pyarrow array


@dataclass(frozen=True)
class Column:
    """One input column: how each side is drawn, and the drift planted in it (None: none)."""

    name: str
    kind: str  # "numeric" or "categorical"
    reference: Sampler
    current: Sampler | None = None  # None: drawn like the reference
    planted: str | None = None
    null_share: float = 0.0  # share of nulls on both sides (inputs a client did not send)

    def draw(self, rng, n: int, side: str):
        import numpy as np
        import pyarrow as pa

        sampler = self.current if side == "current" and self.current is not None else self.reference
        values = sampler(rng, n)
        mask = rng.random(n) < self.null_share if self.null_share else None
        if self.kind == "numeric":
            return pa.array(np.asarray(values, dtype=np.float64), mask=mask)
        if mask is not None:
            import pyarrow.compute as pc

            values = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)
        return values


def _normal(mu: float, sd: float) -> Sampler:
    return lambda rng, n: rng.normal(mu, sd, n)


def _lognormal(mu: float, sigma: float, scale: float = 1.0) -> Sampler:
    return lambda rng, n: scale * rng.lognormal(mu, sigma, n)


def _mixture(weight: float, a: tuple[float, float], b: tuple[float, float]) -> Sampler:
    """A share ``weight`` of values from N(a), the rest from N(b)."""

    def draw(rng, n):
        import numpy as np

        return np.where(rng.random(n) < weight, rng.normal(*a, n), rng.normal(*b, n))

    return draw


def _levels(names: list[str], weights) -> Sampler:
    """Strings drawn from ``names`` with probabilities proportional to ``weights``."""

    def draw(rng, n):
        import numpy as np
        import pyarrow as pa

        p = np.asarray(weights, dtype=np.float64)
        return pa.array(names).take(pa.array(rng.choice(len(names), n, p=p / p.sum())))

    return draw


def _zipf(k: int, a: float = 1.1):
    import numpy as np

    return 1.0 / np.arange(1, k + 1) ** a


def _columns() -> list[Column]:
    """The 25 input columns. Planted drifts are deliberately clear (normalised Wasserstein or
    Jensen-Shannon distance about 0.17-0.6 against the 0.1 threshold): the benchmark checks that
    real drift is found and nothing else, not where a threshold falls."""
    import numpy as np

    def t3(rng, n):
        return rng.standard_t(3, n)

    def age(rng, n):
        return np.clip(np.round(rng.normal(40, 12, n)), 18, 90)

    def flag(rng, n):
        return (rng.random(n) < 0.3).astype(np.float64)

    def outliers(rng, n):  # 15% of values from a component 4 sd away
        return np.where(rng.random(n) < 0.15, rng.normal(4, 1, n), rng.normal(0, 1, n))

    numeric = [
        Column("in_f0", "numeric", _normal(0, 1), _normal(0.5, 1), "mean +0.5 sd"),
        Column("in_f1", "numeric", _normal(10, 2), _normal(10, 3), "sd ×1.5"),
        Column("in_f2", "numeric", _lognormal(3, 0.5), _lognormal(3, 0.5, 1.3), "x1.3 (lognormal)"),
        Column("in_f3", "numeric", _normal(0, 1), outliers, "15% moved to +4 sd"),
        Column("in_f4", "numeric", _mixture(0.5, (-2, 1), (2, 1)), _mixture(0.3, (-2, 1), (2, 1)),
               "modes 50/50 → 30/70"),
        Column("in_f5", "numeric", _normal(0, 1)),
        Column("in_f6", "numeric", _normal(100, 15)),
        Column("in_f7", "numeric", _lognormal(0, 1)),
        Column("in_f8", "numeric", lambda rng, n: rng.uniform(0, 1, n)),
        Column("in_f9", "numeric", lambda rng, n: rng.exponential(2, n)),
        Column("in_f10", "numeric", t3),
        Column("in_f11", "numeric", age),  # integers 18..90 as floats: many ties
        Column("in_f12", "numeric", flag),  # two values only
        Column("in_f13", "numeric", lambda rng, n: rng.beta(2, 5, n)),
        Column("in_f14", "numeric", lambda rng, n: rng.gamma(2, 2, n)),
        Column("in_f15", "numeric", _normal(-5, 0.1)),
        Column("in_f16", "numeric", lambda rng, n: rng.poisson(3, n).astype(np.float64)),
        Column("in_f17", "numeric", _mixture(0.5, (-2, 1), (2, 1))),
        Column("in_f18", "numeric", _normal(0, 1), null_share=0.02),
        Column("in_f19", "numeric", _normal(5e5, 1e5)),
    ]
    c0 = [f"tier_{i}" for i in range(5)]
    c1 = [f"region_{i:02d}" for i in range(20)]
    c2 = ["web", "ios", "android"]
    c3 = [f"product_{i:02d}" for i in range(50)]
    c4 = [f"store_{i:03d}" for i in range(300)]
    z1 = _zipf(20)
    categorical = [
        Column("in_c0", "categorical", _levels(c0, [40, 25, 15, 12, 8]),
               _levels(c0, [20, 25, 15, 12, 28]), "2 shares: 40/8% → 20/28%"),
        Column("in_c1", "categorical", _levels(c1, z1),
               _levels([*c1, "region_new"], np.r_[0.85 * z1 / z1.sum(), 0.15]),
               "new value, 15% of rows"),
        Column("in_c2", "categorical", _levels(c2, [50, 30, 20]), _levels(c2, [30, 30, 40]),
               "50/30/20 → 30/30/40"),
        Column("in_c3", "categorical", _levels(c3, _zipf(50))),
        Column("in_c4", "categorical", _levels(c4, np.ones(300)), null_share=0.01),
    ]
    return numeric + categorical


GENERATOR_VERSION = 1  # bump when the data changes, so --data-dir regenerates


def _schema(columns: list[Column]):
    import pyarrow as pa

    fixed = [
        ("time", pa.timestamp("us", tz="UTC")), ("deployment", pa.string()),
        ("model", pa.string()), ("version", pa.int64()), ("confidence", pa.float64()),
        ("latency_ms", pa.float64()), ("status", pa.string()),
    ]
    typed = [(c.name, pa.float64() if c.kind == "numeric" else pa.string()) for c in columns]
    return pa.schema(fixed + typed)


def write_side(path: Path, side: str, rows: int, seed: int, columns: list[Column]) -> None:
    """Write one side row group by row group (bounded memory), each drawn from its own seed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(columns)
    start_us = 1_767_225_600_000_000 + (0 if side == "reference" else 30 * 86_400_000_000)
    side_id = 0 if side == "reference" else 1
    partial = path.with_name(f".{path.name}.inprogress")
    with pq.ParquetWriter(partial, schema) as writer:
        for group, first in enumerate(range(0, rows, ROW_GROUP)):
            n = min(ROW_GROUP, rows - first)
            rng = np.random.default_rng([seed, side_id, group])
            zeros = pa.array(np.zeros(n, dtype=np.int32))
            fixed = [
                pa.array(start_us + (first + np.arange(n)) * 1000, pa.timestamp("us", tz="UTC")),
                pa.array([f"bench-{side}"]).take(zeros), pa.array(["bench-model"]).take(zeros),
                pa.array(np.ones(n, dtype=np.int64)), pa.array(rng.beta(8, 2, n)),
                pa.array(rng.gamma(2.0, 2.0, n)), pa.array(["ok"]).take(zeros),
            ]
            typed = [
                c.draw(np.random.default_rng([seed, side_id, group, 1 + i]), n, side)
                for i, c in enumerate(columns)
            ]
            writer.write_table(pa.Table.from_arrays(fixed + typed, schema=schema),
                               row_group_size=ROW_GROUP)
    partial.replace(path)


def prepare_data(folder: Path, rows: int, seed: int, columns: list[Column], status) -> tuple[Path, Path]:
    """The two Parquet files in ``folder``: reused when made by the same generator, rows, seed."""
    folder.mkdir(parents=True, exist_ok=True)
    ref, cur, meta = folder / "reference.parquet", folder / "current.parquet", folder / "data.json"
    wanted = {"generator": GENERATOR_VERSION, "rows": rows, "seed": seed, "row_group": ROW_GROUP}
    if ref.exists() and cur.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == wanted:
                status(f"reusing the Parquet files in {folder}")
                return ref, cur
        except ValueError:
            pass
    meta.unlink(missing_ok=True)
    for side, path in (("reference", ref), ("current", cur)):
        status(f"writing {side} data: {rows:,} rows x {len(columns)} inputs")
        write_side(path, side, rows, seed, columns)
    meta.write_text(json.dumps(wanted))
    return ref, cur


# --------------------------------------------------------------------------- child processes


def peak_rss_bytes() -> int:
    """This process's peak RSS since exec (``VmHWM``). Not ``ru_maxrss``: Linux carries the
    parent's high-water mark over fork and exec into it (and ``RUSAGE_CHILDREN`` is the max over
    all children), so a child's ``ru_maxrss`` is never below this script's own peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(name: str, cmd: list[str], env: dict[str, str], tmp: Path, args) -> dict:
    """Run ``cmd`` in its own session; its result line (with its own ``peak_rss``), wall time
    and CPU time (from wait4)."""
    log = tmp / f"{name}.log"
    with open(log, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        stop = once(lambda: stop_group(proc, grace=2))
        args.cleanup.append(stop)
        timer = threading.Timer(args.timeout, lambda: _kill_group(proc.pid))
        timer.daemon = True
        timer.start()
        try:
            out = proc.stdout.read()
            # wait4, not proc.wait: it also returns this child's own CPU time.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            proc.stdout.close()
        wall = time.perf_counter() - started
        stop()
    if proc.returncode != 0:
        killed = " (killed after --timeout)" if proc.returncode == -signal.SIGKILL else ""
        raise BenchError(f"{name} child failed (exit {proc.returncode}){killed}\n{tail(log)}")
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_s"] = wall
            result["cpu_s"] = usage.ru_utime + usage.ru_stime
            return result
    raise BenchError(f"{name} child printed no result line\n{tail(log)}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def ensure_evidently_venv(status) -> Path:
    """Create (once) bench/.venv-evidently with Evidently, and the main env's pyarrow version
    (so both sides read the Parquet files with the same library)."""
    import pyarrow

    return ensure_venv(EVIDENTLY_VENV, [*EVIDENTLY_REQUIREMENTS, f"pyarrow=={pyarrow.__version__}"], status)


def run_threadline(args, tmp: Path, ref: Path, cur: Path, columns: list[Column]) -> dict:
    threadline_importable()  # sets PYTHONPATH for the child when threadline is not installed
    if not (REPO_ROOT / "src" / "threadline" / "monitoring" / "drift.py").exists():
        raise BenchError("src/threadline/monitoring/drift.py does not exist yet")
    cmd = [sys.executable, str(Path(__file__).resolve()), "_threadline_child",
           "--reference", str(ref), "--current", str(cur), *_column_args(columns)]
    return run_child("threadline", cmd, base_env(), tmp, args)


def run_evidently(args, tmp: Path, ref: Path, cur: Path, columns: list[Column], status) -> dict:
    python = ensure_evidently_venv(status)
    env = {k: v for k, v in base_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["DO_NOT_TRACK"] = "1"  # Evidently's telemetry off: no traffic leaves the machine
    cmd = [str(python), str(DRIVER), "--reference", str(ref), "--current", str(cur),
           *_column_args(columns)]
    return run_child("evidently", cmd, env, tmp, args)


def _column_args(columns: list[Column]) -> list[str]:
    return [
        "--numerical", ",".join(c.name for c in columns if c.kind == "numeric"),
        "--categorical", ",".join(c.name for c in columns if c.kind == "categorical"),
    ]


def threadline_child(argv: list[str]) -> int:
    """The Threadline side, in a child process of its own (``drift.py _threadline_child``)."""
    parser = argparse.ArgumentParser(prog="drift.py _threadline_child")
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--numerical", required=True)
    parser.add_argument("--categorical", required=True)
    args = parser.parse_args(argv)
    numerical = [c for c in args.numerical.split(",") if c]
    categorical = [c for c in args.categorical.split(",") if c]

    t_import = time.perf_counter()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from threadline.monitoring import drift

    import_s = time.perf_counter() - t_import
    rss_after_import = peak_rss_bytes()

    t0 = time.perf_counter()
    read_s = 0.0
    # Categorical columns are read as dictionary arrays (as Parquet stores them), so counting
    # works on integer codes rather than on every string.
    files = [pq.ParquetFile(path, read_dictionary=categorical)
             for path in (args.reference, args.current)]

    def column(parquet, name):
        nonlocal read_s
        t = time.perf_counter()
        values = parquet.read(columns=[name]).column(0)
        read_s += time.perf_counter() - t
        return values

    def counts(parquet, name) -> tuple[dict[str, int], int]:
        values = column(parquet, name)
        nulls = values.null_count
        counted = pc.value_counts(values.drop_null() if nulls else values)
        keys, numbers = counted.field("values"), counted.field("counts")
        if hasattr(keys, "dictionary_decode"):
            keys = keys.dictionary_decode()
        return dict(zip(keys.to_pylist(), numbers.to_pylist())), nulls

    features = []
    nulls: dict[str, int] = {}
    for name in numerical:
        reference = column(files[0], name).to_numpy()
        current = column(files[1], name).to_numpy()
        features.append(drift.numeric(reference, current, feature=name))
        del reference, current
    for name in categorical:
        reference, _ = counts(files[0], name)
        current, nulls[name] = counts(files[1], name)
        features.append(drift.categorical(reference, current, feature=name))
    verdict = drift.dataset(features)
    work_s = time.perf_counter() - t0

    out = {
        "system": "threadline",
        "import_s": import_s,
        "load_s": read_s,
        "compute_s": work_s - read_s,
        "work_s": work_s,
        "rss_after_import": rss_after_import,
        "peak_rss": peak_rss_bytes(),
        "columns": {
            f.feature: {
                "method": f.method, "statistic": f.statistic, "threshold": f.threshold,
                "drifted": f.drifted, "sizes": [f.reference_size, f.current_size],
                "missing": f.missing or nulls.get(f.feature, 0), "detail": f.detail,
            }
            for f in verdict.features
        },
        "drifted_share": verdict.drifted_share,
        "dataset_drifted": verdict.drifted,
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------- report


_METHOD_NAMES = {  # Evidently's display names -> Threadline's method names
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "PSI": "psi",
    "Z-test p_value": "z",
}


def short_method(name: str | None) -> str:
    return "—" if name is None else _METHOD_NAMES.get(name, name)


def flagged(result: dict | None) -> set[str] | None:
    if result is None or "columns" not in result:
        return None
    return {name for name, c in result["columns"].items() if c["drifted"]}


def render(console, columns: list[Column], tl: dict | None, ev: dict | None, meta: dict) -> dict:
    from rich.table import Table

    rows = meta["rows"]
    planted = {c.name for c in columns if c.planted}
    ev_ref = ev is None and rows in REFERENCE_EVIDENTLY
    ev_vals = ev if ev is not None else REFERENCE_EVIDENTLY.get(rows)

    def verdict(ok):
        return "" if ok is None else ("[green]met[/]" if ok else "[red]not met[/]")

    # Per column: what was planted, what each flagged.
    table = Table(title=f"Drift per column ({rows:,} rows per side; {len(planted)} planted)")
    table.add_column("column")
    table.add_column("planted drift")
    table.add_column("method")
    for label, result in (("Threadline", tl), ("Evidently", ev)):
        if result is not None:
            table.add_column(label, justify="right")

    def cell(result: dict, c: Column) -> str:
        col = result["columns"].get(c.name)
        if col is None:
            return "[red]no result[/]"
        stat = "—" if col["statistic"] is None else f"{col['statistic']:.3f}"
        if col["drifted"] and c.planted:
            return f"{stat} [green]drift[/]"
        if col["drifted"]:
            return f"{stat} [red]false alarm[/]"
        if c.planted:
            return f"{stat} [red]missed[/]"
        return f"{stat} [dim]no drift[/]"

    for c in columns:
        methods = dict.fromkeys(
            short_method(r["columns"][c.name]["method"])
            for r in (tl, ev) if r is not None and c.name in r["columns"]
        )
        cells = [c.name, c.planted or "", " / ".join(methods)]
        cells += [cell(r, c) for r in (tl, ev) if r is not None]
        table.add_row(*cells)
    console.print(table)

    # Totals against the targets.
    summary = Table(
        title="Drift benchmark: Threadline vs Evidently's DataDriftPreset",
        caption=(
            "time = reading both Parquet files + computing every column's drift, after imports "
            "(Evidently: pandas.read_parquet + Report.run); process = the whole child, with "
            "interpreter start and imports; CPU = its user + system time. Peak RSS = the "
            "child's VmHWM (its peak resident memory since exec)."
            + ("\nEvidently skipped: its column shows the issue's reference figures" if ev_ref else "")
        ),
    )
    summary.add_column("")
    summary.add_column("Threadline", justify="right")
    summary.add_column("Evidently" + (" (ref.)" if ev_ref else ""), justify="right")
    summary.add_column("ratio", justify="right")
    summary.add_column("target (1M rows)", justify="right")
    summary.add_column("")

    g = lambda d, k: None if d is None else d.get(k)
    secs = lambda v: "—" if v is None else f"{v:,.2f} s"
    mib = lambda v: "—" if v is None else f"{v / MIB:,.0f} MiB"
    at_target = rows == TARGET_ROWS

    speedup = None
    if g(tl, "work_s") and g(ev_vals, "work_s"):
        speedup = ev_vals["work_s"] / tl["work_s"]
    summary.add_row("time: read + drift", secs(g(tl, "work_s")), secs(g(ev_vals, "work_s")),
                    "—" if speedup is None else f"{speedup:,.1f}× faster", "≥ 10×",
                    verdict(speedup >= TARGET_SPEEDUP) if speedup is not None and at_target else "")
    summary.add_row("  reading", secs(g(tl, "load_s")), secs(g(ev, "load_s")), "", "", "")
    summary.add_row("  computing", secs(g(tl, "compute_s")), secs(g(ev, "compute_s")),
                    "", "", "")
    summary.add_row("imports", secs(g(tl, "import_s")), secs(g(ev, "import_s")), "", "", "")
    proc_ratio = None
    if g(tl, "process_s") and g(ev, "process_s"):
        proc_ratio = ev["process_s"] / tl["process_s"]
    summary.add_row("process wall", secs(g(tl, "process_s")), secs(g(ev, "process_s")),
                    "" if proc_ratio is None else f"{proc_ratio:,.1f}×", "", "")
    summary.add_row("process CPU", secs(g(tl, "cpu_s")), secs(g(ev, "cpu_s")), "", "", "")
    share = None
    if g(tl, "peak_rss") and g(ev_vals, "peak_rss"):
        share = tl["peak_rss"] / ev_vals["peak_rss"]
    summary.add_row("peak RSS", mib(g(tl, "peak_rss")), mib(g(ev_vals, "peak_rss")),
                    "—" if share is None else f"{share:.2f} ({1 / share:,.1f}× less)",
                    "≤ 0.25",
                    verdict(share <= TARGET_MEMORY_SHARE) if share is not None and at_target else "")
    summary.add_row("  after imports", mib(g(tl, "rss_after_import")),
                    mib(g(ev, "rss_after_import")), "", "", "")

    def found(result):
        got = flagged(result)
        if got is None:
            return "—", None
        hit, extra = len(got & planted), sorted(got - planted)
        text = f"{hit}/{len(planted)} planted"
        if extra:
            text += f" + {len(extra)}"
        return text, got == planted

    tl_text, tl_exact = found(tl)
    ev_text, _ = found(ev)
    summary.add_row("flagged", tl_text, ev_text, "", "the planted",
                    verdict(tl_exact))
    def dataset_verdict(result):
        if g(result, "dataset_drifted") is None:
            return "—"
        text = "yes" if result["dataset_drifted"] else "no"
        share = result.get("drifted_share")
        return text if share is None else f"{text} ({share:.0%})"

    summary.add_row("dataset drift", dataset_verdict(tl), dataset_verdict(ev), "", "", "")
    console.print(summary)
    if not at_target and (speedup is not None or share is not None):
        console.print(f"[dim]time and memory targets apply at {TARGET_ROWS:,} rows; "
                      f"this run has {rows:,}[/]")
    for label, result in (("Threadline", tl), ("Evidently", ev)):
        got = flagged(result)
        if got is not None and got != planted:
            missed, extra = sorted(planted - got), sorted(got - planted)
            console.print(f"{label}: missed {missed or 'none'}; flagged without planted drift "
                          f"{extra or 'none'}")
    return {
        "meta": meta,
        "planted": sorted(planted),
        "threadline": tl,
        "evidently": ev,
        "evidently_is_reference": ev_ref,
        "speedup": speedup,
        "memory_share": share,
        "threadline_exact": tl_exact,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_threadline_child"]:
        return threadline_child(argv[1:])

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS, metavar="N",
                        help="rows per side (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--skip-evidently", action="store_true", help="run Threadline only")
    parser.add_argument("--skip-threadline", action="store_true", help="run Evidently only")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="write the Parquet files here and reuse them on later runs with the "
                             "same --rows and --seed (default: a temp dir, removed at the end)")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="per system (default 3600)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the summary here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (data, logs)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")

    from rich.console import Console

    interrupt_on_term()
    console = Console()
    columns = _columns()
    tl = ev = None
    load = os.getloadavg()[0]
    if load > 1.0:
        console.print(f"[yellow]1-minute load average {load:.2f}: if something else is running, "
                      "both columns move with it on a 2-core machine[/]")
    with bench_run(console, args, "threadline-drift-") as tmp:
        with console.status("preparing") as spinner:

            def status(msg: str) -> None:
                spinner.update(msg)
                console.log(msg)

            t0 = time.monotonic()
            ref, cur = prepare_data(args.data_dir or tmp / "data", args.rows, args.seed, columns,
                                    status)
            console.log(f"data ready in {time.monotonic() - t0:,.1f}s "
                        f"({(ref.stat().st_size + cur.stat().st_size) / MIB:,.0f} MiB on disk)")
            if not args.skip_threadline:
                status(f"Threadline: drift of {len(columns)} columns")
                tl = run_threadline(args, tmp, ref, cur, columns)
                console.log(f"Threadline done in {tl['process_s']:,.1f}s")
            if not args.skip_evidently:
                status(f"Evidently: DataDriftPreset on {len(columns)} columns")
                ev = run_evidently(args, tmp, ref, cur, columns, status)
                console.log(f"Evidently {ev['version']} done in {ev['process_s']:,.1f}s")
        meta = {
            "rows": args.rows,
            "seed": args.seed,
            "columns": len(columns),
            "row_group": ROW_GROUP,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            "evidently": (ev or {}).get("version"),
        }
        summary = render(console, columns, tl, ev, meta)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
            console.print(f"summary written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
