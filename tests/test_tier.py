"""The web tier (`opmerge dashboard --processes N`): HAProxy's generated configuration, and the whole
tier started on loopback — cookie stickiness for a tab's page, websocket and media, cookie-less
clients spread over the processes, a killed server process redispatched and restarted, and no child
left behind by SIGTERM or by a killed supervisor (functional, not timed)."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from opmerge_core.cli import tier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import stclient

HAPROXY = next((p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.access(p, os.X_OK)), None)
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None and os.environ.get("CI") != "true",   # under CI a missing proxy fails the tests
    reason="haproxy is not installed (apt-get install -y haproxy)")


def run_async(coro):
    """``asyncio.run`` in a thread of its own (the browser tests keep an event loop in the main one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def poll(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def proxy_stats(run_dir: Path) -> dict[str, str]:
    """Server name → status (UP, DOWN, …) from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(run_dir / "haproxy.sock"))
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
    return {r[1]: r[17] for r in rows if r[0] == "streamlit" and r[1] not in ("BACKEND", "FRONTEND")}


# ---- the configuration -----------------------------------------------------------------------------
@needs_haproxy
def test_generated_config_is_valid_and_sticky_by_cookie(tmp_path):
    cfg = tier.haproxy_config("127.0.0.1:8501", [("s1", 9001), ("s2", 9002)], tmp_path)
    (tmp_path / "haproxy.cfg").write_text(cfg)
    subprocess.run([tier.find_haproxy(), "-c", "-q", "-f", str(tmp_path / "haproxy.cfg")], check=True)
    assert f"cookie {tier.COOKIE} insert indirect nocache" in cfg
    assert "server s1 127.0.0.1:9001 cookie s1" in cfg and "server s2 127.0.0.1:9002 cookie s2" in cfg
    assert "option httpchk GET /_stcore/health" in cfg and "option redispatch" in cfg
    assert "timeout tunnel" in cfg                     # websockets outlive the HTTP timeouts
    assert "balance source" not in cfg and "hash-type" not in cfg   # never by client address


@pytest.mark.parametrize("n", ["0", "33", "two"])
def test_processes_are_bounded_with_a_one_line_error(n, capsys):
    with pytest.raises(SystemExit):
        tier_cli("--processes", n)
    assert "--processes must be an integer in [1, 32]" in capsys.readouterr().err


def test_only_the_proxy_takes_the_students_address():
    from opmerge_core.cli.dashboard import tier_server_argv

    args = tier_cli("--processes", "2", "--address", "0.0.0.0", "--port", "80")
    argv = tier_server_argv(args, 9001)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "9001"
    cfg = tier.haproxy_config("0.0.0.0:80", [("s1", 9001)], Path("/tmp"))
    assert "bind 0.0.0.0:80" in cfg and "server s1 127.0.0.1:9001" in cfg


def tier_cli(*argv: str):
    from opmerge_core.cli import build_parser

    return build_parser(["dashboard"]).parse_args(["dashboard", *argv])


# ---- the whole tier on loopback --------------------------------------------------------------------
class Tier:
    """`opmerge dashboard --processes N` as a subprocess, with its tier.json."""

    def __init__(self, home: Path, processes: int, timeout: float = 240):
        self.home = home
        self.port = stclient.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = home / "run"
        self.log = open(home / "tier.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opmerge_core", "dashboard", "--processes", str(processes),
             "--workers", "1", "--port", str(self.port), "--address", "127.0.0.1",
             "--run-dir", str(self.run_dir)],
            env={**os.environ, "OPMERGE_HOME": str(home / "home")}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)   # its own group, as in a terminal
        try:
            poll(lambda: self.state().get("ready") or self.proc.poll() is not None, timeout,
                 "the tier came up")
        except AssertionError:
            self.stop()
            raise
        assert self.proc.poll() is None, self.output()

    def state(self) -> dict:
        try:
            return json.loads((self.run_dir / "tier.json").read_text())
        except (OSError, ValueError):
            return {}

    def pid(self, name: str) -> int:
        return next(c["pid"] for c in self.state()["children"] if c["name"] == name)

    def tree(self) -> list[psutil.Process]:
        return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    t = Tier(tmp_path_factory.mktemp("tier"), processes=2)
    yield t
    t.stop()


def listeners(procs: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(program, address, port) of every listening TCP socket of ``procs``."""
    out = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            out += [(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN]
    return out


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(300)
def test_only_the_proxy_port_faces_the_students(hall):
    found = listeners(hall.tree())
    proxy = psutil.Process(hall.pid("proxy")).name()
    assert [(n, a) for n, a, p in found if p == hall.port] == [(proxy, "127.0.0.1")]
    # the servers, the scheduler and the workers (their HTTP endpoints too) listen on loopback only
    others = [(n, a, p) for n, a, p in found if p != hall.port]
    assert len(others) >= 4 and all(a in ("127.0.0.1", "::1") for _, a, _ in others), others


async def open_tab(url: str, lam: str, T: int) -> tuple[stclient.Session, str]:
    """A new browser (empty cookie jar) on the home page; its CSV download's media URL."""
    session = await stclient.connect(url, "", f"lam={lam}&T={T}", timeout=180, jar={})
    assert session.first.ok, session.first.errors
    return session, await session.download_url("csv_strategies_w2")


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(600)
def test_a_tab_sticks_to_one_process_and_cookieless_clients_spread(hall):
    async def scenario():
        tabs = [await open_tab(hall.url, lam, T) for lam, T in (("0.3", 20), ("4", 24), ("1.5", 28))]
        try:
            servers = [s.jar.get(tier.COOKIE) for s, _ in tabs]
            # cookie-less clients from one address (all 127.0.0.1) land on different processes
            assert set(servers) == {"s1", "s2"}, servers
            for session, media in tabs:
                mine = session.jar[tier.COOKIE]
                other = {"s1": "s2", "s2": "s1"}[mine]
                # the page, the websocket and the media all went to the cookie's process: the
                # media file exists there, made by the script run of this tab's websocket …
                assert (await session.fetch(media))[0] == 200
                assert (await session.fetch(media))[0] == 200     # again: stable
                # … and nowhere else (each tab's settings are its own)
                assert (await stclient._get(hall.url + media, {tier.COOKIE: other}))[0] == 404
                # the socket is still the same session: a rerun keeps its widget state
                run = await session.rerun({"lam": stclient.select_slider("2")}, timeout=180)
                assert run.ok and session.jar[tier.COOKIE] == mine
        finally:
            for session, _ in tabs:
                await session.close()

    run_async(scenario())


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(600)
def test_a_killed_process_is_redispatched_then_restarted(hall):
    def model_line(session: stclient.Session) -> str:   # the sidebar line naming the run's λ and T
        return next(t for t in session.texts if "· T = **" in t)

    async def tab_through_the_death_of_its_process():
        tab = await stclient.connect(hall.url, "", "lam=2&T=20", timeout=180, jar={tier.COOKIE: "s1"})
        assert tab.first.ok and tab.jar[tier.COOKIE] == "s1"
        os.kill(hall.pid("s1"), signal.SIGKILL)
        with pytest.raises(stclient.StreamlitClientError):     # its socket goes with its process
            await tab.rerun({"lam": stclient.select_slider("4")}, timeout=60)
        await tab.close()
        # the browser reconnects with the same cookies and URL (λ moved to 4): another process takes
        # the tab (option redispatch) and sets its own cookie; the page is the one the student left
        again = await stclient.connect(hall.url, tab.page, tab.query, timeout=180, jar=tab.jar)
        await again.close()
        return again, model_line(again)

    old = hall.pid("s1")
    again, line = run_async(tab_through_the_death_of_its_process())
    assert again.first.ok and "T = **20** · λ = **4**" in line
    assert again.jar[tier.COOKIE] == "s2" or hall.pid("s1") != old   # the other one, or s1 restarted
    # the supervisor restarts it; HAProxy puts it back into rotation once it answers its health check
    poll(lambda: hall.pid("s1") != old, 30, "the supervisor restarted s1")
    poll(lambda: proxy_stats(hall.run_dir).get("s1") == "UP", 240, "s1 back in rotation")
    assert "s1 (pid" in hall.output() and "restarting" in hall.output()


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(300)
def test_the_shared_cluster_is_the_tiers_alone_and_its_workers_have_training_lanes(hall):
    """TLS with the tier's throw-away credentials (a plain client or one with its own certificate is
    refused), no HTTP endpoint, and workers set up as the embedded cluster's: 2 threads, one lane."""
    import urllib.error
    import urllib.request

    from distributed import Security

    from opmerge_core.backend import cluster, security, worker

    address = hall.state()["scheduler"]
    assert address.startswith("tls://127.0.0.1:")
    port = address.rsplit(":", 1)[1]
    for plain, sec in ((f"tcp://127.0.0.1:{port}", None), (address, Security.temporary())):
        with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
            cluster.connect(plain, timeout="5s", security=sec)
    client = cluster.connect(address, timeout="30s", security=security.from_folder(hall.run_dir / "tls"))
    try:
        info = client.scheduler_info()
        assert [(w["nthreads"], w["resources"]) for w in info["workers"].values()] == [(2, {"train": 1})]
        lanes = client.run(lambda dask_worker: worker.TRAIN_EXECUTOR in dask_worker.executors)
        assert list(lanes.values()) == [True]
        for http in (info["services"].get("dashboard"),
                     *(w["services"].get("dashboard") for w in info["workers"].values())):
            if http:                                              # listening, but serving nothing
                with pytest.raises(urllib.error.HTTPError, match="404"):
                    urllib.request.urlopen(f"http://127.0.0.1:{http}/info/main/workers.html", timeout=5)
    finally:
        client.close()


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(300)
def test_sigterm_stops_every_child(hall):
    tree = hall.tree()
    assert len(tree) >= 6          # supervisor, scheduler, workers (+ a worker process), 2 servers, proxy
    hall.proc.send_signal(signal.SIGTERM)
    assert hall.proc.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [(p.pid, p.cmdline()[:4]) for p in alive]
    assert not (hall.run_dir / "haproxy.sock").exists() or proxy_dead(hall.run_dir)


def proxy_dead(run_dir: Path) -> bool:
    try:
        proxy_stats(run_dir)
    except OSError:
        return True
    return False


def stop_leaves_nothing(tmp_path: Path, stop) -> None:
    """Start a one-process tier, ``stop(tier)``, and check that every process of its tree is gone."""
    t = Tier(tmp_path, processes=1)
    tree = t.tree()
    try:
        stop(t)
        _, alive = psutil.wait_procs(tree, timeout=60)
        assert not alive, [(p.pid, p.cmdline()[:4]) for p in alive]
    finally:
        for p in tree:                  # never leave a tier running, whatever the outcome
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        t.stop()


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(300)
def test_ctrl_c_stops_every_child(tmp_path):
    def ctrl_c(t: Tier) -> None:        # a terminal's Ctrl-C: SIGINT to its foreground process group
        os.killpg(t.proc.pid, signal.SIGINT)
        assert t.proc.wait(timeout=60) in (0, 130)

    stop_leaves_nothing(tmp_path, ctrl_c)


@pytest.mark.slow
@needs_haproxy
@pytest.mark.timeout(300)
def test_a_killed_supervisor_leaves_no_orphans(tmp_path):
    # no chance to clean up: the children must go by themselves
    stop_leaves_nothing(tmp_path, lambda t: t.proc.kill())
