#!/usr/bin/env python
"""Serving benchmark: threadline serve vs a bare Starlette endpoint vs mlflow models serve.

    python bench/serving.py               # 3 rounds of 5 s per load level, 3 timed starts (~10 min)
    python bench/serving.py --quick       # 1 round of 2 s per level, 1 start (~2 min)
    python bench/serving.py --skip-mlflow --models rf --connections 64

Two small models (a LogisticRegression and a 50-tree RandomForest on 20 numeric features,
fitted on a numpy array) are served one row per request, one server at a time, and loaded by
the same closed-loop generator (``_loadgen.c``, built at the start; see ``_load`` for why not
``wrk``) at 1, 16 and 64 connections:

  (a) in-process ``predict_proba`` in a loop (no HTTP): the ceiling;
  (b) a minimal hand-written Starlette endpoint on uvicorn + uvloop + httptools
      (``bench/_bare_app.py``): JSON in, ``predict_proba``, JSON out;
  (c) ``threadline serve`` with authentication (control-plane tokens), /metrics and the
      Parquet prediction log on, i.e. its defaults;
  (d) ``mlflow models serve --env-manager local`` (MLflow 3.17.2 in ``bench/.venv-mlflow``).

Servers run pinned to one core (``taskset -c 0``), the load generator, the control plane and
this script on the other. All servers of a model are up at once and take turns: each load level
is measured in rounds (bare, threadline, MLflow, then again), the servers not measured
paused with SIGSTOP, and each figure is the median of its rounds, so that a change in the
machine's load during the run moves every server alike instead of favouring the one that ran
in a quiet minute. It prints requests/s, p50 and p99 per server and load level, the ratios
against (b) and MLflow, the time from process start to ready, and the targets. Every process
started here is stopped at the end (also on Ctrl-C or an error). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import _load as load
import _workload as w
from _procs import (
    LOOPBACK,
    VENV_DIR,
    BenchError,
    Server,
    base_env,
    ensure_mlflow_venv,
    free_port,
    http_call,
    http_status,
    interrupt_on_term,
    mlflow_env,
    pinned,
    bench_run,
    tail,
    threadline_importable,
)

RESULT_PREFIX = "BENCH_RESULT "
REQUEST_ROWS = 256  # distinct rows the load generator cycles through
SEED = 0


@dataclass(frozen=True)
class ModelSpec:
    key: str
    name: str  # registered name in Threadline, and the OIP model name for (b)
    title: str
    short: str


MODELS = {
    "lr": ModelSpec("lr", "bench-lr", "LogisticRegression", "LR"),
    "rf": ModelSpec("rf", "bench-rf", "RandomForestClassifier (50 trees)", "RF"),
}
SERVERS = ("bare", "threadline", "mlflow")
LABELS = {
    "raw": "(a) in-process",
    "bare": "(b) bare",
    "threadline": "(c) threadline",
    "mlflow": "(d) mlflow",
}

# Targets for (c), from the issue.
LR_TARGET_CONNECTIONS = (1, 16)
LR_MIN_THROUGHPUT = 0.9  # × (b)
LR_MAX_P99 = 1.2  # × (b)
RF_TARGET_CONNECTIONS = 64
RF_MIN_SPEEDUP = 5.0  # × (b) and × MLflow, with p99 below (b)'s
START_MAX_RATIO = 1.5  # start-to-ready, × (b)

# Same on every server and in (a): one BLAS/OpenMP thread, as the server has one core.
THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


MEDIAN_FIGURES = ("rps", "p50_ms", "p99_ms", "max_ms", "p99_wrk_ms")  # per level, over its rounds
NOISY_PERCENT = 10.0  # other processes' CPU (% of one core) above which a level is flagged

# --------------------------------------------------------------------------- CPU accounting
# The benchmark owns the machine only if nothing else runs: it measures what else did.

_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds that processes could have been charged for, all CPUs, since boot: user,
    nice, system and steal (another VM's) from /proc/stat. Interrupt time is left out: it is
    mostly the loopback traffic of the benchmark itself, charged to no process."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]] + [0] * 8
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    return (user + nice + system + steal) / _TICK


def group_cpu_seconds(pgids: set[int]) -> float:
    """CPU seconds used so far by the live processes of these process groups."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                rest = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(rest[2]) in pgids:  # pgrp; utime and stime follow at 11 and 12
            total += int(rest[11]) + int(rest[12])
    return total / _TICK


class CpuWatch:
    """CPU used by other processes while a block runs, in % of one core: everything the
    machine did minus this process, its waited-for children (the load generator) and the given
    groups."""

    def __init__(self, pgids: set[int]):
        self.pgids = pgids

    def __enter__(self) -> Self:
        self._t = time.perf_counter()
        self._busy = machine_busy_seconds()
        self._ours = self._our_seconds()
        return self

    def __exit__(self, *exc) -> None:
        elapsed = time.perf_counter() - self._t
        other = (machine_busy_seconds() - self._busy) - (self._our_seconds() - self._ours)
        self.other_percent = max(0.0, 100.0 * other / elapsed) if elapsed > 0 else math.nan

    def _our_seconds(self) -> float:
        import resource

        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
                + group_cpu_seconds(self.pgids))


def idle_check(seconds: float = 1.0) -> float:
    """Busy % of one core used by the machine over ``seconds``, before anything starts."""
    with CpuWatch(set()) as watch:
        time.sleep(seconds)
    return watch.other_percent


# --------------------------------------------------------------------------- models and data


def train_models(keys: list[str]):
    """The two estimators on 1,000 × 20 numeric features as a numpy array (no column names,
    so Threadline's inferred signature is one tensor ``input-0`` FP64 [-1, 20])."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    frame, labels = w.make_training_data()
    x, y = frame.to_numpy(dtype="float64"), labels.to_numpy()
    makers = {
        "lr": lambda: LogisticRegression(max_iter=1_000, random_state=SEED),
        "rf": lambda: RandomForestClassifier(n_estimators=50, random_state=SEED),
    }
    return {key: makers[key]().fit(x, y) for key in keys}, x[:REQUEST_ROWS].copy()


def request_bodies(kind: str, rows) -> list[bytes]:
    import orjson

    if kind == "mlflow":
        return [orjson.dumps({"inputs": [row.tolist()]}) for row in rows]
    return [
        orjson.dumps(
            {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, rows.shape[1]],
                         "data": row.tolist()}]}
        )
        for row in rows
    ]


def probabilities_of(kind: str, body: bytes) -> list[float]:
    document = json.loads(body)
    if kind == "mlflow":
        return [float(v) for row in document["predictions"] for v in row]
    for tensor in document["outputs"]:
        if tensor["name"] == "probabilities":
            return [float(v) for v in tensor["data"]]
    raise BenchError(f"no probabilities in {body[:200]!r}")


# --------------------------------------------------------------------------- servers


def server_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else base_env())
    env.update(THREAD_LIMITS)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Target:
    """How to start one server for one model, and how to talk to it."""

    def __init__(self, kind: str, spec: ModelSpec, ctx: dict):
        self.kind, self.spec, self.ctx = kind, spec, ctx
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        if kind == "threadline":
            self.headers["Authorization"] = f"Bearer {ctx['token']}"
        self.infer_path = "/invocations" if kind == "mlflow" else f"/v2/models/{spec.name}/infer"
        self.ready_path = {"bare": "/health", "threadline": "/v2/health/ready", "mlflow": "/ping"}[kind]

    def start(self, args, port: int, log: Path) -> Server:
        tmp: Path = self.ctx["tmp"]
        if self.kind == "bare":
            cmd = [sys.executable, "-m", "uvicorn", "--factory", "_bare_app:create_app",
                   "--app-dir", str(BENCH_DIR), "--host", LOOPBACK, "--port", str(port),
                   "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning"]
            env = server_env({"BENCH_MODEL_PATH": str(self.ctx["skops"][self.spec.key]),
                              "BENCH_MODEL_NAME": self.spec.name})
        elif self.kind == "threadline":
            version = self.ctx["versions"][self.spec.key]
            cmd = [sys.executable, "-m", "threadline", "serve", "-m", f"{self.spec.name}@{version}",
                   "--host", LOOPBACK, "--port", str(port)]
            env = server_env(self.ctx["threadline_env"])
        else:
            cmd = [str(VENV_DIR / "bin" / "mlflow"), "models", "serve",
                   "-m", str(self.ctx["mlflow_dirs"][self.spec.key]), "--env-manager", "local",
                   "-p", str(port), "-h", LOOPBACK, "-w", "1"]
            env = server_env(base=mlflow_env())
        return Server(f"{self.kind}/{self.spec.key}", cmd, env, cwd=tmp, log=log,
                      cpus=args.server_cpus)


def scrape_metrics(base_url: str, headers: dict[str, str]) -> dict[str, float]:
    wanted = {
        "threadline_batch_rows_sum", "threadline_batch_rows_count",
        "threadline_batch_requests_sum", "threadline_batch_requests_count",
        "threadline_predictions_logged_total", "threadline_predictions_dropped_total",
        "threadline_inference_requests_total",
    }
    status, body = http_call(f"{base_url}/metrics", headers=headers)
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}: {body[:200]!r}")
    values: dict[str, float] = dict.fromkeys(wanted, 0.0)
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        if name in wanted:
            values[name] += float(value)
    return values


class Live:
    """One server kept up for the load levels, paused (SIGSTOP) while another is measured, so
    that servers taking turns on the one core never disturb each other."""

    def __init__(self, target: Target, server: Server, port: int, requests: Path, result: dict):
        self.target, self.server, self.port, self.requests = target, server, port, requests
        self.base_url = f"http://{LOOPBACK}:{port}"
        self.result = result

    def pause(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.server.proc.pid, signal.SIGCONT)
        self.server.check_alive()


def start_servers(args, targets: list[Target], expected: list[float], status) -> list[Live]:
    """Time ``args.starts`` starts of every server, the servers taking turns (as the load levels
    do, so that a slower minute of the machine, or its page cache being trimmed, slows them
    alike); the last start of each stays up, checked and paused, for the load levels."""
    starts: dict[str, list[float]] = {target.kind: [] for target in targets}
    servers: list[Live] = []
    for i in range(args.starts):
        for target in targets:
            status(f"{LABELS[target.kind]}, {target.spec.title}: start {i + 1}/{args.starts}")
            port = free_port()
            server = target.start(args, port, target.ctx["tmp"] / f"{target.kind}-{target.spec.key}.log")
            args.cleanup.append(server.stop)
            starts[target.kind].append(server.wait_ready(
                f"http://{LOOPBACK}:{port}{target.ready_path}", args.startup_timeout))
            if i < args.starts - 1:
                server.stop()
            else:
                servers.append(checked(target, server, port, expected, starts[target.kind]))
    return servers


def checked(target: Target, server: Server, port: int, expected: list[float],
            starts: list[float]) -> Live:
    """``server``, paused, once it answered the first row as in-process (and, for threadline,
    refused a request without a token)."""
    kind, spec = target.kind, target.spec
    label = f"{LABELS[kind]}, {spec.title}"
    base_url = f"http://{LOOPBACK}:{port}"
    bodies = request_bodies(kind, target.ctx["rows"])
    code, body = http_call(base_url + target.infer_path, bodies[0], target.headers)
    if code != 200:
        raise BenchError(f"{label}: first request answered {code}: {body[:300]!r}\n{tail(server.log)}")
    got = probabilities_of(kind, body)
    if len(got) != len(expected) or any(abs(a - b) > 1e-9 for a, b in zip(got, expected)):
        raise BenchError(f"{label}: probabilities {got} differ from in-process {expected}")
    if kind == "threadline":
        unauth = {k: v for k, v in target.headers.items() if k != "Authorization"}
        code, _ = http_call(base_url + target.infer_path, bodies[0], unauth)
        if code != 401:
            raise BenchError(f"{label}: a request without a token answered {code}, not 401")
    requests = load.write_requests(target.ctx["tmp"] / f"{kind}-{spec.key}.requests",
                                   f"{LOOPBACK}:{port}", target.infer_path, target.headers, bodies)
    live = Live(target, server, port, requests,
                {"server": kind, "model": spec.key, "start_s": starts, "levels": []})
    live.pause()
    return live


def run_load(args, live: Live, connections: int, seconds: int) -> dict:
    return load.run(args.loadgen, live.requests, LOOPBACK, live.port, connections, seconds,
                    args.client_cpus, live.requests.with_suffix(".samples"))


def measure_round(args, live: Live, connections: int) -> dict:
    """Warm up, then one measured run of ``connections`` against ``live`` (resumed meanwhile)."""
    live.resume()
    try:
        if args.warmup > 0:
            run_load(args, live, connections, args.warmup)
        threadline = live.target.kind == "threadline"
        before = scrape_metrics(live.base_url, live.target.headers) if threadline else None
        with CpuWatch(args.own_groups | {live.server.proc.pid}) as watch:
            level = run_load(args, live, connections, args.duration)
        level["other_cpu_percent"] = watch.other_percent
        live.server.check_alive()
        if before is not None:
            after = scrape_metrics(live.base_url, live.target.headers)
            level["batch_calls"] = after["threadline_batch_rows_count"] - before["threadline_batch_rows_count"]
            level["batch_rows"] = after["threadline_batch_rows_sum"] - before["threadline_batch_rows_sum"]
    finally:
        live.pause()
    return level


def median_level(rounds: list[dict]) -> dict:
    """One level from its rounds: the median of each figure, errors summed, the noisiest round's
    other CPU, and every round kept for the JSON."""
    level = {"connections": rounds[0]["connections"], "rounds": rounds,
             **{key: median([r[key] for r in rounds]) for key in MEDIAN_FIGURES},
             "errors": sum(r["errors"] for r in rounds),
             "error_detail": {k: sum(r["error_detail"][k] for r in rounds) for k in rounds[0]["error_detail"]},
             "other_cpu_percent": max(r["other_cpu_percent"] for r in rounds)}
    calls = sum(r.get("batch_calls", 0) for r in rounds)
    if calls:
        level["rows_per_call"] = sum(r["batch_rows"] for r in rounds) / calls
    return level


def run_levels(args, servers: list[Live], title: str, status) -> None:
    """Every load level, ``args.rounds`` times, the servers taking turns within each round."""
    for connections in args.connections:
        rounds: dict[str, list[dict]] = {live.target.kind: [] for live in servers}
        for n in range(args.rounds):
            for live in servers:
                status(f"{title}, {connections} connections: round {n + 1}/{args.rounds}, "
                       f"{LABELS[live.target.kind]} ({args.warmup} s warm-up, {args.duration} s)")
                rounds[live.target.kind].append(measure_round(args, live, connections))
        for live in servers:
            live.result["levels"].append(median_level(rounds[live.target.kind]))


def finish(live: Live) -> dict:
    """Stop the server; for threadline, read the prediction log's counters first."""
    live.resume()
    if live.target.kind == "threadline":
        time.sleep(1.5)  # one more flush interval of the prediction log
        live.result["metrics"] = scrape_metrics(live.base_url, live.target.headers)
    live.server.stop()
    return live.result


def run_raw(args, model: Path, rows: Path, seconds: int) -> list[dict]:
    """(a): ``predict_proba`` in a loop in one process on the server's core, 1 and 64 rows."""
    cmd = [sys.executable, str(BENCH_DIR / "_bare_app.py"), "raw", "--model", str(model),
           "--rows", str(rows), "--duration", str(seconds), "--warmup", "0.5",
           "--batch", "1", "--batch", "64"]
    with CpuWatch(args.own_groups) as watch:
        proc = subprocess.run(pinned(cmd, args.server_cpus), env=server_env(), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"in-process measurement failed:\n{proc.stdout}\n{proc.stderr}")
    entries = json.loads(line[len(RESULT_PREFIX):])
    for entry in entries:
        # The child ran on one core and was counted as ours; the rest is someone else's.
        entry["other_cpu_percent"] = watch.other_percent
    return entries


def compile_bytecode(args) -> None:
    """Compile Threadline's and the bare app's sources to bytecode, as installing a package
    does: an editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this sandbox sets it) would
    otherwise compile every module at every start, about 0.15 s that no installed server pays.
    MLflow and every library come from installed packages, already compiled."""
    import compileall
    import importlib.util

    compileall.compile_file(str(BENCH_DIR / "_bare_app.py"), quiet=1)
    if not args.skip_threadline:
        spec = importlib.util.find_spec("threadline")
        if spec is None or not spec.submodule_search_locations:
            raise BenchError("threadline is not importable: pip install -e '.[test]'")
        compileall.compile_dir(spec.submodule_search_locations[0], quiet=1)


def warm_imports(args) -> None:
    """Import what every server imports once, untimed, so no timed start pays for a cold
    disk cache (the first start after boot or an install would otherwise be seconds slower)."""
    main_env = ("import uvicorn, uvloop, httptools, starlette, orjson, skops.io, "
                "sklearn.ensemble, sklearn.linear_model")
    if not args.skip_threadline:
        main_env += ", threadline.cli.main, threadline.serving.server, threadline.registry.flavors"
    jobs = [([sys.executable, "-c", main_env], server_env())]
    if not args.skip_mlflow:
        jobs.append(([str(VENV_DIR / "bin" / "python"), "-c",
                      "import mlflow.pyfunc.scoring_server, mlflow.sklearn, uvicorn, fastapi"],
                     server_env(base=mlflow_env())))
    for cmd, env in jobs:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300, check=False)
        if proc.returncode != 0:
            raise BenchError(f"warm-up import failed: {' '.join(cmd)}\n{proc.stderr}")


# --------------------------------------------------------------------------- control plane


def start_control_plane(args, tmp: Path, models: dict, status) -> dict:
    threadline_importable()
    home = tmp / "threadline-home"
    home.mkdir()
    env = {k: v for k, v in server_env().items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_HOME"] = str(home)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = Server("threadline control plane",
                    [sys.executable, "-m", "threadline", "up", "--host", LOOPBACK, "--port", str(port)],
                    env, cwd=tmp, log=tmp / "control-plane.log", cpus=args.client_cpus)
    args.cleanup.append(server.stop)
    args.own_groups.add(server.proc.pid)
    status(f"starting the Threadline control plane on {url}")
    token_file = home / "admin.token"
    deadline = time.monotonic() + args.startup_timeout
    token = None
    while True:
        server.check_alive()
        if token is None and token_file.exists():
            token = token_file.read_text().strip() or None
        if token and http_status(f"{url}/api/v1/models", {"Authorization": f"Bearer {token}"}) == 200:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"the control plane did not answer within {args.startup_timeout}s\n"
                             f"{tail(server.log)}")
        time.sleep(0.1)

    from threadline import Client

    versions = {}
    with Client(url, token) as client:
        for key, model in models.items():
            status(f"registering {MODELS[key].name}")
            out = client.register_model(model, MODELS[key].name, owner="bench")
            versions[key] = out["version"]
            signature = client.get_version(MODELS[key].name, str(out["version"]))["signature"]
            names = [spec.get("name") for spec in signature.get("inputs", [])]
            if names != ["input-0"]:
                raise BenchError(f"{MODELS[key].name}: expected one input 'input-0', got {names}")
    serve_env = {k: v for k, v in base_env().items() if not k.startswith("THREADLINE_")}
    serve_env.update(THREADLINE_URL=url, THREADLINE_TOKEN=token, THREADLINE_HOME=str(home))
    return {"token": token, "versions": versions, "threadline_env": serve_env}


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a, b):
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None
    return a / b


def fmt(v, spec="{:,.0f}") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else spec.format(v)


def other_cell(percent) -> str:
    text = fmt(percent, "{:.0f}%")
    return f"[red]{text}[/]" if percent is not None and percent > NOISY_PERCENT else text


def render_model(console, spec: ModelSpec, results: dict, args) -> tuple[list[str], list[str]]:
    """One table for one model; returns (targets not met, noisy levels) as text."""
    from rich.table import Table

    def x(v):
        return fmt(v, "{:,.2f}×")

    misses: list[str] = []
    noisy: list[str] = []
    table = Table(title=f"{spec.title}: 1 row per request; median of {args.rounds} round(s) of "
                        f"{args.duration} s per level, the servers taking turns",
                  title_justify="left")
    for col in ("server", "conns", "req/s", "p50 ms", "p99 ms", "×(b)", "p99 ×(b)", "×MLflow",
                "rows/call", "other CPU", "(c) target"):
        table.add_column(col, justify="left" if col in ("server", "(c) target") else "right",
                         no_wrap=col != "(c) target")

    for entry in results.get(("raw", spec.key)) or []:
        label = "(a) in-process" if entry["batch"] == 1 else f"(a) {entry['batch']} rows/call"
        rate = fmt(entry["rows_per_s"]) + (" rows" if entry["batch"] != 1 else "")
        table.add_row(label, "—", rate, fmt(entry["p50_ms"], "{:,.2f}"),
                      fmt(entry["p99_ms"], "{:,.2f}"), "", "", "", str(entry["batch"]),
                      other_cell(entry.get("other_cpu_percent")), "")
        if (entry.get("other_cpu_percent") or 0) > NOISY_PERCENT and entry["batch"] == 1:
            noisy.append(f"{spec.key} (a) in-process")
    if results.get(("raw", spec.key)):
        table.add_section()

    def level(kind: str, connections: int) -> dict | None:
        found = results.get((kind, spec.key))
        if not found:
            return None
        return next((lv for lv in found["levels"] if lv["connections"] == connections), None)

    for connections in args.connections:
        bare, ml = level("bare", connections), level("mlflow", connections)
        for kind in SERVERS:
            lv = level(kind, connections)
            if lv is None:
                continue
            verdict = ""
            vs_bare = ratio(lv["rps"], bare and bare["rps"])
            p99_vs_bare = ratio(lv["p99_ms"], bare and bare["p99_ms"])
            vs_ml = ratio(lv["rps"], ml and ml["rps"])
            checks: list[tuple[str, bool | None]] = []
            if kind == "threadline" and spec.key == "lr" and connections in LR_TARGET_CONNECTIONS:
                checks = [("req/s", None if vs_bare is None else vs_bare >= LR_MIN_THROUGHPUT),
                          ("p99", None if p99_vs_bare is None else p99_vs_bare <= LR_MAX_P99)]
            elif kind == "threadline" and spec.key == "rf" and connections == RF_TARGET_CONNECTIONS:
                checks = [("×(b)", None if vs_bare is None else vs_bare >= RF_MIN_SPEEDUP),
                          ("×MLflow", None if vs_ml is None else vs_ml >= RF_MIN_SPEEDUP),
                          ("p99", None if p99_vs_bare is None else p99_vs_bare < 1.0)]
            if checks:
                failed = [name for name, ok in checks if ok is False]
                unknown = [name for name, ok in checks if ok is None]
                if failed:
                    verdict = f"[red]not met: {', '.join(failed)}[/]"
                    misses.append(f"{spec.title}, {connections} connections: {', '.join(failed)} "
                                  f"(req/s {fmt(vs_bare, '{:.2f}')}× (b), p99 "
                                  f"{fmt(p99_vs_bare, '{:.2f}')}× (b), req/s "
                                  f"{fmt(vs_ml, '{:.2f}')}× MLflow)")
                else:
                    verdict = "[green]met[/]" + (f" ({', '.join(unknown)}: n/a)" if unknown else "")
            if lv["errors"]:
                verdict += f" [red]{lv['errors']} errors {lv['error_detail']}[/]"
            other = lv.get("other_cpu_percent")
            if other is not None and other > NOISY_PERCENT:
                noisy.append(f"{spec.key} {LABELS[kind]} at {connections}")
            rows_per_call = lv.get("rows_per_call")
            table.add_row(
                LABELS[kind], str(connections), fmt(lv["rps"]), fmt(lv["p50_ms"], "{:,.2f}"),
                fmt(lv["p99_ms"], "{:,.2f}"),
                "" if kind == "bare" else x(vs_bare), "" if kind == "bare" else x(p99_vs_bare),
                "" if kind == "mlflow" else x(vs_ml),
                fmt(rows_per_call, "{:,.1f}") if rows_per_call is not None else "",
                other_cell(other), verdict,
            )
        table.add_section()
    console.print(table)
    return misses, noisy


def render_starts(console, results: dict, args) -> list[str]:
    from rich.table import Table

    misses: list[str] = []
    table = Table(title=f"Process start to ready: median of {args.starts} start(s), seconds",
                  title_justify="left")
    table.add_column("server")
    for key in args.models:
        table.add_column(MODELS[key].short, justify="right")
        table.add_column("×(b)", justify="right")
        table.add_column("each start", justify="right")
    table.add_column(f"(c) target ≤ {START_MAX_RATIO}×(b)")
    for kind in SERVERS:
        if not any((kind, key) in results for key in args.models):
            continue
        cells, verdicts = [], []
        for key in args.models:
            found, bare = results.get((kind, key)), results.get(("bare", key))
            t = median(found["start_s"]) if found else None
            b = median(bare["start_s"]) if bare else None
            r = ratio(t, b)
            cells += [fmt(t, "{:,.2f}"), "" if kind == "bare" else fmt(r, "{:,.2f}×"),
                      " ".join(f"{v:.2f}" for v in found["start_s"]) if found else ""]
            if kind == "threadline" and r is not None:
                verdicts.append(r <= START_MAX_RATIO)
                if r > START_MAX_RATIO:
                    misses.append(f"start to ready, {MODELS[key].title}: {t:.2f} s = {r:.2f}× "
                                  f"(b)'s {b:.2f} s")
        verdict = ""
        if verdicts:
            verdict = "[green]met[/]" if all(verdicts) else "[red]not met[/]"
        table.add_row(LABELS[kind], *cells, verdict)
    console.print(table)
    return misses


# --------------------------------------------------------------------------- main


def parse_cpus(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, metavar="SECONDS",
                        help="measured seconds per server, load level and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="rounds per load level, the servers taking turns in each; the median "
                             "is shown (default 3)")
    parser.add_argument("--warmup", type=int, default=2, metavar="SECONDS",
                        help="unmeasured load before each level (default 2; 0 to skip)")
    parser.add_argument("--connections", default="1,16,64",
                        help="comma-separated load levels (default 1,16,64)")
    parser.add_argument("--starts", type=int, default=3, metavar="N",
                        help="timed starts per server and model; the median is shown (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="about 2 minutes: --duration 2 --warmup 1 --starts 1 --rounds 1")
    parser.add_argument("--models", default="lr,rf", help="lr, rf or both (default lr,rf)")
    parser.add_argument("--skip-mlflow", action="store_true", help="no (d)")
    parser.add_argument("--skip-threadline", action="store_true", help="no (c)")
    parser.add_argument("--server-cpus", default="0", help="CPUs for the servers (default 0)")
    parser.add_argument("--client-cpus", default="1",
                        help="CPUs for the load generator, the control plane and this script (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin anything to CPUs")
    parser.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write all results here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.starts, args.rounds = 2, 1, 1, 1
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.connections or min(args.connections) < 1:
        parser.error("--connections needs positive numbers")
    if not args.models or any(m not in MODELS for m in args.models):
        parser.error(f"--models: choose from {', '.join(MODELS)}")
    if args.duration < 1 or args.starts < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--duration, --starts and --rounds must be at least 1, --warmup at least 0")
    if load.compiler() is None:
        parser.error("the load generator (bench/_loadgen.c) needs a C compiler: apt-get install -y gcc")
    cpus = sorted(os.sched_getaffinity(0))
    args.server_cpus, args.client_cpus = parse_cpus(args.server_cpus), parse_cpus(args.client_cpus)
    if args.no_pin or len(cpus) < 2 or shutil.which("taskset") is None:
        args.server_cpus = args.client_cpus = None
    elif not set(args.server_cpus) <= set(cpus) or not set(args.client_cpus) <= set(cpus):
        parser.error(f"--server-cpus/--client-cpus must be among {cpus}")
    else:
        os.sched_setaffinity(0, args.client_cpus)  # this script stays off the server's core

    from rich.console import Console

    # Piped output would wrap the tables at 80 columns: they need about 130.
    console = Console() if sys.stdout.isatty() else Console(width=max(Console().width, 135))
    interrupt_on_term()
    args.own_groups = set()
    busy = idle_check()
    if busy > NOISY_PERCENT:
        console.print(f"[yellow]warning:[/] other processes used {busy:.0f}% of a core just now; "
                      "the figures will move with them (see the 'other CPU' column)")
    results: dict = {}
    t_start = time.monotonic()
    with bench_run(console, args, "threadline-serving-bench-") as tmp:
        with console.status("preparing") as spinner:

            def status(msg: str) -> None:
                spinner.update(msg)

            status("training the models")
            import numpy as np
            import skops.io

            models, rows = train_models(args.models)
            rows_path = tmp / "rows.npy"
            np.save(rows_path, rows)
            skops_paths = {}
            for key, model in models.items():
                skops_paths[key] = tmp / f"{key}.skops"
                skops.io.dump(model, skops_paths[key])
            expected = {key: model.predict_proba(rows[:1]).ravel().tolist()
                        for key, model in models.items()}
            ctx: dict = {"tmp": tmp, "rows": rows, "skops": skops_paths}

            if not args.skip_mlflow:
                python = ensure_mlflow_venv(status)
                status("saving the MLflow model folders (in .venv-mlflow)")
                ctx["mlflow_dirs"] = {key: tmp / f"mlflow-{key}" for key in models}
                proc = subprocess.run(
                    [str(python), str(BENCH_DIR / "_mlflow_save.py"), "--rows", str(rows_path),
                     *(f"{skops_paths[k]}:{ctx['mlflow_dirs'][k]}" for k in models)],
                    env=mlflow_env(), cwd=tmp, capture_output=True, text=True,
                    stdin=subprocess.DEVNULL, timeout=600, check=False)
                if proc.returncode != 0:
                    raise BenchError(f"saving the MLflow models failed:\n{proc.stdout}\n{proc.stderr}")

            status("building the load generator, compiling bytecode, warming the file cache "
                   "(imports of every server, untimed)")
            args.loadgen = load.build(tmp)
            compile_bytecode(args)
            warm_imports(args)

            raw_seconds = min(args.duration, 5)
            for key in models:
                status(f"{LABELS['raw']} predict_proba, {MODELS[key].title} ({2 * raw_seconds} s)")
                results[("raw", key)] = run_raw(args, skops_paths[key], rows_path, raw_seconds)

            if not args.skip_threadline:
                ctx.update(start_control_plane(args, tmp, models, status))

            for key in models:
                t0 = time.monotonic()
                targets = [Target(kind, MODELS[key], ctx) for kind in SERVERS
                           if not (kind == "mlflow" and args.skip_mlflow)
                           and not (kind == "threadline" and args.skip_threadline)]
                servers = start_servers(args, targets, expected[key], status)  # on an error, args.cleanup stops them
                run_levels(args, servers, MODELS[key].title, status)
                for live in servers:
                    results[(live.target.kind, key)] = finish(live)
                console.log(f"{MODELS[key].title}: done in {time.monotonic() - t0:,.0f} s")

    import sklearn

    misses: list[str] = []
    noisy: list[str] = []
    for key in args.models:
        model_misses, model_noisy = render_model(console, MODELS[key], results, args)
        misses += model_misses
        noisy += model_noisy
    console.print(
        "×(b): req/s ÷ (b)'s.  p99 ×(b): p99 ÷ (b)'s (lower is better).  ×MLflow: req/s ÷ (d)'s.  "
        "rows/call: mean rows per model call of (c) in that level (threadline_batch_rows).  "
        "other CPU: CPU used by processes outside the benchmark during the level, in % of a "
        f"core (red above {NOISY_PERCENT:g}%).\n(c) targets: LR at "
        f"{' and '.join(map(str, LR_TARGET_CONNECTIONS))} connections ≥ {LR_MIN_THROUGHPUT}×(b) "
        f"req/s with p99 ≤ {LR_MAX_P99}×(b); RF at {RF_TARGET_CONNECTIONS} connections ≥ "
        f"{RF_MIN_SPEEDUP:g}×(b) and ≥ {RF_MIN_SPEEDUP:g}× MLflow req/s with p99 < (b)'s.",
        style="dim")
    misses += render_starts(console, results, args)
    for key in args.models:
        found = results.get(("threadline", key))
        if found and "metrics" in found:
            m = found["metrics"]
            console.print(
                f"(c) {MODELS[key].name}: {m['threadline_inference_requests_total']:,.0f} requests, "
                f"{m['threadline_predictions_logged_total']:,.0f} predictions logged, "
                f"{m['threadline_predictions_dropped_total']:,.0f} dropped; "
                f"{m['threadline_batch_rows_count']:,.0f} model calls", style="dim")
    meta = {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "mlflow": "skipped" if args.skip_mlflow else "3.17.2",
        "load": f"_loadgen.c (closed loop, one thread), {args.warmup} s warm-up",
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
        "cpus": os.cpu_count(),
        "wall": f"{time.monotonic() - t_start:,.0f} s",
    }
    console.print(" ".join(f"{k}={v}" for k, v in meta.items()), style="dim")
    if noisy:
        console.print(f"[yellow]other processes used over {NOISY_PERCENT:g}% of a core during:[/] "
                      + "; ".join(noisy) + " (rerun on an idle machine before trusting those rows)")
    if misses:
        console.print("[red]targets not met:[/]\n" + "\n".join(f"  - {m}" for m in misses))
    elif not args.skip_threadline:
        console.print("[green]all targets met[/]")
    if args.json:
        args.json.write_text(json.dumps(
            {"meta": meta, "results": [{"key": list(k), **({"data": v} if isinstance(v, list) else v)}
                                       for k, v in results.items()],
             "misses": misses, "noisy": noisy}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
