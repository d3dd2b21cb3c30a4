"""THEORY §3: plan type, text form, named strategies, enumeration."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge_core.theory import plans
from opmerge_core.theory.setting import Setting


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 64])
@pytest.mark.parametrize("name", plans.STRATEGIES)
def test_round_trip_named(name, T):
    plan = plans.strategy(name, T)
    assert plans.parse(plan.text) == plan
    assert plans.parse(plan.text, T).text == plan.text


def test_named_strategy_shapes():
    assert plans.vanilla(4).text == "[4 3 2 1]"
    assert plans.boot(4).text == "[[[4 3] 2] 1]"
    assert plans.temporal(4).text == "[4 [3 [2 1]]]"
    assert plans.progressive(4).text == "[[4 3] [2 1]]"
    assert plans.progressive(5).text == "[[[5 4] 3] [2 1]]"      # larger half first
    assert plans.uniform(8, 4).text == "[[8 7 6 5] [4 3 2 1]]"
    assert plans.uniform(10, 4).text == "[[10 9 8 7] [6 5 4 3] [2 1]]"
    assert plans.uniform(9, 4).text == "[[9 8 7 6] [5 4 3 2] 1]"
    assert plans.uniform(3, 4) == plans.vanilla(3)
    assert all(s == 8 for _, s in plans.boot(8).merges)          # every BOOT merge starts at T
    assert plans.boot(4096).n_merges == 4095 and plans.boot(4096).depth == 4095
    assert plans.vanilla(1).text == "1"


def test_enumeration_counts_are_little_schroeder():
    expected = [1, 1, 3, 11, 45, 197, 903]
    for T, count in enumerate(expected, start=1):
        all_plans = list(plans.enumerate_plans(T))
        assert len(all_plans) == count == plans.little_schroeder(T)
        assert len(set(all_plans)) == count                       # all distinct
        assert len({p.text for p in all_plans}) == count
    assert plans.little_schroeder(10) == 103049


@st.composite
def random_plan(draw, max_T=12):
    T = draw(st.integers(1, max_T))
    merges = {(0, T)} if T >= 2 else set()
    stack = [(0, T)] if T >= 2 else []
    while stack:  # split a merge into >= 2 consecutive children; children of >= 2 steps are merges
        e, s = stack.pop()
        cuts = sorted(draw(st.sets(st.integers(e + 1, s - 1), min_size=1, max_size=s - e - 1)))
        bounds = [e, *cuts, s]
        for lo, hi in zip(bounds, bounds[1:]):
            if hi - lo >= 2:
                merges.add((lo, hi))
                stack.append((lo, hi))
    return plans.Plan(T, frozenset(merges))


@given(random_plan())
@settings(max_examples=150, deadline=None)
def test_round_trip_random(plan):
    assert plans.parse(plan.text) == plan
    # children cover each merge exactly, in order
    for e, s in plan.merges:
        kids = plan.children((e, s))
        assert len(kids) >= 2 and kids[0][1] == s and kids[-1][0] == e
        assert all(a[0] == b[1] for a, b in zip(kids, kids[1:]))


@pytest.mark.parametrize(("text", "message"), [
    ("[[4 3] 2 1", "position 1: unbalanced bracket: '[' is never closed"),
    ("[4 3] 2 1]", "position 7: text after the end"),
    ("[[4 3] 2 1]]", "position 12: text after the end"),
    ("]", "position 1: unbalanced bracket: ']' has no matching '['"),
    ("[[4] 3 2 1]", "position 2: a merge needs at least 2 children, this one has 1"),
    ("[4 3 3 1]", "position 6: duplicate step 3"),
    ("[4 2 1]", "position 4: step 3 is missing before step 2"),
    ("[4 3 2]", "missing step(s) 1"),
    ("[3 4 2 1]", "position 2: step 3 is out of order"),
    ("[4 3 x 1]", "position 6: unexpected character 'x'"),
    ("[9 3 2 1]", "position 2: step 9 is out of range"),
    ("", "empty plan"),
])
def test_parse_errors_name_position_and_problem(text, message):
    T = 4 if "9" in text else None
    with pytest.raises(ValueError) as err:
        plans.parse(text, T)
    assert message in str(err.value)


def test_evaluation_matches_hand_computation():
    st_ = Setting(T=3, S=0.7)
    lam = np.array([0.4, 2.0])
    A, rho = st_.A_star(lam), st_.rho(lam)
    # [[3 2] 1]: inner merge starts at 3 with first child A3, rest A2; outer starts at 3 too
    inner = A[2] * (1 - rho[3] + rho[3] * A[1])
    outer = inner * (1 - rho[3] + rho[3] * A[0])
    assert np.allclose(plans.parse("[[3 2] 1]").evaluate(st_, lam), outer)
    # [3 [2 1]]: inner merge starts at 2
    inner = A[1] * (1 - rho[2] + rho[2] * A[0])
    outer = A[2] * (1 - rho[3] + rho[3] * inner)
    assert np.allclose(plans.parse("[3 [2 1]]").evaluate(st_, lam), outer)
    # zero init: ρ × target
    z = Setting(T=3, S=0.7, init="zero")
    assert np.allclose(plans.vanilla(3).evaluate(z, lam), rho[3] * A.prod(0))
    with pytest.raises(ValueError, match="T = 3"):
        plans.vanilla(4).evaluate(st_, lam)
