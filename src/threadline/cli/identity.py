"""``threadline users``, ``threadline tokens`` and ``threadline mfa``."""

from __future__ import annotations

import io
from typing import Any, Optional

import typer

from threadline.cli.output import console, emit_json, table

users = typer.Typer(no_args_is_help=True, help="Manage users, their roles and teams (admins).")
tokens = typer.Typer(no_args_is_help=True, help="Create, list and revoke API tokens.")
mfa = typer.Typer(no_args_is_help=True, help="Enrol a TOTP second factor for step-up actions.")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
ROLES_HELP = "A role: viewer, developer, approver, deployer, reviewer, auditor, admin; repeat for more."


def _client() -> Any:
    from threadline.client import Client

    return Client()


def _show_users(items: list[dict[str, Any]]) -> None:
    table("Users", ("name", "roles", "teams", "disabled"),
          ((u["name"], ", ".join(u["roles"]), ", ".join(u["teams"]), "yes" if u["disabled"] else "")
           for u in items))


@users.command("add")
def add_user(name: str = typer.Argument(...), role: list[str] = typer.Option([], "--role", help=ROLES_HELP),
             team: list[str] = typer.Option([], "--team", help="A team whose models the user may change."),
             as_json: bool = JSON_OPTION) -> None:
    """Create a user; then give them a token with `threadline tokens create --user NAME`."""
    with _client() as client:
        user = client.create_user(name, role, team)
    emit_json(user) if as_json else _show_users([user])


@users.command("list")
def list_users(as_json: bool = JSON_OPTION) -> None:
    with _client() as client:
        items = client.list_users()
    emit_json(items) if as_json else _show_users(items)


@users.command("update")
def update_user(name: str = typer.Argument(...),
                role: Optional[list[str]] = typer.Option(None, "--role", help=ROLES_HELP + " Replaces the roles."),
                team: Optional[list[str]] = typer.Option(None, "--team", help="Replaces the teams."),
                as_json: bool = JSON_OPTION) -> None:
    """Replace a user's roles and/or teams."""
    with _client() as client:
        user = client.update_user(name, roles=role, teams=team)
    emit_json(user) if as_json else _show_users([user])


@users.command("disable")
def disable_user(name: str = typer.Argument(...),
                 enable: bool = typer.Option(False, "--enable", help="Enable the user again instead.")) -> None:
    """Disable a user: every token of theirs stops working."""
    with _client() as client:
        client.update_user(name, disabled=not enable)
    console.print(f"{name} {'enabled' if enable else 'disabled'}")


@tokens.command("create")
def create_token(name: str = typer.Argument(..., help="A label to tell your tokens apart."),
                 user: Optional[str] = typer.Option(None, help="For another user (admins)."),
                 expires_in_days: int = typer.Option(90, help="Days until it expires; 0: never (admins)."),
                 as_json: bool = JSON_OPTION) -> None:
    """Create a token and print its secret: this is the only time it is shown."""
    with _client() as client:
        issued = client.create_token(name, user=user, expires_in_days=expires_in_days or None)
    if as_json:
        emit_json(issued)
        return
    expiry = issued["expires_at"] or "never"
    console.print(f"token {issued['id']} for {issued['user']} (expires {expiry}); store it now, it is not shown again:")
    print(issued["token"])


@tokens.command("list")
def list_tokens(user: Optional[str] = typer.Option(None, help="Another user's tokens (admins)."),
                as_json: bool = JSON_OPTION) -> None:
    with _client() as client:
        items = client.list_tokens(user)
    if as_json:
        emit_json(items)
        return
    table("Tokens", ("id", "user", "name", "prefix", "expires", "revoked"),
          ((t["id"], t["user"], t["name"], t["prefix"] + "…", t["expires_at"] or "never", t["revoked_at"] or "")
           for t in items))


@tokens.command("revoke")
def revoke_token(token_id: int = typer.Argument(..., help="The id from `threadline tokens list`.")) -> None:
    with _client() as client:
        client.revoke_token(token_id)
    console.print(f"token {token_id} revoked")


@mfa.command("enroll")
def enroll(otp: Optional[str] = typer.Option(None, help="A current code, to replace an existing factor."),
           code: Optional[str] = typer.Option(None, help="Confirm with this code instead of being asked.")) -> None:
    """Show a QR code and otpauth URI for an authenticator app, then confirm with a first code."""
    import qrcode

    with _client() as client:
        enrolment = client.mfa_enroll(otp=otp)
        qr = qrcode.QRCode(border=1)
        qr.add_data(enrolment["uri"])
        art = io.StringIO()
        qr.print_ascii(out=art, invert=True)
        console.print(art.getvalue(), highlight=False, markup=False)
        console.print(f"otpauth URI: {enrolment['uri']}", highlight=False, markup=False)
        console.print(f"secret (manual entry): {enrolment['secret']}", highlight=False, markup=False)
        client.mfa_confirm(code or typer.prompt("code from the authenticator"))
    console.print("[green]second factor enrolled[/green]: pass --otp CODE to actions that need step-up")
