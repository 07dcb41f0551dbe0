"""The command line against a real control plane, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
import skops.io
import sqlalchemy as sa

from support import ControlPlane

pytestmark = pytest.mark.integration


def test_register_list_show_alias(shared_plane: ControlPlane, tmp_path: Path,
                                  iris_model: tuple[object, object]) -> None:
    model, features = iris_model
    model_path = tmp_path / "iris.skops"
    skops.io.dump(model, model_path)
    data = tmp_path / "train.csv"
    features.to_csv(data, index=False)  # type: ignore[attr-defined]
    card = tmp_path / "card.yaml"
    card.write_text("model_details:\n  overview: iris\nintended_use:\n  primary_uses: [teaching]\n")
    lineage = tmp_path / "lineage.yaml"
    lineage.write_text("code_repo: https://git.example/iris\ncode_commit: 0123abc\n")
    out = shared_plane.cli("models", "register", str(model_path), "--name", "cli-iris", "--training-data",
                           str(data), "--metric", "accuracy=0.97", "--card", str(card), "--lineage",
                           str(lineage), "--owner", "team-a", "--risk", "limited", "--json", check=True)
    version = json.loads(out.stdout)
    assert version["version"] == 1 and version["card"]["intended_use"] == {"primary_uses": ["teaching"]}
    assert version["lineage"]["code_commit"] == "0123abc" and version["metrics"] == {"accuracy": 0.97}
    shared_plane.cli("models", "register", str(model_path), "--name", "cli-iris", check=True)
    listed = json.loads(shared_plane.cli("models", "list", "--json", check=True).stdout)
    assert {"name": "cli-iris", "risk_tier": "limited"}.items() <= next(
        m for m in listed if m["name"] == "cli-iris").items()
    moved = shared_plane.cli("models", "alias", "cli-iris", "champion", "2", check=True).stdout
    assert "cli-iris@champion -> version 2" in moved
    shown = json.loads(shared_plane.cli("models", "show", "cli-iris@champion", "--json", check=True).stdout)
    assert shown["version"] == 2
    table = shared_plane.cli("models", "show", "cli-iris", check=True).stdout
    assert "champion=2" in table and "registered" in table
    assert "sepal_length" in shared_plane.cli("models", "show", "cli-iris@1", check=True).stdout


def test_cli_errors_are_one_line_without_traceback(shared_plane: ControlPlane, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "card.yaml"
    bad_yaml.write_text("a: 1\nb: [unclosed\n")
    model = tmp_path / "m.onnx"
    model.write_text("nope")
    cases = [
        (("models", "show", "../etc"), "invalid model name"),
        (("models", "show", "missing-model"), "not found"),
        (("models", "register", str(model), "--name", "x", "--card", str(bad_yaml)), f"{bad_yaml}:"),
        (("models", "register", str(model), "--name", "x", "--metric", "auc"), "NAME=NUMBER"),
        (("models", "register", str(tmp_path / "absent.skops"), "--name", "x"), "absent.skops"),
        (("models", "alias", "x", "champion"), "--delete"),
    ]
    for args, expected in cases:
        result = shared_plane.cli(*args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_audit_verify_export_and_tamper(control_plane: ControlPlane, tmp_path: Path) -> None:
    control_plane.cli("audit", "verify", check=True)
    export = tmp_path / "audit.jsonl"
    control_plane.cli("audit", "export", "-o", str(export), check=True)
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1)) and len(lines) >= 2
    assert json.loads(control_plane.cli("audit", "verify", "--json", check=True).stdout)["ok"]
    engine = sa.create_engine(control_plane.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2")
    engine.dispose()
    result = control_plane.cli("audit", "verify")
    assert result.returncode == 1 and "entry 2" in result.stderr and "edited" in result.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    plane = ControlPlane(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "admin.token").write_text("unused\n")
    result = plane.cli("db", "upgrade", check=True)
    assert "schema revision 0005" in result.stdout
    assert plane.cli("db", "upgrade", check=True).returncode == 0


def test_governance_commands(shared_plane: ControlPlane, tmp_path: Path, iris_model: tuple[object, object]) -> None:
    model_path = tmp_path / "gov.skops"
    skops.io.dump(iris_model[0], model_path)
    shared_plane.cli("users", "add", "gina", "--role", "developer", "--team", "default", check=True)
    created = shared_plane.cli("tokens", "create", "ci", "--user", "gina", check=True).stdout
    token = created.strip().splitlines()[-1]
    assert token.startswith("tl_") and "not shown again" in created
    listed = shared_plane.cli("tokens", "list", "--user", "gina", check=True).stdout
    assert "gina" in listed and token not in listed
    assert "developer" in shared_plane.cli("users", "list", check=True).stdout

    shared_plane.cli("models", "register", str(model_path), "--name", "gov", "--metric", "accuracy=0.95", check=True)
    check = shared_plane.cli("models", "check", "gov@1", "--env", "production")
    assert check.returncode == 1 and "approvals" in check.stdout and "request approval first" in check.stdout
    assert shared_plane.cli("models", "check", "gov@1", "--env", "staging", check=True).returncode == 0
    html = tmp_path / "card.html"
    shared_plane.cli("models", "card", "gov@1", "--format", "html", "-o", str(html), check=True)
    assert "<html" in html.read_text().lower()
    card = tmp_path / "card.yaml"
    card.write_text("model_details:\n  overview: governed\n")
    shared_plane.cli("models", "card", "gov@1", "--edit", str(card), check=True)
    assert "governed" in shared_plane.cli("models", "card", "gov@1", check=True).stdout
    shared_plane.cli("models", "transition", "gov@1", "validate", check=True)
    requested = shared_plane.cli("approvals", "request", "gov@1", "--env", "production", "-m", "ship it", check=True)
    assert "0 of 1 distinct approvers" in requested.stdout
    assert "request" in shared_plane.cli("approvals", "list", "gov@1", check=True).stdout
    assert "GovernancePolicy" in shared_plane.cli("policy", "show", check=True).stdout
    report = shared_plane.cli("compliance", "gov@1", check=True).stdout
    assert "Art. 12" in report and "NIST" in report
    bad_card = tmp_path / "bad-card.yaml"
    bad_card.write_text("model_details:\n  overveiw: typo\n")
    refused = shared_plane.cli("models", "card", "gov@1", "--edit", str(bad_card))
    assert refused.returncode == 1 and f"{bad_card}:2: model_details.overveiw: unknown field" in refused.stderr
    listed = shared_plane.cli("audit", "list", "--object", "model/gov", "--last", "5", check=True).stdout
    assert "approval.request" in listed and "card.edit" in listed
    exported = shared_plane.cli("audit", "export", "--action", "card.", check=True).stdout
    assert [json.loads(line)["action"] for line in exported.splitlines()] == ["card.edit"]


def test_mfa_enroll_shows_a_qr_code_and_confirms_with_a_code(control_plane: ControlPlane) -> None:
    process = subprocess.Popen([sys.executable, "-m", "threadline", "mfa", "enroll"], env=control_plane.cli_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    shown = ""
    while "secret (manual entry):" not in shown:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        shown += line
    secret = shown.rsplit("secret (manual entry):", 1)[1].strip()
    assert "otpauth://totp/Threadline:admin?" in shown and "█" in shown  # the QR code, in block characters
    process.stdin.write(pyotp.TOTP(secret).now() + "\n")
    process.stdin.close()
    rest = process.stdout.read()
    assert process.wait(timeout=60) == 0, rest
    assert "second factor enrolled" in rest
