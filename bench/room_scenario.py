"""The room scenario of the load benchmark (``bench_load.py --scenarios room``): one teacher and N
students in a room on one `opmerge dashboard`, following the teacher through a lesson and voting.

Phases, on the server the driver started:

1. The room is created in the server's store (as `opmerge room create --lesson L` does); the teacher
   opens the teacher link at step 1 and turns the join screen off. **Idle baseline**: the teacher alone
   for ``idle`` seconds (server CPU).
2. N students open the student link (a new session each, staggered over ~3 s) and follow to step 1.
   **Following**: nobody acts for ``idle`` seconds while every student's follow fragment polls, as the
   browser does (``auto_rerun`` intervals). Server CPU per following student per minute =
   (CPU in this phase − CPU in the baseline) / N / minutes.
3. **Class**: the teacher leads ``steps`` steps: ``dwell`` seconds on each (the teacher's live panel
   polled), then Reveal (if the step asks a question) and the lesson bar's Next. Students answer each
   question once after 1–6 s of thought (a fifth change their mind once), and move λ now and then
   where the page has it.

Measured: follow latency (the teacher's Next sent → a student's full page run shows the lesson bar at
the new step), vote → count latency (a student's vote sent → the teacher's live panel shows a total
that includes it; votes ordered by when they finished), ordinary interactions (votes, λ moves: send →
script_finished), the follow polls themselves, and errors (exceptions, st.error, timeouts, a student
who never saw a step).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import stclient

from opmerge_core.store.rooms import RoomStore
from opmerge_dashboard import lessons

STEP_SHOWN = re.compile(r"lesson-where'>.*? · step (\d+) of (\d+)")
VOTES_SHOWN = re.compile(r"^Votes: (\d+)$")
RUN_TIMEOUT = 120.0             # one script run, seconds
FOLLOW_TIMEOUT = 30.0           # a student who has not shown a step this long after Next: an error


@dataclass
class RoomStats:
    follow: list[float] = field(default_factory=list)          # seconds, one per (student, advance)
    vote_count: list[float] = field(default_factory=list)      # seconds, one per counted vote
    interactions: list[float] = field(default_factory=list)    # votes and λ moves
    polls: list[float] = field(default_factory=list)           # follow fragment runs
    loads: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    advanced: dict[int, float] = field(default_factory=dict)   # step -> when the teacher's Next was sent
    shown: dict[int, list[float]] = field(default_factory=dict)  # step -> when students showed it
    votes: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # step -> (sent, finished)
    counts: dict[int, list[tuple[float, int]]] = field(default_factory=dict)   # step -> (seen at, total)
    cpu_idle: float = 0.0
    cpu_follow: float = 0.0

    def check(self, run: stclient.Run, what: str) -> None:
        for err in run.errors:
            self.errors[f"{what}: {err}"[:120]] += 1
        if not run.ok and not run.errors:
            self.errors[f"{what}: finished {run.status}"] += 1


def step_shown(texts: list[str]) -> int | None:
    for text in texts:
        if m := STEP_SHOWN.search(text):
            return int(m.group(1))
    return None


class Tab:
    """One browser tab: a session plus the browser's fragment timers (``auto_rerun``)."""

    def __init__(self, session: stclient.Session, stats: RoomStats) -> None:
        self.session, self.stats = session, stats
        self.due: dict[str, float] = {}

    def next_poll(self) -> float:
        now = time.monotonic()
        for fid, interval in self.session.auto_reruns.items():
            self.due.setdefault(fid, now + interval)
        for fid in [f for f in self.due if f not in self.session.auto_reruns]:
            del self.due[fid]
        return min(self.due.values(), default=now + 1.0)

    async def poll_due(self) -> list[stclient.Run]:
        runs, now = [], time.monotonic()
        for fid in [f for f, t in self.due.items() if t <= now]:
            interval = self.session.auto_reruns.get(fid)
            if interval is None:
                continue
            self.due[fid] = max(self.due[fid] + interval, now)   # the browser's setInterval
            runs.append(await self.session.fragment_rerun(fid, timeout=RUN_TIMEOUT))
        return runs


async def sleep_until(t: float, stop: asyncio.Event) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def student(url: str, code: str, lesson: lessons.Lesson, rng: random.Random, stats: RoomStats,
                  active: asyncio.Event, stop: asyncio.Event, lam_choices: list[str]) -> None:
    session = await stclient.connect(url, "", f"room={code}", timeout=RUN_TIMEOUT)
    stats.loads.append(session.first.elapsed)
    stats.check(session.first, "student load")
    tab, shown = Tab(session, stats), None
    voted: dict[int, int] = {}                    # step -> votes sent (a fifth change their mind once)
    plan_vote: dict[int, float] = {}
    next_move = time.monotonic() + rng.uniform(5, 15)

    def note(run: stclient.Run) -> None:
        nonlocal shown
        step = step_shown(session.texts) if run.full else None
        if step is not None and step != shown:
            shown = step
            stats.shown.setdefault(step, []).append(time.monotonic())

    note(session.first)
    try:
        while not stop.is_set():
            now = time.monotonic()
            question = lesson.steps[shown - 1].question if shown else None
            if active.is_set() and question is not None and shown not in plan_vote:
                plan_vote[shown] = now + rng.uniform(1, 6)
            vote_at = plan_vote.get(shown, float("inf")) if active.is_set() and question else float("inf")
            move_at = next_move if active.is_set() else float("inf")
            await sleep_until(min(tab.next_poll(), vote_at, move_at), stop)
            if stop.is_set():
                break
            for run in await tab.poll_due():
                stats.polls.append(run.elapsed)
                stats.check(run, "follow poll")
                note(run)
            now = time.monotonic()
            key = f"lq_{lesson.name}_{shown}"
            if now >= vote_at and key in session.widget_ids and question is not None:
                label = rng.choice([lab for _, lab in question.choices])
                run = await session.rerun({key: stclient.radio(label)}, timeout=RUN_TIMEOUT)
                stats.interactions.append(run.elapsed)
                stats.check(run, "vote")
                if shown not in voted:
                    stats.votes.setdefault(shown, []).append((now, time.monotonic()))
                voted[shown] = voted.get(shown, 0) + 1
                again = voted[shown] == 1 and rng.random() < 0.2
                plan_vote[shown] = time.monotonic() + rng.uniform(2, 5) if again else float("inf")
                note(run)
            elif now >= move_at:
                next_move = now + rng.uniform(5, 15)
                if "lam" in session.widget_ids:
                    run = await session.rerun({"lam": stclient.select_slider(rng.choice(lam_choices))},
                                              timeout=RUN_TIMEOUT)
                    stats.interactions.append(run.elapsed)
                    stats.check(run, "λ move")
                    note(run)
    except stclient.StreamlitClientError as exc:
        stats.errors[f"student: {exc}"[:120]] += 1
    finally:
        await session.close()


async def teacher_poll(tab: Tab, stats: RoomStats, step: int, until: float) -> None:
    """Keep the teacher's live panel polled until ``until``; record the vote totals it shows."""
    while time.monotonic() < until:
        await sleep_until(min(tab.next_poll(), until), asyncio.Event())
        for run in await tab.poll_due():               # the panel's fragment among others (the Runs list)
            stats.check(run, "teacher poll")
            for text in run.texts:
                if m := VOTES_SHOWN.match(text):
                    stats.counts.setdefault(step, []).append((time.monotonic(), int(m.group(1))))


async def run_room(server: stclient.DashboardServer, *, students: int, lesson_name: str, steps: int,
                   dwell: float, idle: float, seed: int, lam_choices: list[str]) -> RoomStats:
    lesson = lessons.load(lesson_name)
    steps = min(steps, len(lesson.steps))
    with RoomStore(Path(server.home) / "runs.sqlite") as store:
        room, key = store.create(lesson.name)
    stats, rng = RoomStats(), random.Random(seed)
    teacher = await stclient.connect(server.url, "",
                                     f"room={room.code}&key={key}&lesson={lesson.name}&step=1",
                                     timeout=RUN_TIMEOUT)
    stats.check(teacher.first, "teacher load")
    if "room_join_screen" in teacher.widget_ids:
        stats.check(await teacher.rerun({"room_join_screen": stclient.toggle(False)}), "teacher")
    tab = Tab(teacher, stats)

    cpu0 = server.cpu()                                     # 1. the teacher alone
    await teacher_poll(tab, stats, 0, time.monotonic() + idle)
    stats.cpu_idle = server.cpu() - cpu0

    active, stop = asyncio.Event(), asyncio.Event()         # 2. students join and follow
    tasks = []
    for _ in range(students):
        tasks.append(asyncio.create_task(student(server.url, room.code, lesson, random.Random(rng.random()),
                                                 stats, active, stop, lam_choices)))
        await asyncio.sleep(3.0 / students)
    deadline = time.monotonic() + 120
    while len(stats.shown.get(1, [])) < students and time.monotonic() < deadline:
        await teacher_poll(tab, stats, 0, time.monotonic() + 1.0)
    if len(stats.shown.get(1, [])) < students:
        stats.errors[f"only {len(stats.shown.get(1, []))}/{students} students reached step 1"] += 1
    cpu0 = server.cpu()
    await teacher_poll(tab, stats, 0, time.monotonic() + idle)
    stats.cpu_follow = server.cpu() - cpu0

    active.set()                                            # 3. the class
    for k in range(1, steps + 1):
        await teacher_poll(tab, stats, k, time.monotonic() + dwell)
        if lesson.steps[k - 1].question is not None and "room_reveal" in teacher.widget_ids:
            stats.check(await teacher.rerun({"room_reveal": stclient.click()}), "teacher reveal")
            await teacher_poll(tab, stats, k, time.monotonic() + 2.0)
        if k < steps:
            stats.advanced[k + 1] = time.monotonic()
            stats.check(await teacher.rerun({"lesson_next": stclient.click()}), "teacher next")
    await teacher_poll(tab, stats, steps, time.monotonic() + 3.0)
    stop.set()
    await asyncio.gather(*tasks)
    await teacher.close()
    _latencies(stats, students)
    return stats


def _latencies(stats: RoomStats, students: int) -> None:
    for step, sent in stats.advanced.items():
        seen = sorted(t - sent for t in stats.shown.get(step, []) if t >= sent)
        stats.follow += [dt for dt in seen if dt <= FOLLOW_TIMEOUT]
        if len(seen) < students:
            stats.errors[f"step {step}: {students - len(seen)} students never showed it"] += 1
    for step, votes in stats.votes.items():
        counts = stats.counts.get(step, [])
        for i, (sent, _) in enumerate(sorted(votes, key=lambda v: v[1]), start=1):
            seen = next((t for t, n in counts if n >= i and t >= sent), None)
            if seen is None:
                stats.errors[f"step {step}: vote {i} never counted on the teacher's panel"] += 1
            else:
                stats.vote_count.append(seen - sent)
