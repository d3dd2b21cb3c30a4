"""What pages output: figures with PNG/SVG export, CSV downloads and the CLI command of a view."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from opmerge_core import figures
from opmerge_dashboard import presentation


def plotly_config(name: str) -> dict:
    """Modebar export (PNG or SVG, chosen in the sidebar) at slide quality."""
    fmt = st.session_state.get("export_format") or "png"
    return {"displaylogo": False, "scrollZoom": False,
            "toImageButtonOptions": {"format": fmt, "scale": 2, "filename": f"opmerge_{name}"}}


def figure(fig: go.Figure | dict, name: str,
           data: pd.DataFrame | Callable[[], pd.DataFrame] | None = None, *,
           key: str | None = None) -> None:
    """Show a figure (or a trusted spec) with PNG/SVG export in its modebar and a CSV download of
    the data behind it."""
    if isinstance(fig, dict):
        fig = figures.from_dict(fig)
    st.plotly_chart(presentation.style_figure(fig), key=key or f"fig_{name}", width="stretch",
                    config=plotly_config(name))
    if data is not None:
        csv_download(data, name)


def csv_download(data: pd.DataFrame | Callable[[], pd.DataFrame], name: str) -> None:
    """A CSV download; ``data`` may be a function that builds the table (called on press only)."""
    def to_csv() -> str:   # a callable: the CSV is written only when the button is pressed
        return (data() if callable(data) else data).to_csv(index=False)

    st.download_button(f"CSV: {name}", to_csv, file_name=f"opmerge_{name}.csv",
                       mime="text/csv", key=f"csv_{name}", on_click="ignore", icon=":material/download:")



def command(argv: list[str]) -> str:
    """The shell command ``opmerge <argv>`` (argv from a command's ``to_argv``, opmerge_core.cli)."""
    return shlex.join(["opmerge", *argv])


@functools.lru_cache(maxsize=1024)
def _command_line(to_argv: Callable, spec: type, args: tuple) -> str:
    return command(to_argv(spec(*args)))


def show_command(to_argv: Callable, spec: type, *args, label: str = "Reproduce with the CLI") -> None:
    """``show_cli`` of the CLI command ``to_argv(spec(*args))`` (a command spec of opmerge_core.cli and
    its module's ``to_argv``; hashable arguments), memoised: a page shows the same commands on every
    rerun, and building a spec validates its arguments again."""
    show_cli(_command_line(to_argv, spec, args), label)


def show_cli(argv: list[str] | str, label: str = "Reproduce with the CLI") -> None:
    """A command (argv, or an already written shell line) in a code block headed by ``label`` as a
    shell comment (one element: every element costs the server CPU on every rerun)."""
    line = argv if isinstance(argv, str) else command(argv)
    st.code(f"# {label}\n{line}", language="bash", wrap_lines=True)
