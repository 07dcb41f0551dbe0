"""Helpers the benchmarks share: server processes, ports, readiness polling, CPU pinning,
the cached MLflow venv and the cleanup that stops everything, also on Ctrl-C.

Used by ``bench/registry.py`` and ``bench/serving.py``; standard library only (``rich`` is
imported by the callers), so it imports instantly.
"""

from __future__ import annotations

import importlib.util
import os
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
LOOPBACK = "127.0.0.1"

VENV_DIR = BENCH_DIR / ".venv-mlflow"
MLFLOW_REQUIREMENT = "mlflow==3.17.2"


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


def pinned(cmd: list[str], cpus: Iterable[int] | None) -> list[str]:
    """``cmd`` prefixed with ``taskset -c CPUS`` (taskset execs, so the pid stays the same);
    unchanged when no CPUs are given or taskset is missing. Children inherit the affinity."""
    cpus = sorted(set(cpus or ()))
    taskset = shutil.which("taskset")
    if not cpus or taskset is None:
        return cmd
    return [taskset, "-c", ",".join(map(str, cpus)), *cmd]


class Server:
    """A server process in its own process group, so stopping it stops its workers too.

    ``started`` is ``time.perf_counter()`` taken just before the process is spawned, so
    ``wait_ready`` can report the time from process start to the first good answer.
    """

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        cwd: Path,
        log: Path,
        cpus: Iterable[int] | None = None,
    ):
        self.name = name
        self.log = log
        self._stopped = False
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            pinned(cmd, cpus),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            raise BenchError(f"{self.name} server exited with code {rc}\n{tail(self.log)}")

    def wait_ready(
        self,
        url: str,
        timeout: float,
        headers: dict[str, str] | None = None,
        interval: float = 0.02,
    ) -> float:
        """Poll ``url`` until it answers 200; seconds from process start to that answer."""
        deadline = time.monotonic() + timeout
        while True:
            if http_status(url, headers, timeout=1) == 200:
                return time.perf_counter() - self.started
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name} did not answer 200 on {url} within {timeout:.0f}s\n"
                    f"{tail(self.log)}"
                )
            time.sleep(interval)

    def stop(self) -> None:
        if self._stopped:  # idempotent: never signal a group id twice
            return
        self._stopped = True
        stop_group(self.proc)
        self._log_file.close()


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL what is left."""
    pgid = proc.pid
    if proc.poll() is None:
        try:
            os.killpg(pgid, signal.SIGTERM)
            os.killpg(pgid, signal.SIGCONT)  # a paused (SIGSTOP) server must run to exit
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # Workers may outlive their leader: clear the whole group, whatever the leader did.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def once(fn: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return run


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` as a fixed identity (the GitOps benchmarks commit specs)."""
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 3) -> int | None:
    try:
        with _OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def http_call(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """GET (or POST when ``body`` is given); (status, body), also for error statuses."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("no_proxy", "NO_PROXY"):
        env[key] = ",".join(filter(None, [env.get(key), LOOPBACK, "localhost"]))
    return env


def run_cleanup(cleanup: list[Callable[[], None]], report: Callable[[str], None]) -> None:
    """Run the stop functions newest first, ignoring a second Ctrl-C meanwhile, so nothing
    is left running; a failing step is reported and the others still run."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while cleanup:
            stop = cleanup.pop()
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                report(f"cleanup step failed: {e!r}")
    finally:
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_term() -> None:
    """SIGTERM and SIGHUP behave like Ctrl-C, so the ``finally`` cleanup runs for them too."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


# --------------------------------------------------------------------------- Threadline


def threadline_importable() -> None:
    """Use the installed package, or fall back to this checkout's src/ (also for the server)."""
    if importlib.util.find_spec("threadline") is None:
        src = REPO_ROOT / "src"
        sys.path.insert(0, str(src))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(src), os.environ.get("PYTHONPATH")])
        )
        importlib.invalidate_caches()
        if importlib.util.find_spec("threadline") is None:
            raise BenchError("cannot import threadline: run `pip install -e .` first")


# --------------------------------------------------------------------------- MLflow venv


def ensure_mlflow_venv(status: Callable[[str], None]) -> Path:
    """Create (once) bench/.venv-mlflow with MLflow and the main env's scikit-learn version."""
    import sklearn

    return ensure_venv(VENV_DIR, [MLFLOW_REQUIREMENT, f"scikit-learn=={sklearn.__version__}"], status)


def ensure_venv(folder: Path, requirements: list[str], status: Callable[[str], None]) -> Path:
    """A reference system's own venv, so its pins never touch ours; reinstalled when the
    requirements change (a marker file in the venv remembers them). Returns its python."""
    wanted = "\n".join(requirements) + "\n"
    marker = folder / ".bench-requirements"
    python = folder / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        status(f"creating {folder.relative_to(REPO_ROOT)} (once; takes a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    status(f"installing {' '.join(requirements)} into {folder.name}")
    env = {k: v for k, v in base_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"pip install into {folder} failed:\n{proc.stdout}\n{proc.stderr}")
    marker.write_text(wanted)
    return python


def mlflow_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in base_env().items()
        if not k.startswith("MLFLOW_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",  # no phoning home: loopback traffic only
        DO_NOT_TRACK="true",
        # The GenAI job runner (7 huey consumer processes + a store in /dev/shm that is not
        # removed when the server is killed) is not used by the benchmarks; off, it leaves
        # MLflow more of the 2 cores and nothing behind.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        GIT_PYTHON_REFRESH="quiet",
        PYTHONUNBUFFERED="1",
        # `mlflow models serve` runs `uvicorn` by name: find the venv's, not ours.
        PATH=os.pathsep.join([str(VENV_DIR / "bin"), env.get("PATH", "")]),
        VIRTUAL_ENV=str(VENV_DIR),
    )
    return env


@contextlib.contextmanager
def bench_run(console, args, prefix: str) -> Iterator[Path]:
    """One run's temp dir and cleanup list (``args.cleanup``): however the run ends, every
    server is stopped and the dir removed (kept with ``args.keep_tmp``); Ctrl-C exits 130 and
    a BenchError exits 1 with its message."""
    args.cleanup = []
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping servers[/]")
        raise SystemExit(130) from None
    except BenchError as e:
        console.print(f"[red]benchmark failed:[/] {e}", highlight=False)
        if args.keep_tmp:
            console.print(f"logs kept in {tmp}")
        raise SystemExit(1) from None
    finally:
        run_cleanup(args.cleanup, lambda msg: console.print(f"[yellow]{msg}[/]"))
        if args.keep_tmp:
            console.print(f"temp dir kept: {tmp}", style="dim")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
