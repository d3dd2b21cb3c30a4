"""The merges of several plans as one graph of students (THEORY §3), trained in waves by height.

Node ids: ``0 .. T−1`` are the teacher steps 1..T (leaves), ``T`` is the identity (padding of chains),
merges follow in topological order. Identical subtrees of different plans — the same span, the same
children and, for ``boot`` inputs, the same input chain — are one node, so they are trained once.

A merge's *height* is 1 + the largest height of its children (leaves have height 0). Merges of equal
height train together in one parameter tensor — a "wave" — so BOOT at T = 64 is 63 waves of one merge
and vanilla is one wave.

Inputs (THEORY §2 model choice): ``forward`` samples ``z_s ~ N(0, r_s²)``; ``boot`` pushes
``z_T ~ N(0, r_T²)`` to time s through the *current model*, i.e. for every position T, T − 1, …, s + 1
the largest node of the same plan trained in an earlier wave (lower height), else the teacher step.
That sequence of nodes is the merge's ``chain``. For BOOT every merge starts at s = T, so both choices
coincide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opmerge_core.theory.plans import Plan, Span

INPUTS = ("forward", "boot")


@dataclass(frozen=True)
class Node:
    """One merge: the student mapping z_s → z_e for ``span = (e, s)``."""

    span: Span
    height: int
    children: tuple[int, ...]   # node ids in application order
    chain: tuple[int, ...]      # boot inputs: node ids taking z_T to z_s, in application order


@dataclass(frozen=True)
class MergeGraph:
    """Every merge of every plan, each distinct one once, in topological order."""

    T: int
    merges: tuple[Node, ...]
    plan_nodes: dict[str, dict[Span, int]]   # plan name -> span -> node id (leaves included)

    @property
    def identity(self) -> int:
        return self.T

    @property
    def n_nodes(self) -> int:
        return self.T + 1 + len(self.merges)

    def node(self, i: int) -> Node:
        return self.merges[i - self.T - 1]

    def root(self, name: str) -> int:
        """The node of plan ``name``'s one-step generator (the single teacher step when T = 1)."""
        return self.plan_nodes[name][(0, self.T)] if self.T >= 2 else 0

    def waves(self) -> list[list[int]]:
        """Merge ids grouped by height, lowest height first."""
        by_height: dict[int, list[int]] = {}
        for i in range(self.T + 1, self.n_nodes):
            by_height.setdefault(self.node(i).height, []).append(i)
        return [by_height[h] for h in sorted(by_height)]


def build_graph(plans: Mapping[str, Plan], T: int, inputs: str) -> MergeGraph:
    """The merge graph of ``plans`` (all for T teacher steps) with ``inputs`` ∈ ``INPUTS``."""
    merges: list[Node] = []
    index: dict[tuple, int] = {}
    plan_nodes: dict[str, dict[Span, int]] = {}
    for name, plan in plans.items():
        ids: dict[Span, int] = {(t - 1, t): t - 1 for t in range(1, T + 1)}
        height = _heights(plan, ids)
        by_start: dict[int, list[Span]] = {}
        for e, s in sorted(plan.merges):                  # ascending e: longest first
            by_start.setdefault(s, []).append((e, s))
        for span in sorted(plan.merges, key=lambda sp: (height[sp], sp[0] - sp[1], -sp[1])):
            kids = tuple(ids[c] for c in plan.children(span))
            chain = _boot_chain(span, height, by_start, ids, T) if inputs == "boot" else ()
            key = (span, kids, chain)
            if key not in index:
                index[key] = T + 1 + len(merges)
                merges.append(Node(span, height[span], kids, chain))
            ids[span] = index[key]
        plan_nodes[name] = ids
    return MergeGraph(T, tuple(merges), plan_nodes)


def _heights(plan: Plan, leaves: Mapping[Span, int]) -> dict[Span, int]:
    height: dict[Span, int] = dict.fromkeys(leaves, 0)
    for span in plan.post_order():
        height[span] = 1 + max(height[c] for c in plan.children(span))
    return height


def _boot_chain(span: Span, height: Mapping[Span, int], by_start: Mapping[int, list[Span]],
                ids: Mapping[Span, int], T: int) -> tuple[int, ...]:
    """The nodes taking z_T to z_s: at each position the longest lower merge, else the teacher step."""
    chain: list[int] = []
    pos = T
    while pos > span[1]:
        node = next((c for c in by_start.get(pos, []) if c[0] >= span[1] and height[c] < height[span]),
                    (pos - 1, pos))
        chain.append(ids[node])
        pos = node[0]
    return tuple(chain)
