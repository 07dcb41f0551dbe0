"""One suite for the registry over every metadata backend (SQLite and PostgreSQL).

It drives the services in-process with a real database and the in-memory artifact store,
so what it proves is the store's contract: atomic mutations with their audit entries,
gap-free version numbers under concurrency, and tamper evidence.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
import skops.io
import sqlalchemy as sa

from threadline.adapters.artifacts.memory import MemoryArtifactStore
from threadline.adapters.clock import SystemClock
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, models
from threadline.registry import profiling
from threadline.registry.requests import NewModel, NewVersion
from threadline.registry.service import Registry

ALICE = access.Actor("alice", frozenset({access.Role.DEVELOPER}), frozenset({"team-a", "team-b"}))
BOB = access.Actor("bob", frozenset({access.Role.DEPLOYER}))


class World:
    def __init__(self, url: str, tmp: Path, model: object, features: object) -> None:
        self.store = SqlMetadataStore(url)
        self.artifacts = MemoryArtifactStore()
        self.audit = AuditLog(Ed25519Signer.load_or_create(tmp / "key"), SystemClock(), checkpoint_every=5)
        self.registry = Registry(self.store, self.artifacts, self.audit, SystemClock(), tmp / "work")
        path = tmp / "model.skops"
        skops.io.dump(model, path)
        self.digest = self.artifacts.put([path.read_bytes()]).digest
        self.profile, _ = profiling.compute_profile(profiling.load_table(features))

    def register(self, name: str = "iris", **changes: object) -> models.ModelVersion:
        fields: dict[str, object] = {"model": name, "artifact_digest": self.digest, "profile": self.profile,
                                     "owner": "team-a", "metrics": {"accuracy": 0.97}}
        fields.update(changes)
        return self.registry.register_version(ALICE, NewVersion(**fields))  # type: ignore[arg-type]

    def audit_actions(self) -> list[str]:
        return [e.action for e in self.audit.entries(self.store)]


@pytest.fixture
def world(database_url: str, tmp_path: Path, iris_model: tuple[object, object]) -> Iterator[World]:
    w = World(database_url, tmp_path, *iris_model)
    yield w
    w.store.close()


def test_register_creates_model_and_numbers_versions(world: World) -> None:
    first, second = world.register(), world.register()
    assert (first.version, second.version) == (1, 2)
    assert first.flavor is models.Flavor.SKLEARN and first.artifact_format is models.ArtifactFormat.SKOPS
    assert [s.name for s in first.signature.inputs] == list(world.profile["columns"])
    assert {o.name for o in first.signature.outputs} == {"label", "probabilities"}
    assert first.has_profile and world.registry.get_profile(ALICE, "iris", 1)["row_count"] == 150
    stored = world.registry.get_version("iris", 1)
    assert stored == first
    assert world.registry.get_model("iris").owner == "team-a"
    assert world.audit_actions() == ["model.create", "version.register", "version.register", "profile.read"]


def test_versions_are_immutable_records(world: World) -> None:
    version = world.register()
    with world.store.writing() as tx, pytest.raises(errors.Conflict):
        tx.add_version(version, None)


def test_failed_registration_writes_nothing(world: World) -> None:
    world.register()
    bad_profile = {**world.profile, "columns": dict(list(world.profile["columns"].items())[:2])}
    with pytest.raises(errors.InvalidInput, match="missing"):
        world.register(profile=bad_profile)
    with pytest.raises(errors.InvalidInput, match="upload it first"):
        world.register(artifact_digest="0" * 64)
    with pytest.raises(errors.InvalidInput, match="name"):
        world.register(name="../etc")
    assert world.registry.list_versions("iris").items[-1].version == 1
    assert world.audit_actions() == ["model.create", "version.register"]
    assert world.audit.verify(world.store).ok


def test_aliases_move_atomically(world: World) -> None:
    world.register(), world.register()
    assert world.registry.set_alias(BOB, "iris", "champion", 1) is None
    assert world.registry.get_version("iris", "champion").version == 1
    assert world.registry.set_alias(BOB, "iris", "champion", 2) == 1
    assert world.registry.get_version("iris", "champion").version == 2
    assert world.registry.get_version("iris", "latest").version == 2
    assert world.registry.aliases("iris") == {"champion": 2}
    with pytest.raises(errors.NotFound):
        world.registry.set_alias(BOB, "iris", "champion", 9)
    assert world.registry.delete_alias(BOB, "iris", "champion") == 2
    with pytest.raises(errors.NotFound, match="alias"):
        world.registry.get_version("iris", "champion")
    assert world.audit_actions()[-3:] == ["alias.set", "alias.set", "alias.delete"]


def test_risk_tier_is_not_changed_by_registration(world: World) -> None:
    world.register(risk_tier=models.RiskTier.HIGH)
    with pytest.raises(errors.Conflict, match="risk tier"):
        world.register(risk_tier=models.RiskTier.MINIMAL)


def test_listing_paginates_and_searches(world: World) -> None:
    for i in range(5):
        world.registry.create_model(ALICE, NewModel(f"m{i}", "team-b", models.RiskTier.LIMITED,
                                                      "fraud" if i % 2 else "churn"))
    page = world.registry.list_models(limit=2)
    assert [m.name for m in page.items] == ["m0", "m1"] and page.next_cursor == "m1"
    page = world.registry.list_models(limit=2, cursor=page.next_cursor)
    assert [m.name for m in page.items] == ["m2", "m3"]
    assert [m.name for m in world.registry.list_models(query="fraud").items] == ["m1", "m3"]
    assert world.registry.list_models(query="%").items == ()
    with pytest.raises(errors.Conflict):
        world.registry.create_model(ALICE, NewModel("m0", "team-b", models.RiskTier.LIMITED))


def test_concurrent_registrations_are_gap_free(world: World) -> None:
    world.register()
    failures: list[BaseException] = []

    def register() -> None:
        try:
            world.register()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert [v.version for v in world.registry.list_versions("iris").items] == list(range(1, 10))
    result = world.audit.verify(world.store)
    assert result.ok and result.entries == 10 and result.checkpoints == 2


@pytest.mark.parametrize("tamper,seq", [
    ("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3", 3),
    ("DELETE FROM audit_entries WHERE seq = 2", 2),
    ("UPDATE audit_entries SET details = '{}' WHERE seq = 4", 4),
])
def test_tampering_is_detected(world: World, tamper: str, seq: int) -> None:
    for _ in range(5):
        world.register()
    assert world.audit.verify(world.store).ok
    with world.store.engine.begin() as connection:
        connection.exec_driver_sql(tamper)
    result = world.audit.verify(world.store)
    assert not result.ok and result.first_bad_seq == seq


def test_swapped_rows_are_detected(world: World) -> None:
    for _ in range(3):
        world.register()
    columns = "time, actor, action, object, details, prev_hash, hash"
    with world.store.engine.begin() as c:
        rows = {r.seq: r for r in c.execute(sa.text(f"SELECT seq, {columns} FROM audit_entries "
                                                    "WHERE seq IN (2, 3)"))}
        for seq, other in ((2, 3), (3, 2)):
            values = {k: getattr(rows[other], k) for k in columns.split(", ")}
            sets = ", ".join(f"{k} = :{k}" for k in values)
            c.execute(sa.text(f"UPDATE audit_entries SET {sets} WHERE seq = :seq"), {**values, "seq": seq})
    result = world.audit.verify(world.store)
    assert not result.ok and result.first_bad_seq == 2


def test_tail_deletion_is_detected(world: World) -> None:
    for _ in range(3):
        world.register()
    with world.store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_entries WHERE seq = 4")
    result = world.audit.verify(world.store)
    assert not result.ok and result.first_bad_seq == 4


def test_migrations_are_idempotent(database_url: str) -> None:
    SqlMetadataStore(database_url).close()
    store = SqlMetadataStore(database_url)
    with store.reading() as tx:
        assert tx.audit_head() is None
    store.close()


def test_lifecycle_transitions_are_audited(world: World) -> None:
    from threadline.domain.lifecycle import Event

    world.register()
    assert world.registry.transition(BOB, "iris", 1, Event.VALIDATE).status == "validated"
    with pytest.raises(errors.Forbidden, match="approval workflow"):
        world.registry.transition(BOB, "iris", 1, Event.APPROVE)
    with pytest.raises(errors.Conflict, match="cannot archive"):
        world.registry.transition(BOB, "iris", 1, Event.ARCHIVE)
    world.registry.transition(BOB, "iris", 1, Event.DEPRECATE)
    assert world.registry.transition(BOB, "iris", 1, Event.ARCHIVE).status == "archived"
    assert world.registry.get_version("iris", 1).status == "archived"
    assert world.audit_actions()[-3:] == ["version.validate", "version.deprecate", "version.archive"]


def test_audit_entries_read_a_range_either_way(world: World) -> None:
    for name in ("a", "b", "c"):
        world.register(name)
    with world.store.reading() as tx:
        every = [e.seq for e in tx.audit_entries(after=0, limit=100)]
        newest = [e.seq for e in tx.audit_entries(after=0, limit=2, newest_first=True)]
        below = [e.seq for e in tx.audit_entries(after=every[0], before=every[-1], limit=100, newest_first=True)]
        registrations = [e.seq for e in tx.audit_entries(after=0, before=every[-1] + 1, limit=100,
                                                         action="version.", newest_first=True)]
    assert every == sorted(every) and newest == every[::-1][:2]
    assert below == every[1:-1][::-1]
    assert len(registrations) == 3 and registrations == sorted(registrations, reverse=True)
