"""Editing resources and replicas in a GitOps checkout: the diff a reviewer reads holds only the change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from threadline.domain import errors
from threadline.gitops import documents
from threadline.gitops.spec_edit import Change, Edit, Located, apply, locate, write

TWO_DOCUMENTS = """\
# Fraud scoring, owned by the risk team.
apiVersion: threadline/v1
kind: ModelDeployment
metadata:
  name: fraud-scorer
  environment: production   # the real one
  owner: risk-team
spec:
  model: fraud-model
  version: 7                  # or  alias: champion
  replicas:
    min: 1
    max: 4
  # sized for the peak in March
  resources:
    cpu: "1"
    memory: 2Gi
  tolerations:
    - key: gpu
      operator: Exists
---
# staging: smaller
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: fraud-scorer, environment: staging, owner: risk-team}
spec:
  model: fraud-model
  alias: champion
  resources: {cpu: "2", memory: 4Gi}
  rollout: {strategy: canary, steps: [{weight: 10, pause: 60s}, {weight: 50, pause: 60s}],
            analysis: {maxErrorRate: 0.01, maxP99LatencyMs: 50}}
"""

BLOCK_WITHOUT_REPLICAS = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata:
    name: churn
    environment: production
    owner: growth
spec:
    model: churn-model
    version: 3

    # how new versions roll out
    rollout:
        strategy: recreate
"""


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def changed_lines(change: Change) -> tuple[list[str], list[str]]:
    lines = change.diff.splitlines()[2:]
    return ([line[1:] for line in lines if line.startswith("-")],
            [line[1:] for line in lines if line.startswith("+")])


def loaded(change: Change, environment: str):
    [deployment] = [item for item in documents.load_text(change.after, "x.yaml")
                    if item.metadata.environment == environment]
    return deployment


def test_block_edit_changes_only_its_lines_and_keeps_comments_and_the_other_document(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"deploy/fraud.yaml": TWO_DOCUMENTS})

    change = apply(root, "fraud-scorer", "production", Edit(cpu="2", memory="4Gi", replicas_max=8))

    assert change.path == root / "deploy/fraud.yaml"
    assert change.before == TWO_DOCUMENTS
    assert change.diff.startswith("--- a/deploy/fraud.yaml\n+++ b/deploy/fraud.yaml\n")
    assert changed_lines(change) == (['    max: 4', '    cpu: "1"', "    memory: 2Gi"],
                                     ['    max: 8', '    cpu: "2"', "    memory: 4Gi"])
    assert change.after.split("---\n")[1] == TWO_DOCUMENTS.split("---\n")[1]  # the staging document
    for comment in ("# Fraud scoring", "# the real one", "# or  alias: champion", "# sized for the peak"):
        assert comment in change.after
    assert "    - key: gpu" in change.after  # sequence indentation kept
    production = loaded(change, "production")
    assert (production.spec.resources.cpu, production.spec.resources.memory) == ("2", "4Gi")
    assert (production.spec.replicas.min, production.spec.replicas.max) == (1, 8)
    assert (root / "deploy/fraud.yaml").read_text() == TWO_DOCUMENTS  # nothing written yet


def test_flow_mapping_keeps_its_style_and_quotes_and_gets_a_flow_replicas(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"fraud.yml": TWO_DOCUMENTS})

    change = apply(root, "fraud-scorer", "staging",
                   Edit(cpu="4", memory="8Gi", gpu=1, replicas_min=2, replicas_max=5))

    assert changed_lines(change) == (['  resources: {cpu: "2", memory: 4Gi}'],
                                     ["  replicas: {min: 2, max: 5}",
                                      '  resources: {cpu: "4", memory: 8Gi, gpu: 1}'])
    # the rollout written over two lines is not joined, though ruamel would join it
    assert "pause: 60s}],\n            analysis:" in change.after
    assert change.after.split("---\n")[0] == TWO_DOCUMENTS.split("---\n")[0]
    staging = loaded(change, "staging")
    assert staging.spec.resources.gpu == 1 and staging.spec.replicas.max == 5


def test_absent_replicas_is_created_in_block_style_above_the_comment_of_the_next_key(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"churn.yaml": BLOCK_WITHOUT_REPLICAS})

    change = apply(root, "churn", None, Edit(replicas_min=0, replicas_max=3, memory="512Mi"))

    assert change.after == BLOCK_WITHOUT_REPLICAS.replace(
        "    version: 3\n",
        "    version: 3\n    replicas:\n        min: 0\n        max: 3\n    resources:\n        memory: 512Mi\n")
    assert changed_lines(change)[0] == []
    deployment = loaded(change, "production")
    assert (deployment.spec.replicas.min, deployment.spec.replicas.max) == (0, 3)


def test_a_number_that_needs_quotes_is_quoted_and_windows_line_ends_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_bytes(BLOCK_WITHOUT_REPLICAS.replace("\n", "\r\n").encode())

    change = apply(tmp_path, "churn", "production", Edit(cpu="2"))

    assert '        cpu: "2"\r\n' in change.after
    assert change.after.count("\r\n") == change.after.count("\n")
    assert loaded(change, "production").spec.resources.cpu == "2"


def test_a_quantity_written_as_a_number_stays_a_number_and_new_quotes_follow_the_neighbours(tmp_path: Path) -> None:
    text = BLOCK_WITHOUT_REPLICAS + "    resources:\n        cpu: 2\n        memory: '1Gi'\n"
    root = checkout(tmp_path, {"churn.yaml": text})

    change = apply(root, "churn", None, Edit(cpu="4", memory="2Gi", gpu=1))

    assert changed_lines(change) == (["        cpu: 2", "        memory: '1Gi'"],
                                     ["        cpu: 4", "        memory: '2Gi'", "        gpu: 1"])
    assert loaded(change, "production").spec.resources.cpu == "4"


def test_values_that_already_hold_give_an_empty_change(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS, "churn.yaml": BLOCK_WITHOUT_REPLICAS})

    same = apply(root, "fraud-scorer", "production", Edit(cpu="1", memory="2Gi", replicas_min=1, replicas_max=4))
    default = apply(root, "churn", None, Edit(cpu="1", gpu=0, replicas_min=1, replicas_max=1))  # schema defaults

    for change in (same, default):
        assert change.diff == "" and change.after == change.before
        write(change)  # a no-op
    assert (root / "fraud.yaml").read_text() == TWO_DOCUMENTS


def test_locate_walks_the_checkout_and_skips_git_and_other_yaml(tmp_path: Path) -> None:
    root = checkout(tmp_path, {
        ".git/copy.yaml": TWO_DOCUMENTS,
        "charts/values.yaml": "replicaCount: 2\n",
        "broken.yaml": "kind: ModelDeployment\nspec: [\n",
        "apps/risk/fraud.yaml": TWO_DOCUMENTS,
    })

    assert locate(root, "fraud-scorer", "staging") == Located(root / "apps/risk/fraud.yaml", 1)
    assert locate(root, "fraud-scorer", "production") == Located(root / "apps/risk/fraud.yaml", 0)


def test_not_found_names_the_checkout(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS})

    with pytest.raises(errors.NotFound) as missing:
        locate(root, "fraud-scorer", "dev")
    assert str(missing.value) == (f"no ModelDeployment fraud-scorer (dev) in {root}: "
                                  "is this a checkout of the GitOps repository?")
    with pytest.raises(errors.NotFound, match="is this a checkout"):
        apply(tmp_path / "nowhere", "fraud-scorer", None, Edit(cpu="1"))


def test_two_declarations_are_listed(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"a.yaml": TWO_DOCUMENTS, "b/again.yaml": TWO_DOCUMENTS.split("---\n")[0]})

    with pytest.raises(errors.InvalidInput) as ambiguous:
        locate(root, "fraud-scorer", "production")
    assert "declared 2 times" in str(ambiguous.value)
    assert "a.yaml:2 (production)" in str(ambiguous.value) and "b/again.yaml:2 (production)" in str(ambiguous.value)

    with pytest.raises(errors.InvalidInput, match="name the environment"):
        locate(root, "fraud-scorer", None)  # production and staging


@pytest.mark.parametrize("edit, problem", [
    (Edit(replicas_min=6), r"spec.replicas: min \(6\) is more than max \(4\)"),
    (Edit(replicas_min=3, replicas_max=2), r"min \(3\) is more than max \(2\)"),
    (Edit(memory="512m"), "did you mean 512Mi"),
    (Edit(cpu="0"), "invalid cpu"),
])
def test_an_invalid_result_is_refused_and_the_file_left_alone(tmp_path: Path, edit: Edit, problem: str) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS})

    with pytest.raises(errors.InvalidInput, match=problem) as refused:
        apply(root, "fraud-scorer", "production", edit)

    assert str(refused.value).startswith("refused: the edit would make the deployment invalid")
    assert "fraud.yaml:" in str(refused.value)
    assert (root / "fraud.yaml").read_text() == TWO_DOCUMENTS
    assert [path.name for path in root.iterdir()] == ["fraud.yaml"]


@pytest.mark.parametrize("edit", [Edit(gpu=True), Edit(cpu=2), Edit(replicas_max="3")])  # type: ignore[arg-type]
def test_values_of_the_wrong_type_are_refused(tmp_path: Path, edit: Edit) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS})

    with pytest.raises(errors.InvalidInput):
        apply(root, "fraud-scorer", "production", edit)


def test_problems_of_another_document_do_not_block_the_edit(tmp_path: Path) -> None:
    broken = TWO_DOCUMENTS.replace("\n  alias: champion\n", "\n  alias: champion\n  colour: blue\n")
    with pytest.raises(errors.InvalidInput, match=r"^fraud.yaml:29: spec.colour: unknown field[^\n]*$"):
        documents.load_text(broken, "fraud.yaml")  # the staging document is broken
    root = checkout(tmp_path, {"fraud.yaml": broken})

    change = apply(root, "fraud-scorer", "production", Edit(gpu=1))

    assert changed_lines(change) == ([], ["    gpu: 1"])
    assert "colour: blue" in change.after


def test_write_replaces_the_file_atomically_with_its_permissions(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS})
    path = root / "fraud.yaml"
    os.chmod(path, 0o640)
    change = apply(root, "fraud-scorer", "production", Edit(cpu="500m"))

    write(change)

    assert path.read_text() == change.after
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(item.name for item in root.iterdir()) == ["fraud.yaml"]  # no temporary file left
    assert apply(root, "fraud-scorer", "production", Edit(cpu="500m")).diff == ""


def test_write_refuses_a_file_changed_since_the_edit(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"fraud.yaml": TWO_DOCUMENTS})
    change = apply(root, "fraud-scorer", "production", Edit(cpu="500m"))
    (root / "fraud.yaml").write_text(TWO_DOCUMENTS + "# someone else\n")

    with pytest.raises(errors.Conflict):
        write(change)
    assert (root / "fraud.yaml").read_text().endswith("# someone else\n")
