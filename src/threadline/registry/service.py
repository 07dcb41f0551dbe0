"""The registry use cases: models, immutable versions, aliases and reads.

Every mutation happens in one WriteTransaction together with its audit entry. Artifacts are
uploaded (content-addressed) before registration; registering verifies the stored bytes
against their digest and inspects them, so a version's flavor and signature are facts about
its bytes, not claims of the client.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, lifecycle, models, names
from threadline.governance import cards
from threadline.registry import flavors, signatures
from threadline.registry.requests import NewModel, NewVersion, metrics


# Called inside the alias write transaction: (tx, actor, model, alias, new version or None).
AliasGuard = Callable[[ports.ReadTransaction, access.Actor, str, str, "int | None"], None]


class Registry:
    def __init__(self, store: ports.MetadataStore, artifacts: ports.ArtifactStore, audit: AuditLog,
                 clock: ports.Clock, workdir: Path, *, alias_guard: AliasGuard | None = None) -> None:
        self._store = store
        self._artifacts = artifacts
        self._audit = audit
        self._clock = clock
        self._workdir = workdir
        self._alias_guard = alias_guard

    # -- models -------------------------------------------------------------------------

    def create_model(self, actor: access.Actor, request: NewModel) -> models.Model:
        actor.require(access.Permission.WRITE_MODELS)
        model = self._new_model(actor, request)
        with self._store.writing() as tx:
            self._add_model(tx, actor.name, model)
        return model

    def _new_model(self, actor: access.Actor, request: NewModel) -> models.Model:
        owner = names.team_name(request.owner)
        actor.require_owner(owner, f"a model of team {owner!r}")
        return models.Model(
            name=names.model_name(request.name), owner=owner,
            risk_tier=request.risk_tier, description=request.description, created_by=actor.name,
            created_at=self._clock.now())

    def _add_model(self, tx: ports.WriteTransaction, actor: str, model: models.Model) -> None:
        tx.add_model(model)
        self._audit.record(tx, actor, "model.create", f"model/{model.name}",
                           {"owner": model.owner, "risk_tier": model.risk_tier.value})

    def get_model(self, name: str) -> models.Model:
        with self._store.reading() as tx:
            return tx.get_model(names.model_name(name))

    def list_models(self, *, query: str | None = None, owner: str | None = None, limit: int = 50,
                    cursor: str | None = None) -> models.Page:
        limit = _page_size(limit)
        with self._store.reading() as tx:
            items = tx.list_models(query=query, owner=owner, limit=limit + 1, after=cursor)
        more = len(items) > limit
        items = items[:limit]
        return models.Page(tuple(items), items[-1].name if more else None)

    # -- versions -----------------------------------------------------------------------

    def register_version(self, actor: access.Actor, request: NewVersion) -> models.ModelVersion:
        actor.require(access.Permission.WRITE_MODELS)
        name = names.model_name(request.model, field="model")
        digest = names.sha256_digest(request.artifact_digest, field="artifact_digest")
        checked_metrics = metrics(request.metrics)
        card = cards.parse_card(request.card).model_dump(mode="json", exclude_defaults=True)
        if request.sample_digest is not None and not self._artifacts.exists(
                names.sha256_digest(request.sample_digest, field="sample_digest")):
            raise errors.InvalidInput("no uploaded artifact has this digest; upload the sample first",
                                      field="sample_digest")
        inspection = self._inspect(digest, request.flavor, request.trusted)
        if request.trusted and inspection.artifact_format.executes_code_on_load:
            _require_trust(actor)
        profile_inputs = signatures.input_signature_from_profile(request.profile) if request.profile else None
        signature = signatures.reconcile(inspection, profile_inputs)
        profile = dict(request.profile) if request.profile else None
        if profile is not None and request.sample_digest is not None:
            profile["sample"] = {"digest": names.sha256_digest(request.sample_digest), "format": "parquet"}
        with self._store.writing() as tx:
            created = self._model_for(tx, actor, name, request)
            latest = tx.latest_version(name) or 0
            _check_parent(request.lineage, latest)
            version = models.ModelVersion(
                model=name, version=latest + 1, artifact_digest=digest,
                artifact_size=self._artifacts.size(digest), flavor=inspection.flavor,
                artifact_format=inspection.artifact_format, trusted=request.trusted,
                signature=signature, has_profile=profile is not None, metrics=checked_metrics,
                card=card,
                lineage=request.lineage, status=lifecycle.REGISTERED, description=request.description,
                created_by=actor.name, created_at=self._clock.now())
            tx.add_version(version, profile)
            self._audit.record(tx, actor.name, "version.register", f"model/{name}/version/{version.version}", {
                "artifact_digest": digest, "flavor": version.flavor.value,
                "artifact_format": version.artifact_format.value, "trusted": version.trusted,
                "model_created": created,
                "training_data": [dataclasses.asdict(ref) for ref in version.lineage.training_data],
                "code_commit": version.lineage.code_commit,
            })
        return version

    def _model_for(self, tx: ports.WriteTransaction, actor: access.Actor, name: str, request: NewVersion) -> bool:
        """Make sure the model exists; return whether this registration created it."""
        try:
            model = tx.get_model(name)
        except errors.NotFound:
            if request.owner is None:
                raise errors.InvalidInput(f"model {name!r} does not exist yet: give its owner team to create it",
                                          field="owner") from None
            self._add_model(tx, actor.name, self._new_model(actor, NewModel(
                name, request.owner, request.risk_tier or models.RiskTier.MINIMAL, request.description)))
            return True
        actor.require_owner(model.owner, f"model {name!r}")
        if request.risk_tier is not None and request.risk_tier is not model.risk_tier:
            raise errors.Conflict(
                f"model {name!r} has risk tier {model.risk_tier.value}, not {request.risk_tier.value}; "
                "a risk tier is changed on the model, not by registering a version")
        return False

    def _inspect(self, digest: str, declared: models.Flavor | None, trusted: bool) -> flavors.Inspection:
        if not self._artifacts.exists(digest):
            raise errors.InvalidInput(f"no uploaded artifact has digest sha256:{digest}; upload it first",
                                      field="artifact_digest")
        self._workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="inspect-", dir=self._workdir))
        try:
            path = self._artifacts.fetch(digest, scratch / "artifact")
            return flavors.inspect_artifact(path, declared, trusted=trusted)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def get_version(self, name: str, ref: str | int) -> models.ModelVersion:
        """``ref`` is a version number, an alias or ``latest``."""
        with self._store.reading() as tx:
            return version_by_ref(tx, name, ref)

    def get_profile(self, actor: access.Actor, name: str, ref: str | int) -> Mapping[str, Any]:
        """The reference profile of the training data, with the digest of its row sample.

        It describes training data, so reading it is an audited, sensitive read.
        """
        actor.require(access.Permission.READ_SENSITIVE)
        name = names.model_name(name)
        with self._store.writing() as tx:
            version = version_by_ref(tx, name, ref).version
            profile = tx.get_profile(name, version)
            if profile is None:
                raise errors.NotFound(f"{name}@{version} was registered without training data, so it has no profile")
            self._audit.record(tx, actor.name, "profile.read", f"model/{name}/version/{version}", {})
        return profile

    def list_versions(self, name: str, *, limit: int = 50, cursor: int | None = None) -> models.Page:
        limit = _page_size(limit)
        with self._store.reading() as tx:
            items = tx.list_versions(names.model_name(name), limit=limit + 1, after=cursor)
        more = len(items) > limit
        items = items[:limit]
        return models.Page(tuple(items), str(items[-1].version) if more else None)

    def transition(self, actor: access.Actor, name: str, version: int, event: lifecycle.Event) -> models.ModelVersion:
        """Move a version's status along the lifecycle (validate, deprecate, archive).

        Approval is not an event callers may fire directly: it is the outcome of the
        approval workflow, which checks separation of duties and the risk policy.
        """
        if event is lifecycle.Event.APPROVE:
            raise errors.Forbidden("versions are approved through the approval workflow, not by a status change")
        actor.require(access.Permission.LIFECYCLE)
        name = names.model_name(name)
        with self._store.writing() as tx:
            _require_owner_or(actor, tx.get_model(name), access.Role.DEPLOYER)
            current = tx.get_version(name, version)
            status = lifecycle.transition(current.status, event)
            tx.set_status(name, version, status)
            self._audit.record(tx, actor.name, f"version.{event.value}", f"model/{name}/version/{version}",
                               {"from": current.status, "to": status})
        return dataclasses.replace(current, status=status)

    # -- aliases ------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        with self._store.reading() as tx:
            return tx.aliases(names.model_name(name))

    def set_alias(self, actor: access.Actor, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; return the version it pointed at before."""
        actor.require(access.Permission.MOVE_ALIASES)
        name, alias = names.model_name(name), names.alias_name(alias)
        with self._store.writing() as tx:
            _require_owner_or(actor, tx.get_model(name), access.Role.DEPLOYER)
            tx.get_version(name, version)
            if self._alias_guard is not None:
                self._alias_guard(tx, actor, name, alias, version)
            previous = tx.set_alias(name, alias, version, actor=actor.name, time=self._clock.now())
            self._audit.record(tx, actor.name, "alias.set", f"model/{name}/alias/{alias}",
                               {"version": version, "previous": previous})
        return previous

    def delete_alias(self, actor: access.Actor, name: str, alias: str) -> int:
        actor.require(access.Permission.MOVE_ALIASES)
        name, alias = names.model_name(name), names.alias_name(alias)
        with self._store.writing() as tx:
            _require_owner_or(actor, tx.get_model(name), access.Role.DEPLOYER)
            if self._alias_guard is not None:
                self._alias_guard(tx, actor, name, alias, None)
            previous = tx.delete_alias(name, alias)
            self._audit.record(tx, actor.name, "alias.delete", f"model/{name}/alias/{alias}", {"previous": previous})
        return previous


def version_by_ref(tx: ports.ReadTransaction, name: str, ref: str | int) -> models.ModelVersion:
    """The version ``ref`` names: a number, an alias or ``latest``."""
    name = names.model_name(name)
    if isinstance(ref, int) or ref.isdigit():
        return tx.get_version(name, int(ref))
    if ref == "latest":
        latest = tx.latest_version(name)
        if latest is None:
            raise errors.NotFound(f"model {name!r} has no versions yet")
        return tx.get_version(name, latest)
    return tx.get_version_by_alias(name, names.alias_name(ref))


def _require_owner_or(actor: access.Actor, model: models.Model, role: access.Role) -> None:
    """Developers act on their own team's models; ``role`` (and admin) may act on any."""
    if role not in actor.roles:
        actor.require_owner(model.owner, f"model {model.name!r}")


def _require_trust(actor: access.Actor) -> None:
    """Accepting an artifact that runs code when loaded is an approver's call, with a fresh code."""
    if not actor.can(access.Permission.DECIDE_APPROVAL):
        raise errors.PolicyViolation("registering a pickle as trusted needs an approver: it runs code when "
                                     "loaded; convert it to skops or ONNX, or ask an approver to register it")
    if not actor.mfa_verified:
        raise errors.PolicyViolation("trusting a code-executing artifact needs a fresh TOTP code: send it with "
                                     "--otp (enrol first with `threadline mfa enroll`)")


def _check_parent(lineage: models.Lineage, latest: int) -> None:
    if lineage.parent_version is not None and not 1 <= lineage.parent_version <= latest:
        raise errors.InvalidInput(f"version {lineage.parent_version} does not exist (latest is {latest})",
                                  field="lineage.parent_version")


def _page_size(limit: int) -> int:
    if not 1 <= limit <= 500:
        raise errors.InvalidInput("must be between 1 and 500", field="limit")
    return limit
