"""`opmerge dashboard`: launch the Streamlit app with production serving defaults.

The defaults are those of a deployed app (a classroom server): no file watcher, no run-on-save, no
browser, no telemetry, small uploads. ``--dev`` brings the watcher and run-on-save back. Flags that
``opmerge dashboard`` does not know go to ``streamlit run`` after the defaults, so they win.

``--processes N`` serves a lecture hall instead: N server processes behind HAProxy with one shared Dask
cluster (tier.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from importlib.resources import files

from opmerge_core.backend.cluster import WORKERS_CAP
from opmerge_core.basics.validation import check_base_url, check_int

PROCESSES_MAX = 32           # web-tier server processes on one machine (checked here for tier.py)

# The dashboard's import package: the only place the CLI names it (pyproject.toml maps it to the source
# folder dashboard/).
APP_PACKAGE = "opmerge_dashboard"

# (option, production value, --dev value); a value of None means "leave Streamlit's default".
SERVING_OPTIONS: tuple[tuple[str, str, str | None], ...] = (
    # The development watcher walks every loaded module (torch's thousands) after each script run:
    # 29% of the server's GIL time under the 20-student load of bench/bench_load.py (py-spy).
    ("server.fileWatcherType", "none", "auto"),
    # Rerunning every session when a source file is saved is for the author, not for a class.
    ("server.runOnSave", "false", "true"),
    # A server: never open a browser on the host, never prompt for an e-mail on the terminal.
    ("server.headless", "true", "true"),
    # No network at run time: no usage statistics.
    ("browser.gatherUsageStats", "false", "false"),
    # Streamlit's own development mode (serves the frontend from a dev server) is never wanted here.
    ("global.developmentMode", "false", "false"),
    # Students get no "Rerun" / "Clear cache" menu: clearing the caches would make the whole class
    # pay the cold computations again. --dev shows the developer options.
    ("client.toolbarMode", "minimal", "developer"),
    # Uncaught exceptions show their type in the page; the message and traceback go to the
    # server log (no source paths to the audience). --dev shows everything.
    ("client.showErrorDetails", "type", "full"),
    # The spectrum upload accepts ≤ 1 MB (10^6 bytes); the server refuses bigger uploads before
    # the app reads them. Streamlit's MB is 2^20 bytes, so files between the two still reach the
    # app's own check and its clear message.
    ("server.maxUploadSize", "1", None),
    # Nothing in the app needs a `static/` folder served: keep it off explicitly.
    ("server.enableStaticServing", "false", None),
    # A new interaction interrupts the run it supersedes instead of waiting for it (Streamlit's
    # default, kept explicit): a student dragging λ does not queue stale runs.
    ("runner.fastReruns", "true", None),
    # Streamlit runs a full gc.collect(2) after every script run. With torch, numba and plotly
    # loaded that was most of the server's GIL time under load (bench/bench_load.py measures the
    # server CPU per rerun). Python's own generational GC still collects
    # cycles; the memory scenario of the load benchmark checks that RSS stays bounded.
    ("runner.postScriptGC", "false", None),
    # Compression costs server CPU on every message, and the server is CPU-bound (one core per
    # process under the GIL); classroom networks are local.
    ("server.enableWebsocketCompression", "false", None),
)


def _scheduler_address(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise argparse.ArgumentTypeError(f"expected a Dask scheduler address such as "
                                         f"tcp://host:8786, got {raw!r}")
    return raw


def _int_in(lo: int, hi: int, what: str):
    """An argparse type: an integer in [lo, hi] (``check_int``), else a one-line usage error (exit 2)."""
    def parse(raw: str) -> int:
        try:
            return check_int(raw, what, lo=lo, hi=hi)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


_port = _int_in(1, 65535, "a TCP port")


def check_passed_port(extra: list[str]) -> None:
    """A ``--server.port`` passed through to Streamlit is a port too (Streamlit would overflow)."""
    for i, flag in enumerate(extra):
        name, eq, value = flag.partition("=")
        if name == "--server.port":
            value = value if eq else (extra[i + 1] if i + 1 < len(extra) else "")
            try:
                _port(value)
            except argparse.ArgumentTypeError as exc:
                raise ValueError(f"--server.port: {exc}") from None


def _public_url(raw: str) -> str:
    try:
        return check_base_url(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="launch the interactive dashboard (Streamlit)")
    p.add_argument("--port", type=_port, default=8501)
    p.add_argument("--address", default="localhost",
                   help="interface to listen on (0.0.0.0 to serve a classroom network)")
    p.add_argument("--dev", action="store_true",
                   help="development serving: file watcher, run-on-save, developer toolbar")
    p.add_argument("--scheduler", type=_scheduler_address, metavar="ADDRESS",
                   help="Dask scheduler for heavy work, e.g. tcp://host:8786 "
                        "(sets OPMERGE_SCHEDULER for the server)")
    p.add_argument("--workers", type=_int_in(1, WORKERS_CAP, "--workers"), metavar="N",
                   help="worker processes of the embedded Dask cluster (sets OPMERGE_WORKERS)")
    p.add_argument("--public-url", type=_public_url, metavar="URL",
                   help="the server's address as students reach it (behind a proxy, or a name they "
                        "know): the base of a room's student link and QR code (sets OPMERGE_PUBLIC_URL)")
    p.add_argument("--processes", type=_int_in(1, PROCESSES_MAX, "--processes"), metavar="N",
                   help="the web tier: N server processes behind HAProxy (sticky by cookie) on "
                        "--address/--port, one shared Dask cluster; needs the haproxy package")
    p.add_argument("--run-dir", metavar="DIR",
                   help="the tier's private folder (config, logs, tier.json); default: a temporary one")
    p.set_defaults(func=run, pass_through=True)
    p.epilog = "Any other flags go to `streamlit run` and override the defaults, e.g. --server.port"


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The argv that serves the app: ``python -m streamlit run app.py`` + defaults + extra flags."""
    app = files(APP_PACKAGE) / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.port", str(args.port), "--server.address", args.address]
    for option, production, dev in SERVING_OPTIONS:
        value = dev if args.dev else production
        if value is not None:
            cmd += [f"--{option}", value]
    return [*cmd, *getattr(args, "extra", [])]


def server_env(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ``environ`` plus OPMERGE_SCHEDULER / OPMERGE_WORKERS /
    OPMERGE_PUBLIC_URL if given."""
    env = dict(environ)
    if args.scheduler is not None:
        env["OPMERGE_SCHEDULER"] = args.scheduler
    if args.workers is not None:
        env["OPMERGE_WORKERS"] = str(args.workers)
    if args.public_url is not None:
        env["OPMERGE_PUBLIC_URL"] = args.public_url
    return env


def tier_server_argv(args: argparse.Namespace, port: int) -> list[str]:
    """One server process of the tier: the same command on 127.0.0.1:port (only the proxy faces the
    students)."""
    return streamlit_command(argparse.Namespace(**{**vars(args), "port": port, "address": "127.0.0.1"}))


def run(args: argparse.Namespace) -> int:
    check_passed_port(getattr(args, "extra", []))
    if args.processes is not None:
        from opmerge_core.cli import tier

        return tier.serve(args, lambda port: tier_server_argv(args, port), server_env(args, os.environ))
    cmd = streamlit_command(args)
    env = server_env(args, os.environ)
    sys.stdout.flush()
    os.execve(sys.executable, cmd, env)  # become the server: signals (Ctrl-C, terminate) reach it
