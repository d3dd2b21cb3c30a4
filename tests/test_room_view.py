"""Rooms in the dashboard (AppTest): the teacher link shows the teacher's controls and the student link
none; a wrong key joins as a student and changes nothing; bad codes are one-line messages; joining by
code in the sidebar; closing; an expired room."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_core.store.rooms import RoomStore

APP = "../dashboard/app.py"          # relative to this file
TEACHER_BUTTONS = {"room_reveal", "room_close"}


@pytest.fixture
def store():
    with RoomStore() as s:           # the test session's OPMERGE_HOME (tests/conftest.py), as the app's
        yield s


def open_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def buttons(at: AppTest) -> set[str]:
    return {b.key for b in at.button}


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("warning", "info", "caption", "markdown")
                    for e in getattr(at, kind))


def teacher_view(room, key) -> AppTest:
    """The teacher link; a new room opens on the join screen, turned off here to teach."""
    at = open_app(room=room.code, key=key)
    if at.toggle(key="room_join_screen").value:
        at.toggle(key="room_join_screen").set_value(False).run()
    assert not at.exception
    return at


def test_teacher_link_opens_on_the_join_screen_then_shows_the_controls(store):
    room, key = store.create()
    at = open_app(room=room.code, key=key)
    assert at.toggle(key="room_join_screen").value and len(at.get("image")) == 1   # the QR code
    assert room.code in texts(at) and not at.get("plotly_chart")   # the join screen replaces the page
    at.toggle(key="room_join_screen").set_value(False).run()
    assert TEACHER_BUTTONS <= buttons(at)
    assert {m.label: m.value for m in at.metric}["Connected"] == "0"
    assert at.query_params["key"] == key                # reload-safe: the key stays in the URL


def test_student_link_has_no_teacher_controls(store):
    room, _ = store.create()
    at = open_app(room=room.code.lower())
    assert not TEACHER_BUTTONS & buttons(at) and "room_leave" in buttons(at)
    assert f"Room **{room.code}** · following the teacher" in texts(at)
    assert not any(m.label == "Connected" for m in at.metric)


def test_wrong_key_joins_as_a_student_and_changes_nothing(store):
    room, key = store.create()
    at = open_app(room=room.code, key=key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not TEACHER_BUTTONS & buttons(at)
    assert "Wrong teacher key" in texts(at)
    assert "key" not in at.query_params                     # the wrong key is not kept
    assert store.get(room.id) == room


@pytest.mark.parametrize("code, message", [("NOPE", "is not a room code"), ("ZZZZZ2", "no room ZZZZZ2")])
def test_bad_codes_are_messages(store, code, message):
    at = open_app(room=code)
    assert message in texts(at) and "room_leave" not in buttons(at)
    assert "room" not in at.query_params


def test_join_by_code_in_the_sidebar_and_leave(store):
    room, _ = store.create()
    at = open_app()
    at.text_input(key="room_code").input(f"{room.code[:3]} {room.code[3:]}".lower())
    at.button[[b.key for b in at.button].index("FormSubmitter:room_join-Join")].click().run()
    assert not at.exception and "room_leave" in buttons(at)
    assert at.query_params["room"] == room.code
    at.button(key="room_leave").click().run()
    assert "room_leave" not in buttons(at) and "room" not in at.query_params


def test_teacher_closes_the_room(store):
    room, key = store.create()
    at = teacher_view(room, key)
    at.button(key="room_close").click().run()
    assert not at.exception and store.get(room.id).closed
    assert "room_reveal" not in buttons(at) and "This room is closed" in texts(at)
    student = open_app(room=room.code)
    assert "is closed" in texts(student)


def test_expired_room_is_left_with_a_message(store, monkeypatch):
    room, _ = store.create(hours=1)
    at = open_app(room=room.code)
    store._exec("UPDATE rooms SET expires = 0 WHERE id = ?", (room.id,))
    at.run()
    assert not at.exception and "has expired" in texts(at) and "room_leave" not in buttons(at)


LESSON, STEP = "phase-transition", 4          # a step on the default page with a question


def vote_key() -> str:
    return f"lq_{LESSON}_{STEP}"


def student_at_step(room) -> AppTest:
    at = open_app(room=room.code)
    assert at.query_params["lesson"] == LESSON and at.query_params["step"] == str(STEP)   # followed
    assert vote_key() in {r.key for r in at.radio}
    return at


def test_votes_from_the_page_one_per_session_changeable_until_the_reveal(store):
    room, key = store.create(LESSON, step=STEP)
    a, b = student_at_step(room), student_at_step(room)
    a.radio(key=vote_key()).set_value("boot").run()
    b.radio(key=vote_key()).set_value("boot").run()
    assert store.counts(room.id, LESSON, STEP) == {"boot": 2}
    b.radio(key=vote_key()).set_value("vanilla").run()          # b changes their mind
    assert store.counts(room.id, LESSON, STEP) == {"boot": 1, "vanilla": 1}
    teacher = teacher_view(room, key)
    assert {m.label: m.value for m in teacher.metric}["Votes"] == "2"
    assert teacher.radio(key=vote_key()).disabled                 # the teacher does not vote
    teacher.button(key="room_reveal").click().run()
    assert not teacher.exception and store.position(room.id).revealed
    assert teacher.button(key="room_reveal").disabled                 # revealed once, for good
    a.run()                                                       # the next poll: revealed
    assert a.radio(key=vote_key()).disabled
    assert any("Answer:" in str(x.value) for x in [*a.success, *a.info])
    assert store.counts(room.id, LESSON, STEP) == {"boot": 1, "vanilla": 1}


def test_a_flood_of_votes_is_rate_limited_and_never_double_counted(store):
    from opmerge_core.store import rooms
    room, _ = store.create(LESSON, step=STEP)
    at = student_at_step(room)
    # this session's bucket: 3 votes, no refill (so the test does not depend on the machine's speed)
    at.session_state["_room_limits"] = {"vote": rooms.RateLimit(rate=0.0, burst=3)}
    before = rooms.IGNORED["vote rate limit"]
    for i in range(10):
        at.radio(key=vote_key()).set_value(("boot", "vanilla")[i % 2]).run()
    assert rooms.IGNORED["vote rate limit"] == before + 7         # refused and counted in the log
    assert store.counts(room.id, LESSON, STEP) == {"boot": 1}     # the 3rd vote (boot) stood
