"""`opmerge dashboard`: launch the Streamlit app."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files

# The dashboard's import package: the only place the CLI names it (pyproject.toml's wheel `packages`
# names it once more).
APP_PACKAGE = "dashboard"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="launch the interactive dashboard (Streamlit)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost")
    p.set_defaults(func=run, pass_through=True)
    p.epilog = "Any other flags go to `streamlit run`, e.g. --server.headless true"


def run(args: argparse.Namespace) -> int:
    app = files(APP_PACKAGE) / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.port", str(args.port), "--server.address", args.address,
           "--browser.gatherUsageStats", "false", *getattr(args, "extra", [])]
    sys.stdout.flush()
    os.execv(sys.executable, cmd)    # become the server: signals (Ctrl-C, terminate) reach it directly
