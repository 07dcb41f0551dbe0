"""The GitOps agent in process, against real Git repositories and a real metadata store, with a
recording runtime (the local runtime has its own tests): governance in the loop, health
rollback, canary abort and promote, drift and self-heal, prune, broken documents, force push."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import skops.io
from support import git

from threadline.adapters.artifacts.memory import MemoryArtifactStore
from threadline.adapters.git_source import GitSource
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, lifecycle
from threadline.gitops.agent import Agent
from threadline.gitops.model import Key, Observed, RevisionSample, ServingSample, Workload
from threadline.governance.service import Governance
from threadline.registry.requests import NewVersion
from threadline.registry.service import Registry

ADMIN = access.system("tester")
ENV = "production"


class Clock:
    def __init__(self) -> None:
        self.time = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)


class RecordingRuntime:
    """Runs nothing: remembers what it was asked, reports it back, and fails on request."""

    name = "recording"

    def __init__(self) -> None:
        self.running: dict[Key, Workload] = {}
        self.ready: dict[Key, int] = {}
        self.applied: list[Workload] = []
        self.refuse: set[str] = set()   # revisions (model@version) whose replicas never become ready
        self.samples: dict[Key, ServingSample] = {}

    def declare(self, deployment: object) -> None: ...

    def observe(self) -> dict[Key, Observed]:
        return {key: Observed(key, w.stable, w.canary, w.canary_weight, w.replicas,
                              self.ready.get(key, w.replicas), w.config_hash) for key, w in self.running.items()}

    def apply(self, workload: Workload) -> None:
        self.applied.append(workload)
        if {r.ref for r, _ in workload.weights()} & self.refuse:
            raise errors.RuntimeFailure("replicas did not become ready", {"exit_codes": [1]})
        self.running[workload.key] = workload
        self.ready.pop(workload.key, None)

    def delete(self, key: Key) -> None:
        self.running.pop(key, None)

    def sample(self, key: Key) -> ServingSample:
        return self.samples.get(key, ServingSample())

    def start(self) -> None: ...

    def close(self) -> None: ...

    def stop_all(self) -> None:
        self.running.clear()


def deployment(name: str, version: int, **spec: object) -> str:
    extra = "".join(f"  {key}: {value}\n" for key, value in spec.items())
    return (f"apiVersion: threadline/v1\nkind: ModelDeployment\nmetadata: {{name: {name}, environment: {ENV}, "
            f"owner: default}}\nspec:\n  model: iris\n  version: {version}\n{extra}")


class World:
    def __init__(self, url: str, tmp: Path, model: object) -> None:
        self.clock = Clock()
        self.store = SqlMetadataStore(url)
        self.audit = AuditLog(Ed25519Signer.load_or_create(tmp / "key"), self.clock)
        artifacts = MemoryArtifactStore()
        self.registry = Registry(self.store, artifacts, self.audit, self.clock, tmp / "work")
        self.governance = Governance(self.store, self.audit, self.clock)
        path = tmp / "model.skops"
        skops.io.dump(model, path)
        digest = artifacts.put([path.read_bytes()]).digest
        for _ in range(3):
            self.registry.register_version(ADMIN, NewVersion("iris", digest, owner="default",
                                                             metrics={"accuracy": 0.97}))
        self.repo = tmp / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")
        self.runtime = RecordingRuntime()
        self.agent = Agent(GitSource(str(self.repo), "main", tmp / "cache"), self.runtime, ENV, store=self.store,
                           audit=self.audit, clock=self.clock, registry=self.registry, governance=self.governance)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for name, text in files.items():
            path = self.repo / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def approve(self, version: int) -> None:
        """Minimal risk needs one approval in production: validate, request, approve."""
        self.registry.transition(ADMIN, "iris", version, lifecycle.Event.VALIDATE)
        self.governance.request(ADMIN, "iris", version, ENV)
        self.governance.approve(access.system("approver"), "iris", version, ENV)

    def status(self, name: str) -> tuple[str, str]:
        with self.store.reading() as tx:
            record = tx.get_deployment(name, ENV)
        return record.status, record.reason

    def history(self, name: str) -> list[str]:
        with self.store.reading() as tx:
            return [h.action for h in reversed(tx.deployment_history(name, ENV, limit=100))]

    def audit_actions(self) -> list[str]:
        return [e.action for e in self.audit.entries(self.store) if e.actor == "gitops-agent"]


@pytest.fixture
def world(database_url: str, tmp_path: Path, iris_model: tuple[object, object]) -> Iterator[World]:
    w = World(database_url, tmp_path, iris_model[0])
    yield w
    w.store.close()


def test_a_version_reaches_the_runtime_only_through_the_governance_check(world: World) -> None:
    world.commit({"deploy/iris.yaml": deployment("iris", 1)})
    world.agent.sync()
    assert world.runtime.applied == []
    status, reason = world.status("iris")
    assert status == "Blocked" and "iris@1 fails the governance gates of production" in reason
    preview = world.agent.sync(dry_run=True)
    assert [a.kind.value for a in preview.plan.actions] == ["blocked"]
    world.approve(1)
    preview = world.agent.sync(dry_run=True)
    assert [a.kind.value for a in preview.plan.actions] == ["create"] and world.runtime.applied == []
    world.agent.sync()
    assert [w.stable.ref for w in world.runtime.applied] == ["iris@1"]
    assert world.status("iris")[0] == "Progressing"
    assert "deployment.create" in world.audit_actions()
    world.agent.sync()  # nothing changed: nothing applied again
    assert len(world.runtime.applied) == 1


def test_a_failing_revision_rolls_back_by_itself_and_is_not_retried(world: World) -> None:
    for version in (1, 2):
        world.approve(version)
    world.commit({"iris.yaml": deployment("iris", 1, health="{period: 5s, window: 20s, failureThreshold: 2, "
                                                            "maxErrorRate: 0.05}")})
    world.agent.sync()
    world.clock.advance(25)
    world.runtime.samples[("iris", ENV)] = ServingSample({"iris@1": RevisionSample(100, 0, 5.0)})
    world.agent.sync()
    assert world.status("iris") == ("Synced", "iris@1 passed its health checks (health of iris@1: 100 requests, "
                                              "error rate 0)")
    world.commit({"iris.yaml": deployment("iris", 2, health="{period: 5s, window: 20s, failureThreshold: 2, "
                                                            "maxErrorRate: 0.05}")})
    world.agent.sync()
    assert world.runtime.running[("iris", ENV)].stable.ref == "iris@2"
    world.runtime.samples[("iris", ENV)] = ServingSample({"iris@2": RevisionSample(50, 20, 5.0)})
    for _ in range(2):
        world.clock.advance(6)
        world.agent.sync()
    assert world.runtime.running[("iris", ENV)].stable.ref == "iris@1"
    status, reason = world.status("iris")
    assert status == "Degraded" and "error rate 0.4 > 0.05; rolling back to iris@1" in reason
    world.clock.advance(6)
    world.agent.sync()
    assert world.runtime.running[("iris", ENV)].stable.ref == "iris@1"  # the bad revision is not retried
    assert "not retried until Git changes" in world.status("iris")[1]
    assert world.history("iris") == ["create", "verified", "update", "check", "rollback", "blocked"]
    with world.store.reading() as tx:
        rollback = next(h for h in tx.deployment_history("iris", ENV, limit=10) if h.action == "rollback")
    assert rollback.evidence["values"]["error_rate"] == 0.4 and rollback.commit == git(world.repo, "rev-parse", "HEAD")


def test_a_runtime_failure_keeps_the_old_revision(world: World) -> None:
    for version in (1, 2):
        world.approve(version)
    world.commit({"iris.yaml": deployment("iris", 1)})
    world.agent.sync()
    world.runtime.refuse.add("iris@2")
    world.commit({"iris.yaml": deployment("iris", 2)})
    result = world.agent.sync()
    assert result.failures and "replicas did not become ready" in result.failures[0]
    status, reason = world.status("iris")
    assert status == "Degraded" and reason.startswith("update failed")
    assert world.runtime.running[("iris", ENV)].stable.ref == "iris@1"
    world.agent.sync()  # not retried at the same commit
    assert [w.stable.ref for w in world.runtime.applied] == ["iris@1", "iris@2"]


def test_canary_promotes_on_good_evidence_and_aborts_on_bad(world: World) -> None:
    for version in (1, 2, 3):
        world.approve(version)
    canary = "{strategy: canary, steps: [{weight: 20, pause: 10s}, {weight: 50, pause: 10s}], " \
             "analysis: {maxErrorRate: 0.02}}"
    world.commit({"iris.yaml": deployment("iris", 1, rollout=canary)})
    world.agent.sync()
    world.commit({"iris.yaml": deployment("iris", 2, rollout=canary)})
    world.agent.sync()
    running = world.runtime.running[("iris", ENV)]
    assert (running.stable.ref, running.canary.ref if running.canary else None, running.canary_weight) == \
        ("iris@1", "iris@2", 20)
    world.clock.advance(5)
    world.agent.sync()
    assert world.runtime.running[("iris", ENV)].canary_weight == 20  # pausing
    world.clock.advance(6)
    world.agent.sync()  # no traffic: inconclusive, never promotes
    assert world.runtime.running[("iris", ENV)].canary_weight == 20
    world.runtime.samples[("iris", ENV)] = ServingSample({"iris@1": RevisionSample(800, 1, 10.0),
                                                          "iris@2": RevisionSample(200, 0, 11.0)})
    world.agent.sync()
    assert world.runtime.running[("iris", ENV)].canary_weight == 50
    world.clock.advance(11)
    world.runtime.samples[("iris", ENV)] = ServingSample({"iris@1": RevisionSample(1300, 1, 10.0),
                                                          "iris@2": RevisionSample(700, 1, 11.0)})
    world.agent.sync()
    promoted = world.runtime.running[("iris", ENV)]
    assert promoted.stable.ref == "iris@2" and promoted.canary is None

    world.commit({"iris.yaml": deployment("iris", 3, rollout=canary)})
    world.agent.sync()
    world.clock.advance(11)
    world.runtime.samples[("iris", ENV)] = ServingSample({"iris@2": RevisionSample(900, 0, 10.0),
                                                          "iris@3": RevisionSample(100, 30, 11.0)})
    world.agent.sync()
    aborted = world.runtime.running[("iris", ENV)]
    assert aborted.stable.ref == "iris@2" and aborted.canary is None
    status, reason = world.status("iris")
    assert status == "Degraded" and "canary: error rate 0.3 > 0.02; back to iris@2" in reason
    actions = world.history("iris")
    assert actions.count("canary-start") == 2 and "promote" in actions and actions[-1] == "abort"
    with world.store.reading() as tx:
        abort = tx.deployment_history("iris", ENV, limit=1)[0]
    assert abort.evidence["values"]["error_rate"] == 0.3 and abort.evidence["values"]["stable_error_rate"] == 0


def test_drift_is_listed_and_healed_with_self_heal(world: World) -> None:
    world.approve(1)
    world.commit({"a.yaml": deployment("plain", 1), "b.yaml": deployment("healing", 1, selfHeal="true")})
    world.agent.sync()
    for key in (("plain", ENV), ("healing", ENV)):
        world.runtime.ready[key] = 0  # a serving process killed by hand
    world.agent.sync()
    status, _ = world.status("plain")
    assert status == "OutOfSync"
    with world.store.reading() as tx:
        assert tx.get_deployment("plain", ENV).differences == ("1 of 1 replicas not ready",)
    assert world.runtime.ready.get(("healing", ENV)) is None  # re-applied: the runtime restored it
    assert "heal" in world.history("healing")


def test_broken_documents_are_reported_and_the_rest_still_syncs_and_nothing_is_pruned(world: World) -> None:
    world.approve(1)
    world.commit({"good.yaml": deployment("good", 1, prune="true"), "gone.yaml": deployment("gone", 1, prune="true")})
    world.agent.sync()
    assert set(world.runtime.running) == {("good", ENV), ("gone", ENV)}
    world.commit({"gone.yaml": None, "bad.yaml": "apiVersion: threadline/v1\nkind: ModelDeployment\nmetadata: {name: x,"
                                                 " environment: production, owner: t}\nspec:\n  modle: iris\n",
                  "dup.yaml": deployment("good", 1), "missing.yaml": deployment("nover", 9),
                  "alias.yaml": deployment("noalias", 1).replace("version: 1", "alias: nope"),
                  "ghost.yaml": deployment("ghost", 1).replace("model: iris", "model: ghost"),
                  "kind.yaml": "apiVersion: threadline/v1\nkind: Deployment\n",
                  "yaml.yaml": "spec: [unclosed\n"})
    result = world.agent.sync()
    problems = "\n".join(result.problems)
    assert "bad.yaml:5: spec.modle: unknown field" in problems and "is declared twice; first at dup.yaml:3" in problems
    assert "kind.yaml:2: kind: unknown kind 'Deployment'" in problems and "yaml.yaml:2: invalid YAML" in problems
    assert world.status("noalias") == ("Blocked", "model 'iris' has no alias 'nope'")
    assert world.status("ghost") == ("Blocked", "model 'ghost' not found")
    assert set(world.runtime.running) == {("good", ENV), ("gone", ENV)}  # not pruned while errors are reported
    assert world.status("gone")[0] == "OutOfSync"
    assert world.status("nover") == ("Blocked", "model 'iris' has no version 9")
    world.commit({"bad.yaml": None, "dup.yaml": None, "kind.yaml": None, "yaml.yaml": None, "ghost.yaml": None})
    world.agent.sync()
    assert set(world.runtime.running) == {("good", ENV)}
    assert "deployment.delete" in world.audit_actions()


def test_a_force_push_is_followed_and_audited(world: World) -> None:
    world.approve(1)
    first = world.commit({"iris.yaml": deployment("iris", 1)})
    world.agent.sync()
    git(world.repo, "commit", "-q", "--amend", "-m", "rewritten")
    rewritten = git(world.repo, "rev-parse", "HEAD")
    assert rewritten != first
    result = world.agent.sync()
    assert result.commit == rewritten
    entries = [e for e in world.audit.entries(world.store) if e.action == "gitops.force-push"]
    assert len(entries) == 1 and entries[0].details == {"from": first, "to": rewritten}


def test_an_interrupted_pass_converges_on_the_next(world: World) -> None:
    world.approve(1)
    world.commit({"a.yaml": deployment("a", 1), "b.yaml": deployment("b", 1)})
    original = world.agent._record  # type: ignore[attr-defined]
    calls = {"n": 0}

    def crash_after_first(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the agent dies between applying and recording
        original(*args, **kwargs)

    world.agent._record = crash_after_first  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        world.agent.sync()
    world.agent._record = original  # type: ignore[attr-defined]
    world.agent.sync()
    assert set(world.runtime.running) == {("a", ENV), ("b", ENV)}
    assert [w.key for w in world.runtime.applied].count(("a", ENV)) <= 2
    world.agent.sync()
    assert world.status("a")[0] in ("Progressing", "Synced") and world.status("b")[0] in ("Progressing", "Synced")
    assert dataclasses.replace(world.runtime.running[("a", ENV)], key=("b", ENV)) == world.runtime.running[("b", ENV)]
