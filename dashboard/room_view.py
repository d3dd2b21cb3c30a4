"""Rooms in the dashboard: join by link or code, follow the teacher, vote; the teacher's panel and QR.

The frame calls, on every script run: ``enter(nav)`` first, before the lesson step of the URL is
applied (a ``?room=CODE[&key=KEY]`` URL joins; a student following the teacher gets the teacher's
lesson step written into the URL, so the same run shows it), ``sidebar(nav)`` in the sidebar (join by
code, start a room, follow / leave) and ``main()`` above the page (a student's banner and follow
poll, or the teacher's panel). ``nav`` is how rooms see lessons without importing their view: where
this session is (lesson name, step) and how to open a step. The question panel of a lesson step calls
``poll(lesson, step, choices)`` for the vote / reveal / counts of that question in a room. The teacher
moves through the lesson with the lesson bar (Previous / Next, ←/→); the room follows the teacher.

Following is cheap: a student's ``_follow`` fragment reruns every ``FOLLOW_S`` seconds, reads one row
(the room's lesson, step, revision) and reruns the whole page only when the revision changed. The
teacher's view drives the room: each of the teacher's runs moves the room to the lesson step the
teacher is on. Every room action goes through ``opmerge_core.store.rooms`` (SQLite, shared by every
server process); the teacher key is only ever compared there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from opmerge_core.figures.room import votes_bar
from opmerge_core.store import rooms
from opmerge_core.store.rooms import RateLimit, Room, RoomError, RoomStore
from opmerge_core.store.runstore import StoreError, default_path
from opmerge_dashboard import jobs, presentation, room_links, untrusted
from opmerge_dashboard.output import plotly_config
from opmerge_dashboard.params import ERROR, WARN, keep_in_url

FOLLOW_S = 1.0            # a student's follow poll (one row read); ≤ 2 s from advance to new step
TEACHER_POLL_S = 1.0      # the teacher's live counts and connected count
PRESENCE_EVERY = 10.0     # seconds between a student's "I am here" writes (connected: seen ≤ 30 s ago)
# per session: (actions per second on average, burst)
LIMITS = {"vote": (1.0, 6), "join": (0.2, 5), "create": (1 / 60, 3), "teacher": (2.0, 10)}

_ROOM = "_room"           # session state: the Membership of this session, if any
_REV = "_room_rev"        # the room revision this session last followed
_GOTO = "_room_goto"      # a pending move to the teacher's step (done by the next full run)
_SEEN = "_room_seen"      # when this session last wrote its presence
FOLLOW = "room_follow"    # widget key: follow the teacher (students)
JOIN_SCREEN = "room_join_screen"   # widget key: the teacher's full-size QR code
JOIN_QR_PX = 500          # the join screen's QR code: 37 modules of 13.5 px on a 1280×720 projector


@dataclass(frozen=True)
class Membership:
    room_id: int
    code: str
    key: str | None       # the teacher key, only in a teacher's session (checked when it joined)

    @property
    def teacher(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class Nav:
    """This session's place in the lessons and how to move it (given by the frame)."""

    here: tuple[str, int] | None                       # (lesson name, 1-based step), None off a lesson
    go: Callable[[str, int], None] | None = None       # open step k of a lesson (in this run)


NOWHERE = Nav(None)


def store() -> RoomStore:
    """This server process's connection to the rooms (in ``$OPMERGE_HOME/runs.sqlite``; it follows a
    changed ``OPMERGE_HOME``, as the compute backend's run store does). ``StoreError`` if unusable."""
    return _store(str(default_path()))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RoomStore:
    return RoomStore(path)


# ---- the session's room -----------------------------------------------------------------------------
def membership() -> Membership | None:
    return st.session_state.get(_ROOM)


def session_room() -> Room | None:
    """The room this browser session is in (None if none, or if it has expired). For other features
    that act per room, e.g. the room's jobs that its teacher may see and cancel."""
    m = membership()
    return store().get(m.room_id) if m else None


def job_group() -> str | None:
    """The group this session's runs are tagged with on the compute backend: its room, whose teacher
    sees and may cancel them (``jobs.room_runs``)."""
    m = membership()
    return f"room-{m.room_id}" if m else None


def is_teacher() -> bool:
    """Whether this session holds its room's teacher key."""
    m = membership()
    return bool(m and m.teacher)


def _token() -> str:
    """This browser session's random token (only its salted hash per room is ever stored)."""
    return st.session_state.setdefault("_room_token", rooms.new_session_token())


def _allow(action: str) -> bool:
    """Per-session rate limit; a refused action is counted in the log."""
    limits = st.session_state.setdefault("_room_limits", {})
    if action not in limits:
        limits[action] = RateLimit(*LIMITS[action])
    if limits[action].allow():
        return True
    rooms.ignored(f"{action} rate limit")
    return False


def _leave(message: str | None = None) -> None:
    for key in (_ROOM, _REV, _GOTO, _SEEN):
        st.session_state.pop(key, None)
    for key in ("room", "key"):
        st.query_params.pop(key, None)
    if message:
        st.session_state["_room_message"] = message


def _join(code: str, key: str | None, nav: Nav) -> None:
    """Join ``code`` (as its teacher if ``key`` is its key). Messages for the page, never exceptions."""
    if not _allow("join"):
        st.session_state["_room_message"] = "Too many attempts to join: wait a few seconds and try again."
        return
    try:
        room = store().find(code)
    except (RoomError, StoreError) as exc:      # a bad store is one message too
        _leave(f"Cannot join: {exc}.")
        return
    teacher = bool(key) and store().is_teacher(room, key)
    if key and not teacher:
        rooms.ignored("wrong teacher key", room.code)
        st.session_state["_room_message"] = (f"Wrong teacher key for room {room.code}: you are in the room "
                                             "as a student. Use the teacher link exactly as it was printed.")
    st.session_state[_ROOM] = Membership(room.id, room.code, key if teacher else None)
    st.session_state[JOIN_SCREEN] = teacher and not room.revision     # a new room: let the class join
    st.session_state[_REV] = None
    st.session_state[FOLLOW] = True
    # a student goes to the teacher's step; so does a teacher who opens the link off a lesson
    st.session_state[_GOTO] = bool(room.lesson) and (not teacher or nav.here is None)


def _go(nav: Nav, lesson: str, step: int) -> None:
    """Open ``step`` of ``lesson`` in this session (the lessons apply it later in this run)."""
    if nav.go is None:
        return
    try:
        nav.go(lesson, step)
    except ValueError as exc:                     # the lesson vanished or changed on the server
        st.session_state["_room_message"] = f"Cannot open the teacher's step: {exc}"


# ---- every run ------------------------------------------------------------------------------------------
def enter(nav: Nav = NOWHERE) -> None:
    """First thing in a run: join from the URL, keep the URL in step, and carry out a pending move to
    the teacher's step (students following; a teacher re-opening the link)."""
    code, key = st.query_params.get("room"), st.query_params.get("key")
    m = membership()
    if code and (m is None or code.upper() != m.code or (key and key != m.key)):
        _join(code, key, nav)
        m = membership()
    if m is None:
        return
    keep_in_url("room", m.code)                     # page switches drop unknown parameters
    if m.teacher:
        keep_in_url("key", m.key)
    else:
        st.query_params.pop("key", None)
    try:
        pos = store().position(m.room_id)
    except StoreError as exc:                      # the page still draws; the room says why it cannot
        st.session_state["_room_message"] = f"The room cannot be reached: {exc}"
        return
    if pos is None:
        _leave(f"Room {m.code} has expired.")
        return
    if m.teacher:
        _drive(m, pos, nav.here)
    else:
        _track(pos, nav.here)
    if st.session_state.pop(_GOTO, False) and pos.lesson and nav.here != (pos.lesson, pos.step):
        _go(nav, pos.lesson, pos.step)


def _drive(m: Membership, pos: rooms.Position, here: tuple[str, int] | None) -> None:
    """A teacher's run: the room goes where the teacher's view is (a lesson step)."""
    if here is None or here == (pos.lesson, pos.step) or pos.closed or st.session_state.get(_GOTO):
        return
    try:
        store().move(store().get(m.room_id), m.key, *here)
    except (RoomError, StoreError) as exc:      # a bad store is one message too
        st.session_state["_room_message"] = str(exc)


def _track(pos: rooms.Position, here: tuple[str, int] | None) -> None:
    """A student's run: a new teacher revision means "go there" if following; a student who left the
    teacher's step on their own has stopped following."""
    if not st.session_state.get(FOLLOW, True) or not pos.lesson:
        st.session_state[_REV] = pos.revision
        return
    if pos.revision != st.session_state.get(_REV):
        st.session_state[_REV] = pos.revision
        st.session_state[_GOTO] = True
    elif not st.session_state.get(_GOTO) and here != (pos.lesson, pos.step):
        st.session_state[FOLLOW] = False           # wandered off: "Follow the teacher" brings them back


# ---- sidebar ---------------------------------------------------------------------------------------------
def sidebar(nav: Nav = NOWHERE) -> None:
    m = membership()
    if m is None:
        with st.expander("Join a class", icon=":material/groups:"), st.form("room_join", border=False):
            code = st.text_input("Room code", max_chars=12, placeholder="e.g. K7QM2X", key="room_code")
            if st.form_submit_button("Join", icon=":material/login:"):
                _join(code, None, nav)
                st.rerun()
        with st.expander("Lead a class", icon=":material/co_present:"):
            st.caption("Start a room: students join with its code or QR code, follow your steps and vote.")
            if st.button("Start a room", key="room_create", icon=":material/add:"):
                _create(nav)
        return
    if m.teacher:
        st.markdown(f"**You lead room {m.code}**")
    else:
        st.markdown(f"**In room {m.code}**")
        st.toggle("Follow the teacher", key=FOLLOW, on_change=_follow_changed)
    if st.button("Leave the room", key="room_leave", icon=":material/logout:"):
        _leave()
        st.rerun()


def _follow_changed() -> None:
    if st.session_state.get(FOLLOW):
        st.session_state[_GOTO] = True


def _create(nav: Nav) -> None:
    if not _allow("create"):
        st.session_state["_room_message"] = "Too many rooms started from this session: wait a minute."
        st.rerun()
    try:
        lesson, step = nav.here or ("", 1)
        room, key = store().create(lesson, step=step)
    except (RoomError, StoreError) as exc:      # a bad store is one message too
        st.session_state["_room_message"] = str(exc)
        st.rerun()
    st.session_state[_ROOM] = Membership(room.id, room.code, key)
    st.session_state[JOIN_SCREEN] = True
    st.rerun()


# ---- above the page ---------------------------------------------------------------------------------------
def main() -> bool:
    """Above the page: messages, then a student's banner (the follow poll) or the teacher's panel.
    Returns True when the teacher's join screen is up: then the frame draws nothing else."""
    message = st.session_state.pop("_room_message", None)
    if message:
        st.warning(untrusted.text(message, limit=400), icon=WARN)      # it may quote a typed code
    m = membership()
    if m is None:
        return False
    st.html(CSS)
    try:
        if m.teacher:
            return teacher_panel(m)
        with st.container(key="room_banner"):
            _follow()
    except StoreError:                             # said above (enter): the page draws without the room
        pass
    return False


@st.fragment(run_every=FOLLOW_S)
def _follow() -> None:
    """A student's banner and the follow poll: one row read; the page reruns only on a new revision."""
    m = membership()
    if m is None:
        return
    try:
        pos = store().position(m.room_id)
    except StoreError:                             # the page says why (enter)
        return
    now = time.monotonic()
    if pos is None or pos.revision != st.session_state.get(_REV):
        st.rerun()                                    # enter() decides: follow, or leave an expired room
    if now - st.session_state.get(_SEEN, -PRESENCE_EVERY) >= PRESENCE_EVERY:
        st.session_state[_SEEN] = now
        store().seen(store().get(m.room_id), _token())
    if pos.closed:
        st.info(f"Room {m.code} is closed. Thank you! You can keep exploring on your own.",
                icon=":material/door_front:")
        return
    where = f"step {pos.step} of *{pos.lesson}*" if pos.lesson else "not in a lesson yet"
    if st.session_state.get(FOLLOW, True):
        st.caption(f":material/groups: Room **{m.code}** · following the teacher ({where})")
    else:
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.caption(f":material/groups: Room **{m.code}** · the teacher is at {where}")
        if right.button("Follow the teacher", key="room_follow_again", icon=":material/my_location:"):
            st.session_state[FOLLOW] = True
            st.session_state[_GOTO] = True
            st.rerun()


# ---- a question in a room ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Poll:
    """What the question panel of a step needs in a room (None from ``poll`` when solo)."""

    vote: Callable[[str], None] | None   # a student's vote, while it may still change; else None
    revealed: bool
    counts: dict[str, int] | None  # the class's votes: live for the teacher, after the reveal for students
    mine: str | None             # this session's vote


def poll(lesson: str, step: int, choices: tuple[str, ...]) -> Poll | None:
    """The room's side of the question at (lesson, step) for this session, or None (solo mode: not in
    a room, or a student away from the teacher's step)."""
    m = membership()
    if m is None:
        return None
    pos = store().position(m.room_id)
    if pos is None or (pos.lesson, pos.step) != (lesson, step):
        return None
    counts = store().counts(m.room_id, lesson, step)
    if m.teacher:
        return Poll(None, pos.revealed, counts, None)
    room = store().get(m.room_id)
    mine = store().my_vote(room, _token(), lesson, step) if room else None

    def vote(choice: str) -> None:
        _vote(lesson, step, choice, choices)

    open_ = not (pos.revealed or pos.closed)
    return Poll(vote if open_ else None, pos.revealed, counts if pos.revealed else None, mine)


def _vote(lesson: str, step: int, choice: str, choices: tuple[str, ...]) -> None:
    m = membership()
    if m is None:
        return
    if not _allow("vote"):
        st.toast("Too many votes at once: the last one was not counted.", icon=WARN)
        return
    room = store().get(m.room_id)
    try:
        if room is None:
            raise RoomError("the room has expired")
        store().vote(room, _token(), lesson, step, choice, choices)
    except (RoomError, StoreError) as exc:      # a bad store is one message too
        st.toast(str(exc), icon=ERROR)


# ---- the teacher --------------------------------------------------------------------------------------
def links(code: str, key: str) -> tuple[str, str, bool]:
    """(student link, teacher link, whether the base is only reachable from this computer)."""
    from opmerge_dashboard.frame import PAGES
    base = room_links.configured_base() or room_links.base_from_browser(
        st.context.url, tuple(u for *_, u in PAGES)) or room_links.DEFAULT_BASE
    return room_links.student_link(base, code), room_links.teacher_link(base, code, key), \
        room_links.loopback(base)


@st.cache_data(show_spinner=False, max_entries=64)
def qr(link: str) -> bytes:
    return room_links.qr_png(link)


def teacher_panel(m: Membership) -> bool:
    """The room's code and link, the live counts, back / reveal / next / close; or the join screen
    (True)."""
    room = store().get(m.room_id)
    if room is None:
        return False
    student, teacher, local = links(m.code, m.key)
    with st.container(key="room_teacher", border=True):
        head, toggle = st.columns([4, 1], vertical_alignment="center")
        head.markdown(f"<p class='room-head'>Room <b>{m.code}</b> · <span class='room-url'>{student}"
                      "</span></p>", unsafe_allow_html=True)
        joining = toggle.toggle("Join screen", key=JOIN_SCREEN, help="The QR code and the code, full size, "
                                "for the class to join. Turn it off to teach.")
        if joining:
            join_screen(m.code, student)
        else:
            _live(m.room_id)
            _actions(m, room, student, teacher)
    if local:
        st.warning("This student link only works on this computer: serve the dashboard with "
                   "`--address 0.0.0.0 --public-url http://ADDRESS:8501` and open it by that address "
                   "(README: Leading a class).", icon=WARN)
    return joining


def join_screen(code: str, student: str) -> None:
    """The QR code as large as a 1280×720 projector allows, with the code and the link in text."""
    left, right = st.columns([3, 2], vertical_alignment="center", gap="medium")
    left.image(qr(student), width=JOIN_QR_PX)
    right.markdown(f"<div class='room-join'><p>Join the class</p><p class='room-code'>{code}</p>"
                   f"<p class='room-url'>{student}</p><p>Scan the code, or open the dashboard and type "
                   f"<b>{code}</b> under <i>Join a class</i> in the sidebar.</p></div>",
                   unsafe_allow_html=True)


def _actions(m: Membership, room: Room, student: str, teacher: str) -> None:
    """Reveal / close / links. (The teacher moves on with the lesson bar: the room follows.)"""
    if room.closed:
        st.info(f"This room is closed. Its record: `opmerge room show {m.code} --key …`.")
        return
    reveal, close, share, runs = st.columns(4, vertical_alignment="center")
    pos = store().position(room.id)
    if reveal.button("Revealed" if pos and pos.revealed else "Reveal the answer", key="room_reveal",
                     icon=":material/visibility:", type="primary", width="stretch",
                     disabled=not room.lesson or pos is None or pos.revealed):
        _teacher_act(lambda: store().reveal(room, m.key))
    with close.popover("Close the room", icon=":material/door_front:", width="stretch"):
        st.markdown("Students are told the room is closed; votes stop. The record stays until the room "
                    "expires.")
        if st.button("Close it for everyone", key="room_close", type="primary"):
            _teacher_act(lambda: store().close_room(room, m.key))
    with share.popover("Links", icon=":material/qr_code_2:", width="stretch"):
        st.image(qr(student), width=280)
        st.markdown("Student link")
        st.code(student, language=None)
        st.markdown("Teacher link — **keep it private**: it holds the teacher key")
        st.code(teacher, language=None)
    with runs.popover("Runs", icon=":material/model_training:", width="stretch"):
        jobs.room_runs(job_group())


def _teacher_act(action) -> None:
    if not _allow("teacher"):
        return
    try:
        action()
    except (RoomError, StoreError) as exc:      # a bad store is one message too
        st.session_state["_room_message"] = str(exc)
    st.rerun()


@st.fragment(run_every=TEACHER_POLL_S)
def _live(room_id: int) -> None:
    """Connected students and the live votes on the current step's question (polled)."""
    pos = store().position(room_id)
    if pos is None:
        return
    counts = store().counts(room_id, pos.lesson, pos.step)
    numbers, chart = st.columns([1, 3], vertical_alignment="center")
    numbers.metric("Connected", store().connected(room_id))
    numbers.metric("Votes", sum(counts.values()))
    step = _step(pos.lesson, pos.step)
    with chart:
        if step is None or step.question is None:
            st.caption("No question at this step." if pos.lesson else
                       "Open a lesson: the class follows your steps.")
            return
        question = step.question
        st.markdown(f"**{question.prompt}**" + (" · *revealed*" if pos.revealed else ""))
        fig = votes_bar(question.choices, counts, correct=_correct(step) if pos.revealed else None,
                        font_size=24 if presentation.active() else 18)
        st.plotly_chart(fig, key="room_votes", config=plotly_config("room_votes"))


def _step(lesson: str, k: int):
    """Step ``k`` of ``lesson`` (lessons.Step), or None if there is no such step."""
    if not lesson:
        return None
    from opmerge_dashboard import lessons
    try:
        return lessons.load(lesson).steps[k - 1]
    except (ValueError, IndexError):
        return None


def _correct(step) -> str | None:
    """The engine's answer to the step's question (None while it computes or if it cannot)."""
    from opmerge_dashboard import lesson_view  # imports this module: import here, not at the top
    try:
        answer = lesson_view.answer(step)
    except ValueError:
        return None
    return answer.correct if answer is not None else None


CSS = """<style>
  /* polled every second: never fade the panel out while a poll runs (slow server) */
  .st-key-room_teacher [data-stale="true"], .st-key-room_banner [data-stale="true"] {
    opacity: 1 !important; transition: none !important; }
  .room-head { font-size: 1.3rem; margin: 0; }
  .room-head b { font-family: ui-monospace, monospace; letter-spacing: 0.15rem; color: #0072B2; }
  .room-url { font-family: ui-monospace, monospace; word-break: break-all; }
  .room-join p { font-size: 1.5rem; margin: 0.3rem 0; }
  .room-join .room-code { font-size: 3.6rem; font-weight: 800; letter-spacing: 0.1rem; color: #0072B2;
                          font-family: ui-monospace, monospace; line-height: 1.1; }
  .room-join .room-url { font-size: 1.25rem; }
</style>"""
