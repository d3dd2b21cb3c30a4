"""The CLI contract of `opmerge train` and `opmerge runs` (keys other tools rely on)."""

import json

import pytest
import torch

from opmerge_core.cli import main

torch.set_num_threads(1)
KEYS = {"plan", "empirical", "theory", "w2_empirical", "w2_theory"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_contract(capsys):
    code, out, _ = run(capsys, "train", "--strategies", "boot,vanilla,dp", "--T", "8", "--lam", "0.5",
                       "--steps", "40", "--lr", "0.01", "--batch", "32", "--json")
    obj = json.loads(out)
    assert code == 0
    assert set(obj) == {"S_eff", "run_id", "boot", "vanilla", "dp"}
    assert obj["S_eff"] == pytest.approx(2 * 0.01 * 40)
    for name in ("boot", "vanilla", "dp"):
        assert set(obj[name]) == KEYS and isinstance(obj[name]["empirical"], float)
        assert abs(obj[name]["empirical"] - obj[name]["theory"]) < 0.02
    assert obj["boot"]["plan"] == "[[[[[[[8 7] 6] 5] 4] 3] 2] 1]"
    assert obj["dp"]["plan"] == obj["boot"]["plan"]          # λ = 0.5 ≤ 1: BOOT is optimal


def test_train_lambda_list_gives_lists_and_shared_dp_plan(capsys):
    code, out, _ = run(capsys, "train", "--T", "6", "--lam", "0.5,3", "--steps", "20", "--lr", "0.01",
                       "--batch", "16", "--json", "--plan", "[[6 5] [4 3] [2 1]]",
                       "--strategies", "dp,temporal")
    obj = json.loads(out)
    assert code == 0 and set(obj) == {"S_eff", "run_id", "dp", "temporal", "custom"}
    assert obj["custom"]["plan"] == "[[6 5] [4 3] [2 1]]"
    for name in ("dp", "temporal", "custom"):
        assert all(len(obj[name][k]) == 2 for k in KEYS - {"plan"})


def test_runs_list_show_compare(capsys):
    ids = []
    for steps in ("10", "20"):
        code, out, _ = run(capsys, "train", "--T", "4", "--lam", "1", "--steps", steps,
                           "--batch", "8", "--lr", "0.01", "--json")
        ids.append(json.loads(out)["run_id"])
    code, out, _ = run(capsys, "runs", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == ids[::-1]
    assert all(r["status"] == "done" and r["kind"] == "train" for r in rows)
    code, out, _ = run(capsys, "runs", "show", str(ids[0]), "--json")
    row = json.loads(out)
    assert row["params"]["steps"] == 10 and {"summary", "arrays"} <= row["artifacts"].keys()
    code, out, _ = run(capsys, "runs", "compare", str(ids[0]), str(ids[1]), "--json")
    cmp = json.loads(out)
    assert cmp["params_differ"] == {"steps": [10, 20]} and set(cmp["w2"]) == {"boot", "vanilla", "dp"}
    code, out, _ = run(capsys, "runs", "list")
    assert code == 0 and "done" in out
    code, out, _ = run(capsys, "runs", "compare", str(ids[0]), str(ids[1]))
    assert code == 0 and "steps" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--T", "8", "--lam", "0.5", "--steps", "0"], "steps must be a positive integer"),
    (["train", "--T", "8", "--lam", "0.5", "--lr", "-1"], "lr must be > 0"),
    (["train", "--T", "8", "--lam", "0.5", "--batch", "0"], "batch must be a positive integer"),
    (["train", "--T", "2000", "--lam", "0.5"], "T must be an integer in [1, 1024]"),
    (["train", "--T", "8", "--lam", "0.5", "--device", "tpu"], "unknown device"),
    (["train", "--T", "8", "--lam", "0.5", "--strategies", "boot,foo"], "unknown strategy 'foo'"),
    (["train", "--T", "8", "--lam", "-1"], "lam must be > 0"),
    (["train", "--lam", "0.5", "--plan", "[[4 3] 2"], "unbalanced bracket"),
    (["train", "--T", "4", "--lam", "1e4", "--strategies", "temporal", "--lr", "1"], "lr must be <"),
    (["runs", "show", "abc"], "a run id is an integer"),
    (["runs", "show", "12345"], "no run with id 12345"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cuda_requested_without_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run(capsys, "train", "--T", "4", "--lam", "1", "--device", "cuda")
    assert code == 2 and err.strip().endswith("no CUDA GPU is available; use --device cpu")


def test_failed_run_is_recorded(capsys):
    run(capsys, "train", "--T", "4", "--lam", "1e4", "--strategies", "temporal", "--lr", "1")
    _, out, _ = run(capsys, "runs", "list", "--json")
    (row,) = json.loads(out)
    assert row["status"] == "failed" and "loss became" in row["error"]


def test_train_on_an_existing_cluster_matches_a_local_run(capsys, scheduler_address):
    argv = ["train", "--strategies", "boot,vanilla", "--T", "6", "--lam", "0.5,3", "--steps", "30",
            "--lr", "0.02", "--batch", "16", "--json"]
    code, out, _ = run(capsys, *argv)
    local = json.loads(out)
    code_c, out_c, _ = run(capsys, *argv, "--scheduler", scheduler_address)
    remote = json.loads(out_c)
    assert code == code_c == 0 and remote["run_id"] != local["run_id"]
    for name in ("boot", "vanilla"):    # same seed, same CPU arithmetic: the same students
        assert remote[name]["empirical"] == pytest.approx(local[name]["empirical"], rel=1e-6)
    code, out, _ = run(capsys, "runs", "show", str(remote["run_id"]), "--json")
    row = json.loads(out)
    assert row["status"] == "done" and set(row["metrics"]["w2_empirical"]) == {"boot", "vanilla"}


def test_ctrl_c_records_the_run_cancelled(capsys, monkeypatch):
    from opmerge_core.training import train_spec

    def interrupted(spec, *, progress=None, cancel=None):
        progress(1, 4, {})
        raise KeyboardInterrupt

    monkeypatch.setattr(train_spec, "run", interrupted)
    code, out, err = run(capsys, "train", "--T", "4", "--lam", "1", "--json")
    assert code == 130 and out == "" and "interrupted" in err
    _, out, _ = run(capsys, "runs", "list", "--json")
    (row,) = json.loads(out)
    assert row["status"] == "cancelled" and row["error"] == "interrupted by the user"
    assert row["progress"] == 0.25
