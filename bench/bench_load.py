"""Classroom load: simulated students drive a real `opmerge dashboard` over Streamlit's websocket.

    .venv/bin/python bench/bench_load.py [--scenarios 1,20,heavy,memory] [--duration 60] [--quick]
        [--students 20] [--processes N] [--profile /tmp/load.folded] [--server-args=--dev]

Starts the server (`opmerge dashboard`, or with ``--processes N`` the web tier: N server processes
behind the proxy, one shared Dask cluster; temporary OPMERGE_HOME, 127.0.0.1, free ports), then
runs the scenarios one after the other on it. Every student is a browser tab as
``stclient.Session`` emulates it (cookies, fragment timers), so every interaction is timed twice:
**first content** (send → the run's script_finished: the page is drawn, maybe with placeholders)
and **complete** (send → nothing pending: the browser has rerun the placeholders' fragments until
their results were drawn).

Scenarios (``--scenarios``, comma separated; ``name:N`` sets a class size, default ``--students``):

* ``N`` (a number): N students. Each opens the home page with a random λ on the dashboard's λ grid
  (log-uniform in [0.05, 50]) and a random T ∈ {16, 32, 64, 128}, then loops: think 0.5–2 s (its
  fragment timers keep firing, as in a browser), move λ (widget state of the ``lam`` select slider,
  same session).
* ``heavy``: a class as above plus one heavy student who opens (typed URLs, so a new session each)
  the home page at T = 1024, then /celeba at T = 64, then /spectrum at T = 256, each reported with
  its first delta, first main-area delta, first content and complete. The others' p95 over the
  heavy loads is compared with the light-only class of the same size (run it first in the same
  invocation: ``--scenarios 20,heavy:20``).
* ``room``: one teacher and ``--room-students`` students in a room, following the teacher through
  ``--room-steps`` steps of ``--room-lesson`` and voting (``room_scenario.py``): p95 of follow latency,
  vote → teacher count latency and ordinary interactions, and server CPU per following student per
  minute (against the teacher alone, same run).
* ``memory``: students move λ without thinking (T every 10th move, a new session every 50 moves);
  server RSS after each of ``--memory-marks`` interactions, and the ratio.
* ``flood``: fair compute. ``flood:N`` students each open the home page ``--flood-pages`` times with an
  S nobody asked for yet (the page needs new results from the cluster) and wait until it is complete;
  first alone, then while one tab on the Train page clicks Start ``--flood-clicks`` times as fast as
  the server answers (``--flood-job``: T = 32, 5,000 steps, batch 4,096) and another student starts a
  small training (T = 8, 5 steps). Printed: time to the complete page with the flood against without
  (p50 / p95 ratio, target ≤ 1.2), how many of the flood's runs were accepted, and how long the small
  run waited to start against one flood run's length (run store times; target ≤ 1). With
  ``--processes N`` the tabs spread over the tier's processes: the turns and caps are global. Runs
  still going at the end are left to their lease (the scenario waits for them, ≤ 3 minutes).
* ``soak``: a class for ``--duration`` seconds (600 for the 10-minute soak) with server RSS sampled
  every ``--soak-every`` seconds: RSS at the end against RSS at minute 2 (or at 20 % of a shorter
  run).

Other scenarios register themselves with ``@scenario`` (one driver, one report). Printed per scenario:
interactions, first-content and complete p50 / p95 / max, errors (exception or st.error elements,
abnormal finishes, timeouts, pages still pending at the deadline), page loads, server CPU per
interaction (all server processes, workers excluded), RSS of the server processes and (separately)
of the rest (Dask workers, proxy), and p95 ratios against the 1-student run (run ``1`` in the same
invocation: the machine may be shared). Everything is bounded (``--duration`` per scenario,
``--memory-timeout``) and stops by itself; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import shlex
import shutil
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import stclient  # noqa: E402
from streamlit.logger import set_log_level  # noqa: E402

set_log_level("ERROR")       # importing the dashboard outside a server warns "No runtime found"

from opmerge_dashboard.params import LAM_GRID, LAM_MAX, LAM_MIN, fmt_lam  # noqa: E402
from opmerge_dashboard.url_params import S_MAX, S_MIN, S_STEP  # noqa: E402

T_CHOICES = (16, 32, 64, 128)
HEAVY_PAGES = (("", 1024), ("celeba", 64), ("spectrum", 256))   # (url path, T)
RUN_TIMEOUT = 300.0                       # one interaction until complete, seconds
QUICK_DURATION = 15.0                     # --quick: seconds per scenario


# ---- what a student does --------------------------------------------------------------------------
def random_lam(rng: random.Random) -> float:
    """λ log-uniform in [LAM_MIN, LAM_MAX], snapped to the dashboard's grid (as the slider does)."""
    x = math.exp(rng.uniform(math.log(LAM_MIN), math.log(LAM_MAX)))
    return min(LAM_GRID, key=lambda g: abs(math.log(g) - math.log(x)))


def home_query(lam: float, T: int) -> str:
    return f"lam={fmt_lam(lam)}&T={T}"


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q) - 1]


@dataclass
class Stats:
    """Interactions of one group of students: (start, first content, complete) and errors."""

    runs: list[tuple[float, float, float]] = field(default_factory=list)
    loads: list[tuple[float, float]] = field(default_factory=list)     # page loads: first, complete
    fragment_runs: int = 0
    errors: Counter = field(default_factory=Counter)

    def record(self, t_start: float, step: stclient.Interaction, *, load: bool = False) -> None:
        for err in step.errors:
            self.errors[re.sub(r"\d+(\.\d+)? s\b", "N s", err)[:120]] += 1
        if step.first.status not in stclient.DONE and not step.errors:
            self.errors[f"finished {step.first.status}"] += 1
        self.fragment_runs += step.fragment_runs
        complete = step.complete if step.complete is not None else float("inf")
        if load:
            self.loads.append((step.first.elapsed, complete))
        else:
            self.runs.append((t_start, step.first.elapsed, complete))

    def first(self, window: tuple[float, float] | None = None) -> list[float]:
        return [f for t, f, c in self._in(window)]

    def complete(self, window: tuple[float, float] | None = None) -> list[float]:
        return [c for t, f, c in self._in(window)]

    def _in(self, window: tuple[float, float] | None) -> list[tuple[float, float, float]]:
        if window is None:
            return self.runs
        lo, hi = window
        return [r for r in self.runs if r[0] < hi and r[0] + r[2] > lo]   # overlapping the window

    @property
    def interactions(self) -> int:
        return len(self.runs) + len(self.loads)


async def open_home(url: str, rng: random.Random, stats: Stats) -> stclient.Session:
    t0 = time.monotonic()
    session = await stclient.connect(url, "", home_query(random_lam(rng), rng.choice(T_CHOICES)),
                                     timeout=RUN_TIMEOUT)
    stats.record(t0, session.load, load=True)
    return session


async def student(url: str, rng: random.Random, stats: Stats, duration: float,
                  think: tuple[float, float], wait_for: asyncio.Event | None = None) -> None:
    """Open the home page, then think / move λ for ``duration`` seconds (and until ``wait_for``)."""
    session = await open_home(url, rng, stats)
    deadline = time.monotonic() + duration

    def more() -> bool:
        return time.monotonic() < deadline or (wait_for is not None and not wait_for.is_set())

    try:
        while more():
            await session.idle(rng.uniform(*think))
            if not more():
                break
            if session.broken:                     # a run timed out: reload the tab
                await session.close()
                session = await open_home(url, rng, stats)
                continue
            t0 = time.monotonic()
            try:
                step = await session.interact(
                    {"lam": stclient.select_slider(fmt_lam(random_lam(rng)))}, timeout=RUN_TIMEOUT)
            except stclient.StreamlitClientError as exc:
                stats.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                await session.close()
                session = await open_home(url, rng, stats)
                continue
            stats.record(t0, step)
    finally:
        await session.close()


# ---- scenarios ------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    stats: Stats
    cpu_s: float
    rss: tuple[int, int]
    lines: list[str] = field(default_factory=list)     # the scenario's own report lines


@dataclass
class Context:
    """What a scenario gets: the server, the options, the results of the scenarios run before."""

    server: stclient.DashboardServer
    args: argparse.Namespace
    results: dict[str, Result] = field(default_factory=dict)   # by scenario token, e.g. "20"


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Context, int], Awaitable[Result]]   # (context, class size) → result
    help: str


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, help: str):
    """Register ``async def fn(ctx, n) -> Result`` as scenario ``name`` (``name:N`` passes N)."""
    def register(fn):
        SCENARIOS[name] = Scenario(name, fn, help)
        return fn
    return register


async def measured(ctx: Context, name: str, stats: Stats, *tasks: Awaitable) -> tuple[Result, list]:
    """Run the students' tasks; the server's CPU and RSS over them."""
    cpu0 = ctx.server.cpu()
    out = await asyncio.gather(*tasks)
    return Result(name, stats, ctx.server.cpu() - cpu0, ctx.server.rss()), out


def classroom(ctx: Context, n: int, stats: Stats, seed: int, wait_for: asyncio.Event | None = None,
              duration: float | None = None) -> list[Awaitable]:
    rng = random.Random(ctx.args.seed + seed)
    return [student(ctx.server.url, random.Random(rng.random()), stats,
                    ctx.args.duration if duration is None else duration, ctx.args.think, wait_for)
            for _ in range(n)]


@scenario("class", "N students moving λ (the token is the number itself: 20)")
async def run_class(ctx: Context, n: int) -> Result:
    stats = Stats()
    tasks = classroom(ctx, n, stats, seed=n)
    if ctx.args.profile and str(n) == ctx.args.profile_scenario:
        tasks.append(profile(ctx.server, ctx.args))
    result, _ = await measured(ctx, f"{n} students", stats, *tasks)
    return result


@dataclass
class HeavyLoad:
    page: str
    T: int
    load: stclient.Interaction
    window: tuple[float, float]


async def heavy_student(url: str, rng: random.Random, start_after: float, gap: float,
                        done: asyncio.Event, page_timeout: float) -> list[HeavyLoad]:
    """Open the heavy pages one after the other (each a typed URL, so a new session)."""
    await asyncio.sleep(start_after)
    loads = []
    try:
        for page, T in HEAVY_PAGES:
            query = home_query(random_lam(rng), T) if page == "" else f"T={T}"
            t0 = time.monotonic()
            session = await stclient.connect(url, page, query, timeout=page_timeout)
            end = session.load.complete if session.load.complete is not None else page_timeout
            loads.append(HeavyLoad(page or "home", T, session.load, (t0, t0 + end)))
            await session.close()
            await asyncio.sleep(gap)
    finally:
        done.set()                                 # the class may stop once the heavy loads are done
    return loads


@scenario("heavy", "a class plus one student opening heavy pages (compare with the class alone)")
async def run_heavy(ctx: Context, n: int) -> Result:
    stats, done = Stats(), asyncio.Event()
    heavy = heavy_student(ctx.server.url, random.Random(ctx.args.seed + 1000),
                          start_after=0.15 * ctx.args.duration, gap=2.0, done=done,
                          page_timeout=ctx.args.page_timeout)
    result, out = await measured(ctx, f"{n} students + heavy", stats,
                                 *classroom(ctx, n, stats, seed=n + 1000, wait_for=done), heavy)
    windows = []
    for h in out[-1]:
        windows.append(h.window)
        during = stats.complete(h.window)
        first = h.load.first
        result.lines.append(
            f"heavy /{h.page} T={h.T}: first delta {first.first_delta or 0:.2f} s, first main-area "
            f"delta {first.first_main_delta or 0:.2f} s, first content {first.elapsed:.2f} s, "
            f"complete {fmt_s(h.load.complete)} ({first.status}, errors {len(h.load.errors)}); "
            f"others meanwhile: n={len(during)} p95 {pct(during, 95):.2f} s")
    during = [c for t, f, c in stats.runs if any(t < hi and t + c > lo for lo, hi in windows)]
    light = ctx.results.get(str(n))
    if light is not None and during:
        ratio = pct(during, 95) / pct(light.stats.complete(), 95)
        result.lines.append(f"others during the heavy loads: p95 complete {pct(during, 95):.2f} s = "
                            f"{ratio:.2f}× the light-only class ({n} students, same run; target ≤ 1.2)")
    return result


async def memory_student(url: str, rng: random.Random, stats: Stats, marks: list[int],
                         rss_at: dict[int, tuple[int, int]], server: stclient.DashboardServer,
                         deadline: float) -> None:
    session = await open_home(url, rng, stats)
    moves = 0
    try:
        while len(stats.runs) < marks[-1] and time.monotonic() < deadline:
            moves += 1
            if moves % 50 == 0 or session.broken:  # the student reloads the tab: a new session
                await session.close()
                session = await open_home(url, rng, stats)
            change = ({"T": stclient.slider(rng.choice(T_CHOICES))} if moves % 10 == 0 else
                      {"lam": stclient.select_slider(fmt_lam(random_lam(rng)))})
            t0 = time.monotonic()
            stats.record(t0, await session.interact(change, timeout=RUN_TIMEOUT))
            for mark in marks:
                if len(stats.runs) >= mark and mark not in rss_at:
                    rss_at[mark] = server.rss()
    finally:
        await session.close()


@scenario("memory", "students without think time; server RSS after --memory-marks interactions")
async def run_memory(ctx: Context, n: int) -> Result:
    rng = random.Random(ctx.args.seed + 7)
    stats, rss_at = Stats(), {}
    marks = sorted(ctx.args.memory_marks)
    deadline = time.monotonic() + ctx.args.memory_timeout
    result, _ = await measured(ctx, f"memory ({n} students, no think)", stats, *[
        memory_student(ctx.server.url, random.Random(rng.random()), stats, marks, rss_at, ctx.server,
                       deadline) for _ in range(n)])
    for mark in sorted(rss_at):
        s, k = rss_at[mark]
        result.lines.append(f"after {mark:5d} interactions: RSS server {mb(s)}, others {mb(k)}")
    lo, hi = min(rss_at, default=0), max(rss_at, default=0)
    if lo != hi:
        result.lines.append(f"RSS ratio {hi}/{lo}: {rss_at[hi][0] / rss_at[lo][0]:.2f} (target ≤ 1.3)")
    return result


async def sample_rss(server: stclient.DashboardServer, every: float, until: float,
                     samples: list[tuple[float, int]]) -> None:
    t0 = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - t0, server.rss()[0]))
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))
    samples.append((time.monotonic() - t0, server.rss()[0]))


@scenario("soak", "a class for --duration seconds: server RSS at the end against RSS at minute 2")
async def run_soak(ctx: Context, n: int) -> Result:
    stats, samples = Stats(), []
    duration = ctx.args.duration
    sampler = sample_rss(ctx.server, ctx.args.soak_every, time.monotonic() + duration, samples)
    result, _ = await measured(ctx, f"soak ({n} students, {duration:g} s)", stats,
                               *classroom(ctx, n, stats, seed=n + 2000), sampler)
    mark = min(120.0, 0.2 * duration)
    at_mark = next((rss for t, rss in samples if t >= mark), samples[-1][1])
    end = samples[-1][1]
    result.lines.append(f"RSS server at {mark:.0f} s {mb(at_mark)}, at the end {mb(end)}: "
                        f"{end / at_mark:.2f}× (target ≤ 1.1); samples every {ctx.args.soak_every:g} s: "
                        + " ".join(f"{rss / 2**20:.0f}" for _, rss in samples[:: max(1, len(samples) // 12)]))
    return result


@scenario("room", "a teacher leading --room-students students through a lesson (room_scenario.py)")
async def run_room(ctx: Context, n: int) -> Result:
    import room_scenario  # the lessons it walks through are imported only for this scenario
    args = ctx.args
    r = await room_scenario.run_room(
        ctx.server, students=n, lesson_name=args.room_lesson, steps=args.room_steps,
        dwell=args.room_dwell, idle=args.room_idle, seed=args.seed,
        lam_choices=[fmt_lam(x) for x in LAM_GRID if 0.1 <= x <= 10])

    def line(name: str, xs: list[float], target: float | None = None) -> str:
        goal = f" (target p95 ≤ {target:g} s)" if target else ""
        return (f"{name:<28} n={len(xs):4d}  p50 {pct(xs, 50):6.2f} s  p95 {pct(xs, 95):6.2f} s  "
                f"max {max(xs, default=float('nan')):6.2f} s{goal}")
    per_min = (r.cpu_follow - r.cpu_idle) / n / (args.room_idle / 60)
    stats = Stats(errors=r.errors)
    return Result(f"room (1 teacher + {n})", stats, 0.0, ctx.server.rss(), lines=[
        f"lesson {args.room_lesson}, {args.room_steps} steps of {args.room_dwell:g} s",
        line("follow (Next → new step)", r.follow, 2),
        line("vote → teacher's count", r.vote_count, 2),
        line("interactions (vote, λ)", r.interactions, 1),
        line("follow polls (fragment)", r.polls),
        line("page loads (student link)", r.loads),
        f"server CPU: teacher alone {r.cpu_idle:.1f} s, with {n} students following "
        f"{r.cpu_follow:.1f} s in {args.room_idle:g} s → {1e3 * per_min:.0f} ms per following student "
        f"per minute ({100 * per_min * n / 60:.0f}% of a core for the class)"])


# ---- flood: one tab tries to queue many trainings; the others' pages and small runs -----------------
SMALL_JOB = "tr_T=8&tr_steps=5"         # another student's small training (the Train page's URL)
FLOOD_WAIT = 180.0                      # seconds the runs still going at the end may take to stop


def fresh_S(used: set[float], rng: random.Random) -> float:
    """An S on the slider's grid that no page of this scenario has asked for (new cluster results)."""
    steps = round((S_MAX - S_MIN) / S_STEP)
    while True:
        S = round(S_MIN + rng.randrange(steps + 1) * S_STEP, 2)
        if S not in used:
            used.add(S)
            return S


async def fresh_pages(url: str, rng: random.Random, used: set[float], stats: Stats, pages: int,
                      timeout: float) -> None:
    """Open the home page ``pages`` times, each with a fresh S, until it is complete (a new tab each)."""
    for _ in range(pages):
        t0 = time.monotonic()
        query = f"{home_query(random_lam(rng), 64)}&S={fresh_S(used, rng):g}"
        session = await stclient.connect(url, "", query, timeout=timeout)
        stats.record(t0, session.load)
        await session.close()
        await asyncio.sleep(rng.uniform(0.5, 1.5))


async def start_trainings(url: str, query: str, clicks: int, hold: asyncio.Event) -> None:
    """A tab on the Train page (``query``: its settings) that presses Start ``clicks`` times as fast as
    the server answers, then stays open, its job panel polling (which keeps its runs leased), until
    ``hold`` is set."""
    session = await stclient.connect(url, "train", query, timeout=RUN_TIMEOUT)
    try:
        for _ in range(clicks):
            await session.rerun({"tr_start": stclient.click()}, timeout=RUN_TIMEOUT)
        while not hold.is_set() and not session.broken:
            await session.idle(1.0)
    finally:
        await session.close()


def training_runs(home: str, query: str) -> list[tuple[int, str, float | None]]:
    """(id, status, when it got a lane) of the training runs of the Train page settings ``query`` in
    the server's run store."""
    steps = dict(p.split("=") for p in query.split("&"))["tr_steps"]
    with contextlib.closing(sqlite3.connect(f"file:{home}/runs.sqlite?mode=ro", uri=True)) as db:
        return db.execute("SELECT id, status, dispatched FROM runs WHERE kind='train' AND "
                          "json_extract(params, '$.steps')=?", (int(steps),)).fetchall()


async def watch_runs(home: str, query: str, seen: dict[int, dict[str, float]], stop: asyncio.Event) -> None:
    """When (unix time) each run of ``query`` was first seen queued, got a lane, was seen running and
    finished (polling the store every 0.1 s)."""
    while not stop.is_set():
        now = time.time()
        with contextlib.suppress(sqlite3.Error):
            for run_id, status, lane in training_runs(home, query):
                marks = seen.setdefault(run_id, {"seen": now})
                if lane is not None:
                    marks.setdefault("lane", lane)
                if status != "queued":
                    marks.setdefault("running", now)
                if status not in ("queued", "running"):
                    marks.setdefault("finished", now)
        await asyncio.sleep(0.1)


def small_run_wait(big: dict[int, dict[str, float]], small: dict[int, dict[str, float]]
                   ) -> tuple[float, float, float]:
    """(seconds the small run waited to start, seconds until the first flood run on a lane when it
    was submitted ended, that run's length); NaN where a time is missing."""
    run = next(iter(small.values()), {})
    t = run.get("seen", math.nan)
    ahead = [m for m in big.values()
             if {"lane", "running", "finished"} <= m.keys() and m["lane"] <= t < m["finished"]]
    first = min(ahead, key=lambda m: m["finished"], default=None)
    if first is None:
        return run.get("running", math.nan) - t, math.nan, math.nan
    return run.get("running", math.nan) - t, first["finished"] - t, first["finished"] - first["running"]


@scenario("flood", "one tab tries to queue --flood-clicks trainings: the others' pages and small runs")
async def run_flood(ctx: Context, n: int) -> Result:
    args, url, home = ctx.args, ctx.server.url, ctx.server.home
    rng, used = random.Random(args.seed + 3000), set()
    calm, flood = Stats(), Stats()
    for stats, pages in ((Stats(), 1), (calm, args.flood_pages)):   # once unmeasured: the workers warm up
        await asyncio.gather(*(fresh_pages(url, random.Random(rng.random()), used, stats, pages,
                                           args.page_timeout) for _ in range(n)))
    big: dict[int, dict[str, float]] = {}
    small: dict[int, dict[str, float]] = {}
    stop = asyncio.Event()
    watchers = [asyncio.create_task(watch_runs(home, args.flood_job, big, stop)),
                asyncio.create_task(watch_runs(home, SMALL_JOB, small, stop))]
    tabs = [asyncio.create_task(start_trainings(url, args.flood_job, args.flood_clicks, stop))]
    while not any("running" in m for m in big.values()):     # the flood is on the lanes …
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)                                 # … and another student comes along
    tabs.append(asyncio.create_task(start_trainings(url, SMALL_JOB, 1, stop)))
    result, _ = await measured(ctx, f"flood ({n} students, fresh pages)", flood, *(
        fresh_pages(url, random.Random(rng.random()), used, flood, args.flood_pages, args.page_timeout)
        for _ in range(n)))
    deadline = time.monotonic() + args.flood_timeout     # one flood run ended, the small one started
    while time.monotonic() < deadline and not (any("finished" in m for m in big.values())
                                               and any("running" in m for m in small.values())):
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tabs)
    waited = time.monotonic()                            # the tabs are closed: their leases expire
    while time.monotonic() - waited < FLOOD_WAIT and any(
            st in ("queued", "running") for _, st, _ in training_runs(home, args.flood_job)):
        await asyncio.sleep(1.0)
    stop_s = time.monotonic() - waited
    await asyncio.gather(*watchers)
    wait_s, free_s, run_s = small_run_wait(big, small)
    c0, c1 = calm.complete(), flood.complete()
    result.lines += [
        f"time to the complete page without the flood: n={len(c0)} p50 {pct(c0, 50):.2f} s, p95 "
        f"{pct(c0, 95):.2f} s (errors {sum(calm.errors.values())})",
        f"with the flood / without: p50 {pct(c1, 50) / pct(c0, 50):.2f}×, "
        f"p95 {pct(c1, 95) / pct(c0, 95):.2f}× (target ≤ 1.2)",
        f"the flood's runs accepted: {len(big)} of {args.flood_clicks} clicks ({args.flood_job})",
        f"the small run waited {wait_s:.1f} s to start ({wait_s - free_s:+.1f} s after the first lane "
        f"freed); the flood run ahead of it took {run_s:.1f} s → {wait_s / run_s:.2f} of a run's length "
        "(target ≤ 1)",
        f"the flood's runs still going at the end stopped {stop_s:.0f} s after its tab closed"]
    return result


# ---- profiling (py-spy, optional) -----------------------------------------------------------------
async def profile(server: stclient.DashboardServer, args: argparse.Namespace) -> None:
    """py-spy the (first) server process for ``--profile-seconds`` once the students have loaded
    their pages."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("py-spy not found: no profile (pip install py-spy)", file=sys.stderr)
        return
    warmup = min(10.0, 0.25 * args.duration)
    seconds = max(1, min(args.profile_seconds, int(args.duration - warmup) - 2))
    await asyncio.sleep(warmup)
    folded = Path(args.profile)
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(server.pids()[0]), "--duration", str(seconds),
        "--rate", str(args.profile_rate), "--format", "raw", "--output", str(folded), "--nonblocking",
        *(["--gil"] if args.profile_mode == "gil" else []),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), seconds + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        err = b"timed out"
    if folded.exists():
        print_profile(folded)
    else:
        print(f"py-spy wrote no profile: {err.decode()[-500:]}")


# incl. page scripts
PROJECT_FRAME = re.compile(r"dashboard/|opmerge_dashboard/|opmerge_core/|^<module> \(\w+\.py")


def print_profile(folded: Path, top: int = 15) -> None:
    """Top frames of a py-spy ``--format raw`` (collapsed stacks) file: self, inclusive, and
    inclusive among the project's own frames (dashboard/, opmerge_core/, page scripts)."""
    self_n, incl_n, total = Counter(), Counter(), 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        self_n[frames[-1]] += n
        for frame in set(frames):
            incl_n[frame] += n
    project = Counter({f: n for f, n in incl_n.items() if PROJECT_FRAME.search(f)})
    print(f"\npy-spy profile ({total} samples): {folded}")
    for title, counts in (("self", self_n), ("inclusive", incl_n), ("inclusive, project", project)):
        print(f"  top {top} by {title} samples:")
        for frame, n in counts.most_common(top):
            print(f"    {100 * n / max(total, 1):5.1f}%  {frame[:150]}")


# ---- report ---------------------------------------------------------------------------------------
def mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def fmt_s(x: float | None) -> str:
    return "pending" if x is None or math.isinf(x) else f"{x:.2f} s"


def print_result(r: Result, base: Result | None) -> None:
    first, complete = r.stats.first(), r.stats.complete()
    n_err = sum(r.stats.errors.values())
    per = r.cpu_s / max(r.stats.interactions, 1)
    pad = " " * 36
    if not r.stats.interactions:             # a scenario with its own figures (e.g. room)
        print(f"{r.name:<36}errors {n_err}")
        for err, count in r.stats.errors.most_common(8):
            print(f"{pad}error ×{count}: {err}")
        for extra in r.lines:
            print(f"{pad}{extra}")
        return
    print(f"{r.name:<36}n={len(complete):4d}  complete p50 {pct(complete, 50):5.2f} s  p95 "
          f"{pct(complete, 95):5.2f} s  max {max(complete, default=float('nan')):5.2f} s  |  first "
          f"content p50 {pct(first, 50):5.2f} s  p95 {pct(first, 95):5.2f} s  |  errors {n_err}")
    line = (f"{pad}server CPU {1e3 * per:.1f} ms/interaction ({r.stats.fragment_runs} fragment "
            f"reruns), RSS server {mb(r.rss[0])}, others {mb(r.rss[1])}")
    if base is not None and base is not r and base.stats.runs:
        b = base.stats.complete()
        line += (f"  | ×1-student: p50 {pct(complete, 50) / pct(b, 50):.1f}, "
                 f"p95 {pct(complete, 95) / pct(b, 95):.1f}")
    print(line)
    if r.stats.loads:
        loads = [c for _, c in r.stats.loads]
        print(f"{pad}page loads: n={len(loads)} complete p50 {pct(loads, 50):.2f} s, max "
              f"{fmt_s(max(loads))}; first content p50 {pct([f for f, _ in r.stats.loads], 50):.2f} s")
    for err, count in r.stats.errors.most_common(5):
        print(f"{pad}error ×{count}: {err}")
    for extra in r.lines:
        print(f"{pad}{extra}")


def scenario_token(raw: str) -> tuple[str, Scenario, int | None]:
    name, _, count = raw.partition(":")
    if name.isdigit() and not count:
        name, count = "class", name
    if name not in SCENARIOS or (count and not (count.isdigit() and 1 <= int(count) <= 200)):
        raise argparse.ArgumentTypeError(
            f"scenario {raw!r}: a student count 1..200, or one of {', '.join(sorted(SCENARIOS))} "
            f"(optionally NAME:N for N students)")
    return raw, SCENARIOS[name], int(count) if count else None


def scenario_list(raw: str) -> list[tuple[str, Scenario, int | None]]:
    return [scenario_token(s.strip()) for s in raw.split(",") if s.strip()]


def default_size(name: str, args: argparse.Namespace) -> int:
    return {"memory": args.memory_students, "room": args.room_students,
            "flood": args.flood_students}.get(name, args.students)


async def warm_up(url: str) -> list[tuple[int, float]]:
    """Load the home page once per T, so the first scenario does not pay numba JIT and T caches."""
    times = []
    for T in T_CHOICES:
        session = await stclient.connect(url, "", home_query(0.5, T), timeout=RUN_TIMEOUT)
        times.append((T, session.load.complete or float("inf")))
        await session.close()
    return times


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="scenarios: " + "; ".join(f"{s.name}: {s.help}"
                                                                  for s in SCENARIOS.values()))
    ap.add_argument("--scenarios", type=scenario_list, default=scenario_list("1,10,20,heavy,memory"))
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of λ moves per scenario")
    ap.add_argument("--quick", action="store_true",
                    help=f"a smoke run: {QUICK_DURATION:g} s per scenario, memory marks 50 and 200")
    ap.add_argument("--students", type=int, default=20, help="class size of heavy and soak (default)")
    ap.add_argument("--processes", type=int,
                    help="serve with the web tier: N server processes behind the proxy (default: "
                         "one plain `opmerge dashboard` process)")
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    ap.add_argument("--memory-students", type=int, default=5)
    ap.add_argument("--memory-marks", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--memory-timeout", type=float, default=900.0)
    ap.add_argument("--soak-every", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--room-students", type=int, default=30)
    ap.add_argument("--room-lesson", default="phase-transition")
    ap.add_argument("--room-steps", type=int, default=4, help="steps the teacher leads the room through")
    ap.add_argument("--room-dwell", type=float, default=15.0, help="seconds on each step")
    ap.add_argument("--room-idle", type=float, default=30.0,
                    help="seconds of the CPU phases (teacher alone; students only following)")
    ap.add_argument("--flood-students", type=int, default=5)
    ap.add_argument("--flood-pages", type=int, default=4, help="fresh home pages per student and phase")
    ap.add_argument("--flood-clicks", type=int, default=30)
    ap.add_argument("--flood-job", default="tr_T=32&tr_steps=5000&tr_batch=4096",
                    help="the flood's training: the Train page's URL parameters (tr_steps required)")
    ap.add_argument("--flood-timeout", type=float, default=900.0,
                    help="seconds to wait for a flood run to end and the small run to start")
    ap.add_argument("--page-timeout", type=float, default=RUN_TIMEOUT,
                    help="seconds a heavy page load may take before it counts as failed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-args", default="",
                    help="extra `opmerge dashboard` flags, as one string: --server-args=--dev")
    ap.add_argument("--profile", metavar="PATH",
                    help="py-spy the server during one scenario; collapsed stacks go to PATH")
    ap.add_argument("--profile-scenario", default="20", help="student count to profile")
    ap.add_argument("--profile-seconds", type=int, default=20)
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--profile-mode", choices=("gil", "all"), default="gil",
                    help="gil: only the thread holding the GIL (= the server's CPU); all: every thread")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip loading the home page once per T before the scenarios")
    args = ap.parse_args()
    if args.quick:
        args.duration = min(args.duration, QUICK_DURATION)
        args.memory_marks = [50, 200]
        args.soak_every = min(args.soak_every, 2.0)
    if not 1 <= args.duration <= 3600 or not 1 <= args.students <= 200 \
            or not 1 <= args.memory_students <= 50 or not 0 <= args.think[0] <= args.think[1] <= 60 \
            or not 1 <= (args.processes or 1) <= 16 or not 0.5 <= args.soak_every <= 600:
        ap.error("bounds: 1 ≤ duration ≤ 3600, 1 ≤ students ≤ 200, 1 ≤ memory students ≤ 50, "
                 "0 ≤ think ≤ 60, 1 ≤ processes ≤ 16, 0.5 ≤ soak-every ≤ 600")
    return args


def main() -> None:
    args = parse_args()
    print(f"bench_load: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: compare ratios)")
    t0 = time.monotonic()
    server = stclient.DashboardServer(shlex.split(args.server_args), processes=args.processes)
    print(f"server up in {time.monotonic() - t0:.1f} s at {server.url} ({server.describe()}), "
          f"RSS {mb(server.rss()[0])}; scenarios: {', '.join(t for t, _, _ in args.scenarios)}, "
          f"{args.duration:g} s each\n")
    ctx = Context(server, args)
    try:
        if not args.no_warmup:
            loads = asyncio.run(warm_up(server.url))
            print("warm-up home page loads: " + ", ".join(f"T={T} {dt:.1f} s" for T, dt in loads))
        for token, sc, n in args.scenarios:
            r = asyncio.run(sc.run(ctx, n if n is not None else default_size(sc.name, args)))
            ctx.results[token] = r
            print_result(r, ctx.results.get("1"))
    finally:
        server.stop()
    t = psutil.Process().cpu_times()
    print(f"\nthis client used {t.user + t.system:.0f} s of CPU in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
