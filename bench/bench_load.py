"""Classroom load: simulated students drive a real `opmerge dashboard` over Streamlit's websocket.

    .venv/bin/python bench/bench_load.py [--scenarios 1,10,20,heavy,memory] [--duration 60]
        [--students 20] [--profile /tmp/load.folded] [--server-args=--dev]

Starts the server (`opmerge dashboard`, temporary OPMERGE_HOME, 127.0.0.1, a free port), then runs
the scenarios one after the other on that server:

* ``N`` (a number): N students. Each opens the home page with a random λ on the dashboard's λ grid
  (log-uniform in [0.05, 50]) and a random T ∈ {16, 32, 64, 128}, then loops: think 0.5–2 s, move
  λ (widget state of the ``lam`` select slider, same session). Latency = send → script_finished.
* ``heavy``: ``--students`` students as above, plus one heavy student who opens (typed URLs, so a
  new session each) the home page at T = 1024, then /celeba at T = 64, then /spectrum at T = 256;
  each heavy load is reported with its time to the first delta, to the first delta of the page's
  main area, and to script_finished. The class keeps moving λ until the heavy student is done, and
  is also reported over the time each heavy load was running.
* ``room``: one teacher and ``--room-students`` students in a room, following the teacher through
  ``--room-steps`` steps of ``--room-lesson`` and voting (``room_scenario.py``): p95 of follow latency,
  vote → teacher count latency and ordinary interactions, and server CPU per following student per
  minute (against the teacher alone, same run).
* ``memory``: ``--memory-students`` students move λ without thinking (T every 10th move, and a new
  session every 50 moves); server RSS after 100 and after 1,000 interactions, and the ratio.

Printed per scenario: interactions, p50 / p95 / max, errors (exception or st.error elements,
abnormal finishes, timeouts), page loads, server CPU seconds per interaction, RSS of the server
process and (separately) of its children, and p50/p95 ratios against the 1-student run (run ``1``
in the same invocation: the machine may be shared). Everything is bounded (``--duration`` per
scenario, ``--memory-timeout``) and stops by itself; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shlex
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import stclient  # noqa: E402
from streamlit.logger import set_log_level  # noqa: E402

set_log_level("ERROR")       # importing the dashboard outside a server warns "No runtime found"

from opmerge_dashboard.params import LAM_GRID, LAM_MAX, LAM_MIN, fmt_lam  # noqa: E402

T_CHOICES = (16, 32, 64, 128)
HEAVY_PAGES = (("", 1024), ("celeba", 64), ("spectrum", 256))   # (url path, T)
RUN_TIMEOUT = 300.0                       # one script run, seconds


# ---- what a student does --------------------------------------------------------------------------
def random_lam(rng: random.Random) -> float:
    """λ log-uniform in [LAM_MIN, LAM_MAX], snapped to the dashboard's grid (as the slider does)."""
    x = math.exp(rng.uniform(math.log(LAM_MIN), math.log(LAM_MAX)))
    return min(LAM_GRID, key=lambda g: abs(math.log(g) - math.log(x)))


def home_query(lam: float, T: int) -> str:
    return f"lam={fmt_lam(lam)}&T={T}"


@dataclass
class Stats:
    """Interactions of one group of students: (start time, latency) pairs and errors."""

    runs: list[tuple[float, float]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    def record(self, t_start: float, run: stclient.Run) -> None:
        self.runs.append((t_start, run.elapsed))
        for err in run.errors:
            self.errors[err[:120]] += 1
        if run.status != "FINISHED_SUCCESSFULLY" and not run.errors:
            self.errors[f"finished {run.status}"] += 1

    def latencies(self, window: tuple[float, float] | None = None) -> list[float]:
        if window is None:
            return [dt for _, dt in self.runs]
        lo, hi = window
        return [dt for t, dt in self.runs if t < hi and t + dt > lo]   # overlapping the window


async def open_home(url: str, rng: random.Random, stats: Stats) -> stclient.Session:
    t0 = time.monotonic()
    session = await stclient.connect(url, "", home_query(random_lam(rng), rng.choice(T_CHOICES)),
                                     timeout=RUN_TIMEOUT)
    stats.record(t0, session.first)
    stats.loads.append(session.first.elapsed)
    stats.runs.pop()                              # page loads are reported apart from λ moves
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
            await asyncio.sleep(rng.uniform(*think))
            if not more():
                break
            if session.broken:                     # a run timed out: reload the tab
                await session.close()
                session = await open_home(url, rng, stats)
                continue
            t0 = time.monotonic()
            try:
                run = await session.rerun({"lam": stclient.select_slider(fmt_lam(random_lam(rng)))},
                                          timeout=RUN_TIMEOUT)
            except stclient.StreamlitClientError as exc:
                stats.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                await session.close()
                session = await open_home(url, rng, stats)
                continue
            stats.record(t0, run)
    finally:
        await session.close()


@dataclass
class HeavyLoad:
    page: str
    T: int
    run: stclient.Run
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
            loads.append(HeavyLoad(page or "home", T, session.first,
                                   (t0, t0 + session.first.elapsed)))
            await session.close()
            await asyncio.sleep(gap)
    finally:
        done.set()                                 # the class may stop once the heavy loads are done
    return loads


async def warm_up(url: str) -> list[tuple[int, float]]:
    """Load the home page once per T, so the first scenario does not pay numba JIT and T caches."""
    times = []
    for T in T_CHOICES:
        session = await stclient.connect(url, "", home_query(0.5, T), timeout=RUN_TIMEOUT)
        times.append((T, session.first.elapsed))
        await session.close()
    return times


# ---- scenarios ------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    stats: Stats
    cpu_s: float
    rss: tuple[int, int]
    heavy: list[HeavyLoad] = field(default_factory=list)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q) - 1]


async def run_class(server: stclient.DashboardServer, n: int, args: argparse.Namespace,
                    heavy: bool) -> Result:
    rng = random.Random(args.seed + n + (1000 if heavy else 0))
    stats = Stats()
    cpu0 = server.cpu()
    done = asyncio.Event() if heavy else None
    tasks = [student(server.url, random.Random(rng.random()), stats, args.duration, args.think, done)
             for _ in range(n)]
    if heavy:
        tasks.append(heavy_student(server.url, random.Random(rng.random()),
                                   start_after=0.15 * args.duration, gap=2.0, done=done,
                                   page_timeout=args.page_timeout))
    if args.profile and str(n) == args.profile_scenario and not heavy:
        tasks.append(profile(server, args))
    out = await asyncio.gather(*tasks)
    name = f"{n} students" + (" + heavy" if heavy else "")
    return Result(name, stats, server.cpu() - cpu0, server.rss(), out[n] if heavy else [])


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
            stats.record(t0, await session.rerun(change, timeout=RUN_TIMEOUT))
            for mark in marks:
                if len(stats.runs) >= mark and mark not in rss_at:
                    rss_at[mark] = server.rss()
    finally:
        await session.close()


async def run_memory(server: stclient.DashboardServer, args: argparse.Namespace) -> tuple[Result, dict]:
    rng = random.Random(args.seed + 7)
    stats, rss_at = Stats(), {}
    marks = sorted(args.memory_marks)
    cpu0 = server.cpu()
    deadline = time.monotonic() + args.memory_timeout
    await asyncio.gather(*[memory_student(server.url, random.Random(rng.random()), stats, marks,
                                          rss_at, server, deadline)
                           for _ in range(args.memory_students)])
    return Result(f"memory ({args.memory_students} students, no think)", stats,
                  server.cpu() - cpu0, server.rss()), rss_at


# ---- profiling (py-spy, optional) -----------------------------------------------------------------
async def profile(server: stclient.DashboardServer, args: argparse.Namespace) -> None:
    """py-spy the server for ``--profile-seconds`` once the students have loaded their pages."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("py-spy not found: no profile (pip install py-spy)", file=sys.stderr)
        return
    warmup = min(10.0, 0.25 * args.duration)
    seconds = max(1, min(args.profile_seconds, int(args.duration - warmup) - 2))
    await asyncio.sleep(warmup)
    folded = Path(args.profile)
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(server.proc.pid), "--duration", str(seconds), "--rate", "50",
        "--format", "raw", "--output", str(folded), "--nonblocking",
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


def print_result(r: Result, base: Result | None) -> None:
    lat = r.stats.latencies()
    n_err = sum(r.stats.errors.values())
    per = r.cpu_s / max(len(lat) + len(r.stats.loads), 1)
    p50, p95 = pct(lat, 50), pct(lat, 95)
    line = (f"{r.name:<34} n={len(lat):4d}  p50 {p50:6.2f} s  p95 {p95:6.2f} s  "
            f"max {max(lat, default=float('nan')):6.2f} s  errors {n_err:3d}  "
            f"server CPU {1e3 * per:5.0f} ms/run  RSS server {mb(r.rss[0])}, children {mb(r.rss[1])}")
    if base is not None and base is not r and base.stats.runs:
        b = base.stats.latencies()
        line += f"  | ×1-student: p50 {p50 / pct(b, 50):5.1f}, p95 {p95 / pct(b, 95):5.1f}"
    print(line)
    if r.stats.loads:
        print(f"{'':<34} page loads: n={len(r.stats.loads)} p50 {pct(r.stats.loads, 50):.2f} s, "
              f"max {max(r.stats.loads):.2f} s")
    for err, count in r.stats.errors.most_common(5):
        print(f"{'':<34} error ×{count}: {err}")
    for h in r.heavy:
        during = r.stats.latencies(h.window)
        print(f"{'':<34} heavy /{h.page} T={h.T}: first delta {h.run.first_delta or 0:6.2f} s, "
              f"first main-area delta {h.run.first_main_delta or 0:6.2f} s, finished "
              f"{h.run.elapsed:6.2f} s ({h.run.status}, errors {len(h.run.errors)}); others meanwhile: "
              f"n={len(during)} p95 {pct(during, 95):.2f} s max {max(during, default=0):.2f} s")


async def run_room(server: stclient.DashboardServer, args: argparse.Namespace):
    import room_scenario  # the lessons it walks through are imported only for this scenario
    return await room_scenario.run_room(
        server, students=args.room_students, lesson_name=args.room_lesson, steps=args.room_steps,
        dwell=args.room_dwell, idle=args.room_idle, seed=args.seed,
        lam_choices=[fmt_lam(x) for x in LAM_GRID if 0.1 <= x <= 10])


def print_room(r, args: argparse.Namespace) -> None:
    """The room scenario's report (``room_scenario.RoomStats``)."""
    def line(name: str, xs: list[float], target: float | None = None) -> str:
        goal = f" (target p95 ≤ {target:g} s)" if target else ""
        return (f"{'':<4}{name:<28} n={len(xs):4d}  p50 {pct(xs, 50):6.2f} s  p95 {pct(xs, 95):6.2f} s  "
                f"max {max(xs, default=float('nan')):6.2f} s{goal}")
    n = args.room_students
    per_min = (r.cpu_follow - r.cpu_idle) / n / (args.room_idle / 60)
    print(f"room: 1 teacher + {n} students, lesson {args.room_lesson}, {args.room_steps} steps of "
          f"{args.room_dwell:g} s, errors {sum(r.errors.values())}")
    print(line("follow (Next → new step)", r.follow, 2))
    print(line("vote → teacher's count", r.vote_count, 2))
    print(line("interactions (vote, λ)", r.interactions, 1))
    print(line("follow polls (fragment)", r.polls))
    print(line("page loads (student link)", r.loads))
    print(f"{'':<4}server CPU: teacher alone {r.cpu_idle:.1f} s, with {n} students following "
          f"{r.cpu_follow:.1f} s in {args.room_idle:g} s → {1e3 * per_min:.0f} ms per following student "
          f"per minute ({100 * per_min * n / 60:.0f}% of a core for the class)")
    for err, count in r.errors.most_common(8):
        print(f"{'':<4}error ×{count}: {err}")


def scenario_list(raw: str) -> list[str]:
    items = [s.strip() for s in raw.split(",") if s.strip()]
    for s in items:
        if not (s.isdigit() and 1 <= int(s) <= 100) and s not in ("heavy", "memory", "room"):
            raise argparse.ArgumentTypeError(f"scenario {s!r}: a student count 1..100, heavy, memory "
                                             "or room")
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=scenario_list, default=scenario_list("1,10,20,heavy,memory"))
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of λ moves per scenario")
    ap.add_argument("--students", type=int, default=20, help="class size of the heavy scenario")
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    ap.add_argument("--memory-students", type=int, default=5)
    ap.add_argument("--memory-marks", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--memory-timeout", type=float, default=900.0)
    ap.add_argument("--page-timeout", type=float, default=RUN_TIMEOUT,
                    help="seconds a heavy page load may take before it counts as failed")
    ap.add_argument("--room-students", type=int, default=30)
    ap.add_argument("--room-lesson", default="phase-transition")
    ap.add_argument("--room-steps", type=int, default=4, help="steps the teacher leads the room through")
    ap.add_argument("--room-dwell", type=float, default=15.0, help="seconds on each step")
    ap.add_argument("--room-idle", type=float, default=30.0,
                    help="seconds of the CPU phases (teacher alone; students only following)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-args", default="",
                    help="extra `opmerge dashboard` flags, as one string: --server-args=--dev")
    ap.add_argument("--profile", metavar="PATH",
                    help="py-spy the server during one scenario; collapsed stacks go to PATH")
    ap.add_argument("--profile-scenario", default="20", help="student count to profile")
    ap.add_argument("--profile-seconds", type=int, default=20)
    ap.add_argument("--profile-mode", choices=("gil", "all"), default="gil",
                    help="gil: only the thread holding the GIL (= the server's CPU); all: every thread")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip loading the home page once per T before the scenarios")
    args = ap.parse_args()
    if not 1 <= args.duration <= 3600 or not 1 <= args.students <= 100 \
            or not 1 <= args.memory_students <= 50 or not 0 <= args.think[0] <= args.think[1] <= 60:
        ap.error("bounds: 1 ≤ duration ≤ 3600, 1 ≤ students ≤ 100, 1 ≤ memory students ≤ 50, "
                 "0 ≤ think ≤ 60")

    print(f"bench_load: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: compare ratios)")
    t0 = time.monotonic()
    server = stclient.DashboardServer(shlex.split(args.server_args))
    print(f"server up in {time.monotonic() - t0:.1f} s at {server.url} (pid {server.proc.pid}), "
          f"RSS {mb(server.rss()[0])}; scenarios: {', '.join(args.scenarios)}, "
          f"{args.duration:g} s each\n")
    base = None
    try:
        if not args.no_warmup:
            loads = asyncio.run(warm_up(server.url))
            print("warm-up home page loads: " + ", ".join(f"T={T} {dt:.1f} s" for T, dt in loads))
        for name in args.scenarios:
            if name == "room":
                print_room(asyncio.run(run_room(server, args)), args)
                continue
            if name == "memory":
                r, rss_at = asyncio.run(run_memory(server, args))
                print_result(r, None)
                for mark in sorted(rss_at):
                    s, k = rss_at[mark]
                    print(f"{'':<34} after {mark:5d} interactions: RSS server {mb(s)}, children {mb(k)}")
                lo, hi = min(rss_at, default=0), max(rss_at, default=0)
                if lo != hi:
                    print(f"{'':<34} RSS ratio {hi}/{lo}: {rss_at[hi][0] / rss_at[lo][0]:.2f} "
                          f"(target ≤ 1.3)")
                continue
            heavy = name == "heavy"
            r = asyncio.run(run_class(server, args.students if heavy else int(name), args, heavy))
            if name == "1":
                base = r
            print_result(r, base)
    finally:
        server.stop()
    t = psutil.Process().cpu_times()
    print(f"\nthis client used {t.user + t.system:.0f} s of CPU in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
