"""Who may do what: roles, permissions and the one table that joins them.

Every REST route names one Permission; ``PERMISSIONS`` says which roles hold it. A user with
no role holds nothing (a new user waiting for an admin), so every route refuses it. Rules that
depend on the object as well as the role (team ownership, separation of duties) live in the
services, which receive an ``Actor``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from threadline.domain import errors


class Role(str, enum.Enum):
    VIEWER = "viewer"
    DEVELOPER = "developer"
    APPROVER = "approver"
    DEPLOYER = "deployer"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(str, enum.Enum):
    READ = "read"                        # models, versions, aliases, cards, approvals, policy
    READ_SENSITIVE = "read-sensitive"    # training-data references and profiles, logs, bundles
    WRITE_MODELS = "write-models"        # create models, register versions, edit cards, upload
    LIFECYCLE = "lifecycle"              # validate, deprecate, archive
    MOVE_ALIASES = "move-aliases"
    REQUEST_APPROVAL = "request-approval"
    DECIDE_APPROVAL = "decide-approval"  # approve, reject, withdraw; also trusting pickle
    ATTEST = "attest"                    # readiness attestations
    DEPLOY = "deploy"                    # trigger a GitOps sync
    REVIEW = "review"                    # the human review queue
    WRITE_FEEDBACK = "write-feedback"    # ground-truth labels for logged predictions
    WRITE_BUNDLES = "write-bundles"      # serving processes hand in bundles; imports
    READ_AUDIT = "read-audit"
    MANAGE_POLICY = "manage-policy"
    MANAGE_USERS = "manage-users"
    SELF_SERVICE = "self-service"        # own tokens, own MFA, whoami


_ALL = frozenset(Role)
_R = Role

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.READ: _ALL,
    Permission.SELF_SERVICE: _ALL,
    Permission.READ_SENSITIVE: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.APPROVER, _R.REVIEWER, _R.AUDITOR,
                                          _R.ADMIN}),
    Permission.WRITE_MODELS: frozenset({_R.DEVELOPER, _R.ADMIN}),
    Permission.LIFECYCLE: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.ADMIN}),
    Permission.MOVE_ALIASES: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.ADMIN}),
    Permission.REQUEST_APPROVAL: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.ADMIN}),
    Permission.DECIDE_APPROVAL: frozenset({_R.APPROVER, _R.ADMIN}),
    Permission.ATTEST: frozenset({_R.DEPLOYER, _R.APPROVER, _R.ADMIN}),
    Permission.DEPLOY: frozenset({_R.DEPLOYER, _R.ADMIN}),
    Permission.REVIEW: frozenset({_R.REVIEWER, _R.ADMIN}),
    Permission.WRITE_FEEDBACK: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.REVIEWER, _R.ADMIN}),
    Permission.WRITE_BUNDLES: frozenset({_R.DEVELOPER, _R.DEPLOYER, _R.ADMIN}),
    Permission.READ_AUDIT: frozenset({_R.AUDITOR, _R.ADMIN}),
    Permission.MANAGE_POLICY: frozenset({_R.ADMIN}),
    Permission.MANAGE_USERS: frozenset({_R.ADMIN}),
}


def roles(values: object, *, field: str = "roles") -> tuple[Role, ...]:
    """Parse a list of role names, refusing unknown ones with the list of known roles."""
    if not isinstance(values, (list, tuple)):
        raise errors.InvalidInput("must be a list of role names", field=field)
    parsed: list[Role] = []
    for value in values:
        try:
            role = Role(value)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise errors.InvalidInput(f"unknown role {value!r}: expected one of {known}", field=field) from None
        if role not in parsed:
            parsed.append(role)
    return tuple(parsed)


@dataclass(frozen=True)
class Actor:
    """The caller of a use case: the name audit entries record, with roles and teams."""

    name: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    teams: frozenset[str] = field(default_factory=frozenset)
    mfa_verified: bool = False  # a fresh TOTP code came with this request

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def can(self, permission: Permission) -> bool:
        return not self.roles.isdisjoint(PERMISSIONS[permission])

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            needed = ", ".join(sorted(r.value for r in PERMISSIONS[permission]))
            raise errors.Forbidden(f"{self.name} lacks permission {permission.value!r}: it needs one of the "
                                   f"roles {needed}")

    def require_owner(self, team: str, what: str) -> None:
        """Only members of the owning team (or an admin) may change a model."""
        if not self.is_admin and team not in self.teams:
            raise errors.Forbidden(f"{what} is owned by team {team!r} and {self.name} is not in it: ask an "
                                   "admin to add you to the team, or a member of it to make the change")


def system(name: str = "system") -> Actor:
    """The control plane itself (bootstrap, background work): holds every role."""
    return Actor(name, frozenset(Role), frozenset(), mfa_verified=True)
