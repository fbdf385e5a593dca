"""`batchplane dag JOBID`: the dependency graph around a job — its ancestors (from dependsOn) and descendants (from
batchplane's ListJobDependents) — as a text tree and as an SVG (or DOT) file.

An array is one node (its children's N_TO_N and SEQUENTIAL links are followed through child 0 and folded onto the
parents). A conditional dependency (AFTER_ANY, AFTER_NOT_OK) is named on its edge. The SVG is laid out in layers
by longest path from the sources, left to right; no graphviz needed.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from chalicelib.console import containers
from chalicelib.console.client import Api, CliError, short

MAX_NODES = 500
STATUS_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "RUNNABLE": "yellow",
    "PENDING": "bright_black",
    "SUBMITTED": "bright_black",
}
SVG_FILL = {
    "SUCCEEDED": "#d4f4dd",
    "FAILED": "#fbd5d5",
    "RUNNING": "#d2ecfb",
    "STARTING": "#d2ecfb",
    "RUNNABLE": "#fdf2c9",
    "PENDING": "#eeeeee",
    "SUBMITTED": "#eeeeee",
}
SVG_STROKE = {"SUCCEEDED": "#2f9e44", "FAILED": "#e03131", "RUNNING": "#1c7ed6", "STARTING": "#1c7ed6"}


def job_level(job_id: str) -> str:
    """An array child's or a node job's id -> its parent's; any other id unchanged."""
    for mark in (":", "#"):
        parent, sep, index = job_id.rpartition(mark)
        if sep and parent and index.isascii() and index.isdigit():
            return parent
    return job_id


@dataclass
class Graph:
    root: str
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)  # job -> the jobs it depends on
    children: dict[str, list[str]] = field(default_factory=dict)  # job -> the jobs depending on it
    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # multi-node job -> its node jobs


def refresh_nodes(api: Api, graph: Graph) -> None:
    """The node jobs (`<jobId>#<index>`) of the graph's multi-node parallel jobs."""
    for job_id, job in graph.jobs.items():
        count = int((job.get("nodeProperties") or {}).get("numNodes") or 0)
        if count:
            found = api.describe([f"{job_id}#{i}" for i in range(count)])
            graph.nodes[job_id] = [found[f"{job_id}#{i}"] for i in range(count) if f"{job_id}#{i}" in found]


# batchplane's conditional dependencies (chalicelib/domain/conditions.py): how each is shown on its edge
CONDITION_TEXT = {"AFTER_ANY": "after any end", "AFTER_NOT_OK": "only if it failed"}


def condition(graph: Graph, parent: str, child: str) -> str | None:
    """The condition `child` puts on `parent` (AFTER_ANY, AFTER_NOT_OK), None for AWS's own (it must succeed)."""
    for dep in (graph.jobs.get(child) or {}).get("dependsOn", []):
        if dep.get("jobId") == parent and dep.get("type") in CONDITION_TEXT:
            return str(dep["type"])
    return None


def _link(graph: Graph, parent: str, child: str) -> None:
    if parent == child:
        return
    kids = graph.children.setdefault(parent, [])
    if child not in kids:
        kids.append(child)
    parents = graph.parents.setdefault(child, [])
    if parent not in parents:
        parents.append(parent)


def build(api: Api, job_id: str, max_nodes: int = MAX_NODES) -> Graph:
    """Walk up dependsOn and down the dependents from `job_id` (an array child stands for its array)."""
    root = job_level(job_id)
    graph = Graph(root, {root: api.job(root)})
    up = deque([root])
    while up and len(graph.jobs) < max_nodes:  # ancestors, a frontier per DescribeJobs call
        frontier = [up.popleft() for _ in range(min(len(up), 100))]
        wanted: list[str] = []
        for node in frontier:
            for dep in graph.jobs[node].get("dependsOn", []):
                if dep.get("jobId"):
                    parent = job_level(dep["jobId"])
                    _link(graph, parent, node)
                    if parent not in graph.jobs:
                        wanted.append(parent)
        for found_id, found in api.describe(wanted).items():
            graph.jobs[found_id] = found
            up.append(found_id)
    down = deque([root])
    while down and len(graph.jobs) < max_nodes:  # descendants
        node = down.popleft()
        found_ids = set(api.dependents(node))
        if "size" in (graph.jobs[node].get("arrayProperties") or {}):
            with contextlib.suppress(CliError):  # N_TO_N links are between children (none written yet: none)
                found_ids |= set(api.dependents(f"{node}:0"))
        wanted = [job_level(d) for d in sorted(found_ids) if job_level(d) != node]
        for child in wanted:
            _link(graph, node, child)
        new = [c for c in dict.fromkeys(wanted) if c not in graph.jobs]
        for found_id, found in api.describe(new).items():
            graph.jobs[found_id] = found
            down.append(found_id)
    refresh_nodes(api, graph)
    return graph


# -- text ------------------------------------------------------------------------------------------------------


def progress_of(job: dict[str, Any]) -> tuple[int, int]:
    """(done, total) units: an array's finished children of its size, else 0 or 1."""
    array = job.get("arrayProperties") or {}
    if "size" in array:
        summary = array.get("statusSummary") or {}
        return summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0), int(array["size"])
    return (1 if job["status"] in ("SUCCEEDED", "FAILED") else 0), 1


def label(job: dict[str, Any]) -> Text:
    text = Text(f"{job['jobName']} ", style="bold")
    text.append(f"({short(job['jobId'])}) ", style="dim")
    text.append(job["status"], style=STATUS_STYLE.get(job["status"], ""))
    array = job.get("arrayProperties") or {}
    if "size" in array:
        done, total = progress_of(job)
        text.append(f"  array {done}/{total}", style="dim")
    nodes = job.get("nodeProperties") or {}
    if "numNodes" in nodes:
        text.append(f"  {nodes['numNodes']} nodes, main node {nodes.get('mainNode', 0)}", style="dim")
    return text


def members(graph: Graph, node: str) -> list[Text]:
    """What runs inside a job: a multi-container job's containers, a multi-node job's nodes (one line each)."""
    lines = []
    for c in containers.of(graph.jobs[node]):
        text = Text(f"container {c['name']}", style="bold" if c.get("essential", True) else "")
        text.append(" essential" if c.get("essential", True) else " non-essential", style="dim")
        deps = ", ".join(f"{d['containerName']} {d['condition']}" for d in c.get("dependsOn") or [])
        if deps:
            text.append(f"  after {deps}", style="dim")
        text.append(f"  exit {c['exitCode']}" if "exitCode" in c else "  exit -")
        if c.get("reason"):
            text.append(f"  {c['reason']}", style="dim")
        lines.append(text)
    for n in graph.nodes.get(node, []):
        details = n.get("nodeDetails") or {}
        text = Text(f"node {details.get('nodeIndex')}{' (main)' if details.get('isMainNode') else ''} ", style="bold")
        text.append(f"({short(n['jobId'])}) ", style="dim")
        text.append(n["status"], style=STATUS_STYLE.get(n["status"], ""))
        exit_code = (n.get("container") or {}).get("exitCode")
        if exit_code is not None:
            text.append(f"  exit {exit_code}")
        lines.append(text)
    return lines


def _with_members(branch: Tree, graph: Graph, node: str) -> Tree:
    for line in members(graph, node):
        branch.add(line)
    return branch


def tree(graph: Graph) -> Tree:
    root = _with_members(Tree(label(graph.jobs[graph.root])), graph, graph.root)
    if graph.parents.get(graph.root):
        _grow(root.add(Text("depends on", style="italic")), graph, graph.root, graph.parents, set(), up=True)
    if graph.children.get(graph.root):
        _grow(root.add(Text("needed by", style="italic")), graph, graph.root, graph.children, set(), up=False)
    if not graph.parents.get(graph.root) and not graph.children.get(graph.root):
        root.add(Text("no dependencies and no dependents", style="dim"))
    return root


def _grow(branch: Tree, graph: Graph, node: str, edges: dict[str, list[str]], shown: set[str], *, up: bool) -> None:
    for nxt in edges.get(node, []):
        if nxt not in graph.jobs:
            continue
        text = label(graph.jobs[nxt])
        cond = condition(graph, nxt, node) if up else condition(graph, node, nxt)
        if cond is not None:
            text.append(f"  [{cond}: {CONDITION_TEXT[cond]}]", style="magenta")
        if nxt in shown:
            branch.add(text.append("  (shown above)", style="dim"))
            continue
        shown.add(nxt)
        _grow(_with_members(branch.add(text), graph, nxt), graph, nxt, edges, shown, up=up)


# -- image -----------------------------------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 190, 46, 70, 22, 24


def layers(graph: Graph) -> list[list[str]]:
    """Nodes by longest distance from a source (a node with no parents in the graph), in a stable order."""
    nodes = list(graph.jobs)
    depth: dict[str, int] = {}

    def depth_of(node: str, trail: frozenset[str] = frozenset()) -> int:
        if node not in depth:
            parents = [p for p in graph.parents.get(node, []) if p in graph.jobs and p not in trail]
            depth[node] = 1 + max((depth_of(p, trail | {node}) for p in parents), default=-1)
        return depth[node]

    for node in nodes:
        depth_of(node)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for node in sorted(nodes, key=lambda n: (graph.jobs[n].get("createdAt", 0), n)):
        out[depth[node]].append(node)
    return out


def svg(graph: Graph) -> str:
    grid = layers(graph)
    tallest = max(len(layer) for layer in grid)
    width = MARGIN * 2 + len(grid) * BOX_W + (len(grid) - 1) * GAP_X
    height = MARGIN * 2 + 30 + tallest * BOX_H + (tallest - 1) * GAP_Y
    where: dict[str, tuple[int, int]] = {}
    for i, layer in enumerate(grid):
        offset = (tallest - len(layer)) * (BOX_H + GAP_Y) // 2
        for j, node in enumerate(layer):
            where[node] = (MARGIN + i * (BOX_W + GAP_X), MARGIN + 30 + offset + j * (BOX_H + GAP_Y))
    root = graph.jobs[graph.root]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#868e96"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 6}" font-size="14" font-weight="bold">'
        f"{escape(root['jobName'])} ({escape(short(graph.root))}): dependencies</text>",
    ]
    for parent, kids in graph.children.items():
        for kid in kids:
            if parent in where and kid in where:
                (x1, y1), (x2, y2) = where[parent], where[kid]
                sx, sy, ex, ey = x1 + BOX_W, y1 + BOX_H // 2, x2, y2 + BOX_H // 2
                mid = (sx + ex) // 2
                cond = condition(graph, parent, kid)
                dash = ' stroke-dasharray="5 3"' if cond else ""
                parts.append(
                    f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex - 2} {ey}" fill="none" stroke="#868e96"'
                    f' stroke-width="1.5"{dash} marker-end="url(#arrow)"/>'
                )
                if cond:
                    parts.append(
                        f'<text x="{mid}" y="{(sy + ey) // 2 - 4}" font-size="10" text-anchor="middle" fill="#495057">'
                        f"{cond}<title>{CONDITION_TEXT[cond]}</title></text>"
                    )
    for node, (x, y) in where.items():
        job = graph.jobs[node]
        status = job["status"]
        stroke_width = 3 if node == graph.root else 1.5
        done, total = progress_of(job)
        detail = f"{status} · {short(node)}" + (f" · {done}/{total}" if total > 1 else "")
        inside = "".join(f"\n{line.plain}" for line in members(graph, node))  # containers or nodes
        parts += [
            f"<g><title>{escape(node)}: {escape(job.get('statusReason', status))}{escape(inside)}</title>",
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{SVG_FILL.get(status, "#eee")}"'
            f' stroke="{SVG_STROKE.get(status, "#868e96")}" stroke-width="{stroke_width}"/>',
            f'<text x="{x + 10}" y="{y + 19}" font-size="13" font-weight="bold">{escape(job["jobName"][:24])}</text>',
            f'<text x="{x + 10}" y="{y + 36}" font-size="11" fill="#495057">{escape(detail)}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def dot(graph: Graph) -> str:
    lines = ["digraph batchplane {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for node, job in graph.jobs.items():
        text = f"{job['jobName']}\\n{job['status']} {short(node)}"
        lines.append(f'  "{node}" [label="{text}"{", penwidth=3" if node == graph.root else ""}];')
    for parent, kids in graph.children.items():
        for kid in kids:
            if parent in graph.jobs and kid in graph.jobs:
                cond = condition(graph, parent, kid)
                lines.append(f'  "{parent}" -> "{kid}"' + (f' [label="{cond}", style=dashed]' if cond else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run(api: Api, console: Console, job_id: str, svg_path: str | None, dot_path: str | None) -> int:
    graph = build(api, job_id)
    console.print(tree(graph))
    if svg_path:
        Path(svg_path).write_text(svg(graph))
        console.print(f"wrote {svg_path} (open it in a browser)")
    if dot_path:
        Path(dot_path).write_text(dot(graph))
        console.print(f"wrote {dot_path}")
    return 0
