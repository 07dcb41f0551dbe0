"""TOTP second factor (RFC 6238): enrolment, confirmation and one-time step-up checks.

A code is accepted within one 30-second step either side of now, and only once: the newest
accepted step is stored, and a code for that step or an older one is refused as a replay.
The seed is encrypted at rest and shown only at enrolment.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, models

ISSUER = "Threadline"
STEP_SECONDS = 30
WINDOW_STEPS = 1


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str  # otpauth://totp/...; what an authenticator app scans


class Mfa:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock,
                 box: ports.SecretBox) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._box = box

    def enroll(self, actor: access.Actor) -> Enrolment:
        """Start (or restart) enrolment; the factor is active once ``confirm`` sees a code.

        Replacing a confirmed factor needs a code from the current one, so a stolen token
        alone cannot move someone's second factor to the thief's phone.
        """
        secret = pyotp.random_base32()
        with self._store.writing() as tx:
            user = tx.user_by_name(actor.name)
            existing = tx.get_mfa(user.id)
            if existing is not None and existing.confirmed_at is not None and not actor.mfa_verified:
                raise errors.Forbidden("you already have a second factor: send a current code "
                                       "(X-Threadline-OTP) to replace it")
            tx.put_mfa(models.MfaRecord(user.id, self._box.seal(secret.encode()), None, 0))
            self._audit.record(tx, actor.name, "mfa.enroll", f"user/{actor.name}", {})
        uri = pyotp.TOTP(secret).provisioning_uri(name=actor.name, issuer_name=ISSUER)
        return Enrolment(secret, uri)

    def confirm(self, actor: access.Actor, code: str) -> None:
        """Activate a pending enrolment with a first code from the authenticator."""
        with self._store.writing() as tx:
            user = tx.user_by_name(actor.name)
            record = tx.get_mfa(user.id)
            if record is None:
                raise errors.Conflict("no enrolment to confirm: run `threadline mfa enroll` first")
            step = self._matching_step(record, code)
            if step is None:
                raise errors.InvalidInput("the code does not match: check the authenticator's clock and "
                                          "enter the current code", field="code")
            tx.put_mfa(models.MfaRecord(user.id, record.secret, self._clock.now(), step))
            self._audit.record(tx, actor.name, "mfa.confirm", f"user/{actor.name}", {})

    def enrolled(self, user: models.User) -> bool:
        with self._store.reading() as tx:
            record = tx.get_mfa(user.id)
        return record is not None and record.confirmed_at is not None

    def verify(self, user: models.User, code: str) -> None:
        """Accept a fresh code once, or raise Forbidden saying why (the API audits refusals)."""
        with self._store.writing() as tx:
            record = tx.get_mfa(user.id)
            reason = self._refusal(record, code)
            if isinstance(reason, int):
                assert record is not None
                tx.put_mfa(models.MfaRecord(user.id, record.secret, record.confirmed_at, reason))
                return
        raise errors.Forbidden(f"TOTP code refused: {reason}")

    def _refusal(self, record: models.MfaRecord | None, code: str) -> int | str:
        if record is None or record.confirmed_at is None:
            return "no confirmed second factor: run `threadline mfa enroll` first"
        step = self._matching_step(record, code)
        if step is None:
            return "wrong or expired code"
        if step <= record.last_step:
            return "this code was already used; wait for the next one"
        return step

    def _matching_step(self, record: models.MfaRecord, code: str) -> int | None:
        """The time step ``code`` belongs to, within the window around now; None if none."""
        if not (isinstance(code, str) and len(code) == 6 and code.isdigit()):
            return None
        totp = pyotp.TOTP(self._box.open(record.secret).decode())
        now_step = int(self._clock.now().timestamp()) // STEP_SECONDS
        for step in range(now_step + WINDOW_STEPS, now_step - WINDOW_STEPS - 1, -1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None
