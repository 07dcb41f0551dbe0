"""GitOps reconcile cost: one agent pass over many ModelDeployments, and rollback time.

    python bench/reconcile.py                      # 1,000 deployments, then the rollback timing
    python bench/reconcile.py --deployments 200    # quicker
    python bench/reconcile.py --skip-rollback      # only the pass cost

Part 1 runs the real agent in this process against a real Git repository and a SQLite
metadata store, with a runtime that only counts calls (the cost measured is the agent's: Git,
YAML, registry and governance lookups, planning, recording). It reports the CPU time of a pass
with nothing changed and of a pass with one deployment changed, and the runtime calls each made.
Targets (issue 5): nothing changed well under 1 s of CPU and one observe; one changed acts on
that one only.

Part 2 starts a control plane (``threadline up``) and the local runtime, deploys a healthy
version, then a version whose answers are errors under load, and measures the time from the
first failed health check to the stable revision serving again (target under 10 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import git  # noqa: E402

from threadline.adapters.artifacts.memory import MemoryArtifactStore  # noqa: E402
from threadline.adapters.git_source import GitSource  # noqa: E402
from threadline.adapters.signing import Ed25519Signer  # noqa: E402
from threadline.adapters.sql.store import SqlMetadataStore  # noqa: E402
from threadline.audit.log import AuditLog  # noqa: E402
from threadline.domain import access, lifecycle  # noqa: E402
from threadline.gitops.agent import Agent  # noqa: E402
from threadline.gitops.model import Key, Observed, ServingSample, Workload  # noqa: E402
from threadline.governance.service import Governance  # noqa: E402
from threadline.registry.requests import NewVersion  # noqa: E402
from threadline.registry.service import Registry  # noqa: E402

ENV = "production"
ADMIN = access.system("bench")


class CountingRuntime:
    """Keeps the workloads it is given in memory and counts every call."""

    name = "counting"

    def __init__(self) -> None:
        self.running: dict[Key, Workload] = {}
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def declare(self, deployment: object) -> None: ...

    def observe(self) -> dict[Key, Observed]:
        self._count("observe")
        return {k: Observed(k, w.stable, w.canary, w.canary_weight, w.replicas, w.replicas, w.config_hash)
                for k, w in self.running.items()}

    def apply(self, workload: Workload) -> None:
        self._count("apply")
        self.running[workload.key] = workload

    def delete(self, key: Key) -> None:
        self._count("delete")
        self.running.pop(key, None)

    def sample(self, key: Key) -> ServingSample:
        self._count("sample")
        return ServingSample()

    def start(self) -> None: ...

    def close(self) -> None: ...

    def stop_all(self) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.time = datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self.time


def document(index: int, model: str, version: int) -> str:
    return (f"apiVersion: threadline/v1\nkind: ModelDeployment\nmetadata: {{name: svc-{index}, environment: {ENV}, "
            f"owner: default}}\nspec:\n  model: {model}\n  version: {version}\n  replicas: {{min: 1, max: 2}}\n")


def measure(agent: Agent, runtime: CountingRuntime) -> tuple[float, float, dict[str, int], int]:
    runtime.calls = {}
    wall, cpu = time.perf_counter(), time.process_time()
    result = agent.sync()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, dict(runtime.calls), len(result.plan.changes())


def pass_cost(deployments: int, models: int, tmp: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    import numpy as np
    import skops.io

    clock = Clock()
    store = SqlMetadataStore(f"sqlite:///{tmp / 'db.sqlite'}")
    audit = AuditLog(Ed25519Signer.load_or_create(tmp / "key"), clock)
    artifacts = MemoryArtifactStore()
    registry = Registry(store, artifacts, audit, clock, tmp / "work")
    governance = Governance(store, audit, clock)
    x = np.random.default_rng(0).normal(size=(50, 4))
    skops.io.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp / "m.skops")
    digest = artifacts.put([(tmp / "m.skops").read_bytes()]).digest
    names = [f"model-{i}" for i in range(models)]
    for name in names:
        for _ in range(2):
            registry.register_version(ADMIN, NewVersion(name, digest, owner="default"))
        for version in (1, 2):
            registry.transition(ADMIN, name, version, lifecycle.Event.VALIDATE)
            governance.request(ADMIN, name, version, ENV)
            governance.approve(access.system("approver"), name, version, ENV)
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for index in range(deployments):
        (repo / f"svc-{index}.yaml").write_text(document(index, names[index % models], 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "all")
    runtime = CountingRuntime()
    agent = Agent(GitSource(str(repo), "main", tmp / "cache"), runtime, ENV, store=store, audit=audit, clock=clock,
                  registry=registry, governance=governance)
    print(f"{deployments} deployments of {models} models; first pass creates them ...", flush=True)
    cpu, wall, calls, changes = measure(agent, runtime)
    print(f"  first pass:        {cpu:6.2f} s CPU, {wall:6.2f} s wall, {changes} changes, calls {calls}")
    clock.time += timedelta(minutes=5)  # the health windows of the first pass are over
    agent.sync()  # health checks pass: the deployments become Synced
    agent.sync()  # steady state
    cpu, wall, calls, changes = measure(agent, runtime)
    print(f"  nothing changed:   {cpu:6.2f} s CPU, {wall:6.2f} s wall, {changes} changes, calls {calls}"
          f"   target: well under 1 s CPU, one observe -> {'met' if cpu < 1 and calls == {'observe': 1} else 'NOT met'}")
    (repo / "svc-7.yaml").write_text(document(7, names[7 % models], 2))
    git(repo, "commit", "-q", "-am", "one")
    cpu, wall, calls, changes = measure(agent, runtime)
    print(f"  one changed:       {cpu:6.2f} s CPU, {wall:6.2f} s wall, {changes} changes, calls {calls}"
          f"   target: only that one acted on -> {'met' if changes == 1 and calls.get('apply') == 1 else 'NOT met'}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--skip-rollback", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as scratch:
        pass_cost(args.deployments, args.models, Path(scratch))
    if not args.skip_rollback:
        from _rollback import rollback_time

        rollback_time()


if __name__ == "__main__":
    main()
