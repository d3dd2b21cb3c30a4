"""`opmerge dashboard`: the command line it serves with (production defaults, --dev, the Dask
environment, pass-through flags), checked against `streamlit run`'s own option parser, and one real
start of the app."""

import subprocess
import sys
import time
import urllib.request
from importlib.resources import files
from pathlib import Path

import pytest
from streamlit.web import cli as streamlit_cli

from opmerge_core.cli import build_parser, main
from opmerge_core.cli.dashboard import APP_PACKAGE, server_env, streamlit_command


def parse(*argv: str):
    args, extra = build_parser().parse_known_args(["dashboard", *argv])
    args.extra = extra
    return args


def run_options(argv: list[str]) -> dict:
    """What `streamlit run` makes of the argv after `python -m streamlit run` (no server)."""
    assert argv[1:4] == ["-m", "streamlit", "run"]
    ctx = streamlit_cli.main_run.make_context("run", argv[4:])
    return {k: v for k, v in ctx.params.items() if v not in (None, ())}


def test_production_defaults():
    argv = streamlit_command(parse("--port", "8600"))
    assert argv[0] == sys.executable and Path(argv[4]) == Path(str(files(APP_PACKAGE) / "app.py"))
    opts = run_options(argv)
    assert opts["server_fileWatcherType"] == "none"
    assert opts["server_runOnSave"] is False
    assert opts["server_headless"] is True
    assert opts["browser_gatherUsageStats"] is False
    assert opts["global_developmentMode"] is False
    assert opts["runner_postScriptGC"] is False
    assert opts["server_maxUploadSize"] == 1
    assert opts["client_toolbarMode"] == "minimal"
    assert opts["server_port"] == 8600 and opts["server_address"] == "localhost"


def test_dev_brings_the_watcher_back():
    opts = run_options(streamlit_command(parse("--dev")))
    assert opts["server_fileWatcherType"] == "auto"
    assert opts["server_runOnSave"] is True
    assert opts["client_toolbarMode"] == "developer"
    assert opts["server_headless"] is True


def test_extra_flags_pass_through_and_override_the_defaults():
    argv = streamlit_command(parse("--server.fileWatcherType", "poll", "--theme.base", "dark"))
    opts = run_options(argv)
    assert opts["server_fileWatcherType"] == "poll"
    assert opts["theme_base"] == "dark"


def test_scheduler_and_workers_go_to_the_server_environment():
    env = server_env(parse("--scheduler", "tcp://10.0.0.5:8786", "--workers", "3"), {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OPMERGE_SCHEDULER": "tcp://10.0.0.5:8786", "OPMERGE_WORKERS": "3"}
    inherited = {"OPMERGE_SCHEDULER": "tcp://other:8786"}
    assert server_env(parse(), inherited) == inherited   # no flag: the environment is untouched
    assert "--scheduler" not in streamlit_command(parse("--scheduler", "tcp://h:1"))


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--workers", "two"], ["--workers", "65"],
                                  ["--scheduler", ""], ["--scheduler", "tcp://a b:1"],
                                  ["--port", "99999"], ["--port", "0"], ["--port=-1"], ["--port", "http"]])
def test_bad_flags_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


@pytest.mark.parametrize("argv", [["--server.port", "99999"], ["--server.port=65536"], ["--server.port"]])
def test_a_port_passed_through_to_streamlit_is_checked_too(argv, capsys):
    """Streamlit itself would die on it with a 52-line OverflowError traceback."""
    assert main(["dashboard", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a TCP port must be an integer in [1, 65535]" in err


@pytest.mark.parametrize("port", ["1", "8501", "65535"])
def test_ports_in_range_are_accepted(port):
    cmd = streamlit_command(parse("--port", port))
    assert cmd[cmd.index("--server.port") + 1] == port


def test_dashboard_command_serves_the_app(free_port):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opmerge_core", "dashboard", "--port", str(port),
                             "--address", "127.0.0.1", "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                    return
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.5)
        raise AssertionError("the dashboard did not answer within 90 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
