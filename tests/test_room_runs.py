"""A room's teacher sees and cancels the room's runs (AppTest, two sessions of one server): a student's
training is tagged with the room; the teacher's panel lists it and Cancel all stops it."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from opmerge_dashboard.backend import backend

APP = "../dashboard/app.py"


def test_the_teacher_sees_and_cancels_the_rooms_runs():
    teacher = AppTest.from_file(APP, default_timeout=120).run()
    teacher.button(key="room_create").click().run()                # "Start a room" from the sidebar
    assert not teacher.exception, teacher.exception
    room = teacher.session_state["_room"]
    teacher.toggle(key="room_join_screen").set_value(False).run()

    student = AppTest.from_file(APP, default_timeout=120)
    student.query_params["room"] = room.code
    student.run()
    student.switch_page("app_pages/train.py").run()
    student.select_slider(key="tr_steps").set_value(5000).run()      # long enough to be seen running
    student.button(key="tr_start").click().run()
    assert not student.exception, student.exception
    group = f"room-{room.room_id}"
    runs = backend().jobs(group=group)
    assert len(runs) == 1 and runs[0].id == student.session_state["tr_job"]

    teacher.run()
    listed = " ".join(m.value for m in teacher.markdown)
    assert f"Run {runs[0].id}" in listed, listed
    teacher.button(key="room_cancel_all").click().run()
    assert not teacher.exception, teacher.exception
    assert runs[0].wait(60) and runs[0].status == "cancelled"
    for _ in range(40):                                             # the student's panel says so
        student.run()
        if any("was cancelled" in i.value for i in student.info):
            break
        time.sleep(0.25)
    assert any("was cancelled" in i.value for i in student.info)
