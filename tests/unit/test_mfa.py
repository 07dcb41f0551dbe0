"""TOTP step-up: a code is accepted once, within one step of clock skew, and seeds are encrypted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyotp
import pytest

from threadline.adapters.secretbox import SecretBox
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.audit.log import AuditLog
from threadline.domain import access, errors
from threadline.identity.mfa import Mfa


class Clock:
    def __init__(self) -> None:
        self.time = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.time


@pytest.fixture
def world(tmp_path: Path) -> tuple[Mfa, Clock, SqlMetadataStore]:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock()
    with store.writing() as tx:
        tx.add_user("ann", ("approver",), time=clock.now())
    audit = AuditLog(Ed25519Signer.load_or_create(tmp_path / "key"), clock)
    return Mfa(store, audit, clock, SecretBox.load_or_create(tmp_path / "secrets.key")), clock, store


def code(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + timedelta(seconds=30 * steps))


def test_codes_are_accepted_once_within_the_window(world: tuple[Mfa, Clock, SqlMetadataStore]) -> None:
    mfa, clock, store = world
    ann = access.Actor("ann", frozenset({access.Role.APPROVER}))
    enrolment = mfa.enroll(ann)
    assert enrolment.uri.startswith("otpauth://totp/Threadline:ann?") and "issuer=Threadline" in enrolment.uri
    with store.reading() as tx:
        user = tx.user_by_name("ann")
        assert enrolment.secret.encode() not in tx.get_mfa(user.id).secret  # sealed at rest
    with pytest.raises(errors.Forbidden, match="no confirmed second factor"):
        mfa.verify(user, code(enrolment.secret, clock))
    with pytest.raises(errors.InvalidInput, match="does not match"):
        mfa.confirm(ann, "123456" if code(enrolment.secret, clock) != "123456" else "654321")
    mfa.confirm(ann, code(enrolment.secret, clock, -1))
    mfa.verify(user, code(enrolment.secret, clock))
    with pytest.raises(errors.Forbidden, match="already used"):
        mfa.verify(user, code(enrolment.secret, clock))
    with pytest.raises(errors.Forbidden, match="already used"):
        mfa.verify(user, code(enrolment.secret, clock, -1))  # older than the last accepted
    mfa.verify(user, code(enrolment.secret, clock, 1))       # one step of skew ahead
    with pytest.raises(errors.Forbidden, match="wrong or expired"):
        mfa.verify(user, code(enrolment.secret, clock, 3))
    clock.time += timedelta(minutes=5)
    with pytest.raises(errors.Forbidden, match="wrong or expired"):
        mfa.verify(user, code(enrolment.secret, clock, -3))
    for malformed in ("", "12345", "abcdef", "1234567"):
        with pytest.raises(errors.Forbidden, match="wrong or expired"):
            mfa.verify(user, malformed)


def test_replacing_a_confirmed_factor_needs_a_current_code(world: tuple[Mfa, Clock, SqlMetadataStore]) -> None:
    mfa, clock, _ = world
    ann = access.Actor("ann", frozenset({access.Role.APPROVER}))
    mfa.confirm(ann, code(mfa.enroll(ann).secret, clock))
    with pytest.raises(errors.Forbidden, match="already have a second factor"):
        mfa.enroll(ann)
    assert mfa.enroll(access.Actor("ann", ann.roles, mfa_verified=True)).secret
