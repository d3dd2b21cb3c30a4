"""A bad ``OPMERGE_HOME`` is one clear message, not a broken app: a garbage ``runs.sqlite``, a file where
the folder should be, a folder this user cannot write, a full disk. The store names the path and what
to do (``StoreError``, one line); the CLI prints that line and exits 2; the dashboard starts, pages that
need no store draw, pages that do say it once; nothing already recorded is lost or rewritten."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_core.cli import main
from opmerge_core.store import runstore
from opmerge_core.store.cache import ResultCache
from opmerge_core.store.runstore import RunStore, StoreError
from opmerge_dashboard.untrusted import unescape

APP = "../dashboard/app.py"
NOBODY = 65534


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def garbage_home(tmp_path: Path) -> Path:
    home = tmp_path / "garbage"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(os.urandom(8192))
    return home


def file_home(tmp_path: Path) -> Path:
    home = tmp_path / "a-file"
    home.write_text("not a folder\n")
    return home


def under_a_file_home(tmp_path: Path) -> Path:
    return file_home(tmp_path) / "opmerge"


# (how to make it, what the message says)
BAD_HOMES = {
    "garbage": (garbage_home, "not a readable SQLite database (damaged?); it is left untouched"),
    "file": (file_home, "is a file where a folder should be"),
    "under-a-file": (under_a_file_home, "is a file where a folder should be"),
}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---- the store ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", BAD_HOMES)
def test_a_bad_home_is_one_line_naming_the_path_and_what_to_do(tmp_path, case):
    make, says = BAD_HOMES[case]
    home = make(tmp_path)
    before = {p: digest(p) for p in [home, *home.rglob("*")] if p.is_file()}
    with pytest.raises(StoreError) as info:
        RunStore(home / "runs.sqlite")
    message = one_line(str(info.value))
    assert str(home / "runs.sqlite") in message and says in message
    assert "OPMERGE_HOME" in message                               # what to do
    after = {p: digest(p) for p in [home, *home.rglob("*")] if p.is_file()}
    assert after == before, "a damaged store is left exactly as it was"


def test_a_full_disk_loses_nothing_already_recorded(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        kept = store.create("train", {"T": 8})
        store.finish(kept, "done", metrics={"w2": 0.25})
        pages = store._exec("PRAGMA page_count").fetchone()[0]
        store._exec(f"PRAGMA max_page_count={pages}")              # SQLITE_FULL from the next page on
        with pytest.raises(StoreError, match="the disk is full") as info:
            for _ in range(200):
                store.create("train", {"padding": "x" * 4000})
        assert str(path) in one_line(str(info.value))
    with RunStore(path) as store:
        row = store.get(kept)
        assert row["status"] == "done" and row["metrics"] == {"w2": 0.25}


def test_a_disk_full_at_open_is_said_so(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(runstore.sqlite3, "connect", full)
    with pytest.raises(StoreError, match="the disk is full — free some space"):
        RunStore(tmp_path / "runs.sqlite")


def test_an_unusable_cache_folder_keeps_results_in_memory(tmp_path):
    cache = ResultCache(file_home(tmp_path) / "cache")
    assert cache.problem and "is a file where a folder should be" in cache.problem
    cache.put("k", 42)
    assert cache.get("k") == (True, 42)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "cache.db").write_bytes(os.urandom(4096))
    cache = ResultCache(tmp_path / "damaged")
    assert "not a readable SQLite database" in cache.problem
    assert cache.get("k") == (False, None)


# ---- the CLI: one line, exit 2 ------------------------------------------------------------------
@pytest.mark.parametrize("case", BAD_HOMES)
@pytest.mark.parametrize("argv", [["runs", "list"], ["train", "--T", "4", "--lam", "0.5", "--steps", "5"]])
def test_the_cli_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys, case, argv):
    make, says = BAD_HOMES[case]
    monkeypatch.setenv("OPMERGE_HOME", str(make(tmp_path)))
    assert main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"opmerge {argv[0]}: error: run store ") and says in err


def run_as_someone_who_cannot_write(argv: list[str], home: Path) -> subprocess.CompletedProcess:
    """``opmerge argv`` with a read-only ``OPMERGE_HOME``: as user nobody if we are root (root writes
    anywhere), else with the folder's write bits off."""
    env = {**os.environ, "OPMERGE_HOME": str(home), "HOME": str(home.parent)}
    as_user = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv (util-linux): cannot drop to a user who cannot write")
        as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    home.chmod(0o555)
    try:
        return subprocess.run([*as_user, sys.executable, "-m", "opmerge_core", *argv], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        home.chmod(0o755)


@pytest.mark.parametrize("with_runs", [False, True])
def test_a_read_only_home_is_one_line_and_keeps_its_runs(tmp_path, with_runs):
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    if with_runs:
        with RunStore(home / "runs.sqlite") as store:
            store.finish(store.create("train", {"T": 4}), "done", metrics={"w2": 0.5})
        (home / "runs.sqlite").chmod(0o444)
        before = digest(home / "runs.sqlite")
    proc = run_as_someone_who_cannot_write(["runs", "list"], home)
    assert proc.returncode == 2, proc.stderr
    err = one_line(proc.stderr)
    assert f"run store {home / 'runs.sqlite'}: cannot write {home} (read-only or permission denied)" in err
    if with_runs:
        assert digest(home / "runs.sqlite") == before
        with RunStore(home / "runs.sqlite") as store:
            assert store.list()[0]["metrics"] == {"w2": 0.5}


# ---- the dashboard: starts, draws what needs no store, says it once where a page needs it ----------
def messages(at: AppTest) -> list[str]:
    return [unescape(e.value) for kind in ("error", "warning") for e in getattr(at, kind)]


@pytest.mark.parametrize("case", BAD_HOMES)
def test_the_dashboard_draws_and_says_once_which_path_is_wrong(tmp_path, monkeypatch, case):
    make, says = BAD_HOMES[case]
    home = make(tmp_path)
    monkeypatch.setenv("OPMERGE_HOME", str(home))
    before = {p: digest(p) for p in [home, *home.rglob("*")] if p.is_file()}

    at = AppTest.from_file(APP, default_timeout=120).run()          # the home page records nothing
    assert not at.exception and not at.error, [at.exception, messages(at)]
    assert next(m.value for m in at.metric if m.label == "Optimal plan") == "Sequential BOOT"

    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    said = [m for m in messages(at) if "run store" in m]
    assert len(said) == 1 and str(home / "runs.sqlite") in said[0] and says in said[0], messages(at)
    assert at.button(key="tr_start").disabled
    assert next(h for h in at.header if h.value == "Runs")

    at.switch_page("app_pages/sfd.py").run()
    assert not at.exception, at.exception
    assert len([m for m in messages(at) if "run store" in m]) == 1

    at.switch_page("app_pages/practice.py").run()                  # the shipped reference still fills it
    assert not at.exception, at.exception
    assert len([m for m in messages(at) if "run store" in m]) == 1
    assert at.button(key="tp_run").disabled
    assert any(m.value.startswith("**Verdict.**") for m in at.markdown)
    assert {p: digest(p) for p in before} == before, "what was there is left exactly as it was"


def test_a_store_that_breaks_after_the_page_drew_refuses_the_run_with_its_reason(tmp_path, monkeypatch):
    """The store was fine when the button was drawn and the disk filled before the click."""
    from opmerge_dashboard import backend as dashboard_backend

    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.button(key="tr_start").disabled
    backend = dashboard_backend.backend()

    def full(*args, **kwargs):
        raise StoreError(backend.store_path, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(backend, "submit", full)
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    refused = [m for m in messages(at) if m.startswith("Training not started")]
    assert len(refused) == 1 and "the disk is full" in refused[0], messages(at)


@pytest.mark.parametrize("case", BAD_HOMES)
def test_rooms_on_a_bad_store_are_one_message(tmp_path, monkeypatch, case):
    make, says = BAD_HOMES[case]
    monkeypatch.setenv("OPMERGE_HOME", str(make(tmp_path)))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["room"] = "K7QM2X"                                # a student link
    at.run()
    assert not at.exception, at.exception
    said = [m for m in messages(at) if "run store" in m]
    assert len(said) == 1 and says in said[0] and said[0].startswith("Cannot join"), messages(at)
    at.button(key="room_create").click().run()                         # "Start a room"
    assert not at.exception, at.exception
    assert any(says in m for m in messages(at)), messages(at)
