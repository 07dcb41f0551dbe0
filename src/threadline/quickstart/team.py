"""The demo team, set up through the API the way an admin sets up a real one.

The admin (the bootstrap user of ``threadline up``) creates a developer, two approvers and a
reviewer and issues each a token; the approvers enrol a TOTP second factor, because the
``high`` risk tier needs two MFA-verified approvers in production. Each person's token and
TOTP seed are kept in 0600 files in the home, where a person would keep them in a password
manager and an authenticator app; codes are computed from the seeds with pyotp.

Everything is "ensure": an existing user is reused, a token that no longer works (or whose file
an interrupted run never wrote) is replaced, and a TOTP enrolment interrupted anywhere is
finished or restarted on the next run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp

from threadline.client import Client
from threadline.domain import errors
from threadline.quickstart.demo import TEAM
from threadline.quickstart.home import Home

STEP_SECONDS = 30  # RFC 6238 time step, as the control plane's MFA uses


@dataclass(frozen=True)
class Member:
    name: str
    role: str
    teams: tuple[str, ...] = ()
    totp: bool = False


DEVELOPER = Member("dana", "developer", (TEAM,))
APPROVERS = (Member("ann", "approver", totp=True), Member("abe", "approver", totp=True))
REVIEWER = Member("rita", "reviewer")
MEMBERS = (DEVELOPER, *APPROVERS, REVIEWER)


class Team:
    """The members' clients, tokens and second factors."""

    def __init__(self, home: Home, url: str, admin: Client) -> None:
        self._home, self._url, self._admin = home, url, admin
        self._clients: dict[str, Client] = {}

    def ensure(self) -> None:
        existing = {user["name"] for user in self._admin.list_users()}
        for member in MEMBERS:
            if member.name not in existing:
                self._admin.create_user(member.name, [member.role], list(member.teams))
            self._clients[member.name] = Client(self._url, self._token(member.name))
            if member.totp:
                self._enrol(member.name)

    def client(self, member: Member) -> Client:
        return self._clients[member.name]

    def token(self, member: Member) -> str:
        return self._clients[member.name].token or ""

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- tokens ---------------------------------------------------------------------------

    def _token(self, name: str) -> str:
        path = self._home.token_path(name)
        current = self._home.read_secret(path)
        if current is not None and self._works(current, name):
            return current
        secret = str(self._admin.create_token("quickstart", user=name)["token"])
        self._home.write_secret(path, secret)
        return secret

    def _works(self, token: str, name: str) -> bool:
        with Client(self._url, token) as client:
            try:
                return client.whoami()["user"] == name
            except errors.Unauthorized:
                return False

    # -- TOTP -----------------------------------------------------------------------------

    def code(self, member: Member) -> str:
        """A fresh code for a step-up action (an approval)."""
        path = self._home.totp_path(member.name)
        record = self._home.read_json(path)
        if record is None or not record.get("confirmed"):
            raise errors.Conflict(f"{member.name} has no confirmed second factor in {path}")
        return self._code(path, record, earliest=_now_step())[0]

    def _enrol(self, name: str) -> None:
        """Enrol and confirm, finishing an enrolment an interrupted run left half done."""
        path = self._home.totp_path(name)
        client = self._clients[name]
        record = self._home.read_json(path)
        if record is not None and record.get("confirmed"):
            return
        if record is not None and self._confirm(client, path, record):
            return  # the server held our seed (pending, or confirmed before we could note it)
        try:
            secret = str(client.mfa_enroll()["secret"])
        except errors.Forbidden:
            raise errors.Conflict(f"{name} has a second factor whose seed is not in {path}: "
                                  "start over with --fresh") from None
        record = {"secret": secret, "confirmed": False, "last_step": -1}
        self._home.write_json(path, record)
        if not self._confirm(client, path, record):
            raise errors.IntegrityError(f"the control plane refused {name}'s first TOTP code")

    def _confirm(self, client: Client, path: Path, record: dict[str, Any]) -> bool:
        """Confirm with the previous step's code (within the allowed clock skew), which leaves
        this step's code free for the approval that follows."""
        code, record = self._code(path, record, earliest=_now_step() - 1)
        try:
            client.mfa_confirm(code)
        except (errors.InvalidInput, errors.Conflict):
            return False
        self._home.write_json(path, {**record, "confirmed": True})
        return True

    def _code(self, path: Path, record: dict[str, Any], *,
              earliest: int) -> tuple[str, dict[str, Any]]:
        """The code of the first step from ``earliest`` on that the control plane has not seen,
        waiting for that step to begin if need be (codes are never taken from the future).
        The step is recorded before the code is sent, so an interruption can only make the
        record run ahead of the server, never lead to a code being refused as already used."""
        step = max(earliest, int(record["last_step"]) + 1)
        if step > _now_step():
            time.sleep(max(0.0, step * STEP_SECONDS - time.time()) + 0.05)
        record = {**record, "last_step": step}
        self._home.write_json(path, record)
        return pyotp.TOTP(str(record["secret"])).at(step * STEP_SECONDS), record


def _now_step() -> int:
    return int(time.time()) // STEP_SECONDS
