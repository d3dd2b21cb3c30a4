"""`opmerge room create|show|close`: lead a class from the command line (plug-in command module, entry
point ``room`` in the group ``opmerge.commands``).

    opmerge room create [--lesson NAME] [--hours 24] [--public-url URL] [--json]
    opmerge room show CODE --key KEY [--json]        # the counts per step: the record after class
    opmerge room close CODE --key KEY

Rooms live in ``$OPMERGE_HOME/runs.sqlite`` (``opmerge_core.store.rooms``), so a room created here is
the one the server shows. The links use ``--public-url`` (default ``$OPMERGE_PUBLIC_URL``, else
http://localhost:8501): the address the students' devices reach the server by.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from opmerge_core.basics.validation import check_base_url
from opmerge_core.store import rooms


def register(sub: argparse._SubParsersAction) -> None:
    # The command reports a refused input itself, on one line; the store's log of ignored inputs is
    # for servers.
    rooms.log.setLevel(logging.ERROR)
    p = sub.add_parser("room", help="lead a class: a room with a join code, a live poll and a teacher key")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=type(p))
    c = verbs.add_parser("create", help="start a room; prints the student link and the teacher link")
    c.add_argument("--lesson", metavar="NAME", help="the lesson the room starts at (step 1)")
    c.add_argument("--hours", type=float, default=rooms.DEFAULT_HOURS,
                   help=f"lifetime; the room and its votes are deleted after it (default "
                        f"{rooms.DEFAULT_HOURS:g}, at most {rooms.MAX_HOURS:g})")
    c.add_argument("--public-url", metavar="URL",
                   help="the server's address as students reach it, e.g. http://10.0.0.5:8501 "
                        "(default $OPMERGE_PUBLIC_URL, else http://localhost:8501)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=create)
    for name, func, what in (("show", show, "print the votes per step (the teacher's record)"),
                             ("close", close, "close the room (its record stays until it expires)")):
        s = verbs.add_parser(name, help=what)
        s.add_argument("code", metavar="CODE")
        s.add_argument("--key", required=True, help="the teacher key (from the teacher link)")
        if name == "show":
            s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)


def _base(raw: str | None) -> str:
    from opmerge_dashboard import room_links
    return check_base_url(raw) if raw else room_links.configured_base() or room_links.DEFAULT_BASE


def _lesson(name: str | None) -> str:
    """The lesson's name if it exists (lessons.load raises LessonError, a ValueError, otherwise)."""
    if not name:
        return ""
    from opmerge_dashboard import lessons
    return lessons.load(name).name


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="minutes")


def create(args: argparse.Namespace) -> int:
    from opmerge_dashboard import room_links
    base = _base(args.public_url)
    lesson = _lesson(args.lesson)
    with rooms.RoomStore() as store:
        room, key = store.create(lesson, hours=args.hours)
    student, teacher = room_links.student_link(base, room.code), room_links.teacher_link(base, room.code, key)
    if args.json:
        print(json.dumps({"code": room.code, "lesson": lesson or None, "student_link": student,
                          "teacher_link": teacher, "expires": _when(room.expires)}))
    else:
        print(f"Room {room.code}" + (f" · lesson {lesson}" if lesson else "") +
              f" · open until {_when(room.expires)}")
        print(f"Students:  {student}")
        print(f"Teacher:   {teacher}   (keep this link private: it holds the teacher key)")
    if room_links.loopback(base):
        print(f"note: {base} only works on this computer; give --public-url (or set "
              f"{room_links.PUBLIC_URL_ENV}) to the address the students' devices reach", file=sys.stderr)
    return 0


def show(args: argparse.Namespace) -> int:
    with rooms.RoomStore() as store:
        room = store.teacher(args.code, args.key)
        record = store.record(room)
        connected = store.connected(room.id)
    if args.json:
        print(json.dumps({"code": room.code, "lesson": room.lesson or None, "step": room.step,
                          "closed": room.closed, "expires": _when(room.expires), "connected": connected,
                          "steps": [{"lesson": r.lesson, "step": r.step, "revealed": r.revealed,
                                     "votes": sum(r.counts.values()), "counts": r.counts} for r in record]}))
        return 0
    state = "closed" if room.closed else f"at step {room.step} of {room.lesson}" if room.lesson else "open"
    print(f"Room {room.code} · {state} · {connected} connected · deleted after {_when(room.expires)}")
    if not record:
        print("no votes yet")
    for r in record:
        counts = ", ".join(f"{choice} {n}" for choice, n in sorted(r.counts.items(), key=lambda kv: -kv[1]))
        print(f"{r.lesson or '-'} step {r.step}: {sum(r.counts.values())} votes"
              + (f" ({counts})" if counts else "") + (" · revealed" if r.revealed else ""))
    return 0


def close(args: argparse.Namespace) -> int:
    with rooms.RoomStore() as store:
        room = store.close_room(store.teacher(args.code, args.key), args.key)
    print(f"Room {room.code} closed; its record stays until {_when(room.expires)}")
    return 0
