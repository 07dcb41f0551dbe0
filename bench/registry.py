#!/usr/bin/env python
"""Registry benchmark: Threadline vs MLflow's tracking server, side by side on 127.0.0.1.

    python bench/registry.py                       # 200 registrations, 1,000 alias reads each
    python bench/registry.py --registrations 10 --reads 50     # quick run
    python bench/registry.py --skip-mlflow         # Threadline only

Both systems get the same workload (``bench/_workload.py``): the same LogisticRegression fitted
on the same 1,000 x 20 frame, N sequential registrations with the training data, then alias
``champion`` on the last version and M sequential reads by alias, from one client.

Threadline runs as ``python -m threadline up`` (this interpreter) and is driven in this process
through the SDK. MLflow runs in its own cached venv (``bench/.venv-mlflow``, created on first
use) as ``mlflow server`` with a SQLite backend, driven by ``bench/_mlflow_driver.py`` in that
venv. The two servers run one after the other, never at the same time, so neither steals the
other's CPU. Every process started here is stopped at the end (also on Ctrl-C or an error) and
the temporary directory is removed. Nothing here asserts: it prints numbers and the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import _workload as w
from _procs import (
    LOOPBACK,
    VENV_DIR,
    BenchError,
    Server,
    base_env,
    ensure_mlflow_venv,
    free_port,
    http_status,
    interrupt_on_term,
    mlflow_env,
    bench_run,
    once,
    stop_group,
    tail,
    threadline_importable,
)

DRIVER = BENCH_DIR / "_mlflow_driver.py"

# Measured earlier (MLflow 3.17, explicit pip requirements); shown when --skip-mlflow is used.
REFERENCE_MLFLOW = {"register_ops": 4.4, "read_ops": 98.0}
TARGET_REGISTER_SPEEDUP = 5.0
TARGET_READ_SPEEDUP = 10.0
TARGET_READ_P99_MS = 10.0

# --------------------------------------------------------------------------- Threadline


def run_threadline(args, tmp: Path, features, labels, model, accuracy, status) -> dict:
    threadline_importable()
    home = tmp / "threadline-home"
    home.mkdir()
    env = {k: v for k, v in base_env().items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_HOME"] = str(home)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = Server(
        "threadline",
        [sys.executable, "-m", "threadline", "up", "--host", LOOPBACK, "--port", str(port)],
        env,
        cwd=tmp,
        log=tmp / "threadline-server.log",
    )
    args.cleanup.append(server.stop)

    status(f"starting Threadline on {url}")
    token_file = home / "admin.token"
    deadline = time.monotonic() + args.startup_timeout
    token = None
    while True:
        server.check_alive()
        if token is None and token_file.exists():
            token = token_file.read_text().strip() or None
        if (
            token
            and http_status(f"{url}/api/v1/models", {"Authorization": f"Bearer {token}"}) == 200
        ):
            break
        if time.monotonic() > deadline:
            raise BenchError(
                f"Threadline did not answer within {args.startup_timeout}s "
                f"(token file {'found' if token else 'missing'})\n{tail(server.log)}"
            )
        time.sleep(0.2)

    from threadline import Client

    client = Client(url, token)
    try:
        status("Threadline: warm-up registration (untimed)")
        client.register_model(
            model,
            name=w.WARMUP_MODEL_NAME,
            training_data=features,
            risk="minimal",
            metrics={"accuracy": accuracy},
        )
        register_ms: list[float] = []
        version = None
        for i in range(args.registrations):
            status(f"Threadline: registration {i + 1}/{args.registrations}")
            t0 = time.perf_counter()
            out = client.register_model(
                model,
                name=w.MODEL_NAME,
                training_data=features,
                risk="minimal",
                metrics={"accuracy": accuracy},
            )
            register_ms.append((time.perf_counter() - t0) * 1e3)
            version = out["version"]
        if version is None:
            raise BenchError("nothing was registered (--registrations 0?)")

        client.set_alias(w.MODEL_NAME, w.ALIAS, version)
        got = client.get_version(w.MODEL_NAME, w.ALIAS)  # untimed check, as on the MLflow side
        if str(got.get("version")) != str(version):
            raise BenchError(
                f"alias {w.ALIAS} resolved to {got.get('version')}, expected {version}"
            )

        status(f"Threadline: {args.reads} alias reads, then {args.reads} by {args.read_clients} clients")
        read_ms = w.timed_reads(lambda: client.get_version(w.MODEL_NAME, w.ALIAS), args.reads)

        def make_reader():
            reader = Client(url, token)
            readers.append(reader)
            return lambda: reader.get_version(w.MODEL_NAME, w.ALIAS)

        readers: list = []
        concurrent_s, concurrent_ms = w.concurrent_reads(make_reader, args.reads, args.read_clients)
        for reader in readers:
            reader.close()
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
        server.stop()

    import threadline

    return {
        "system": "threadline",
        "threadline_version": getattr(threadline, "__version__", "?"),
        "last_version": version,
        "register_ms": register_ms,
        "read_ms": read_ms,
        "concurrent_s": concurrent_s,
        "concurrent_ms": concurrent_ms,
    }


# --------------------------------------------------------------------------- MLflow


def run_mlflow(args, tmp: Path, status) -> dict:
    python = ensure_mlflow_venv(status)
    root = tmp / "mlflow"
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True)
    env = mlflow_env()
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = Server(
        "mlflow",
        [
            str(VENV_DIR / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            str(artifacts),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            str(args.mlflow_workers),
        ],
        env,
        cwd=root,
        log=tmp / "mlflow-server.log",
    )
    args.cleanup.append(server.stop)

    status(f"starting MLflow on {url}")
    deadline = time.monotonic() + args.startup_timeout
    while http_status(f"{url}/health") != 200:
        server.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(
                f"MLflow did not answer within {args.startup_timeout}s\n{tail(server.log)}"
            )
        time.sleep(0.3)

    status(
        f"MLflow: {args.registrations} registrations + {args.reads} alias reads "
        "(driver in .venv-mlflow)"
    )
    driver_log = tmp / "mlflow-driver.log"
    with open(driver_log, "wb") as err:
        driver = subprocess.Popen(
            [
                str(python),
                str(DRIVER),
                "--url",
                url,
                "--registrations",
                str(args.registrations),
                "--reads",
                str(args.reads),
                "--read-clients",
                str(args.read_clients),
            ],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        args.cleanup.append(once(lambda: stop_group(driver, grace=2)))
        try:
            out, _ = driver.communicate(timeout=600 + 10 * args.registrations + args.reads)
        except subprocess.TimeoutExpired:
            raise BenchError(f"MLflow driver timed out\n{tail(driver_log)}") from None
        args.cleanup[-1]()
    server.stop()
    if driver.returncode != 0:
        raise BenchError(f"MLflow driver failed (exit {driver.returncode})\n{tail(driver_log)}")
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(w.RESULT_PREFIX):
            return json.loads(line[len(w.RESULT_PREFIX) :])
    raise BenchError(f"MLflow driver printed no result line\n{tail(driver_log)}")


# --------------------------------------------------------------------------- report


def summarize(result: dict) -> dict:
    reg, reads = result["register_ms"], result["read_ms"]
    return {
        "register_ops": len(reg) / (sum(reg) / 1e3) if reg else float("nan"),
        "register_p50_ms": w.percentile(reg, 50),
        "register_p99_ms": w.percentile(reg, 99),
        "read_ops": len(reads) / (sum(reads) / 1e3) if reads else float("nan"),
        "read_p50_ms": w.percentile(reads, 50),
        "read_p99_ms": w.percentile(reads, 99),
        "concurrent_read_ops": len(result["concurrent_ms"]) / result["concurrent_s"],
        "concurrent_read_p99_ms": w.percentile(result["concurrent_ms"], 99),
        "registrations": len(reg),
        "reads": len(reads),
    }


def render(console, tl: dict | None, ml: dict | None, meta: dict) -> None:
    from rich.table import Table

    ml_ref = ml is None
    ml_vals = ml if ml is not None else REFERENCE_MLFLOW

    def num(v, fmt="{:,.1f}"):
        return "—" if v is None else fmt.format(v)

    def faster(tl_v, ml_v, higher_is_better=True):
        if tl_v is None or ml_v is None or not tl_v or not ml_v:
            return None
        return tl_v / ml_v if higher_is_better else ml_v / tl_v

    def verdict(ok):
        return "" if ok is None else ("[green]met[/]" if ok else "[red]not met[/]")

    table = Table(
        title=f"Registry benchmark: {meta['registrations']} registrations, {meta['reads']} alias reads",
        caption=(
            "× = how many times better Threadline is\n(ops/s: Threadline ÷ MLflow; "
            "latency: MLflow ÷ Threadline); the p99 target is Threadline's own"
            + (
                "\nMLflow skipped: its column and × use the reference figures (MLflow 3.17)"
                if ml_ref
                else ""
            )
        ),
    )
    table.add_column("metric")
    table.add_column("Threadline", justify="right")
    table.add_column("MLflow" + (" (ref.)" if ml_ref else ""), justify="right")
    table.add_column("×", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")

    g = lambda d, k: None if d is None else d.get(k)
    rows = [
        ("registrations/s", "register_ops", True, TARGET_REGISTER_SPEEDUP, "≥ 5×"),
        ("register p50 ms", "register_p50_ms", False, None, ""),
        ("register p99 ms", "register_p99_ms", False, None, ""),
        ("alias reads/s, 1 client", "read_ops", True, TARGET_READ_SPEEDUP, "≥ 10×"),
        ("read p50 ms", "read_p50_ms", False, None, ""),
        ("read p99 ms", "read_p99_ms", False, None, "< 10 ms"),
        (f"alias reads/s, {meta['read_clients']} clients", "concurrent_read_ops", True,
         TARGET_READ_SPEEDUP, "≥ 10×"),
        ("read p99 ms, concurrent", "concurrent_read_p99_ms", False, None, ""),
    ]
    for label, key, higher, target, target_text in rows:
        tv, mv = g(tl, key), g(ml_vals, key)
        x = faster(tv, mv, higher)
        ok = None
        if target is not None and x is not None:
            ok = x >= target
        if key == "concurrent_read_ops" and ml_ref:
            ok = x = None  # the reference has no concurrent figure
        if key == "read_p99_ms" and tv is not None:
            ok = tv < TARGET_READ_P99_MS
        fmt = "{:,.1f}" if key.endswith("ops") else "{:,.2f}"
        table.add_row(
            label, num(tv, fmt), num(mv, fmt), num(x, "{:,.1f}×"), target_text, verdict(ok)
        )
    console.print(table)
    console.print(
        " ".join(f"{k}={v}" for k, v in meta.items()
                 if k not in ("registrations", "reads", "read_clients")),
        style="dim",
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200, metavar="N")
    parser.add_argument("--reads", type=int, default=1_000, metavar="N")
    parser.add_argument("--read-clients", type=int, default=8, metavar="N",
                        help="threads for the second, concurrent round of alias reads (default 8)")
    parser.add_argument("--skip-mlflow", action="store_true", help="run Threadline only")
    parser.add_argument("--skip-threadline", action="store_true", help="run MLflow only")
    parser.add_argument(
        "--mlflow-workers",
        type=int,
        default=1,
        help="`mlflow server --workers` (default 1, like Threadline's single server process)",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the summary here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    if args.skip_mlflow and args.skip_threadline:
        parser.error("nothing to run")
    if args.registrations < 1 or args.reads < 1:
        parser.error("--registrations and --reads must be at least 1")

    from rich.console import Console

    console = Console()
    interrupt_on_term()

    results: dict[str, dict] = {}
    with bench_run(console, args, "threadline-bench-") as tmp:
        with console.status("preparing") as spinner:

            def status(msg: str) -> None:
                spinner.update(msg)

            status("training the model")
            features, labels = w.make_training_data()
            model, accuracy = w.train(features, labels)
            if not args.skip_threadline:
                t0 = time.monotonic()
                results["threadline"] = run_threadline(
                    args, tmp, features, labels, model, accuracy, status
                )
                console.log(f"Threadline done in {time.monotonic() - t0:,.1f}s")
            if not args.skip_mlflow:
                t0 = time.monotonic()
                results["mlflow"] = run_mlflow(args, tmp, status)
                console.log(f"MLflow done in {time.monotonic() - t0:,.1f}s")

    import sklearn

    tl = summarize(results["threadline"]) if "threadline" in results else None
    ml = summarize(results["mlflow"]) if "mlflow" in results else None
    meta = {
        "registrations": args.registrations,
        "reads": args.reads,
        "read_clients": args.read_clients,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "mlflow": results.get("mlflow", {}).get("mlflow_version", "skipped"),
        "mlflow_workers": args.mlflow_workers,
        "cpus": os.cpu_count(),
    }
    render(console, tl, ml, meta)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "threadline": tl, "mlflow": ml}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
