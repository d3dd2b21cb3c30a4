"""Merge plans (THEORY §3): ordered trees over the teacher steps T, T−1, …, 1.

A plan is stored as the set of its merges, each a span ``(e, s)`` (the merged student maps z_s → z_e,
e < s, s − e ≥ 2). The leaves are fixed and in order, so this laminar family determines the tree;
it makes plans hashable, comparable and free of recursion depth limits (BOOT at T = 4096 is a chain
of 4095 merges). Text form: leaves are step numbers, brackets are merges, e.g. ``[[4 3] 2 1]``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from opmerge_core.basics.validation import T_MAX, check_int, check_T
from opmerge_core.theory.operators import coarse_jump
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import merge_coefficients

Span = tuple[int, int]  # (e, s): maps z_s → z_e

STRATEGY_LABELS = {
    "vanilla": "Vanilla",
    "boot": "Sequential BOOT",
    "temporal": "Temporal",
    "progressive": "Progressive",
    "uniform": "Uniform (K)",
}
STRATEGIES = tuple(STRATEGY_LABELS)
PLAN_TEXT_MAX = 100_000  # characters accepted by the parser


@dataclass(frozen=True)
class Plan:
    T: int
    merges: frozenset[Span]

    def __post_init__(self) -> None:
        if self.T >= 2 and (0, self.T) not in self.merges:
            raise ValueError("a plan for T >= 2 must merge all steps at its root")

    # ---- structure ------------------------------------------------------------------------------
    @cached_property
    def _longest_from(self) -> dict[int, tuple[list[int], list[Span]]]:
        """Per start s: (ends ascending, merges (e, s) in that order = longest first)."""
        by_start: dict[int, list[Span]] = {}
        for e, s in sorted(self.merges, key=lambda span: span[0]):
            by_start.setdefault(s, []).append((e, s))
        return {s: ([e for e, _ in spans], spans) for s, spans in by_start.items()}

    def children(self, span: Span) -> list[Span]:
        """The children of a merge in application order (leaves are spans (t − 1, t))."""
        e, s = span
        out, pos = [], s
        while pos > e:
            ends, spans = self._longest_from.get(pos, ((), ()))
            k = bisect.bisect_left(ends, e)           # the longest merge from pos inside the span
            if k < len(spans) and spans[k] == span:
                k += 1
            child = spans[k] if k < len(spans) else (pos - 1, pos)
            out.append(child)
            pos = child[0]
        return out

    def post_order(self) -> list[Span]:
        """Merges ordered so that every merge comes after its children (shortest first)."""
        return sorted(self.merges, key=lambda span: (span[1] - span[0], -span[1]))

    @cached_property
    def _post_order_children(self) -> tuple[tuple[Span, list[Span]], ...]:
        """(merge, its children) in post-order, computed once per plan (evaluation reuses it)."""
        return tuple((span, self.children(span)) for span in self.post_order())

    @property
    def n_merges(self) -> int:
        return len(self.merges)

    @cached_property
    def depth(self) -> int:
        """Number of merges on the longest root-to-leaf path (student generations)."""
        level: dict[Span, int] = {}
        for span in self.post_order():
            level[span] = 1 + max((level.get(c, 0) for c in self.children(span)), default=0)
        return level.get((0, self.T), 0)

    # ---- text -----------------------------------------------------------------------------------
    @cached_property
    def text(self) -> str:
        if self.T == 1:
            return "1"
        parts: list[str] = []
        stack: list[Span | str] = [(0, self.T)]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item[1] - item[0] == 1:
                parts.append(str(item[1]))
            else:
                parts.append("[")
                stack.append("]")
                stack.extend(reversed(self.children(item)))
        return re.sub(r"\[ | \]", lambda m: m.group(0).strip(), " ".join(parts))

    def __str__(self) -> str:
        return self.text

    # ---- evaluation (THEORY §3, last bullet) ----------------------------------------------------
    def evaluate(self, setting: Setting, lam: np.ndarray) -> np.ndarray:
        """The one-step operator this plan produces, per coordinate. Shape (d,)."""
        if setting.T != self.T:
            raise ValueError(f"plan is for T = {self.T} but the setting has T = {setting.T}")
        return evaluate_spans(self, setting, lam)[(0, self.T)]


def evaluate_spans(plan: Plan, setting: Setting, lam: np.ndarray) -> dict[Span, np.ndarray]:
    """Value of every node (leaves and merges) of a plan; post-order, each merge by THEORY §2
    (``shrinkage.merge_coefficients``, computed once for every start s)."""
    A = setting.A_star(lam)                      # (T, d)
    a, b, c1, c2 = merge_coefficients(setting.init, setting.rho(lam))    # (T + 1, d) each
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    value: dict[Span, np.ndarray] = {(t - 1, t): A[t - 1] for t in range(1, plan.T + 1)}
    for (e, s), (first, *others) in plan._post_order_children:
        rest = value[others[0]]
        for c in others[1:]:
            rest = rest * value[c]
        v = c1[s] + value[first] * (a[s] * rest + b[s])
        if setting.init == "coarse":
            v = v + c2[s] * coarse_jump(setting.alpha, setting.sigma, lam, s, e)
        value[(e, s)] = v
    return value


# ---- construction -------------------------------------------------------------------------------
def vanilla(T: int) -> Plan:
    """One T-ary merge [T … 1]."""
    return Plan(T, frozenset({(0, T)} if T >= 2 else set()))


def boot(T: int) -> Plan:
    """Sequential BOOT: a left-deep chain from the noise end; every merge starts at s = T."""
    return Plan(T, frozenset((e, T) for e in range(T - 1)))


def temporal(T: int) -> Plan:
    """A right-deep chain from the data end: [T [T−1 [… [2 1]]]]."""
    return Plan(T, frozenset((0, s) for s in range(2, T + 1)))


def progressive(T: int) -> Plan:
    """Balanced binary tree (halving rounds); odd spans split with the larger half first."""
    merges, stack = set(), [(0, T)]
    while stack:
        e, s = stack.pop()
        n = s - e
        if n < 2:
            continue
        merges.add((e, s))
        mid = s - (n + 1) // 2
        stack += [(mid, s), (e, mid)]
    return Plan(T, frozenset(merges))


def uniform(T: int, K: int = 4) -> Plan:
    """Blocks of K consecutive steps from the noise end merged first, then one root merge (SFD)."""
    K = check_int(K, "K (uniform block size)", hi=T_MAX)
    merges = {(0, T)} if T >= 2 else set()
    for s in range(T, 0, -K):
        e = max(s - K, 0)
        if s - e >= 2:
            merges.add((e, s))
    return Plan(T, frozenset(merges))


def strategy(name: str, T: int, K: int = 4) -> Plan:
    """A named strategy as a plan."""
    T = check_T(T)
    if name == "uniform":
        return uniform(T, K)
    builders = {"vanilla": vanilla, "boot": boot, "temporal": temporal, "progressive": progressive}
    if name not in builders:
        raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return builders[name](T)


def named_plans(T: int, K: int = 4) -> dict[str, Plan]:
    return dict(_named_plans(T, K))


@lru_cache(maxsize=64)
def _named_plans(T: int, K: int) -> tuple[tuple[str, Plan], ...]:
    """Built once per (T, K): plans are immutable and cache their structure (children, text)."""
    return tuple((name, strategy(name, T, K)) for name in STRATEGIES)


# ---- parsing ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\[|\]|\d+|[\s,]+|.")


def parse(text: str, T: int | None = None) -> Plan:
    """Parse bracket notation, e.g. ``[[4 3] 2 1]``; T defaults to the largest step.

    Errors name the 1-based character position and the problem: unbalanced brackets, a merge of
    fewer than 2 children, a missing, duplicate, out-of-range or out-of-order step.
    """
    if not isinstance(text, str):
        raise ValueError(f"a plan must be text like '[[4 3] 2 1]', got {type(text).__name__}")
    if len(text) > PLAN_TEXT_MAX:
        raise ValueError(f"plan text is too long ({len(text)} characters, max {PLAN_TEXT_MAX})")
    if not text.strip():
        raise ValueError("empty plan: type e.g. '[[4 3] 2 1]'")
    stack: list[tuple[int, list[tuple[int, int]]]] = []  # ('[' position, children as (hi, lo))
    leaves: list[tuple[int, int]] = []                   # (step, position)
    merges: list[tuple[int, int]] = []                   # (hi, lo) step numbers of each merge
    done_at = 0
    for m in _TOKEN.finditer(text):
        tok, pos = m.group(0), m.start() + 1
        if tok[0] in " \t\n\r,":
            continue
        if done_at:
            raise ValueError(f"position {pos}: text after the end of the plan "
                             f"(the plan closed at position {done_at})")
        if tok == "[":
            stack.append((pos, []))
        elif tok == "]":
            if not stack:
                raise ValueError(f"position {pos}: unbalanced bracket: ']' has no matching '['")
            open_pos, kids = stack.pop()
            if len(kids) < 2:
                raise ValueError(f"position {open_pos}: a merge needs at least 2 children, "
                                 f"this one has {len(kids)}")
            node = (kids[0][0], kids[-1][1])
            merges.append(node)
            if stack:
                stack[-1][1].append(node)
            else:
                done_at = pos
        elif tok.isdigit():
            step = int(tok)
            leaves.append((step, pos))
            if stack:
                stack[-1][1].append((step, step))
            else:
                done_at = pos
        else:
            raise ValueError(f"position {pos}: unexpected character {tok!r} "
                             "(a plan has step numbers, spaces and brackets)")
    if stack:
        raise ValueError(f"position {stack[-1][0]}: unbalanced bracket: '[' is never closed")
    if not leaves:
        raise ValueError("a plan needs at least one step")
    T = check_T(max(step for step, _ in leaves) if T is None else T)
    expected = T
    for step, pos in leaves:
        if not 1 <= step <= T:
            raise ValueError(f"position {pos}: step {step} is out of range 1..{T}")
        if step != expected:
            seen = {s for s, p in leaves if p < pos}
            if step in seen:
                raise ValueError(f"position {pos}: duplicate step {step}")
            if step < expected and expected not in {s for s, _ in leaves}:
                raise ValueError(f"position {pos}: step {expected} is missing before step {step}")
            raise ValueError(f"position {pos}: step {step} is out of order (expected {expected}; "
                             "steps run from T down to 1)")
        expected -= 1
    if expected != 0:
        missing = ", ".join(str(t) for t in range(expected, 0, -1)[:5])
        raise ValueError(f"missing step(s) {missing}{' …' if expected > 5 else ''} at the end")
    return Plan(T, frozenset((lo - 1, hi) for hi, lo in merges))


# ---- enumeration (small T) ----------------------------------------------------------------------
ENUMERATE_T_MAX = 9  # 20,793 plans at T = 9 (little Schröder number)


@lru_cache(maxsize=None)
def little_schroeder(n: int) -> int:
    """Number of plans with n leaves (little Schröder numbers 1, 1, 3, 11, 45, 197, 903, …)."""
    # t(k): trees over k leaves; seq(k): sequences of >= 1 trees covering k leaves.
    t = [0, 1] + [0] * n
    seq = [0, 1] + [0] * n  # sequences of >= 1 trees over k leaves
    for k in range(2, n + 1):
        t[k] = sum(t[j] * seq[k - j] for j in range(1, k))          # first child j leaves, rest >= 1
        seq[k] = t[k] + sum(t[j] * seq[k - j] for j in range(1, k))
    return t[n]


@lru_cache(maxsize=None)
def _node_sets(e: int, s: int) -> tuple[frozenset[Span], ...]:
    """Every subtree over span (e, s), as its set of merges."""
    if s - e == 1:
        return (frozenset(),)
    out = []
    for m in range(e + 1, s):
        for first in _node_sets(m, s):
            for rest in _run_sets(e, m):
                out.append(first | rest | {(e, s)})
    return tuple(out)


@lru_cache(maxsize=None)
def _run_sets(e: int, s: int) -> tuple[frozenset[Span], ...]:
    """Every sequence of >= 1 subtrees covering (e, s)."""
    out = list(_node_sets(e, s))
    for m in range(e + 1, s):
        for first in _node_sets(m, s):
            for rest in _run_sets(e, m):
                out.append(first | rest)
    return tuple(out)


def enumerate_plans(T: int) -> Iterator[Plan]:
    """All plans for T <= ENUMERATE_T_MAX (count = little Schröder number)."""
    T = check_T(T, hi=ENUMERATE_T_MAX)
    for merges in _node_sets(0, T):
        yield Plan(T, merges)
