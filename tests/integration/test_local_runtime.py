"""The local runtime against a real control plane: real ``threadline serve`` processes on
127.0.0.1, blue/green applies, supervision after SIGKILL, re-adoption by a new agent, and no
process left behind."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import ControlPlane, wait_for

from threadline import Client
from threadline.adapters import runtime_local
from threadline.domain import errors
from threadline.gitops import model
from threadline.gitops import spec as deployment_spec

pytestmark = pytest.mark.integration

KEY: model.Key = ("iris-scorer", "staging")
OpenRuntime = Callable[[], runtime_local.LocalRuntime]


@pytest.fixture(scope="module")
def revisions(sqlite_plane: ControlPlane, iris_model: tuple[object, object]) -> tuple[model.Revision, ...]:
    """iris@1 and iris@2 registered in the module's control plane."""
    with Client(sqlite_plane.url, sqlite_plane.token) as client:
        found = [client.register_model(iris_model[0], "iris", owner="default") for _ in range(2)]
    return tuple(model.Revision("iris", v["version"], v["artifact_digest"]) for v in found)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "runtime"


@pytest.fixture
def open_runtime(sqlite_plane: ControlPlane, state_dir: Path, tmp_path: Path) -> Iterator[OpenRuntime]:
    """Opens LocalRuntimes on one state folder; afterwards a last one adopts and ends everything."""
    opened: list[runtime_local.LocalRuntime] = []

    def open_one() -> runtime_local.LocalRuntime:
        runtime = runtime_local.LocalRuntime(state_dir, control_plane_url=sqlite_plane.url,
                                             token=sqlite_plane.token, home=tmp_path / "serve-home",
                                             ready_timeout=45, supervise_interval=0.2)
        opened.append(runtime)
        return runtime

    yield open_one
    for runtime in opened:
        runtime.close()
    pids = recorded_pids(state_dir)
    with open_one() as last:
        last.stop_all()
    assert not [pid for pid in pids if running(pid)], "orphan serve processes"


def workload(stable: model.Revision, *, canary: model.Revision | None = None, weight: int = 0,
             replicas: int = 1) -> model.Workload:
    return model.Workload(key=KEY, stable=stable, replicas=replicas, serving=deployment_spec.Serving(),
                          canary=canary, canary_weight=weight, config_hash="c1")


def recorded_pids(state_dir: Path) -> list[int]:
    path = state_dir / runtime_local.STATE_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [r["pid"] for d in data["deployments"] for r in d["replicas"]] + [r["pid"] for r in data["pending"]]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def infer(plane: ControlPlane, endpoint: str, rows: int = 2) -> httpx.Response:
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [rows], "data": [5.1 + i for i in range(rows)]}
                       for c in columns]}
    return httpx.post(endpoint + "/v2/models/iris/infer", json=body, headers=plane.auth(), timeout=10)


def test_apply_serves_rescales_samples_and_deletes(sqlite_plane: ControlPlane, revisions: tuple[model.Revision, ...],
                                                   open_runtime: OpenRuntime, state_dir: Path) -> None:
    v1, _ = revisions
    runtime = open_runtime()
    runtime.apply(workload(v1))
    seen = runtime.observe()[KEY]
    assert (seen.stable, seen.canary, seen.replicas, seen.ready, seen.restarts) == (v1, None, 1, 1, 0)
    for _ in range(3):
        answer = infer(sqlite_plane, seen.endpoints[0])
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1"
    sample = runtime.sample(KEY).by_revision["iris@1"]
    assert (sample.requests, sample.errors) == (3, 0)
    assert sample.p99_ms is not None and sample.p99_ms > 0

    first = recorded_pids(state_dir)
    runtime.apply(workload(v1))  # the same workload: nothing restarts
    assert recorded_pids(state_dir) == first
    runtime.apply(workload(v1, replicas=2))  # only the count differs: one more, the first untouched
    assert recorded_pids(state_dir)[0] == first[0]
    wait_for(lambda: runtime.observe()[KEY].ready == 2)

    state = state_dir / runtime_local.STATE_FILE
    assert state.stat().st_mode & 0o777 == 0o600
    assert sqlite_plane.token not in state.read_text()
    assert list((state_dir / "logs").glob("staging-iris-scorer-*.log"))

    pids = recorded_pids(state_dir)
    runtime.delete(KEY)
    assert runtime.observe() == {}
    assert not [pid for pid in pids if running(pid)]


def test_canary_then_failed_apply_keeps_what_ran(sqlite_plane: ControlPlane, revisions: tuple[model.Revision, ...],
                                                 open_runtime: OpenRuntime, state_dir: Path) -> None:
    v1, v2 = revisions
    runtime = open_runtime()
    runtime.apply(workload(v1))
    old = recorded_pids(state_dir)
    runtime.apply(workload(v1, canary=v2, weight=10))  # blue/green: new process, old one stopped
    seen = runtime.observe()[KEY]
    assert (seen.stable, seen.canary, seen.canary_weight, seen.ready) == (v1, v2, 10, 1)
    assert not running(old[0])
    canary = recorded_pids(state_dir)

    missing = model.Revision("iris", 99, "sha256:" + "0" * 64)
    started = time.monotonic()
    with pytest.raises(errors.RuntimeFailure) as failure:
        runtime.apply(workload(missing))
    assert time.monotonic() - started < 30  # the exit ends the wait, not the ready timeout
    evidence = failure.value.evidence
    assert set(evidence) >= {"exit_codes", "logs", "waited_seconds"}
    codes = evidence["exit_codes"]
    assert isinstance(codes, dict) and codes and all(code not in (None, 0) for code in codes.values())
    assert sqlite_plane.token not in json.dumps(evidence)

    assert recorded_pids(state_dir) == canary
    seen = runtime.observe()[KEY]
    assert (seen.stable, seen.canary, seen.ready) == (v1, v2, 1)
    assert infer(sqlite_plane, seen.endpoints[0]).status_code == 200
    by_revision = runtime.sample(KEY).by_revision
    assert sum(s.requests for s in by_revision.values()) == 1


def test_supervision_readoption_and_stop_all(revisions: tuple[model.Revision, ...], open_runtime: OpenRuntime,
                                             state_dir: Path) -> None:
    v1, _ = revisions
    runtime = open_runtime()
    runtime.start()
    runtime.apply(workload(v1))
    [killed] = recorded_pids(state_dir)
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: runtime.observe()[KEY].ready == 0, timeout=5)
    wait_for(lambda: (runtime.observe()[KEY].ready, runtime.observe()[KEY].restarts) == (1, 1))
    [restarted] = recorded_pids(state_dir)
    assert restarted != killed and not running(killed)

    with pytest.raises(errors.ConfigurationError, match="another agent"):
        open_runtime()

    runtime.close()  # the agent stops; its replicas keep serving
    assert running(restarted)
    adopted = open_runtime()
    assert recorded_pids(state_dir) == [restarted]  # re-adopted, not started again
    seen = adopted.observe()[KEY]
    assert (seen.ready, seen.restarts) == (1, 1)

    adopted.stop_all()
    assert not running(restarted)
    assert adopted.observe() == {} and recorded_pids(state_dir) == []
