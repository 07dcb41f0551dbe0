"""The permission table and the actor checks."""

from __future__ import annotations

import pytest

from threadline.domain import access, errors

A = access


def test_every_permission_is_held_by_admin_and_nothing_by_a_user_without_roles() -> None:
    nobody = A.Actor("new")
    admin = A.Actor("root", frozenset({A.Role.ADMIN}))
    for permission in A.Permission:
        assert admin.can(permission) and not nobody.can(permission)
    assert set(A.PERMISSIONS) == set(A.Permission)


def test_roles_keep_to_their_jobs() -> None:
    developer = A.Actor("dana", frozenset({A.Role.DEVELOPER}), frozenset({"risk"}))
    assert developer.can(A.Permission.WRITE_MODELS) and not developer.can(A.Permission.DECIDE_APPROVAL)
    assert not A.Actor("ann", frozenset({A.Role.APPROVER})).can(A.Permission.WRITE_MODELS)
    assert not A.Actor("vic", frozenset({A.Role.VIEWER})).can(A.Permission.READ_SENSITIVE)
    assert A.Actor("aud", frozenset({A.Role.AUDITOR})).can(A.Permission.READ_AUDIT)
    with pytest.raises(errors.Forbidden, match="dana lacks permission 'manage-users': it needs one of the roles admin"):
        developer.require(A.Permission.MANAGE_USERS)
    developer.require_owner("risk", "model 'iris'")
    with pytest.raises(errors.Forbidden, match="owned by team 'fraud' and dana is not in it"):
        developer.require_owner("fraud", "model 'x'")


def test_role_names_are_checked() -> None:
    assert A.roles(["viewer", "viewer", "admin"]) == (A.Role.VIEWER, A.Role.ADMIN)
    with pytest.raises(errors.InvalidInput, match="unknown role 'root'"):
        A.roles(["root"])
