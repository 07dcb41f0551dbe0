"""The lineage graph's layout: one node per distinct dataset, commit, version and deployment,
edges between them, canary splits and declared-only deployments, nothing overlapping."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from threadline.dashboard import lineage_graph
from threadline.dashboard.lineage_graph import Placement
from threadline.domain import models
from threadline.gitops import state
from threadline.gitops.model import Revision, Workload
from threadline.gitops.spec import Serving

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
TRAIN = models.DataRef("s3://lake/fraud/2026-10/train.parquet", "a" * 64)


def version(number: int, *data: models.DataRef, commit: str | None = "abc123", status: str = "validated"
            ) -> models.ModelVersion:
    return models.ModelVersion(
        model="fraud", version=number, artifact_digest=f"{number:064x}", artifact_size=10,
        flavor=models.Flavor.SKLEARN, artifact_format=models.ArtifactFormat.SKOPS, trusted=False,
        signature=models.Signature(inputs=()), has_profile=False, metrics={}, card={},
        lineage=models.Lineage(training_data=data, code_repo="https://git.example.com/fraud" if commit else None,
                               code_commit=commit),
        status=status, description="", created_by="dana", created_at=NOW)


def record(name: str, spec: dict[str, Any], applied: Workload | None = None, status: str = "Synced",
           environment: str = "production") -> models.DeploymentRecord:
    document = {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
                "metadata": {"name": name, "environment": environment, "owner": "risk"}, "spec": spec}
    return models.DeploymentRecord(name, environment, document, "c0ffee", status, "", (),
                                   state.to_json(state.DeploymentState(applied=applied)), NOW)


def workload(name: str, stable: int, canary: int | None = None, weight: int = 0, model: str = "fraud") -> Workload:
    return Workload(key=(name, "production"), stable=Revision(model, stable, f"{stable:064x}"), replicas=1,
                    serving=Serving(), canary=None if canary is None else Revision(model, canary, f"{canary:064x}"),
                    canary_weight=weight)


def test_a_running_canary_holds_both_versions_with_their_traffic_shares() -> None:
    held = lineage_graph.placements([record("scorer", {"model": "fraud", "version": 2},
                                            workload("scorer", 1, canary=2, weight=10))], "fraud", {})
    assert held == [Placement("scorer", "production", "Synced", 1, 90, True),
                    Placement("scorer", "production", "Synced", 2, 10, True)]


def test_a_blocked_deployment_shows_the_version_it_declares_through_its_alias() -> None:
    records = [record("scorer", {"model": "fraud", "alias": "champion"}, status="Blocked"),
               record("other", {"model": "iris", "version": 1}, workload("other", 1, model="iris")),
               record("gone", {})]
    held = lineage_graph.placements(records, "fraud", {"champion": 3})
    assert held == [Placement("scorer", "production", "Blocked", 3, 0, False)]


def test_shared_data_is_one_node_and_edges_follow_the_listed_order() -> None:
    other = models.DataRef("s3://lake/fraud/extra.parquet", None)
    versions = [version(3, TRAIN, other, commit="def456"), version(2, TRAIN), version(1, TRAIN, commit=None)]
    held = [Placement("scorer", "production", "Synced", 2, 100, True),
            Placement("canary-test", "staging", "Progressing", 3, 10, True),
            Placement("lost", "staging", "Blocked", None, 0, False)]
    graph = lineage_graph.layout(versions, held, focus=2)

    kinds = [node.kind for node in graph.nodes]
    assert kinds.count("data") == 2 and kinds.count("code") == 2 and kinds.count("version") == 3
    assert kinds.count("deployment") == 3
    edges = {(e.source, e.target): e for e in graph.edges}
    data = f"data:{TRAIN.uri}@{TRAIN.digest}"
    assert {target for source, target in edges if source == data} == {"version:1", "version:2", "version:3"}
    assert edges[("version:3", "deployment:staging/canary-test")].label == "10%"
    assert edges[("version:2", "deployment:production/scorer")].label == ""
    assert not any(target == "deployment:staging/lost" for _, target in edges)  # shown, unconnected
    assert [n.focus for n in graph.nodes if n.kind == "version"] == [False, True, False]
    # Deployments are stacked in the order of the versions they run; the unresolved one last.
    deployments = [n for n in graph.nodes if n.kind == "deployment"]
    assert [n.id for n in deployments] == ["deployment:staging/canary-test", "deployment:production/scorer",
                                           "deployment:staging/lost"]
    assert "3 version(s)" in graph.summary and "3 deployment(s)" in graph.summary


def test_nodes_never_overlap_and_fit_in_the_picture() -> None:
    versions = [version(n, models.DataRef(f"s3://lake/{n}.parquet", f"{n:064x}")) for n in range(12, 0, -1)]
    graph = lineage_graph.layout(versions, [Placement("scorer", "production", "Synced", 5, 100, True)], focus=None)
    boxes = [(n.x, n.y) for n in graph.nodes]
    assert len(set(boxes)) == len(boxes)
    for node in graph.nodes:
        assert 0 <= node.x and node.x + graph.node_width <= graph.width
        assert lineage_graph.TOP <= node.y and node.y + graph.node_height <= graph.height
    same_column = sorted(n.y for n in graph.nodes if n.kind == "version")
    assert all(b - a >= graph.node_height for a, b in itertools.pairwise(same_column))
    # A column shorter than the tallest is centred on it.
    deployment = next(n for n in graph.nodes if n.kind == "deployment")
    assert graph.nodes[0].y < deployment.y < max(same_column)


def test_long_texts_are_clipped_in_the_box_and_kept_whole_in_the_title() -> None:
    uri = "s3://a-very-long-bucket-name/with/many/levels/of/folders/training-set.parquet"
    graph = lineage_graph.layout([version(1, models.DataRef(uri, None), commit=None)], [], focus=1)
    node = graph.nodes[0]
    assert node.lines == ("…" + uri[-(lineage_graph.LINE_CHARS - 1):], "no digest")
    assert len(node.lines[0]) == lineage_graph.LINE_CHARS and uri in node.title


def test_a_model_without_lineage_still_draws_its_versions() -> None:
    graph = lineage_graph.layout([version(1, commit=None)], [], focus=1)
    assert [n.kind for n in graph.nodes] == ["version"] and graph.edges == ()
    assert graph.height > lineage_graph.TOP
