"""The ModelDeployment spec: what parses, and that every refusal names file, line and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from threadline.domain import errors
from threadline.gitops import documents, spec, values

DESIGN_EXAMPLE = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: fraud-scorer, environment: production, owner: risk-team}
spec:
  model: fraud-model
  version: 7                  # or  alias: champion  (resolved and pinned to a digest)
  replicas: {min: 1, max: 4}
  resources: {cpu: "1", memory: 2Gi, gpu: 0}
  rollout: {strategy: canary, steps: [{weight: 10, pause: 60s}, {weight: 50, pause: 60s}],
            analysis: {maxErrorRate: 0.01, maxP99LatencyMs: 50}}
  health: {failureThreshold: 3}
  monitoring: {drift: {method: psi, threshold: 0.2, window: 1h},
               accuracy: {metric: f1, minimum: 0.85}, retrain: {webhook: "https://hooks.example.com/r"}}
  escalation: {confidenceBelow: 0.6, queue: fraud-review}
"""

HEADER = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: scorer, environment: staging, owner: risk-team}
"""


def minimal(spec_lines: str = "", *, name: str = "scorer") -> str:
    """A valid document (model m, version 1) with ``spec_lines`` appended under spec; spec begins at line 4."""
    return HEADER.replace("scorer", name) + "spec:\n  model: m\n  version: 1\n" + textwrap.indent(
        textwrap.dedent(spec_lines), "  ")


def refusal(text: str, source: str = "deploy.yaml") -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        documents.load_text(text, source)
    return str(caught.value)


def test_the_design_example_parses_with_python_names() -> None:
    [deployment] = documents.load_text(DESIGN_EXAMPLE, "design.yaml")
    assert deployment.key == ("fraud-scorer", "production")
    assert deployment.metadata.owner == "risk-team"
    s = deployment.spec
    assert (s.model, s.version, s.alias) == ("fraud-model", 7, None)
    assert (s.replicas.min, s.replicas.max) == (1, 4)
    assert (s.resources.cpu, s.resources.memory, s.resources.gpu) == ("1", "2Gi", 0)
    assert s.rollout.strategy == "canary"
    assert [(step.weight, step.pause) for step in s.rollout.steps] == [(10, 60.0), (50, 60.0)]
    assert s.rollout.analysis.max_error_rate == 0.01 and s.rollout.analysis.max_p99_latency_ms == 50
    assert s.health.failure_threshold == 3 and s.health.readiness_timeout == 60.0
    assert s.monitoring.drift is not None and s.monitoring.drift.window == 3600.0
    assert s.monitoring.accuracy is not None and s.monitoring.accuracy.minimum == 0.85
    assert s.escalation is not None and (s.escalation.confidence_below, s.escalation.queue) == (0.6, "fraud-review")
    assert (s.serving.max_batch_rows, s.serving.max_wait_ms, s.serving.rate_limit, s.serving.rate_burst) == (
        64, 0.0, 0.0, 100)
    assert (s.self_heal, s.prune) == (False, False)


@pytest.mark.parametrize("text", [DESIGN_EXAMPLE, HEADER + "spec: {model: m, alias: champion}\n"])
def test_a_dumped_spec_validates_back_to_the_same_spec(text: str) -> None:
    [deployment] = documents.load_text(text, "design.yaml")
    dumped = deployment.model_dump(by_alias=True, mode="json")
    assert dumped["spec"]["health"]["readinessTimeout"] == "60s"
    assert documents.load_text(yaml.safe_dump(dumped), "again.yaml") == [deployment]


def test_an_alias_instead_of_a_version() -> None:
    [deployment] = documents.load_text(HEADER + "spec: {model: m, alias: champion}\n", "a.yaml")
    assert (deployment.spec.version, deployment.spec.alias) == (None, "champion")


@pytest.mark.parametrize("reference", ["version: 1, alias: champion", "replicas: {min: 1}"])
def test_exactly_one_of_version_and_alias(reference: str) -> None:
    message = refusal(HEADER + f"spec: {{model: m, {reference}}}\n")
    assert message == "deploy.yaml:4: spec: give exactly one of version and alias"


def test_an_unknown_field_is_refused_at_its_line_with_a_suggestion() -> None:
    message = refusal(minimal("replicas: {min: 1, max: 2}\nreplica: 3\n"))
    assert message == "deploy.yaml:8: spec.replica: unknown field; did you mean replicas?"


def test_snake_case_keys_are_unknown_fields_in_yaml() -> None:
    message = refusal(minimal("serving:\n  max_batch_rows: 8\n"))
    assert message == "deploy.yaml:8: spec.serving.max_batch_rows: unknown field; did you mean maxBatchRows?"


def test_a_missing_field_points_at_its_parent() -> None:
    message = refusal(HEADER + "spec:\n  version: 1\n")
    assert message == "deploy.yaml:4: spec.model: required, but missing"


@pytest.mark.parametrize(("resources", "expected"), [
    ("cpu: 500x", "spec.resources.cpu: invalid cpu '500x'"),
    ("cpu: 0", "spec.resources.cpu: invalid cpu 0"),
    ("memory: 512m", ("spec.resources.memory: invalid memory '512m': 'm' means thousandths of a byte; "
                      "did you mean 512Mi?")),
    ("memory: 2GB", "spec.resources.memory: invalid memory '2GB'"),
    ("gpu: -1", "spec.resources.gpu: input should be greater than or equal to 0, not -1"),
])
def test_bad_quantities_are_refused(resources: str, expected: str) -> None:
    assert refusal(minimal(f"resources:\n  {resources}\n")).startswith(f"deploy.yaml:8: {expected}")


def test_quantities_accept_kubernetes_syntax_and_yaml_numbers() -> None:
    for cpu, memory, held in [("500m", "512Mi", ("500m", "512Mi")), ("0.5", "1G", ("0.5", "1G")),
                              (2, 1073741824, ("2", "1073741824"))]:
        text = minimal(f"resources: {{cpu: {json.dumps(cpu)}, memory: {json.dumps(memory)}}}\n")
        [deployment] = documents.load_text(text, "q.yaml")
        assert (deployment.spec.resources.cpu, deployment.spec.resources.memory) == held


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("60s", 60.0), ("5m", 300.0), ("1h", 3600.0),
                                               ("1.5h", 5400.0)])
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert values.parse_duration(text) == seconds
    assert values.parse_duration(values.format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["60", "1w", "5 m", "-1s", "1h30m", "", 60])
def test_other_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="use a number and a unit"):
        values.parse_duration(bad)


def test_a_bad_duration_names_its_field_and_line() -> None:
    message = refusal(minimal("rollout:\n  strategy: canary\n  steps:\n    - weight: 10\n      pause: 1w\n"))
    assert message.startswith("deploy.yaml:11: spec.rollout.steps[0].pause: invalid duration '1w'")


@pytest.mark.parametrize(("rollout", "expected"), [
    ("{strategy: blue-green}", "spec.rollout.strategy: input should be 'recreate' or 'canary', not \"blue-green\""),
    ("{strategy: canary}", "spec.rollout: strategy canary needs at least one step"),
    ("{strategy: canary, steps: [{weight: 50}, {weight: 20}]}",
     "spec.rollout: step weights must increase: step 2 has weight 20 after 50"),
    ("{strategy: canary, steps: [{weight: 101}]}",
     "spec.rollout.steps[0].weight: input should be less than or equal to 100, not 101"),
    ("{strategy: recreate, steps: [{weight: 50}]}", "spec.rollout: steps and analysis apply only to strategy canary"),
    ("{analysis: {maxErrorRate: 0.1}}", "spec.rollout: steps and analysis apply only to strategy canary"),
])
def test_bad_rollouts_are_refused(rollout: str, expected: str) -> None:
    assert refusal(minimal(f"rollout: {rollout}\n")) == f"deploy.yaml:7: {expected}"


def test_other_rules_are_checked_where_they_are_written() -> None:
    message = refusal(minimal("""\
        replicas: {min: 3, max: 2}
        tolerations: [{key: gpu, operator: Exists, value: "yes"}]
        monitoring:
          accuracy: {metric: rmse, minimum: 0.9}
          retrain: {webhook: "http://hooks.example.com/r"}
        escalation: {confidenceBelow: 0.5, queue: Review_Queue}
        """)).splitlines()
    assert message == [
        "deploy.yaml:7: spec.replicas: min (3) is more than max (2)",
        "deploy.yaml:8: spec.tolerations[0]: operator Exists matches any value: leave value out",
        "deploy.yaml:10: spec.monitoring.accuracy: rmse is an error (lower is better): give maximum, not minimum",
        "deploy.yaml:11: spec.monitoring.retrain.webhook: webhook must be an https:// URL (http:// only to localhost)",
        ("deploy.yaml:12: spec.escalation.queue: invalid queue name 'Review_Queue': use 1-63 lowercase letters, "
         "digits and '-', starting and ending with a letter or digit (no '/', '..', '#', '%' or spaces)"),
    ]


def test_names_follow_the_naming_rules() -> None:
    message = refusal(minimal(name="Fraud Scorer"))
    assert message.startswith("deploy.yaml:3: metadata.name: invalid deployment name 'Fraud Scorer'")
    assert refusal(HEADER + "spec: {model: m, alias: latest}\n") == (
        "deploy.yaml:4: spec.alias: alias 'latest' is reserved: it always means the newest version")


def test_numbers_are_not_read_from_strings() -> None:
    assert refusal(HEADER + "spec: {model: m, version: '7'}\n") == (
        "deploy.yaml:4: spec.version: input should be a valid integer, not \"7\"")


@pytest.mark.parametrize(("written", "expected"), [
    ("apiVersion: threadline/v2",
     "deploy.yaml:1: apiVersion: unknown apiVersion 'threadline/v2', expected threadline/v1"),
    ("kind: Deployment", "deploy.yaml:2: kind: unknown kind 'Deployment', expected ModelDeployment"),
])
def test_wrong_kind_or_api_version_is_named(written: str, expected: str) -> None:
    text = minimal().replace("apiVersion: threadline/v1" if written.startswith("api") else "kind: ModelDeployment",
                             written)
    assert refusal(text) == expected


def test_malformed_yaml_is_reported_at_its_line() -> None:
    text = minimal() + "---\n" + HEADER + "spec:\n  model: [m\n  version: 1\n"
    assert refusal(text) == ("deploy.yaml:13: invalid YAML: expected ',' or ']', but got ':' "
                             "(while parsing a flow sequence that starts at line 12)")


def test_a_document_that_is_not_a_mapping_is_named() -> None:
    message = refusal(minimal() + "---\n- a\n- list\n")
    assert message == ("deploy.yaml:8: a document must be a mapping with apiVersion, kind, metadata and spec, "
                       "not a list")


def test_empty_documents_are_skipped() -> None:
    assert len(documents.load_text("---\n" + minimal() + "---\n# nothing\n---\n", "e.yaml")) == 1
    assert documents.load_text("", "empty.yaml") == []


def test_a_duplicate_key_is_refused() -> None:
    message = refusal(minimal("replicas: {max: 2}\nreplicas: {max: 3}\n"))
    assert message == "deploy.yaml:8: spec.replicas: duplicate key (first at line 7)"


def test_a_deployment_declared_twice_in_one_file_names_both_lines() -> None:
    message = refusal(minimal() + "---\n" + minimal())
    assert message == ("deploy.yaml:10: metadata.name: deployment 'scorer' in environment 'staging' is "
                       "declared twice; first at deploy.yaml:3")


def test_load_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(minimal("replica: 1\n"))
    with pytest.raises(errors.InvalidInput, match=rf"^{path}:7: spec.replica: unknown field"):
        documents.load_file(path)
    path.write_text(minimal())
    with pytest.raises(errors.PayloadTooLarge):
        documents.load_file(path, max_bytes=10)


def test_load_tree_reports_bad_files_and_loads_the_rest(tmp_path: Path) -> None:
    (tmp_path / "apps" / "fraud").mkdir(parents=True)
    (tmp_path / "apps" / "fraud" / "a.yaml").write_text(minimal(name="a"))
    (tmp_path / "apps" / "broken.yml").write_text(minimal(name="b") + "---\nkind: [\n")
    (tmp_path / "b.yaml").write_text(minimal(name="c") + "---\n" + minimal("replica: 2\n", name="d"))
    (tmp_path / "dup.yaml").write_text(minimal(name="a"))
    (tmp_path / "big.yaml").write_text(minimal(name="e") + "#" * 2000 + "\n")
    (tmp_path / "notes.txt").write_text("not yaml")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "ci.yml").write_text("on: push\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "apps" / "fraud" / "a.yaml")

    deployments, refused = documents.load_tree(tmp_path, max_bytes=1000)

    assert sorted(d.metadata.name for d in deployments) == ["a", "b", "c"]
    assert [str(problem).splitlines()[0] for problem in refused] == [
        ("apps/broken.yml:9: invalid YAML: expected the node content, but found '<stream end>' "
         "(while parsing a flow node)"),
        "b.yaml:14: spec.replica: unknown field; did you mean replicas?",
        "big.yaml: larger than the limit of 1000 bytes",
        ("dup.yaml:3: metadata.name: deployment 'a' in environment 'staging' is declared twice; "
         "first at apps/fraud/a.yaml:3"),
        "link.yaml: a symbolic link: not followed",
    ]
    assert isinstance(refused[2], errors.PayloadTooLarge)


def test_the_json_schema_is_valid_and_closed() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = spec.ModelDeployment.model_json_schema(by_alias=True)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert {"nodeSelector", "selfHeal", "rollout", "serving"} <= set(schema["$defs"]["DeploymentSpec"]["properties"])
    assert all(definition["additionalProperties"] is False for definition in schema["$defs"].values())
    validator = jsonschema.Draft202012Validator(schema)
    document = yaml.safe_load(DESIGN_EXAMPLE)
    assert list(validator.iter_errors(document)) == []
    document["spec"]["replica"] = 3
    assert [error.validator for error in validator.iter_errors(document)] == ["additionalProperties"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "threadline", "spec", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(DESIGN_EXAMPLE)
    (tmp_path / "bad.yaml").write_text(minimal("replica: 1\n"))
    good = _cli("validate", "good.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "OK: 1 deployment" in good.stdout
    bad = _cli("validate", "good.yaml", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert "bad.yaml:7: spec.replica: unknown field" in bad.stderr
    folder = _cli("validate", ".", cwd=tmp_path)
    assert folder.returncode == 1 and "bad.yaml:7" in folder.stderr


def test_cli_schema_prints_json(tmp_path: Path) -> None:
    result = _cli("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["title"] == "ModelDeployment"
