"""Lay out a model's lineage graph: training data and code → versions → deployments (pure).

The page draws it as inline SVG from these coordinates, so the layout is tested here without a
browser. Three columns, one node per distinct thing: a dataset used by five versions is one
node with five edges, which is what makes "which versions did this data train?" readable.
Nodes in the first and last column follow the order of the versions they touch, so edges
mostly run straight across instead of crossing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from threadline.dashboard.formatting import short
from threadline.domain import models
from threadline.gitops import state

NODE_WIDTH = 230
NODE_HEIGHT = 44
COLUMN_GAP = 90
ROW_GAP = 14
TOP = 30          # room for the column headings
MARGIN = 8
LINE_CHARS = 32   # what fits in a node line at 12px; the full text goes in the node's title
COLUMNS = ("Training data and code", "Versions", "Deployments")


@dataclass(frozen=True)
class Placement:
    """A deployment's hold on one version: running with a traffic share, or only declared."""

    deployment: str
    environment: str
    status: str
    version: int | None  # None: declared by an alias that points nowhere now
    weight: int          # percent of traffic it serves; 0 when not running
    running: bool


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # data | code | version | deployment
    lines: tuple[str, str]
    title: str  # the full text, shown as the node's tooltip
    focus: bool = False
    x: int = 0
    y: int = 0


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # data | code | runs | declared
    path: str  # SVG path data
    label: str
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    headings: tuple[tuple[str, int], ...]  # (text, x) of each column heading
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT

    @property
    def summary(self) -> str:
        """What the picture shows, for screen readers (role="img")."""
        counts = {kind: sum(1 for n in self.nodes if n.kind == kind) for kind in ("data", "code", "version",
                                                                                   "deployment")}
        return (f"Lineage: {counts['data']} training data reference(s) and {counts['code']} code commit(s) "
                f"feed {counts['version']} version(s), run by {counts['deployment']} deployment(s)")


def placements(records: Sequence[models.DeploymentRecord], model: str, aliases: Mapping[str, int]) -> list[Placement]:
    """Which deployments hold which versions of ``model``.

    What runs (the agent's last applied workload, canary split included) wins over what the
    spec declares: a blocked deployment still shows the version it asks for, as "declared".
    """
    found: list[Placement] = []
    for record in records:
        if not record.spec:  # removed from Git; the agent is taking it down
            continue
        applied = state.from_json(dict(record.state)).applied
        running = [(revision.version, weight) for revision, weight in (applied.weights() if applied else ())
                   if revision.model == model]
        if running:
            found += [Placement(record.name, record.environment, record.status, version, weight, True)
                      for version, weight in running]
            continue
        declared: Mapping[str, Any] = record.spec.get("spec") or {}
        if declared.get("model") != model:
            continue
        version = declared.get("version")
        if version is None and declared.get("alias") is not None:
            version = aliases.get(declared["alias"])
        found.append(Placement(record.name, record.environment, record.status, version, 0, False))
    return found


def layout(versions: Sequence[models.ModelVersion], held: Sequence[Placement], focus: int | None) -> Graph:
    """Coordinates for every node and edge; ``versions`` in the order the page lists them."""
    sources: dict[str, Node] = {}
    edges: list[tuple[str, str, str, str]] = []
    for version in versions:
        for node in _sources(version.lineage):
            sources.setdefault(node.id, node)
            edges.append((node.id, _version_id(version.version), node.kind, ""))
    order: dict[int | None, int] = {version.version: row for row, version in enumerate(versions)}
    deployments: dict[str, Node] = {}
    for placement in sorted(held, key=lambda p: order.get(p.version, len(order))):
        node = Node(f"deployment:{placement.environment}/{placement.deployment}", "deployment",
                    (_head(placement.deployment), _head(f"{placement.environment} · {placement.status}")),
                    f"{placement.deployment} in {placement.environment}: {placement.status}")
        deployments.setdefault(node.id, node)
        if placement.version in order:
            label = "declared" if not placement.running else "" if placement.weight == 100 else f"{placement.weight}%"
            edges.append((_version_id(placement.version), node.id, "runs" if placement.running else "declared",
                          label))
    return _place(([*sources.values()], [_version_node(v, focus) for v in versions], [*deployments.values()]),
                  edges)


def _version_id(number: int | None) -> str:
    return f"version:{number}"


def _version_node(version: models.ModelVersion, focus: int | None) -> Node:
    return Node(_version_id(version.version), "version",
                (_head(f"v{version.version} · {version.status}"), "sha256 " + short(version.artifact_digest, 16)),
                f"{version.model}@{version.version}, {version.status}, sha256:{version.artifact_digest}",
                focus == version.version)


def _sources(lineage: models.Lineage) -> list[Node]:
    """The datasets and the code commit a version was built from (one node each)."""
    found = [Node(f"data:{ref.uri}@{ref.digest}", "data",
                  (_tail(ref.uri), "sha256 " + short(ref.digest, 16) if ref.digest else "no digest"),
                  f"{ref.uri} ({'sha256:' + ref.digest.removeprefix('sha256:') if ref.digest else 'no digest'})")
             for ref in lineage.training_data]
    if lineage.code_repo or lineage.code_commit:
        repository = lineage.code_repo.split("://", 1)[-1] if lineage.code_repo else "repository not recorded"
        found.append(Node(f"code:{lineage.code_repo}@{lineage.code_commit}", "code",
                          (_tail(repository), "commit " + short(lineage.code_commit, 12)),
                          f"{lineage.code_repo or 'repository not recorded'} at {lineage.code_commit or 'no commit'}"))
    return found


def _place(columns: tuple[list[Node], ...], edges: list[tuple[str, str, str, str]]) -> Graph:
    """Stack each column, centred on the tallest, then draw edges between the placed nodes."""
    rows = max((len(column) for column in columns), default=0)
    step = NODE_HEIGHT + ROW_GAP
    placed: dict[str, Node] = {}
    for index, column in enumerate(columns):
        x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
        offset = TOP + (rows - len(column)) * step // 2
        for row, node in enumerate(column):
            placed[node.id] = dataclasses.replace(node, x=x, y=offset + row * step)
    drawn = tuple(_edge(placed[source], placed[target], kind, label)
                  for source, target, kind, label in dict.fromkeys(edges))
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + (len(columns) - 1) * COLUMN_GAP
    headings = tuple((text, MARGIN + index * (NODE_WIDTH + COLUMN_GAP)) for index, text in enumerate(COLUMNS))
    return Graph(tuple(placed.values()), drawn, width, TOP + max(rows, 1) * step, headings)


def _edge(source: Node, target: Node, kind: str, label: str) -> Edge:
    """A curve from the middle of the source's right side to the middle of the target's left."""
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    middle = (x1 + x2) // 2
    return Edge(source.id, target.id, kind, f"M{x1} {y1} C{middle} {y1} {middle} {y2} {x2} {y2}", label,
                middle, (y1 + y2) // 2 - 4)


def _head(text: str) -> str:
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS - 1] + "…"


def _tail(text: str) -> str:
    """The end of a URI or repository: the file or project name is what tells them apart."""
    return text if len(text) <= LINE_CHARS else "…" + text[-(LINE_CHARS - 1):]
