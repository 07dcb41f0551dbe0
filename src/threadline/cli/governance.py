"""``threadline policy``, ``threadline approvals``, ``threadline compliance`` and ``threadline readiness``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import orjson
import typer

from threadline.cli.output import console, emit_json, fail, table
from threadline.domain import errors, names

policy = typer.Typer(no_args_is_help=True, help="Show and change the governance policy.")
approvals = typer.Typer(no_args_is_help=True, help="Request, approve, reject or withdraw approval of a version.")
readiness = typer.Typer(no_args_is_help=True, help="The production readiness checklist of a deployment.")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
OTP_OPTION = typer.Option(None, "--otp", help="A fresh TOTP code, where the policy requires MFA.")
ENV_OPTION = typer.Option(..., "--env", "-e", help="Environment, e.g. staging or production.")
FORMAT_OPTION = typer.Option("markdown", "--format", "-f", help="markdown, html or json.")


def _client() -> Any:
    from threadline.client import Client

    return Client()


def _ref(ref: str) -> tuple[str, int]:
    name, version = names.version_ref(ref)
    if not str(version).isdigit():
        raise errors.InvalidInput(f"{ref!r}: approvals name a version number, e.g. {name}@3")
    return name, int(version)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"cannot read {path}: {exc}") from None


def show_gates(report: dict[str, Any]) -> None:
    """The gate table every governance command ends with."""
    verdict = "[green]passes[/green]" if report["passed"] else "[red]does not pass[/red]"
    console.print(f"{report['model']}@{report['version']} ({report['risk_tier']} risk) {verdict} the gates of "
                  f"{report['environment']} (policy v{report['policy_version']})")
    table("Gates", ("gate", "outcome", "reason"),
          ((g["name"], g["outcome"], g["reason"]) for g in report["gates"]))


def print_document(text: Any, output: Optional[Path]) -> None:
    if isinstance(text, dict):
        text = orjson.dumps(text, option=orjson.OPT_INDENT_2).decode()
    if output is None:
        print(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")


@policy.command("show")
def show_policy(as_json: bool = JSON_OPTION) -> None:
    """Print the policy in force (version 0 is the built-in pack)."""
    with _client() as client:
        current = client.get_policy()
    if as_json:
        emit_json(current)
    else:
        console.print(f"# policy version {current['version']}", highlight=False)
        print(current["document"])


@policy.command("set")
def set_policy(path: Path = typer.Argument(..., help="The policy YAML."), otp: Optional[str] = OTP_OPTION) -> None:
    """Put a new policy in force (admins, with --otp); a bad file is refused and nothing changes."""
    with _client() as client:
        result = client.set_policy(_read(path), source=path.name, otp=otp)
    console.print(f"policy version {result['version']} is in force")


@policy.command("history")
def policy_history(as_json: bool = JSON_OPTION) -> None:
    with _client() as client:
        items = client.policy_history()
    if as_json:
        emit_json(items)
        return
    table("Policy versions", ("version", "digest", "by", "at"),
          ((p["version"], p["digest"][:12], p["created_by"], p["created_at"][:16]) for p in items))


def _decide(ref: str, environment: str, decision: str, comment: str, otp: str | None, as_json: bool) -> None:
    name, version = _ref(ref)
    with _client() as client:
        if decision == "request":
            report = client.request_approval(name, version, environment, comment)
        else:
            report = client.decide(name, version, environment, decision, comment, otp=otp)
    emit_json(report) if as_json else show_gates(report)


@approvals.command("request")
def request(ref: str = typer.Argument(..., help="NAME@VERSION"), environment: str = ENV_OPTION,
            comment: str = typer.Option("", "--comment", "-m"), as_json: bool = JSON_OPTION) -> None:
    """Ask approvers to approve a validated version for an environment."""
    _decide(ref, environment, "request", comment, None, as_json)


@approvals.command("approve")
def approve(ref: str = typer.Argument(..., help="NAME@VERSION"), environment: str = ENV_OPTION,
            comment: str = typer.Option("", "--comment", "-m"), otp: Optional[str] = OTP_OPTION,
            as_json: bool = JSON_OPTION) -> None:
    """Approve (never your own registration); once every gate passes the version is approved."""
    _decide(ref, environment, "approve", comment, otp, as_json)


@approvals.command("reject")
def reject(ref: str = typer.Argument(..., help="NAME@VERSION"), environment: str = ENV_OPTION,
           comment: str = typer.Option(..., "--comment", "-m", help="Why: the developer reads this."),
           as_json: bool = JSON_OPTION) -> None:
    _decide(ref, environment, "reject", comment, None, as_json)


@approvals.command("withdraw")
def withdraw(ref: str = typer.Argument(..., help="NAME@VERSION"), environment: str = ENV_OPTION,
             comment: str = typer.Option("", "--comment", "-m"), as_json: bool = JSON_OPTION) -> None:
    """Withdraw your approval (a new record; the old one stays in the history)."""
    _decide(ref, environment, "withdraw", comment, None, as_json)


@approvals.command("list")
def list_approvals(ref: str = typer.Argument(..., help="NAME@VERSION"), as_json: bool = JSON_OPTION) -> None:
    name, version = names.version_ref(ref)
    with _client() as client:
        items = client.approvals(name, version)
    if as_json:
        emit_json(items)
        return
    table(f"Approvals of {ref}", ("when", "environment", "decision", "by", "mfa", "comment"),
          ((a["time"][:16], a["environment"], a["decision"], a["actor"], "yes" if a["mfa"] else "", a["comment"][:60])
           for a in items))


def compliance(ref: str = typer.Argument(..., help="NAME@VERSION"),
               deployment: Optional[Path] = typer.Option(None, help="The ModelDeployment YAML it runs under."),
               format: str = FORMAT_OPTION,
               output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file.")) -> None:
    """Map the evidence Threadline holds to EU AI Act, NIST AI RMF and ISO/IEC 42001 controls."""
    name, version = names.version_ref(ref)
    with _client() as client:
        report = client.compliance(name, version, deployment=_read(deployment) if deployment else None,
                                   format=format)
    print_document(report, output)


@readiness.command("check")
def readiness_check(deployment: Path = typer.Argument(..., help="The ModelDeployment YAML."),
                    format: str = FORMAT_OPTION,
                    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file.")) -> None:
    """Evaluate the production readiness checklist; exit 1 when it is not ready."""
    with _client() as client:
        checklist = client.readiness(_read(deployment), format="json")
        rendered = checklist if format == "json" else client.readiness(_read(deployment), format=format)
    print_document(rendered, output)
    if not checklist["ready"]:
        raise fail("not ready: fix the failed items, and attest what no check can see "
                   "(`threadline readiness attest FILE --item ID -m WHAT`)")


@readiness.command("attest")
def attest(deployment: Path = typer.Argument(..., help="The ModelDeployment YAML."),
           item: str = typer.Option(..., help="The item id, e.g. infrastructure.network_policy."),
           comment: str = typer.Option(..., "--comment", "-m", help="What you checked.")) -> None:
    """Sign that an item no check can see holds; the signature and your name are recorded."""
    with _client() as client:
        record = client.attest(_read(deployment), item, comment)
    console.print(f"attested {record['item']} for {record['deployment']} ({record['environment']}) as "
                  f"{record['actor']}, signed with key {record['key_id']}")
