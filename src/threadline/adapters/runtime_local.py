"""The local runtime (the embedded default): deployments run as supervised ``threadline serve``
processes on 127.0.0.1.

The agent may restart at any moment (upgrade, crash) and the models must keep answering
meanwhile, so each serve process runs in a session of its own and everything needed to find
it again (pid, process start time, port, workload) is kept in ``local-runtime.json``. The
next agent re-adopts what is still alive and restarts what is not. A pid alone proves
nothing (pids are reused), so a process is ours only if its start time in /proc and its
command line match too. An exclusive flock on ``local-runtime.lock`` makes sure that only
one agent supervises a state folder: two would both start replicas.

Changes are blue/green: new replicas on new ports must answer their readiness check before
the old ones are stopped; if they never do, they are killed and the old ones keep serving.
Replicas started by an unfinished apply are recorded as *pending*, so an agent that dies
mid-apply leaves no orphan: the next one kills them. Linux only (/proc).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

import httpx

from threadline import files
from threadline.adapters import process_usage, serving_metrics
from threadline.adapters.serving_metrics import ServingTotals
from threadline.domain import errors
from threadline.gitops import model, state

log = logging.getLogger("threadline.runtime.local")

STATE_FILE = "local-runtime.json"
LOCK_FILE = "local-runtime.lock"
MAX_LOG_BYTES = 4 << 20     # a replica's log is rotated to <log>.1 beyond this
MAX_BACKOFF = 30.0          # seconds between restarts of a replica that keeps crashing
STABLE_AFTER = 60.0         # a replica that ran this long before dying starts its backoff afresh
STOP_GRACE = 10.0           # seconds between SIGTERM and SIGKILL


@dataclass
class _Replica:
    pid: int
    port: int
    started: int            # /proc/<pid>/stat start time (clock ticks after boot): guards against pid reuse
    spawned_at: float       # wall clock, to tell a crash loop from a long run
    restarts: int = 0
    next_restart_at: float | None = None  # wall clock; set when the replica is found dead
    streak: int = 0         # consecutive crashes: the exponent of the backoff


@dataclass
class _Deployment:
    workload: model.Workload
    replicas: list[_Replica] = field(default_factory=list)


class LocalRuntime:
    """Runs each deployment as ``replicas`` supervised ``threadline serve`` processes."""

    name = "local"

    def __init__(self, state_dir: Path, *, control_plane_url: str, token: str, home: Path,
                 python: str = sys.executable, host: str = "127.0.0.1", ready_timeout: float = 60.0,
                 supervise_interval: float = 1.0) -> None:
        self._dir = state_dir
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self._dir / "logs").mkdir(exist_ok=True, mode=0o700)
        self._lock_fd: int | None = _exclusive_lock(self._dir / LOCK_FILE)
        self._url, self._token, self._home = control_plane_url, token, home
        self._python, self._host = python, host
        self._ready_timeout, self._interval = ready_timeout, supervise_interval
        self._lock = threading.RLock()          # guards _deployments, _pending and the state file
        self._changing = threading.Lock()       # serialises apply / delete / stop_all
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(trust_env=False, timeout=2.0)
        self._gpus = process_usage.Gpus()
        self._exit_codes: dict[int, int] = {}
        self._deployments: dict[model.Key, _Deployment] = {}
        self._pending: list[_Replica] = []
        self._adopt()

    # -- the Runtime protocol ---------------------------------------------------------------

    def declare(self, deployment: object) -> None:
        """Local processes need only the workload: nothing to remember."""

    def observe(self) -> dict[model.Key, model.Observed]:
        with self._lock:
            snapshot = [(key, d.workload, list(d.replicas)) for key, d in self._deployments.items()]
        replicas = [r for _, _, group in snapshot for r in group]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(replicas)))) as pool:
            ready = dict(zip(map(id, replicas), pool.map(self._probe, replicas)))
        result: dict[model.Key, model.Observed] = {}
        for key, workload, group in snapshot:
            endpoints = tuple(self._base(r.port) for r in group if ready[id(r)])
            result[key] = model.Observed(
                key=key, stable=workload.stable, canary=workload.canary,
                canary_weight=workload.canary_weight, replicas=workload.replicas,
                ready=len(endpoints), config_hash=workload.config_hash, endpoints=endpoints,
                restarts=sum(r.restarts for r in group))
        return result

    def apply(self, workload: model.Workload) -> None:
        with self._changing:
            with self._lock:
                current = self._deployments.get(workload.key)
                extra = None if current is None else self._rescale(current, workload)
            if extra is None:
                self._roll(workload)
            else:
                self._terminate(extra)

    def delete(self, key: model.Key) -> None:
        with self._changing:
            with self._lock:
                gone = self._deployments.pop(key, None)
                self._save()
            if gone is not None:
                self._terminate(gone.replicas)

    def sample(self, key: model.Key) -> model.ServingSample:
        with self._lock:
            deployment = self._deployments.get(key)
            replicas = [] if deployment is None else [r for r in deployment.replicas if self._alive(r)]
        totals = ServingTotals()
        for replica in replicas:
            try:
                response = self._http.get(self._base(replica.port) + "/metrics", timeout=2.0,
                                          headers={"Authorization": f"Bearer {self._token}"})
            except httpx.TransportError:
                continue  # a replica that died since: its counters are gone with it
            if response.status_code == 200:
                totals.add(response.text)
        return totals.sample()

    def readings(self, key: model.Key) -> list[model.ReplicaReading]:
        """Each live replica's CPU time, memory, GPU use and serving counters, right now.

        A replica that dies between two readings simply has no second one: its samples end.
        """
        with self._lock:
            deployment = self._deployments.get(key)
            replicas = [] if deployment is None else [r for r in deployment.replicas if self._alive(r)]
        found = []
        for replica in replicas:
            usage = process_usage.cpu_and_rss(replica.pid)
            if usage is None:
                continue
            try:
                response = self._http.get(self._base(replica.port) + "/metrics", timeout=2.0,
                                          headers={"Authorization": f"Bearer {self._token}"})
            except httpx.TransportError:
                continue
            if response.status_code != 200:
                continue
            counters = serving_metrics.replica_counters(response.text)
            gpu_util, gpu_memory = self._gpus.usage(replica.pid)
            found.append(model.ReplicaReading(
                replica=str(replica.port), cpu_seconds=usage[0], rss_bytes=usage[1], requests=counters.requests,
                errors=counters.errors, latency_seconds=counters.latency_seconds,
                latency_buckets=tuple(sorted(counters.buckets.items())), queue_depth=counters.queue_depth,
                batch_rows=counters.batch_rows, batches=counters.batches, gpu_util=gpu_util,
                gpu_memory_bytes=gpu_memory))
        return found

    def scale(self, key: model.Key, replicas: int) -> None:
        """Run ``replicas`` replicas (within the workload's bounds) without restarting the others."""
        with self._changing:
            with self._lock:
                current = self._deployments.get(key)
                if current is None:
                    raise errors.NotFound(f"{model.key_text(key)} is not running here")
                if not 1 <= replicas <= max(current.workload.most_replicas, 1):
                    raise errors.InvalidInput(f"{model.key_text(key)} may run 1 to "
                                              f"{current.workload.most_replicas} replicas, not {replicas}")
                scaled = dataclasses.replace(current.workload, replicas=replicas,
                                             replicas_max=current.workload.most_replicas)
                extra = self._rescale(current, scaled)
            self._terminate(extra or [])

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Supervise in a daemon thread: restart dead replicas with backoff, bound the logs."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name="local-runtime", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop supervising and release the lock; the processes keep running for the next agent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
            self._http.close()

    def stop_all(self) -> None:
        """End every workload and forget them (``threadline agent --stop-workloads``)."""
        with self._changing:
            with self._lock:
                doomed = [r for d in self._deployments.values() for r in d.replicas] + self._pending
                self._deployments.clear()
                self._pending = []
                self._save()
            self._terminate(doomed)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blue/green ----------------------------------------------------------------------------

    def _roll(self, workload: model.Workload) -> None:
        with self._lock:
            fresh = [self._spawn(workload, self._free_port()) for _ in range(workload.replicas)]
            self._pending.extend(fresh)
            self._save()
        started = time.monotonic()
        failed = self._wait_ready(fresh, started + self._ready_timeout)
        waited = round(time.monotonic() - started, 1)
        with self._lock:
            self._pending = [r for r in self._pending if r not in fresh]
            old = None if failed else self._deployments.get(workload.key)
            if failed is None:
                self._deployments[workload.key] = _Deployment(workload, fresh)
            self._save()
        if failed is None:
            self._terminate([] if old is None else old.replicas)  # no longer supervised: safe to read
            return
        self._terminate(fresh)
        evidence = {"reason": failed, "waited_seconds": waited,
                    "exit_codes": {str(r.port): self._exit_codes.get(r.pid) for r in fresh},
                    "logs": {str(r.port): self._log_tail(workload.key, r.port) for r in fresh}}
        raise errors.RuntimeFailure(
            f"{model.key_text(workload.key)}: the new replicas did not become ready ({failed}); "
            "the previous ones keep serving", evidence)

    def _rescale(self, current: _Deployment, workload: model.Workload) -> list[_Replica] | None:
        """If only the replica count differs, start the missing replicas (and heal dead ones)
        and return the extra ones for stopping; None when a blue/green roll is needed."""
        if not _same_serving(current.workload, workload):
            return None
        current.workload = workload
        extra = current.replicas[workload.replicas:]
        del current.replicas[workload.replicas:]
        for _ in range(workload.replicas - len(current.replicas)):
            current.replicas.append(self._spawn(workload, self._free_port()))
        self._heal(current, time.time())
        self._save()
        return extra

    def _wait_ready(self, replicas: list[_Replica], deadline: float) -> str | None:
        """None once every replica answers ready; otherwise why not (an exit stops the wait early)."""
        waiting = list(replicas)
        while waiting:
            for replica in list(waiting):
                if not self._alive(replica):
                    return f"replica on port {replica.port} exited"
                if self._probe(replica, timeout=1.0):
                    waiting.remove(replica)
            if waiting and time.monotonic() >= deadline:
                return f"not ready after {self._ready_timeout:g} s"
            if waiting:
                time.sleep(0.2)
        return None

    # -- supervision ---------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._lock:
                    now = time.time()
                    healed = [self._heal(d, now) for d in self._deployments.values()]  # all, no short cut
                    if any(healed):
                        self._save()
                    for key, deployment in self._deployments.items():
                        for replica in deployment.replicas:
                            _bound(self._log_path(key, replica.port))
            except Exception:  # the supervisor must outlive any one bad pass
                log.exception("local runtime: supervision pass failed")

    def _heal(self, deployment: _Deployment, now: float) -> bool:
        """Restart the dead replicas whose backoff has elapsed; True if anything changed."""
        changed = False
        for i, replica in enumerate(deployment.replicas):
            if self._alive(replica):
                continue
            if replica.next_restart_at is None:
                changed = True
                streak = 0 if now - replica.spawned_at > STABLE_AFTER else replica.streak
                replica.next_restart_at = now + min(MAX_BACKOFF, 2.0 ** streak)
                replica.streak = streak + 1
                log.warning("local runtime: replica %s of %s exited (code %s); restarting in %.0f s",
                            replica.port, model.key_text(deployment.workload.key),
                            self._exit_codes.get(replica.pid), replica.next_restart_at - now)
            if now >= replica.next_restart_at:
                taken = {r.port for d in self._deployments.values() for r in d.replicas} - {replica.port}
                port = replica.port if _port_free(self._host, replica.port) else self._free_port(taken)
                fresh = self._spawn(deployment.workload, port)
                fresh.restarts, fresh.streak = replica.restarts + 1, replica.streak
                deployment.replicas[i] = fresh
                changed = True
        return changed

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, workload: model.Workload, port: int) -> _Replica:
        args = [self._python, "-m", "threadline", "serve"]
        for revision, weight in workload.weights():
            args += ["-m", f"{revision.ref}={weight}"]
        serving = workload.serving
        args += ["--host", self._host, "--port", str(port), "--deployment-name", workload.key[0],
                 "--max-batch-rows", str(serving.max_batch_rows), "--max-wait-ms", str(serving.max_wait_ms),
                 "--rate-limit", str(serving.rate_limit), "--rate-burst", str(serving.rate_burst)]
        if workload.escalate_below is not None:
            args += ["--escalate-below", str(workload.escalate_below)]
        for rule in workload.escalate_rules:
            args += ["--escalate-rule", rule]
        env = {**os.environ, "THREADLINE_URL": self._url, "THREADLINE_TOKEN": self._token,
               "THREADLINE_HOME": str(self._home)}
        log_path = self._log_path(workload.key, port)
        _bound(log_path)
        # A session of its own: the replica outlives the agent and its terminal's signals.
        pid = os.posix_spawn(self._python, args, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2)])
        stat = _stat(pid)
        return _Replica(pid=pid, port=port, started=stat[2] if stat else 0, spawned_at=time.time())

    def _alive(self, replica: _Replica) -> bool:
        """Whether the recorded process still exists: same pid *and* start time, so a reused pid
        is never mistaken for it. A process of ours that is exiting counts as alive until it
        is reaped, so stopping waits for it to be gone and no zombie is left behind."""
        stat = _stat(replica.pid)
        if stat is None or stat[2] != replica.started:
            return False
        process_state, parent, _ = stat
        if process_state not in ("Z", "X"):
            return True
        if parent != os.getpid():
            return False  # someone else's zombie: its parent reaps it
        try:
            done, status = os.waitpid(replica.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if not done:
            return True  # the leader has exited but other threads are still ending
        self._exit_codes[replica.pid] = os.waitstatus_to_exitcode(status)
        return False

    def _terminate(self, replicas: list[_Replica]) -> None:
        """SIGTERM, wait up to STOP_GRACE, then SIGKILL whatever is left."""
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
            living = [r for r in replicas if self._alive(r)]
            for replica in living:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, sig)
            deadline = time.monotonic() + grace
            while living and time.monotonic() < deadline:
                time.sleep(0.05)
                living = [r for r in living if self._alive(r)]
            if not living:
                return

    def _probe(self, replica: _Replica, timeout: float = 0.5) -> bool:
        if not self._alive(replica):
            return False
        try:
            response = self._http.get(self._base(replica.port) + "/v2/health/ready", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _free_port(self, taken: set[int] | None = None) -> int:
        taken = taken if taken is not None else {r.port for d in self._deployments.values() for r in d.replicas}
        while True:
            with socket.socket() as sock:
                sock.bind((self._host, 0))
                port = int(sock.getsockname()[1])
            if port not in taken:
                return port

    def _base(self, port: int) -> str:
        return f"http://{self._host}:{port}"

    def _log_path(self, key: model.Key, port: int) -> Path:
        return self._dir / "logs" / f"{key[1]}-{key[0]}-{port}.log"

    def _log_tail(self, key: model.Key, port: int, lines: int = 20) -> str:
        """The end of a replica's log for evidence: bounded, and never carrying the token."""
        path = self._log_path(key, port)
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - 8192))
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:]).replace(self._token, "[token]")[-4000:]

    # -- state -----------------------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over what the previous agent recorded: live replicas stay, dead ones are healed
        by supervision, and replicas of an apply that never finished are killed."""
        path = self._dir / STATE_FILE
        if path.exists():
            data = json.loads(path.read_text())
            for item in data.get("deployments", []):
                workload = state.workload_from_json(item["workload"])
                self._deployments[workload.key] = _Deployment(
                    workload, [_Replica(**r) for r in item["replicas"]])
            orphans = [_Replica(**r) for r in data.get("pending", [])]
            self._terminate([r for r in orphans if _is_serve(r.pid)])
        adopted = 0
        for replica in (r for d in self._deployments.values() for r in d.replicas):
            if self._alive(replica) and _is_serve(replica.pid):
                adopted += 1
            else:
                replica.started = -1  # matches no process: supervision starts a new one
        log.info("local runtime: adopted %d running replica(s)", adopted)
        self._save()

    def _save(self) -> None:
        data = {"deployments": [{"workload": state.workload_json(d.workload),
                                 "replicas": [asdict(r) for r in d.replicas]}
                                for d in self._deployments.values()],
                "pending": [asdict(r) for r in self._pending]}
        body = json.dumps(data, indent=1, sort_keys=True).encode()

        def write(out: BinaryIO) -> None:
            out.write(body)

        files.atomic_write(self._dir / STATE_FILE, write)  # a mkstemp file: mode 0600


def _exclusive_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise errors.ConfigurationError(
            f"another agent holds the local runtime in {path.parent}: stop it first, "
            "or give this agent a state folder of its own") from None
    return fd


def _same_serving(a: model.Workload, b: model.Workload) -> bool:
    """Whether ``b`` can be reached from ``a`` by changing only the replica count."""
    return (a.weights() == b.weights() and a.serving == b.serving
            and a.escalate_below == b.escalate_below and a.escalate_rules == b.escalate_rules
            and a.config_hash == b.config_hash)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process from /proc, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may contain spaces
    return fields[0], int(fields[1]), int(fields[19])


def _is_serve(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in args and any(b"threadline" in a for a in args)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _bound(path: Path) -> None:
    """Keep a replica's log under MAX_LOG_BYTES: the process appends (O_APPEND), so the file
    can be copied aside and truncated under it."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > MAX_LOG_BYTES:
            shutil.copyfile(path, path.with_name(path.name + ".1"))
            os.truncate(path, 0)
