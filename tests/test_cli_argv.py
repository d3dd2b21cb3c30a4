"""Specs ⇄ argv (opmerge_core/cli/argv.py): ``parse(to_argv(spec)) == spec`` for every command a
dashboard page prints, defaults left out, and every command the pages print parses with the real CLI."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from opmerge_core.basics.device import DEVICES
from opmerge_core.cli import COMMANDS, build_parser
from opmerge_core.cli import argv as cli_argv
from opmerge_core.cli import celeba as celeba_cli
from opmerge_core.cli import practice as practice_cli
from opmerge_core.cli import sfd as sfd_cli
from opmerge_core.cli import theory as theory_cli
from opmerge_core.cli import train as train_cli
from opmerge_core.practice import spec as practice_spec
from opmerge_core.sfd import distill, solvers
from opmerge_core.sfd.mixtures import PRESETS
from opmerge_core.sfd.teachers import TEACHERS
from opmerge_core.theory import plans
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import SURROGATES, Model, Setting
from opmerge_core.theory.shrinkage import INITS
from opmerge_core.training import train_spec
from opmerge_core.training.config import INPUTS, OPTIMIZERS, STUDENTS

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# floats a user could type, and awkward ones whose shortest text is long (10/3, 0.1 + 0.2)
positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
lams = st.lists(positive, min_size=1, max_size=4).map(tuple)


def build(factory, *args, **kwargs):
    """A spec, or a skipped example when the drawn values are not a valid one."""
    try:
        return factory(*args, **kwargs)
    except ValueError:
        assume(False)


T_SMALL, T_ANY = st.integers(1, 12), st.integers(1, 64)


@st.composite
def models(draw):
    return build(Model, S=draw(st.floats(0, 50, allow_nan=False)),
                 schedule=draw(st.sampled_from(SCHEDULES)), init=draw(st.sampled_from(INITS)),
                 surrogate=draw(st.sampled_from(SURROGATES)), uniform_K=draw(st.integers(1, 16)))


@st.composite
def settings_(draw, T=T_ANY):
    return build(draw(models()).at, draw(T))


@given(setting=settings_(), lam=lams, shared=st.booleans())
@EXAMPLES
def test_plan_round_trip(setting, lam, shared):
    spec = theory_cli.PlanCommand(setting, lam, shared)
    assert theory_cli.parse(theory_cli.to_argv(spec)) == spec


@given(setting=settings_(T=T_SMALL), lam=lams, data=st.data())
@EXAMPLES
def test_eval_round_trip(setting, lam, data):
    plan = data.draw(st.sampled_from(sorted(p.text for p in plans.named_plans(setting.T).values())))
    spec = theory_cli.EvalCommand(plan, setting, lam)
    assert theory_cli.parse(theory_cli.to_argv(spec)) == spec


@given(model=models(), Ts=st.lists(st.integers(1, 512), min_size=1, max_size=4).map(tuple),
       lam=st.sampled_from(["0.05:50:41:log", "0.1:2:5", "0.5", "0.2,0.5,1,1.02"]),
       out=st.none() | st.just("grid.csv"))
@EXAMPLES
def test_sweep_round_trip(model, Ts, lam, out):
    spec = build(theory_cli.SweepCommand, Ts, lam, model, out)
    assert theory_cli.parse(theory_cli.to_argv(spec)) == spec


@st.composite
def train_specs(draw):
    T = draw(st.integers(1, 64))
    plan = draw(st.none() | st.sampled_from(sorted(p.text for p in plans.named_plans(T).values())))
    strategies = draw(st.lists(st.sampled_from(train_spec.STRATEGY_CHOICES), unique=True,
                               min_size=0 if plan else 1))
    return build(train_spec.TrainSpec, T=T, lam=draw(lams), strategies=tuple(strategies), plan=plan,
                 schedule=draw(st.sampled_from(SCHEDULES)), init=draw(st.sampled_from(INITS)),
                 surrogate=draw(st.sampled_from(SURROGATES)), uniform_K=draw(st.integers(1, 16)),
                 steps=draw(st.integers(1, 5000)), lr=draw(st.floats(1e-5, 10)),
                 batch=draw(st.integers(1, 1024)), optimizer=draw(st.sampled_from(OPTIMIZERS)),
                 seed=draw(st.integers(0, 2**31 - 1)), inputs=draw(st.sampled_from(INPUTS)),
                 student=draw(st.sampled_from(STUDENTS)), hidden=draw(st.integers(1, 64)),
                 device=draw(st.sampled_from(DEVICES)))


@given(spec=train_specs())
@EXAMPLES
def test_train_round_trip(spec):
    assert train_cli.parse(train_cli.to_argv(spec)) == spec


@st.composite
def sfd_specs(draw):
    algorithm = draw(st.sampled_from(distill.ALGORITHMS))
    nfe = draw(st.sampled_from(distill.SFDV_NFE) if algorithm == "sfd-v"
               else st.integers(distill.NFE_MIN, distill.NFE_MAX))
    budgets = st.integers(1, 200_000) | st.sampled_from([distill.DEFAULT_BUDGET, distill.MIXTURE_BUDGET])
    cfg = build(distill.DistillConfig, nfe=nfe, algorithm=algorithm,
                solver=draw(st.sampled_from(solvers.SOLVERS)), M=draw(st.integers(0, 8)),
                afs=draw(st.booleans()), budget=draw(budgets),
                batch=draw(st.integers(1, 512)), lr=draw(st.floats(1e-5, 1.0)),
                seed=draw(st.integers(0, 2**31 - 1)),
                lower_order_final=draw(st.sampled_from(solvers.LOWER_ORDER_FINAL)))
    return build(sfd_cli.SfdTrainSpec, draw(st.sampled_from(TEACHERS)),
                 draw(st.sampled_from(list(PRESETS))), cfg)


@given(spec=sfd_specs())
@EXAMPLES
def test_sfd_train_round_trip(spec):
    assert sfd_cli.parse(sfd_cli.to_argv(spec)) == spec


@st.composite
def practice_specs(draw):
    return build(practice_spec.PracticeSpec, teacher=draw(st.sampled_from(practice_spec.TEACHERS)),
                 T=draw(st.integers(2, 64)),
                 plans=tuple(draw(st.lists(st.sampled_from(practice_spec.PLAN_CHOICES), min_size=1,
                                           unique=True))),
                 student=draw(st.sampled_from(practice_spec.STUDENTS)),
                 seeds=tuple(draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=10, unique=True))),
                 budget=draw(positive), steps=draw(st.integers(1, 5000)), batch=draw(st.integers(1, 4096)),
                 pool=draw(st.sampled_from([0, 4096, 100_000])), n_eval=draw(st.integers(256, 65_536)),
                 preset=draw(st.sampled_from(list(PRESETS))),
                 lam=draw(st.sampled_from(["0.1:10:32:log", "0.5,2", "0.2:3:5"])),
                 schedule=draw(st.sampled_from(SCHEDULES)), init=draw(st.sampled_from(INITS)),
                 K=draw(st.integers(1, 16)), hidden=draw(st.integers(1, 256)),
                 device=draw(st.sampled_from(DEVICES)))


@given(spec=practice_specs())
@EXAMPLES
def test_practice_round_trip(spec):
    assert practice_cli.parse(practice_cli.to_argv(spec)) == spec


@given(setting=settings_(), samples=st.integers(1, 32), seed=st.integers(0, 2**31 - 1),
       gain=st.floats(0.01, 100), train=st.booleans(), train_steps=st.integers(1, 100_000),
       out=st.sampled_from(["grid.png", "out/faces.PNG"]))
@EXAMPLES
def test_celeba_compare_round_trip(setting, samples, seed, gain, train, train_steps, out):
    spec = celeba_cli.CompareSpec(setting, samples, seed, gain, train, train_steps, out)
    assert celeba_cli.parse(celeba_cli.to_argv(spec)) == spec


def test_defaults_are_left_out_and_read_from_the_parser():
    plan = theory_cli.PlanCommand(Setting(32), (0.5,))
    assert theory_cli.to_argv(plan) == ["plan", "--T", "32", "--lam", "0.5"]
    assert theory_cli.to_argv(theory_cli.PlanCommand(Setting(32, S=2.0, init="zero"), (1 / 3,))) == [
        "plan", "--T", "32", "--lam", repr(1 / 3), "--shrinkage", "2", "--init", "zero"]
    spec = train_spec.TrainSpec(T=4, lam=(0.5,), strategies=(), plan="[[4 3] [2 1]]")
    assert train_cli.to_argv(spec) == ["train", "--plan", "[[4 3] [2 1]]", "--T", "4", "--lam", "0.5"]
    # the budget's default depends on the teacher
    small = distill.DistillConfig(budget=distill.MIXTURE_BUDGET)
    mixture = sfd_cli.SfdTrainSpec("mixture-2d", "ring8", small)
    assert sfd_cli.to_argv(mixture) == ["sfd", "train", "--teacher", "mixture-2d"]
    latent = sfd_cli.SfdTrainSpec("latent-mlp", "ring8", small)
    assert sfd_cli.to_argv(latent) == ["sfd", "train", "--budget", str(distill.MIXTURE_BUDGET)]
    with pytest.raises(KeyError, match="no option"):
        cli_argv.options(cli_argv.command_parser("theory", "plan"), {"nonsense": 1})


def test_a_spec_the_cli_cannot_express_is_refused():
    with pytest.raises(ValueError, match="samples on t in"):
        sfd_cli.SfdTrainSpec("mixture-2d", "ring8", distill.DistillConfig(t_max=10.0))


# ---- every command the pages print parses with the real CLI parser --------------------------------
def printed_commands(at: AppTest) -> list[list[str]]:
    """The ``opmerge …`` lines of the page's code blocks, split like a shell (comments dropped; a
    shell substitution for a long λ list becomes a short list)."""
    out = []
    for block in at.code:
        for line in block.value.splitlines():
            if line.startswith("opmerge "):
                words = shlex.split(line, comments=True)
                out.append(["1,2" if w.startswith("$(") else w for w in words])
    return out


def check_parses(words: list[str]) -> None:
    """The real parser accepts the command and its module builds a valid spec from it."""
    assert words[0] == "opmerge"
    build_parser().parse_args(words[1:])                       # argparse errors exit: the test fails
    importlib.import_module(f"opmerge_core.cli.{COMMANDS[words[1]]}").parse(words[1:])


@pytest.mark.parametrize(("page", "query", "commands"), [
    ("phase", {}, 3), ("phase", {"T": "8", "S": "2.5", "init": "zero", "lam": "1.3"}, 3),
    ("playground", {"T": "6"}, 1), ("spectrum", {}, 1), ("experiments", {"S": "3"}, 6),
    ("about", {"plan": "[[4 3] 2 1]", "T": "4"}, 4), ("train", {}, 1), ("sfd", {}, 1),
    ("practice", {"tp_teacher": "mixture-2d", "tp_T": "8", "tp_student": "mlp"}, 1),
])
def test_every_printed_command_parses(monkeypatch, tmp_path, page, query, commands):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    monkeypatch.setenv("OPMERGE_ASSETS", str(tmp_path))      # SFD: no latent teacher → the 2-D mixtures
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    found = printed_commands(at)
    assert len(found) == commands, found
    for words in found:
        check_parses(words)
