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
