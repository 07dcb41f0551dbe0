"""The audit pages: entries newest first with filters and paging, the chain's verification, and
the compliance and readiness reports of a real registered model and deployment."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dashboard_support import Dashboard, dashboard
from starlette.testclient import TestClient

from threadline.artifacts import pack
from threadline.domain import access, models
from threadline.gitops import documents
from threadline.registry.requests import NewVersion

pytestmark = pytest.mark.integration

ADMIN = access.system("dana")
HOSTILE = "<script>alert('x')</script>"
LISTINGS = 60  # more than a page of review.listed entries
SPEC = """apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: scorer, environment: production, owner: default}
spec:
  model: iris
  version: 1
  replicas: {min: 2, max: 4}
"""
_ROW = re.compile(r'<td class="num">(\d+)</td>.*?title="Only entries by [^"]*">([^<]*)</a>.*?'
                  r'title="Only [^"]* entries">([^<]*)</a>.*?title="Only entries about [^"]*">([^<]*)</a>', re.S)
_LINK = re.compile(r'<a href="([^"]*)" rel="(?:prev|next)">(Newer|Older) entries</a>')


@dataclass
class Seeded:
    board: Dashboard
    tokens: dict[str, str]

    def client(self, user: str) -> TestClient:
        return self.board.signed_in(self.tokens[user])


def rows(html: str) -> list[tuple[int, str, str, str]]:
    """(seq, actor, action, object) of each entry shown, in page order."""
    return [(int(seq), actor, action, obj) for seq, actor, action, obj in _ROW.findall(html)]


def links(html: str) -> dict[str, str]:
    return {label: href.replace("&amp;", "&") for href, label in _LINK.findall(html)}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("audit")
    board = dashboard(home)
    data = pd.DataFrame(np.random.default_rng(3).normal(size=(120, 2)), columns=["x", "y"])
    fitted = LogisticRegression().fit(data, np.where(data["x"] > 0, "yes", "no"))
    path, _ = pack.pack_model(fitted, home, None)
    digest = board.services.artifacts.put([path.read_bytes()]).digest
    board.services.registry.register_version(ADMIN, NewVersion("iris", digest, owner="default"))
    with board.services.store.writing() as tx:  # the deployment as the GitOps agent records it
        spec = documents.load_text(SPEC, "scorer.yaml")[0].model_dump(mode="json", by_alias=True)
        tx.put_deployment(models.DeploymentRecord("scorer", "production", spec, "a" * 40, "Synced", "", (), {},
                                                  datetime.now(timezone.utc)))
    reviewer = access.Actor("rita", frozenset({access.Role.REVIEWER}))
    for _ in range(LISTINGS):
        board.services.reviews.tasks(reviewer, queue=None, status="open", limit=10)
    board.services.reviews.tasks(reviewer, queue=HOSTILE, status=None, limit=10)
    tokens = {name: board.token_for(name, role) for name, role in (
        ("aud", access.Role.AUDITOR), ("dev", access.Role.DEVELOPER), ("val", access.Role.VIEWER))}
    return Seeded(board, tokens)


def test_the_log_is_newest_first_under_its_verification(seeded: Seeded) -> None:
    page = seeded.client("aud").get("/audit")
    assert page.status_code == 200
    assert "INTACT" in page.text and seeded.board.services.signer.key_id in page.text
    shown = rows(page.text)
    with seeded.board.services.store.reading() as tx:
        head = tx.audit_head()
    assert head is not None and shown[0][0] >= head[0] - 2  # signing in adds entries of its own
    assert [seq for seq, *_ in shown] == sorted((seq for seq, *_ in shown), reverse=True)
    assert len(shown) == 50 and set(links(page.text)) == {"Older"}


def test_pages_go_back_and_forth_without_gaps_or_overlaps(seeded: Seeded) -> None:
    client = seeded.client("aud")
    first = client.get("/audit?action=review.listed")
    older = client.get(links(first.text)["Older"])
    newest, rest = rows(first.text), rows(older.text)
    assert len(newest) == 50 and len(rest) == LISTINGS + 1 - 50
    sequence = [seq for seq, *_ in newest + rest]
    assert sequence == sorted(set(sequence), reverse=True)
    assert {action for _, _, action, _ in newest + rest} == {"review.listed"}
    assert "Older" not in links(older.text)
    back = client.get(links(older.text)["Newer"])
    assert rows(back.text) == newest
    assert "action=review.listed" in links(older.text)["Newer"]  # the filter stays on


def test_filters_by_action_family_actor_and_object(seeded: Seeded) -> None:
    client = seeded.client("aud")
    family = rows(client.get("/audit?action=version.").text)
    assert family and {action for _, _, action, _ in family} == {"version.register"}
    by_actor = rows(client.get("/audit?actor=rita").text)
    assert by_actor and {actor for _, actor, _, _ in by_actor} == {"rita"}
    below = rows(client.get("/audit?object=model/iris").text)
    assert {obj for *_, obj in below} == {"model/iris", "model/iris/version/1"}
    page = client.get("/audit?actor=nobody-at-all")
    assert page.status_code == 200 and "0 matching entries" in page.text and "No entry matches" in page.text


def test_hostile_strings_are_escaped(seeded: Seeded) -> None:
    client = seeded.client("aud")
    echoed = client.get("/audit", params={"actor": HOSTILE})
    assert echoed.status_code == 200 and HOSTILE not in echoed.text
    assert 'value="&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"' in echoed.text
    shown = client.get("/audit", params={"action": "review.listed", "actor": "rita"}).text
    assert ">queue/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</a>" in shown and HOSTILE not in shown


def test_bad_paging_parameters_are_a_400_page(seeded: Seeded) -> None:
    client = seeded.client("aud")
    assert client.get("/audit?before=5&after=2").status_code == 400
    page = client.get("/audit?before=soon")
    assert page.status_code == 400 and "before" in page.text


def test_the_log_needs_read_audit(seeded: Seeded) -> None:
    page = seeded.client("dev").get("/audit")
    assert page.status_code == 403 and "read-audit" in page.text
    with seeded.board.services.store.reading() as tx:
        denied = tx.audit_entries(after=0, limit=10_000, action="access.denied", actor="dev")
    assert denied and denied[-1].object == "/audit"


def test_the_compliance_report_of_a_registered_version(seeded: Seeded) -> None:
    client = seeded.client("val")  # reports need only read, as in the API
    form = client.get("/audit/compliance")
    assert form.status_code == 200 and 'name="model"' in form.text and '<option value="iris">' in form.text
    page = client.get("/audit/compliance?model=iris&version=1&deployment=production/scorer")
    assert page.status_code == 200
    for heading in ("EU AI Act", "NIST AI RMF", "ISO/IEC 42001"):
        assert f">{heading}</h2>" in page.text
    assert "Art. 10" in page.text and "MISSING" in page.text and "scorer in production" in page.text
    one = client.get("/audit/compliance", params={"model": "iris", "framework": "NIST AI RMF"})
    assert ">NIST AI RMF</h2>" in one.text and ">EU AI Act</h2>" not in one.text
    assert client.get("/audit/compliance?model=iris&framework=SOX").status_code == 400
    missing = client.get("/audit/compliance?model=no-such-model")
    assert missing.status_code == 404 and "no-such-model" in missing.text


def test_the_readiness_checklist_of_a_deployment(seeded: Seeded) -> None:
    client = seeded.client("val")
    form = client.get("/audit/readiness")
    assert form.status_code == 200 and '<option value="production/scorer">' in form.text
    page = client.get("/audit/readiness?deployment=production/scorer")
    assert page.status_code == 200
    assert "NOT READY" in page.text and ">Infrastructure</h2>" in page.text and "infrastructure.replicas" in page.text
    assert "Model iris version 1" in page.text
    missing = client.get("/audit/readiness?deployment=production/ghost")
    assert missing.status_code == 404 and "ghost" in missing.text
    assert client.get("/audit/readiness?deployment=scorer").status_code == 400


def test_a_tampered_entry_shows_the_chain_broken(tmp_path: Path) -> None:
    board = dashboard(tmp_path)
    client = board.signed_in()  # the bootstrap and the sign-in wrote entries
    with sqlite3.connect(tmp_path / "threadline.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1")
    page = client.get("/audit")
    assert page.status_code == 200 and "BROKEN" in page.text and "breaks at entry" in page.text
