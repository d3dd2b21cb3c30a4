"""The CLI contract of `opmerge plan / eval / sweep` (names other tools rely on)."""

import argparse
import json
import subprocess
import sys

import pandas as pd
import pytest

from opmerge_core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json_contract(capsys):
    code, out, _ = run(capsys, "plan", "--T", "8", "--lam", "0.5", "--json")
    obj = json.loads(out)
    assert code == 0
    assert {"plan", "value", "P", "w2", "regime", "exact", "strategies"} <= obj.keys()
    assert obj["regime"] == "boot" and obj["plan"] == "[[[[[[[8 7] 6] 5] 4] 3] 2] 1]"
    assert abs(obj["value"] - 0.721739) < 1e-6 and abs(obj["P"] - 0.599652) < 1e-6
    assert set(obj["strategies"]) == {"vanilla", "boot", "temporal", "progressive", "uniform"}
    for s in obj["strategies"].values():
        assert {"plan", "value", "w2"} <= s.keys()
    assert abs(obj["strategies"]["temporal"]["value"] - 0.903965) < 1e-6


def test_plan_lambda_list_gives_a_list(capsys):
    code, out, _ = run(capsys, "plan", "--T", "64", "--lam", "0.5,3", "--json",
                       "--shrinkage", "2", "--schedule", "cosine")
    objs = json.loads(out)
    assert code == 0 and [o["regime"] for o in objs] == ["boot", "vanilla"]


def test_plan_text_output(capsys):
    code, out, _ = run(capsys, "plan", "--T", "8", "--lam", "3")
    assert code == 0 and "Vanilla" in out and "progressive" in out


def test_eval(capsys):
    code, out, _ = run(capsys, "eval", "--plan", "[[4 3] 2 1]", "--T", "4", "--lam", "0.5",
                       "--json")
    obj = json.loads(out)
    assert code == 0 and {"value", "P", "w2"} <= obj.keys() and obj["plan"] == "[[4 3] 2 1]"
    code, out, _ = run(capsys, "eval", "--plan", "[8 7 6 5 4 3 2 1]", "--lam", "3", "--json")
    assert abs(json.loads(out)["value"] - 1.275487) < 1e-6


def test_sweep_writes_csv(capsys, tmp_path):
    out_csv = tmp_path / "phase.csv"
    code, _, _ = run(capsys, "sweep", "--lam", "0.05:20:50:log", "--T", "8,16",
                       "--out", str(out_csv))
    df = pd.read_csv(out_csv)
    assert code == 0 and len(df) == 100 and {"T", "lam", "regime", "lam_B", "lam_V"} <= set(df)
    assert set(df[df.lam < 1].regime) == {"boot"} and set(df[df.lam > 3].regime) == {"vanilla"}


@pytest.mark.parametrize("argv", [
    ["plan", "--T", "8", "--lam", "-1"],
    ["plan", "--T", "8", "--lam", "0"],
    ["plan", "--T", "8", "--lam", "nan"],
    ["plan", "--T", "8", "--lam", "inf"],
    ["plan", "--T", "0", "--lam", "1"],
    ["plan", "--T", "4097", "--lam", "1"],
    ["plan", "--T", "abc", "--lam", "1"],
    ["plan", "--T", "8", "--lam", "1", "--shrinkage", "-0.5"],
    ["plan", "--T", "8", "--lam", "1", "--schedule", "nope"],
    ["plan", "--T", "8", "--lam", "1", "--init", "nope"],
    ["plan", "--T", "8", "--lam", "1", "--surrogate", "nope"],
    ["eval", "--plan", "[[4 3] 2", "--lam", "1"],
    ["eval", "--plan", "[4 4 2 1]", "--lam", "1"],
    ["eval", "--plan", "[[4 3] 2 1]", "--T", "5", "--lam", "1"],
    ["sweep", "--lam", "1:0.5:10", "--T", "8"],
    ["sweep", "--lam", "0.1:2:x", "--T", "8"],
    ["frobnicate"],
    ["plan", "--lam", "1"],
])
def test_bad_input_is_one_line_and_exit_2(argv):
    proc = subprocess.run([sys.executable, "-m", "opmerge_core", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "error" in proc.stderr


def test_plan_shared(capsys):
    code, out, _ = run(capsys, "plan", "--T", "6", "--lam", "0.3,4", "--shared", "--json")
    obj = json.loads(out)
    assert code == 0 and len(obj["per_lambda"]) == 2
    assert {"plan", "w2", "exact", "values", "strategies_w2", "lower_bound", "gap"} <= obj["shared"].keys()
    assert 0 <= obj["shared"]["lower_bound"] <= obj["shared"]["w2"] + 1e-12
    assert obj["shared"]["w2"] <= min(obj["shared"]["strategies_w2"].values()) + 1e-12


def test_sweep_on_an_existing_cluster_writes_the_same_csv(capsys, tmp_path, scheduler_address):
    argv = ["sweep", "--lam", "0.1:10:9:log", "--T", "4,16,48", "--shrinkage", "2"]
    assert main([*argv, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*argv, "--out", str(tmp_path / "cluster.csv"), "--scheduler", scheduler_address]) == 0
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "cluster.csv").read_bytes()
    capsys.readouterr()


@pytest.mark.parametrize("address", ["localhost:8786", "tcp://127.0.0.1:9"])
def test_sweep_bad_or_unreachable_scheduler_is_one_line_and_exit_2(capsys, address):
    assert main(["sweep", "--lam", "0.5", "--T", "4", "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("opmerge sweep: error:") and "\n" not in err and "scheduler" in err


def test_plan_imports_no_heavy_module():
    """`opmerge plan` builds only the theory commands: no torch, pandas or streamlit; a small plan
    does not even load numba (the numpy DP is faster than numba's start-up)."""
    code = ("import sys, contextlib, io\n"
            "from opmerge_core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    rc = main(['plan', '--T', '16', '--lam', '0.5', '--json'])\n"
            "print(rc, *sorted(m for m in ('torch', 'pandas', 'streamlit', 'numba') if m in sys.modules))\n"
            "assert '\"regime\": \"boot\"' in out.getvalue()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0"]


def test_every_command_is_registered_by_its_module():
    """COMMANDS (which module to import for a command) matches what the modules register."""
    from opmerge_core import cli

    for module in set(cli.COMMANDS.values()):
        parser = cli.build_parser([module])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert {c for c, m in cli.COMMANDS.items() if m == module} == set(sub.choices), module
    every = cli.build_parser()
    sub = next(a for a in every._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS) | set(cli.plugin_commands())


def test_a_missing_command_module_fails_loudly(monkeypatch):
    """Every module of COMMAND_MODULES must import: a broken one is an error, never a silently
    missing subcommand."""
    from opmerge_core import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "no_such_module"])
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli.build_parser()


@pytest.mark.parametrize("init", ["teacher", "coarse"])
def test_plan_output_does_not_depend_on_which_dp_ran(capsys, init):
    """A one-off `opmerge plan` (fresh process: the numpy DP) prints the same numbers, bit for bit,
    as a process with the compiled kernels loaded (a dashboard server, a cluster worker)."""
    from opmerge_core.theory import dp

    argv = ["plan", "--T", "12", "--lam", "0.3,1.0,1.02,1.1,2.5", "--init", init, "--json"]
    code = ("import sys\nfrom opmerge_core.cli import main\n"
            f"rc = main({argv!r})\n"
            "assert 'numba' not in sys.modules and rc == 0\n")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dp.load_kernels()
    assert not dp._use_numpy(12, 5)                       # this process runs the compiled kernels
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out) == json.loads(fresh.stdout)


def test_plugin_commands_come_from_entry_points(monkeypatch, capsys):
    """A package above the core adds a command through the ``opmerge.commands`` entry-point group; the
    core imports its module only when that command runs (or when every command is listed)."""
    import sys
    import types
    from importlib.metadata import EntryPoint

    from opmerge_core import cli

    plugin = types.ModuleType("fake_plugin_commands")

    def register(sub):
        hello = sub.add_parser("hello")
        hello.add_argument("--name", default="room")
        hello.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    plugin.register = register
    monkeypatch.setitem(sys.modules, "fake_plugin_commands", plugin)
    point = EntryPoint("hello", "fake_plugin_commands", cli.PLUGIN_GROUP)
    monkeypatch.setattr(cli, "entry_points", lambda group: [point] if group == cli.PLUGIN_GROUP else [])
    assert cli.plugin_commands() == {"hello": "fake_plugin_commands"}
    assert cli.main(["hello", "--name", "class"]) == 0
    assert capsys.readouterr().out == "hello class\n"
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"hello", "plan", "dashboard"} <= set(sub.choices)


@pytest.mark.parametrize(("out", "reason"), [
    ("/proc/nope/x.csv", "non-existent directory"),        # pandas' own OSError has no strerror
    ("/proc/x.csv", "No such file or directory"),              # the OS message (strerror)
])
def test_a_sweep_that_cannot_write_says_why(capsys, out, reason):
    code, _, err = run(capsys, "sweep", "--lam", "0.5", "--T", "4", "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"opmerge sweep: error: cannot write {out}: ") and reason in err
    assert "None" not in err


def test_an_os_error_anywhere_is_one_line_with_the_os_reason(capsys, monkeypatch):
    from opmerge_core.cli import theory

    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/srv/opmerge/x.json")

    monkeypatch.setattr(theory, "run_plan", unreadable)
    code, _, err = run(capsys, "plan", "--T", "8", "--lam", "0.5")
    assert code == 2 and err == "opmerge plan: error: /srv/opmerge/x.json: Permission denied\n"
