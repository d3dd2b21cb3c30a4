"""A minimal Streamlit client: drive a real server (or a proxy in front of several) over Streamlit's
own websocket protocol, no browser.

Used by the load benchmark and the load tests. One :class:`Session` is one browser tab. Like a
browser it first GETs the page's HTML (a proxy answers with its stickiness cookie, kept in the tab's
cookie jar), then opens a websocket to ``/_stcore/stream`` (subprotocol ``streamlit``, same-origin
``Origin``, the cookies), sends ``BackMsg.rerun_script`` (a ``ClientState``: query string, page
name, widget states, the hashes of the messages it has cached) and reads ``ForwardMsg``s until
``script_finished``.

    session = await connect("http://127.0.0.1:8501", page="", query="lam=0.5&T=32")
    print(session.first.elapsed, session.load.complete)       # the page load: first run, complete
    step = await session.interact({"lam": select_slider("2.5")})  # move a widget by its key
    print(step.first.elapsed, step.complete)
    await session.close()

The whole page, as the browser gets it: a fragment with ``run_every`` announces itself with an
``auto_rerun`` message, and the browser reruns it (``rerun_script`` with its ``fragment_id``,
``is_auto_rerun``) on a timer until a full run (which clears every timer) or ``stop_auto_rerun``.
The session keeps the same timers (:meth:`Session.idle` fires them while a student thinks). A page is
*pending* while a fragment shows a progress bar — the dashboard's placeholders for results still
computing (``dashboard/backend.py``): :meth:`Session.interact` returns the first run (first content)
and the time until nothing is pending (complete).

Widget values travel as ``WidgetState`` protos; a widget's id comes from the ``new_element``
deltas of the previous run (element ids end in ``-<key>``). Encodings (streamlit 1.67 source):
``st.select_slider`` → ``string_array_value`` of the *formatted* options (``format_func``), see
``SelectSliderSerde``; ``st.slider`` → ``double_array_value``; ``st.selectbox`` → ``string_value``.

Loopback only: :func:`connect` refuses any host but 127.0.0.1 / localhost / ::1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import psutil
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

ROOT = Path(__file__).resolve().parents[1]    # the checkout whose dashboard is served
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAIN, SIDEBAR = 0, 1                      # RootContainer indices in ForwardMsg.metadata.delta_path
CONNECT_TIMEOUT = 60.0                    # opening the websocket, seconds
MAX_MESSAGE = 256 * 1024 * 1024           # server.maxMessageSize default is 200 MB
FINISHED = ForwardMsg.ScriptFinishedStatus
DONE = ("FINISHED_SUCCESSFULLY", "FINISHED_FRAGMENT_RUN_SUCCESSFULLY")
MESSAGE_CACHE = 2000                      # cached messages a tab keeps (referenced by hash)

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
    """One script run (or fragment run) as the client saw it."""

    elapsed: float                        # send → script_finished, seconds
    first_delta: float | None             # send → first delta of any kind
    first_main_delta: float | None        # send → first delta in the page's main area
    status: str                           # ScriptFinishedStatus name
    deltas: int
    errors: list[str] = field(default_factory=list)  # exception elements and st.error texts
    fragment: str = ""                    # the fragment a timer reran ("" = the whole script)
    full: bool = True                     # a whole-page run happened (False: only a fragment ran)
    texts: list[str] = field(default_factory=list)   # what this run drew (as Session.texts)

    @property
    def ok(self) -> bool:
        return not self.errors and self.status in DONE


@dataclass
class Interaction:
    """One user action as the browser shows it: the run it starts (first content: the page is
    drawn, maybe with placeholders), then the fragment timers the browser fires until nothing is
    pending (complete)."""

    first: Run
    complete: float | None                # send → nothing pending; None: still pending at the deadline
    fragment_runs: int = 0                # timer reruns sent until complete
    errors: list[str] = field(default_factory=list)  # of the first run and of the timer reruns

    @property
    def ok(self) -> bool:
        return not self.errors and self.complete is not None and self.first.status in DONE


@dataclass
class _Timer:
    interval: float                       # seconds (the fragment's run_every)
    due: float                            # time.monotonic() of the next firing


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
    """One browser tab: a cookie jar, a websocket session, its fragment timers. Not safe for
    concurrent calls."""

    def __init__(self, ws: WebSocketClientConnection, origin: str, page: str, query: str,
                 jar: dict[str, str]) -> None:
        self._ws = ws
        self.origin = origin                     # http://HOST:PORT (the server or the proxy)
        self.page = page
        self.query = query
        self.jar = jar                           # cookies (a proxy's stickiness cookie)
        self.session_id = ""                     # the server's id of this session
        self.widget_ids: dict[str, str] = {}     # user key → widget id (from the last runs)
        self.widget_states: dict[str, WidgetState] = {}  # widget id → last value sent
        self.elements: dict[str, Any] = {}       # user key → its last element (keyed elements)
        self.bound: set[str] = set()             # keys of widgets bound to the URL
        self.texts: list[str] = []               # markdown/caption/title/metric texts, last full run
        self.timers: dict[str, _Timer] = {}      # fragment id → its run_every timer
        self.pending: set[str] = set()           # fragments whose last render shows a progress bar
        self.first: Run | None = None            # the page load done by connect()
        self.load: Interaction | None = None     # the page load, until complete
        self.broken = False                      # a run timed out: the socket is out of step
        self._partial = Run(0.0, None, None, "TIMEOUT", 0)
        self._cache: OrderedDict[str, ForwardMsg] = OrderedDict()  # hash → cacheable message

    @property
    def auto_reruns(self) -> dict[str, float]:
        """Fragment id → interval (s) of the fragments the server asked the browser to rerun."""
        return {fid: t.interval for fid, t in self.timers.items()}

    # ---- one run ----------------------------------------------------------------------------------
    async def fragment_rerun(self, fragment_id: str, *, timeout: float = 300.0) -> Run:
        """What the browser sends every ``auto_rerun`` interval: rerun one fragment."""
        return await self.rerun(timeout=timeout, fragment_id=fragment_id)

    async def rerun(self, changes: Mapping[str, WidgetValue] | None = None, *,
                    timeout: float = 300.0, fragment_id: str = "") -> Run:
        """Send ``rerun_script`` with ``changes`` (widget key → value) and wait for it to finish:
        the whole script, or with ``fragment_id`` that fragment only (what a browser timer sends).
        A button press (:func:`click`) is sent with this rerun only.

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
        cs.cached_message_hashes.extend(self._cache)
        if fragment_id:
            cs.fragment_id, cs.is_auto_rerun = fragment_id, True
        t0 = time.perf_counter()
        self._partial = Run(0.0, None, None, "TIMEOUT", 0, fragment=fragment_id, full=False)
        await self._send(msg)
        try:
            return await asyncio.wait_for(self._read_run(t0), timeout)
        except TimeoutError:
            # The run is still going on the server: this socket's next messages would belong to
            # it, so the session is done. The partial Run says how far the page got.
            self.broken = True
            run = self._partial
            run.elapsed = time.perf_counter() - t0
            run.errors.append(f"no script_finished within {timeout:g} s")
            return run

    async def _send(self, msg: BackMsg) -> None:
        try:
            await self._ws.write_message(msg.SerializeToString(), binary=True)
        except WebSocketClosedError as exc:          # e.g. the server process died
            raise StreamlitClientError(f"server closed the socket: {self._ws.close_reason}") from exc

    def _set_query(self, key: str, value: WidgetValue) -> None:
        v = value[1]
        items = [str(x) if isinstance(x, str) else f"{x:g}" for x in (v if isinstance(v, list) else [v])]
        query = [(k, x) for k, x in parse_qsl(self.query, keep_blank_values=True) if k != key]
        self.query = urlencode(query + [(key, x) for x in items])

    async def _next(self) -> ForwardMsg:
        """The next ForwardMsg, a reference to a cached one resolved (as the browser does)."""
        while True:
            raw = await self._ws.read_message()
            if raw is None:
                raise StreamlitClientError(f"server closed the socket: {self._ws.close_reason}")
            if isinstance(raw, str):
                continue
            fwd = ForwardMsg.FromString(raw)
            if fwd.WhichOneof("type") == "ref_hash":
                cached = self._cache.get(fwd.ref_hash)
                if cached is None:
                    raise StreamlitClientError(f"reference to an unknown message {fwd.ref_hash}")
                self._cache.move_to_end(fwd.ref_hash)
                resolved = ForwardMsg()
                resolved.CopyFrom(cached)
                resolved.metadata.CopyFrom(fwd.metadata)
                return resolved
            if fwd.metadata.cacheable and fwd.hash:
                self._cache[fwd.hash] = fwd
                while len(self._cache) > MESSAGE_CACHE:
                    self._cache.popitem(last=False)
            return fwd

    async def _read_run(self, t0: float) -> Run:
        """Messages until the request is done: a run that ends early for a rerun (``st.rerun()``,
        ``st.switch_page``) is followed by that rerun, and the request is done when the last run
        finishes; a page switch updates :attr:`page`."""
        run = self._partial                       # filled in as messages arrive
        texts: list[str] = []
        while True:
            fwd = await self._next()
            kind = fwd.WhichOneof("type")
            now = time.perf_counter() - t0
            if kind == "new_session":
                self.session_id = fwd.new_session.initialize.session_id or self.session_id
                fragments = list(fwd.metadata.run.fragment_ids)
                if fragments:                     # a fragment run redraws only these fragments
                    self.pending.difference_update(fragments)
                else:                             # a full run redraws everything, timers included
                    self.timers.clear()
                    self.pending.clear()
                    texts, run.full = [], True
            elif kind == "delta":
                run.deltas += 1
                run.first_delta = now if run.first_delta is None else run.first_delta
                path = fwd.metadata.delta_path
                if run.first_main_delta is None and path and path[0] == MAIN:
                    run.first_main_delta = now
                self._read_delta(fwd.delta, run.errors, texts)
            elif kind == "auto_rerun":
                fid, interval = fwd.auto_rerun.fragment_id, fwd.auto_rerun.interval
                if fid and (fid not in self.timers or self.timers[fid].interval != interval):
                    self.timers[fid] = _Timer(interval, time.monotonic() + interval)
            elif kind == "stop_auto_rerun":
                for fid in fwd.stop_auto_rerun.fragment_ids:
                    self.timers.pop(fid, None)
                    self.pending.discard(fid)
            elif kind == "page_info_changed":     # the browser would rewrite its URL
                self.query = fwd.page_info_changed.query_string
            elif kind == "navigation":            # the page this run is on (after st.switch_page)
                nav = fwd.navigation
                page = next((p for p in nav.app_pages if p.page_script_hash == nav.page_script_hash), None)
                if page is not None:
                    self.page = page.url_pathname
            elif kind == "session_event" and fwd.session_event.HasField(
                    "script_compilation_exception"):
                exc = fwd.session_event.script_compilation_exception
                run.errors.append(f"compile error {exc.type}: {exc.message}")
            elif kind == "script_finished":
                status = FINISHED.Name(fwd.script_finished)
                if status == "FINISHED_EARLY_FOR_RERUN":
                    continue                      # the rerun it asked for follows
                if run.full:
                    self.texts = texts
                run.elapsed, run.status, run.texts = now, status, texts
                return run

    def _read_delta(self, delta: Any, errors: list[str], texts: list[str]) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "progress" and delta.fragment_id:
            self.pending.add(delta.fragment_id)
        wid = _element_id(element)
        if wid and wid.startswith("$$ID-") and wid.count("-") >= 2:
            key = wid.split("-", 2)[2]
            if key and key != "None":
                self.widget_ids[key] = wid
                self.elements[key] = element
                inner = getattr(element, kind)
                if getattr(inner, "query_param_key", ""):
                    self.bound.add(key)
        if (err := _error_text(element)) is not None:
            errors.append(err)
        if kind == "markdown":
            texts.append(element.markdown.body)
        elif kind == "metric":                    # as "label: value"
            texts.append(f"{element.metric.label}: {element.metric.body}")

    # ---- what the browser does between runs -------------------------------------------------------
    async def fire_due_timers(self, *, timeout: float = 300.0) -> list[Run]:
        """Rerun every fragment whose timer is due (a browser's ``setInterval``)."""
        runs = []
        now = time.monotonic()
        for fid, timer in list(self.timers.items()):
            if timer.due > now or self.timers.get(fid) is not timer:
                continue
            timer.due = max(timer.due + timer.interval, now)
            runs.append(await self.fragment_rerun(fid, timeout=timeout))
            if self.broken:
                break
        return runs

    async def idle(self, seconds: float) -> list[Run]:
        """The tab stays open for ``seconds``: its fragment timers keep firing."""
        deadline = time.monotonic() + seconds
        runs = []
        while not self.broken:
            runs += await self.fire_due_timers(timeout=max(1.0, deadline - time.monotonic()))
            now = time.monotonic()
            wake = min([deadline, *(t.due for t in self.timers.values())])
            if now >= deadline:
                return runs
            await asyncio.sleep(max(0.0, wake - now))
        return runs

    async def settle(self, t0: float, deadline: float) -> tuple[float | None, list[Run]]:
        """Fire timers (as the browser does) until nothing is pending: (seconds since ``t0``, in
        ``time.perf_counter`` time, or None if still pending at ``deadline``; the timer runs)."""
        runs: list[Run] = []
        while self.pending and not self.broken:
            if not self.pending & self.timers.keys():   # a placeholder nothing will ever redraw
                break
            now = time.monotonic()
            if now >= deadline:
                break
            wake = min(t.due for t in self.timers.values())
            if wake > now:
                await asyncio.sleep(min(wake, deadline) - now)
                continue
            runs += await self.fire_due_timers(timeout=max(1.0, deadline - now))
        done = not self.pending and not self.broken
        return (time.perf_counter() - t0 if done else None), runs

    async def interact(self, changes: Mapping[str, WidgetValue] | None = None, *,
                       timeout: float = 300.0) -> Interaction:
        """A user action: the run it starts, then timers until the page is complete (both timed
        from the send)."""
        t0, deadline = time.perf_counter(), time.monotonic() + timeout
        first = await self.rerun(changes, timeout=timeout)
        return await self._complete(first, t0, deadline)

    async def _complete(self, first: Run, t0: float, deadline: float) -> Interaction:
        complete, runs = await self.settle(t0, deadline)
        errors = [*first.errors, *(e for r in runs for e in r.errors)]
        if complete is None and not self.broken:
            errors.append(f"still pending after {time.perf_counter() - t0:.0f} s "
                          f"({len(self.pending)} placeholder(s))")
        return Interaction(first, complete, len(runs), errors)

    # ---- HTTP next to the websocket (media, downloads) --------------------------------------------
    async def fetch(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` (e.g. a media URL) from the session's origin with its cookies."""
        return await _get(f"{self.origin}{path}", self.jar)

    async def download_url(self, key: str, *, timeout: float = 60.0) -> str:
        """The URL of the download button ``key``: its own, or (a deferred download, made when
        pressed) the one the server returns for it, as the browser asks for it on a click."""
        button = self.elements[key].download_button
        if button.url:
            return button.url
        msg = BackMsg()
        request = msg.backend_operation_request
        request.request_id, request.session_id = f"dl-{key}", self.session_id
        request.deferred_file.file_id = button.deferred_file_id
        await self._send(msg)

        async def answer() -> str:
            while True:
                fwd = await self._next()
                if fwd.WhichOneof("type") == "backend_operation_response" and \
                        fwd.backend_operation_response.request_id == request.request_id:
                    response = fwd.backend_operation_response
                    if response.error_msg:
                        raise StreamlitClientError(f"download {key}: {response.error_msg}")
                    return response.deferred_file.url
        return await asyncio.wait_for(answer(), timeout)

    async def close(self) -> None:
        self._ws.close()
        await asyncio.sleep(0)


def _check_loopback(url: str) -> Any:
    parts = urlparse(url)
    if parts.hostname not in LOOPBACK:
        raise ValueError(f"stclient drives loopback servers only, got {url!r}")
    return parts


def _keep_cookies(jar: dict[str, str], headers: Any) -> None:
    for header in headers.get_list("Set-Cookie") if headers is not None else ():
        cookie = SimpleCookie()
        cookie.load(header)
        jar.update({name: morsel.value for name, morsel in cookie.items()})


def _cookie_header(jar: Mapping[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}


async def _get(url: str, jar: dict[str, str]) -> tuple[int, bytes]:
    _check_loopback(url)
    response = await AsyncHTTPClient().fetch(url, headers=_cookie_header(jar), raise_error=False,
                                             connect_timeout=CONNECT_TIMEOUT,
                                             request_timeout=CONNECT_TIMEOUT)
    _keep_cookies(jar, response.headers)
    return response.code, response.body or b""


async def connect(url: str, page: str = "", query: str = "", *, timeout: float = 300.0,
                  jar: dict[str, str] | None = None, settle: bool = True) -> Session:
    """Open a tab on the server (or proxy) at ``url`` (http://127.0.0.1:PORT) and load ``page``.

    As a browser does, the tab first GETs the page's HTML (a proxy answers with its stickiness
    cookie, kept in ``jar``: pass the same dict to stay with a browser's cookies, an empty one for a
    new browser), then opens the websocket with those cookies. ``page`` is the page's url path ("" =
    default page); ``query`` the URL query string without "?". The page load's first run is in
    ``session.first`` (status "TIMEOUT" if it did not finish within ``timeout``), and with
    ``settle`` the whole load until nothing is pending in ``session.load``.
    """
    parts = _check_loopback(url)
    origin = f"http://{parts.netloc}"
    jar = {} if jar is None else jar
    t0, deadline = time.perf_counter(), time.monotonic() + timeout
    status, _ = await _get(f"{origin}/{page}" + (f"?{query}" if query else ""), jar)
    if status != 200:
        raise StreamlitClientError(f"GET /{page}: HTTP {status}")
    request = HTTPRequest(f"ws://{parts.netloc}/_stcore/stream",
                          headers={"Origin": origin, **_cookie_header(jar)},
                          connect_timeout=CONNECT_TIMEOUT, request_timeout=CONNECT_TIMEOUT)
    ws = await websocket_connect(request, subprotocols=["streamlit"], max_message_size=MAX_MESSAGE)
    _keep_cookies(jar, getattr(ws, "headers", None))
    session = Session(ws, origin, page, query, jar)
    session.first = await session.rerun(timeout=timeout)
    if settle:
        session.load = await session._complete(session.first, t0, deadline)
    return session


# ---- a server to drive: opmerge dashboard on loopback -------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DashboardServer:
    """`opmerge dashboard` on 127.0.0.1 with a temporary OPMERGE_HOME (``env``: more variables for
    it); stopped by :meth:`stop`.

    With ``processes`` the web tier (`opmerge dashboard --processes N`): :attr:`url` is the proxy's,
    and CPU / RSS figures sum the N server processes (its ``tier.json`` names them).
    """

    def __init__(self, extra: list[str], start_timeout: float = 180.0, *,
                 processes: int | None = None, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = tempfile.mkdtemp(prefix="opmerge-load-")
        self.processes = processes
        env = {**os.environ, **(env or {}), "OPMERGE_HOME": self.home,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        tier = [] if processes is None else ["--processes", str(processes), "--run-dir",
                                             str(Path(self.home) / "tier")]
        self.log = open(Path(self.home) / "server.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opmerge_core", "dashboard", "--port", str(self.port),
             "--address", "127.0.0.1", "--server.headless", "true", *tier, *extra],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)   # `opmerge dashboard` execs streamlit: same pid
        self._wait_healthy(start_timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            if self.processes is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                        if r.read() == b"ok":
                            return
                except OSError:
                    pass
            elif self.tier_state().get("ready"):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server did not come up within {timeout:.0f} s")

    def tier_state(self) -> dict:
        """The tier's ``tier.json`` (children, pids, ports); {} while it starts."""
        with contextlib.suppress(OSError, ValueError):
            return json.loads((Path(self.home) / "tier" / "tier.json").read_text())
        return {}

    def pids(self) -> list[int]:
        """The server processes (Streamlit): the one process, or the tier's N."""
        if self.processes is None:
            return [self.proc.pid]
        return [c["pid"] for c in self.tier_state().get("children", []) if c.get("port")]

    def describe(self) -> str:
        if self.processes is None:
            return f"one process, pid {self.proc.pid}"
        return f"web tier: {self.processes} server processes (pids {self.pids()}) behind HAProxy"

    def _servers(self) -> list[psutil.Process]:
        procs = []
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(pid))
        return procs

    def rss(self) -> tuple[int, int]:
        """RSS in bytes of the server processes, and of every other process of the server's tree
        (Dask scheduler and workers, proxy, supervisor), each summed."""
        servers = {p.pid for p in self._servers()}
        mine = others = 0
        for proc in [self.ps, *self.ps.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                rss = proc.memory_info().rss
                if proc.pid in servers:
                    mine += rss
                else:
                    others += rss
        return mine, others

    def cpu(self) -> float:
        """CPU seconds (user + system) of the server processes, their children excluded."""
        total = 0.0
        for proc in self._servers():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's output (tracebacks of a failed rerun land here)."""
        self.log.flush()
        return Path(self.log.name).read_bytes().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)
