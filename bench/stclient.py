"""A minimal Streamlit client: drive a real server over its own websocket protocol, no browser.

Used by the load benchmark and the concurrent-sessions test. One :class:`Session` is one browser
tab: a websocket to ``/_stcore/stream`` (subprotocol ``streamlit``, same-origin ``Origin``), on
which the client sends ``BackMsg.rerun_script`` (a ``ClientState``: query string, page name,
widget states) and reads ``ForwardMsg``s until ``script_finished``.

    session = await connect("http://127.0.0.1:8501", page="", query="lam=0.5&T=32")
    print(session.first.elapsed, session.first.errors)      # the page load
    run = await session.rerun({"lam": select_slider("2.5")})  # move a widget by its key
    await session.close()

Fragments with ``run_every`` are rerun by the client, as the browser does: the server announces each
(``auto_rerun``: fragment id, interval; ``stop_auto_rerun``) and :meth:`Session.fragment_rerun` sends
the rerun (``ClientState.fragment_id``, ``is_auto_rerun``). A fragment that calls ``st.rerun()`` or a
page that calls ``st.switch_page`` ends its run early (``FINISHED_EARLY_FOR_RERUN``); the client then
reads on to the end of the run that follows, and a page switch updates :attr:`Session.page`.

Widget values travel as ``WidgetState`` protos; a widget's id comes from the ``new_element``
deltas of the previous run (element ids end in ``-<key>``). Encodings (streamlit 1.67 source):
``st.select_slider`` → ``string_array_value`` of the *formatted* options (``format_func``), see
``SelectSliderSerde``; ``st.slider`` → ``double_array_value``; ``st.selectbox`` → ``string_value``.

Loopback only: :func:`connect` refuses any host but 127.0.0.1 / localhost / ::1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import psutil
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

ROOT = Path(__file__).resolve().parents[1]    # the checkout whose dashboard is served
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAIN, SIDEBAR = 0, 1                      # RootContainer indices in ForwardMsg.metadata.delta_path
CONNECT_TIMEOUT = 60.0                    # opening the websocket, seconds
MAX_MESSAGE = 256 * 1024 * 1024           # server.maxMessageSize default is 200 MB
FINISHED = ForwardMsg.ScriptFinishedStatus

# A widget value: (WidgetState field name, value), e.g. ("string_array_value", ["2.5"]).
WidgetValue = tuple[str, Any]


def select_slider(formatted: str) -> WidgetValue:
    """`st.select_slider` value: the option as its ``format_func`` prints it."""
    return ("string_array_value", [formatted])


def slider(*values: float) -> WidgetValue:
    """`st.slider` value (one number, or two for a range slider)."""
    return ("double_array_value", list(values))


def selectbox(option: str) -> WidgetValue:
    return ("string_value", option)


def radio(formatted: str) -> WidgetValue:
    """`st.radio` value: the option as its ``format_func`` prints it."""
    return ("string_value", formatted)


def toggle(on: bool) -> WidgetValue:
    """`st.toggle` / `st.checkbox` value."""
    return ("bool_value", on)


def click() -> WidgetValue:
    """A button press: sent with this rerun only (the browser resets triggers after a run)."""
    return ("trigger_value", True)


class StreamlitClientError(RuntimeError):
    """The server closed the socket or did not finish a run in time."""


@dataclass
class Run:
    """One script run as the client saw it."""

    elapsed: float                        # send → script_finished, seconds
    first_delta: float | None             # send → first delta of any kind
    first_main_delta: float | None        # send → first delta in the page's main area
    status: str                           # ScriptFinishedStatus name
    deltas: int
    errors: list[str] = field(default_factory=list)  # exception elements and st.error texts
    full: bool = True                     # a whole-page run (False: only a fragment ran)

    @property
    def ok(self) -> bool:
        return not self.errors and self.status in ("FINISHED_SUCCESSFULLY",
                                                   "FINISHED_FRAGMENT_RUN_SUCCESSFULLY")


def _set_value(state: WidgetState, value: WidgetValue) -> None:
    kind, v = value
    target = getattr(state, kind)
    if hasattr(target, "data"):           # *_array_value messages
        target.data.extend(v)
    else:
        setattr(state, kind, v)


def _element_id(element: Any) -> str | None:
    kind = element.WhichOneof("type")
    inner = getattr(element, kind) if kind else None
    return getattr(inner, "id", None) or None


def _error_text(element: Any) -> str | None:
    kind = element.WhichOneof("type")
    if kind == "exception":
        return f"exception {element.exception.type}: {element.exception.message}"
    if kind == "alert" and element.alert.format == Alert.ERROR:
        return f"st.error: {element.alert.body}"
    return None


class Session:
    """One websocket session (one browser tab). Not safe for concurrent ``rerun`` calls."""

    def __init__(self, ws: WebSocketClientConnection, page: str, query: str) -> None:
        self._ws = ws
        self.page = page
        self.query = query
        self.widget_ids: dict[str, str] = {}     # user key → widget id (from the last runs)
        self.widget_states: dict[str, WidgetState] = {}  # widget id → last value sent
        self.bound: set[str] = set()             # keys of widgets bound to the URL
        self.texts: list[str] = []               # markdown/caption/title bodies of the last full run
        self.fragment_texts: list[str] = []      # the same, of the last fragment-only run
        self.auto_reruns: dict[str, float] = {}  # fragment id → interval (s) the server asked for
        self.first: Run | None = None            # the page load done by connect()
        self.broken = False                      # a run timed out: the socket is out of step
        self._partial = Run(0.0, None, None, "TIMEOUT", 0)

    async def fragment_rerun(self, fragment_id: str, *, timeout: float = 300.0) -> Run:
        """What the browser sends every ``auto_rerun`` interval: rerun one fragment."""
        return await self.rerun(timeout=timeout, fragment_id=fragment_id)

    async def rerun(self, changes: Mapping[str, WidgetValue] | None = None, *,
                    timeout: float = 300.0, fragment_id: str | None = None) -> Run:
        """Send ``rerun_script`` with ``changes`` (widget key → value) and wait for it to finish.

        A run that does not finish within ``timeout`` comes back with status "TIMEOUT" (and the
        session is then :attr:`broken`); a closed socket raises :class:`StreamlitClientError`.
        """
        if self.broken:
            raise StreamlitClientError("this session timed out earlier: open a new one")
        triggers: list[WidgetState] = []
        for key, value in (changes or {}).items():
            if key not in self.widget_ids:
                raise KeyError(f"no widget with key {key!r} in the last run "
                               f"(known: {sorted(self.widget_ids)})")
            state = WidgetState(id=self.widget_ids[key])
            _set_value(state, value)
            if value[0] == "trigger_value":      # one-shot: not resent with later runs
                triggers.append(state)
                continue
            self.widget_states[state.id] = state
            if key in self.bound:                # the browser rewrites its URL the same way
                self._set_query(key, value)
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.page
        cs.widget_states.widgets.extend([*self.widget_states.values(), *triggers])
        if fragment_id is not None:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = True
        t0 = time.perf_counter()
        self._partial = Run(0.0, None, None, "TIMEOUT", 0)
        await self._ws.write_message(msg.SerializeToString(), binary=True)
        try:
            return await asyncio.wait_for(self._read_run(t0, fragment_id is not None), timeout)
        except TimeoutError:
            # The run is still going on the server: this socket's next messages would belong to
            # it, so the session is done. The partial Run says how far the page got.
            self.broken = True
            run = self._partial
            run.elapsed = time.perf_counter() - t0
            run.errors.append(f"no script_finished within {timeout:g} s")
            return run

    def _set_query(self, key: str, value: WidgetValue) -> None:
        v = value[1]
        items = [str(x) if isinstance(x, str) else f"{x:g}" for x in (v if isinstance(v, list) else [v])]
        query = [(k, x) for k, x in parse_qsl(self.query, keep_blank_values=True) if k != key]
        self.query = urlencode(query + [(key, x) for x in items])

    async def _read_run(self, t0: float, fragment_run: bool = False) -> Run:
        run = self._partial                       # filled in as messages arrive
        run.full = not fragment_run
        texts: list[str] = []
        while True:
            raw = await self._ws.read_message()
            if raw is None:
                raise StreamlitClientError(f"server closed the socket: {self._ws.close_reason}")
            if isinstance(raw, str):
                continue
            fwd = ForwardMsg.FromString(raw)
            kind = fwd.WhichOneof("type")
            now = time.perf_counter() - t0
            if kind == "delta":
                run.deltas += 1
                run.first_delta = now if run.first_delta is None else run.first_delta
                path = fwd.metadata.delta_path
                if run.first_main_delta is None and path and path[0] == MAIN:
                    run.first_main_delta = now
                self._read_delta(fwd.delta, run.errors, texts)
            elif kind == "page_info_changed":     # the browser would rewrite its URL
                self.query = fwd.page_info_changed.query_string
            elif kind == "navigation":            # the page this run is on (after st.switch_page)
                nav = fwd.navigation
                page = next((p for p in nav.app_pages if p.page_script_hash == nav.page_script_hash), None)
                if page is not None:
                    self.page = page.url_pathname
            elif kind == "auto_rerun":
                self.auto_reruns[fwd.auto_rerun.fragment_id] = fwd.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fid in fwd.stop_auto_rerun.fragment_ids:
                    self.auto_reruns.pop(fid, None)
            elif kind == "session_event" and fwd.session_event.HasField(
                    "script_compilation_exception"):
                exc = fwd.session_event.script_compilation_exception
                run.errors.append(f"compile error {exc.type}: {exc.message}")
            elif kind == "script_finished":
                status = FINISHED.Name(fwd.script_finished)
                if status == "FINISHED_EARLY_FOR_RERUN":
                    texts = []                    # st.rerun / st.switch_page: a new run follows
                    run.full = True
                    continue
                if status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY":
                    if fragment_run and not run.full:
                        self.fragment_texts = texts
                        run.elapsed, run.status = now, status
                        return run
                    continue                      # a fragment's own run, not ours
                self.texts = texts
                run.elapsed, run.status, run.full = now, status, True
                return run

    def _read_delta(self, delta: Any, errors: list[str], texts: list[str]) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        wid = _element_id(element)
        if wid and wid.startswith("$$ID-") and wid.count("-") >= 2:
            key = wid.split("-", 2)[2]
            if key and key != "None":
                self.widget_ids[key] = wid
                inner = getattr(element, element.WhichOneof("type"))
                if getattr(inner, "query_param_key", ""):
                    self.bound.add(key)
        if (err := _error_text(element)) is not None:
            errors.append(err)
        if element.WhichOneof("type") == "markdown":
            texts.append(element.markdown.body)
        elif element.WhichOneof("type") == "metric":      # as "label: value"
            texts.append(f"{element.metric.label}: {element.metric.body}")

    async def close(self) -> None:
        self._ws.close()
        await asyncio.sleep(0)


async def connect(url: str, page: str = "", query: str = "", *, timeout: float = 300.0) -> Session:
    """Open a session on the server at ``url`` (http://127.0.0.1:PORT) and load ``page``.

    ``page`` is the page's url path ("" = default page); ``query`` the URL query string without
    "?". The page load's :class:`Run` is in ``session.first`` (status "TIMEOUT" if it did not
    finish within ``timeout``).
    """
    parts = urlparse(url)
    if parts.hostname not in LOOPBACK:
        raise ValueError(f"stclient drives loopback servers only, got {url!r}")
    origin = f"http://{parts.netloc}"
    request = HTTPRequest(f"ws://{parts.netloc}/_stcore/stream", headers={"Origin": origin},
                          connect_timeout=CONNECT_TIMEOUT, request_timeout=CONNECT_TIMEOUT)
    ws = await websocket_connect(request, subprotocols=["streamlit"], max_message_size=MAX_MESSAGE)
    session = Session(ws, page, query)
    session.first = await session.rerun(timeout=timeout)
    return session


# ---- a server to drive: opmerge dashboard on loopback -------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DashboardServer:
    """`opmerge dashboard` on 127.0.0.1 with a temporary OPMERGE_HOME; stopped by :meth:`stop`."""

    def __init__(self, extra: list[str], start_timeout: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = tempfile.mkdtemp(prefix="opmerge-load-")
        env = {**os.environ, "OPMERGE_HOME": self.home,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.log = open(Path(self.home) / "server.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opmerge_core", "dashboard", "--port", str(self.port),
             "--address", "127.0.0.1", "--server.headless", "true", *extra],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)   # `opmerge dashboard` execs streamlit: same pid
        self._wait_healthy(start_timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server did not answer /_stcore/health within {timeout:.0f} s")

    def rss(self) -> tuple[int, int]:
        """RSS in bytes of the server process and of all its children (summed)."""
        kids = 0
        for child in self.ps.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                kids += child.memory_info().rss
        return self.ps.memory_info().rss, kids

    def cpu(self) -> float:
        """CPU seconds (user + system) of the server process, children excluded."""
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)
