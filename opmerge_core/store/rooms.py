"""Rooms: a live class poll kept in the run store's SQLite file, so every server process sees it.

A room is what a teacher leads a class with: a short join code that students type or scan, a secret
teacher key, and the teacher's current position (a lesson by name, a step by its 1-based index, and
a ``revision`` that grows with every teacher action, so a student's screen can follow by reading one
row). It holds no knowledge of lessons: the dashboard checks lesson names, steps and choices.

* Join code: 6 characters from an alphabet without look-alikes (no 0/O, 1/I/L), case-insensitive
  when typed. Teacher key: ``secrets.token_urlsafe`` of 24 bytes (192 bits); only its SHA-256 is
  stored (a random 192-bit key needs no slow hash) and it is checked with ``hmac.compare_digest``.
* Anonymous: no names, no addresses. A vote is (room, lesson, step, voter, choice) where the voter is
  the SHA-256 of a per-room random salt and the browser session's random token, so one session has
  one vote per question (the primary key) — changeable until the reveal by one ``INSERT … ON CONFLICT
  DO UPDATE`` that applies only while the room is open, at that step, and not revealed. The class
  histogram is a ``GROUP BY`` of those rows; it cannot count a session twice. "Connected" counts the
  sessions (the same salted hashes) seen in the last ``PRESENCE_S`` seconds.
* Rooms expire (default 24 h after creation) and are deleted with their votes, reveals and presence
  rows by ``purge``, which every store runs when it opens and when a room is created. A closed room
  accepts nothing but stays readable (``record``: the teacher's record after class) until it expires.

Storage: ``$OPMERGE_HOME/runs.sqlite`` (``runstore.default_path``) in WAL mode, its own tables, created
idempotently; one connection per store, shared by threads behind a lock.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opmerge_core.store.runstore import Database

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"    # 31 symbols: no 0/O, 1/I/L
CODE_LEN = 6                                   # 31^6 ≈ 8.9e8 codes
KEY_BYTES = 24                                 # teacher key: 192 bits, URL-safe base64 (32 characters)
KEY_MAX = 128                                  # characters of a key accepted as input
DEFAULT_HOURS = 24.0
MAX_HOURS = 7 * 24.0
PRESENCE_S = 30.0                              # a session seen this recently counts as connected
MAX_OPEN_ROOMS = 1000                          # rooms alive at once (a bound on what anyone may create)
MAX_STEPS = 1000
NAME_MAX = 100                                 # characters of a lesson name
CHOICE_MAX = 32                                # characters of a choice key
TOKEN_MIN, TOKEN_MAX = 16, 128                 # characters of a session token

log = logging.getLogger("opmerge.rooms")
IGNORED: Counter = Counter()                   # reason -> how many inputs this process ignored


def ignored(reason: str, detail: str = "") -> None:
    """Count an ignored input (a bad code or key, a vote out of turn, a flood) and log it."""
    IGNORED[reason] += 1
    log.warning("room input ignored (%s, %d so far in this process)%s", reason, IGNORED[reason],
                f": {detail}" if detail else "")


class RoomError(ValueError):
    """A bad code, an unknown or expired room, a wrong key, a bad value: a one-line message."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    code      TEXT NOT NULL UNIQUE,
    key_hash  TEXT NOT NULL,
    salt      TEXT NOT NULL,
    lesson    TEXT NOT NULL DEFAULT '',
    step      INTEGER NOT NULL DEFAULT 1,
    revision  INTEGER NOT NULL DEFAULT 0,
    created   REAL NOT NULL,
    expires   REAL NOT NULL,
    closed    REAL
);
CREATE INDEX IF NOT EXISTS rooms_expires ON rooms(expires);
CREATE TABLE IF NOT EXISTS room_votes (
    room    INTEGER NOT NULL,
    lesson  TEXT NOT NULL,
    step    INTEGER NOT NULL,
    voter   TEXT NOT NULL,
    choice  TEXT NOT NULL,
    at      REAL NOT NULL,
    PRIMARY KEY (room, lesson, step, voter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_reveals (
    room    INTEGER NOT NULL,
    lesson  TEXT NOT NULL,
    step    INTEGER NOT NULL,
    at      REAL NOT NULL,
    PRIMARY KEY (room, lesson, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_presence (
    room    INTEGER NOT NULL,
    voter   TEXT NOT NULL,
    seen    REAL NOT NULL,
    PRIMARY KEY (room, voter)
) WITHOUT ROWID;
"""
_CHILD_TABLES = ("room_votes", "room_reveals", "room_presence")


# ---- codes, keys, tokens --------------------------------------------------------------------------
def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))


def normalize_code(raw: str) -> str:
    """A typed join code as stored: upper case, spaces and dashes dropped; RoomError if malformed."""
    code = "".join(str(raw).split()).replace("-", "").upper()
    if len(code) != CODE_LEN or any(c not in ALPHABET for c in code):
        shown = str(raw)[:20]
        raise RoomError(f"{shown!r} is not a room code (6 letters and digits, e.g. K7QM2X)")
    return code


def new_key() -> str:
    """A teacher key; never one starting with "-", which a command line would take for an option
    (`opmerge room show CODE --key KEY`)."""
    while (key := secrets.token_urlsafe(KEY_BYTES)).startswith("-"):
        pass
    return key


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def new_session_token() -> str:
    """A browser session's random token (kept in its session state, never stored as such)."""
    return secrets.token_urlsafe(16)


# ---- what a store returns ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Room:
    id: int
    code: str
    lesson: str            # '' until the teacher opens a lesson
    step: int              # 1-based step of that lesson
    revision: int          # grows with every teacher action
    created: float         # unix time
    expires: float
    closed: bool


@dataclass(frozen=True)
class Position:
    """The one row a following student polls: where the teacher is."""

    lesson: str
    step: int
    revision: int
    closed: bool
    revealed: bool         # the question of the current step has been revealed


@dataclass(frozen=True)
class StepRecord:
    lesson: str
    step: int
    counts: dict[str, int]
    revealed: bool


VOTED, CHANGED, UNCHANGED = "voted", "changed", "unchanged"


class RoomStore(Database):
    """Rooms in the run store's SQLite file (module docstring). Thread-safe; many processes may share
    the file. ``clock`` (unix seconds) is injectable for expiry tests."""

    def __init__(self, path: str | os.PathLike | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(path, _SCHEMA)
        self.clock = clock
        self.purge()

    def _transaction(self, statements: Iterable[tuple[str, tuple]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- life cycle -----------------------------------------------------------------------------
    def purge(self) -> int:
        """Delete expired rooms and everything they hold; returns how many rooms went."""
        now = self.clock()
        ids = [r[0] for r in self._exec("SELECT id FROM rooms WHERE expires <= ?", (now,)).fetchall()]
        if ids:
            marks = ",".join("?" * len(ids))
            self._transaction([*((f"DELETE FROM {t} WHERE room IN ({marks})", tuple(ids))
                                 for t in _CHILD_TABLES),
                               (f"DELETE FROM rooms WHERE id IN ({marks})", tuple(ids))])
            log.info("deleted %d expired room(s)", len(ids))
        return len(ids)

    def create(self, lesson: str = "", *, step: int = 1, hours: float = DEFAULT_HOURS) -> tuple[Room, str]:
        """A new room; returns it and its teacher key (the only time the key is known)."""
        _check_position(lesson, step)
        if not (isinstance(hours, int | float) and 0 < hours <= MAX_HOURS):
            raise RoomError(f"a room lasts more than 0 and at most {MAX_HOURS:g} hours, got {hours!r}")
        self.purge()
        now = self.clock()
        if self._exec("SELECT COUNT(*) FROM rooms WHERE expires > ?", (now,)).fetchone()[0] >= MAX_OPEN_ROOMS:
            ignored("room limit")
            raise RoomError(f"too many open rooms ({MAX_OPEN_ROOMS}); try again when some have expired")
        key = new_key()
        for _ in range(20):                         # a code collision is rare: draw again
            try:
                cur = self._exec("INSERT INTO rooms (code, key_hash, salt, lesson, step, created, expires) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (new_code(), _digest(key), secrets.token_hex(16), lesson, int(step), now,
                                  now + 3600.0 * hours))
                break
            except sqlite3.IntegrityError:
                continue
        else:
            raise RoomError("could not draw a free room code; try again")
        room = self._room("id=?", cur.lastrowid)
        assert room is not None
        log.info("room %s created (lesson %r, %g h)", room.code, lesson, hours)
        return room, key

    # ---- finding rooms --------------------------------------------------------------------------
    def _room(self, where: str, *args) -> Room | None:
        row = self._exec(f"SELECT * FROM rooms WHERE {where} AND expires > ?",
                         (*args, self.clock())).fetchone()
        if row is None:
            return None
        return Room(row["id"], row["code"], row["lesson"], row["step"], row["revision"], row["created"],
                    row["expires"], row["closed"] is not None)

    def find(self, code: str) -> Room:
        """The room with this join code; RoomError if the code is malformed, unknown or expired."""
        code = normalize_code(code)
        room = self._room("code=?", code)
        if room is None:
            ignored("unknown room", code)
            raise RoomError(f"no room {code} (unknown, or expired and deleted)")
        return room

    def get(self, room_id: int) -> Room | None:
        return self._room("id=?", int(room_id))

    def is_teacher(self, room: Room, key: str | None) -> bool:
        """Whether ``key`` is this room's teacher key (constant-time comparison of the hashes)."""
        if not key or not isinstance(key, str) or len(key) > KEY_MAX:
            return False
        row = self._exec("SELECT key_hash FROM rooms WHERE id=?", (room.id,)).fetchone()
        return row is not None and hmac.compare_digest(_digest(key), row["key_hash"])

    def teacher(self, code: str, key: str | None) -> Room:
        """The room, if ``key`` is its teacher key; RoomError otherwise (nothing is changed)."""
        room = self.find(code)
        if not self.is_teacher(room, key):
            ignored("wrong teacher key", room.code)
            raise RoomError(f"wrong teacher key for room {room.code}")
        return room

    def position(self, room_id: int) -> Position | None:
        """Where the teacher is (one row: the follow poll); None once the room has expired."""
        row = self._exec(
            "SELECT lesson, step, revision, closed, EXISTS (SELECT 1 FROM room_reveals v WHERE "
            "v.room = r.id AND v.lesson = r.lesson AND v.step = r.step) AS revealed "
            "FROM rooms r WHERE id=? AND expires > ?",
            (int(room_id), self.clock())).fetchone()
        if row is None:
            return None
        return Position(row["lesson"], row["step"], row["revision"], row["closed"] is not None,
                        bool(row["revealed"]))

    # ---- the teacher's actions (each checks the key, changes nothing if it is wrong) -------------
    def _act(self, room: Room, key: str | None, what: str, statements: list[tuple[str, tuple]]) -> Room:
        if not self.is_teacher(room, key):
            ignored("wrong teacher key", f"{what} in {room.code}")
            raise RoomError(f"wrong teacher key for room {room.code}: cannot {what}")
        current = self.get(room.id)
        if current is None:
            raise RoomError(f"room {room.code} has expired")
        if current.closed:
            raise RoomError(f"room {room.code} is closed")
        self._transaction([*statements, ("UPDATE rooms SET revision = revision + 1 WHERE id=?", (room.id,))])
        updated = self.get(room.id)
        assert updated is not None
        return updated

    def move(self, room: Room, key: str | None, lesson: str, step: int) -> Room:
        """The teacher moves the room to ``step`` of ``lesson`` (students following go there)."""
        _check_position(lesson, step)
        return self._act(room, key, "move the room",
                         [("UPDATE rooms SET lesson=?, step=? WHERE id=?", (lesson, int(step), room.id))])

    def reveal(self, room: Room, key: str | None) -> Room:
        """Reveal the question of the teacher's current step: votes on it are final from now on."""
        return self._act(room, key, "reveal",
                         [("INSERT OR IGNORE INTO room_reveals (room, lesson, step, at) "
                           "SELECT id, lesson, step, ? FROM rooms WHERE id=?", (self.clock(), room.id))])

    def close_room(self, room: Room, key: str | None) -> Room:
        """Close the room: students are told, nothing more is accepted, the record stays readable."""
        return self._act(room, key, "close the room",
                         [("UPDATE rooms SET closed=? WHERE id=?", (self.clock(), room.id))])

    # ---- students ---------------------------------------------------------------------------------
    def _voter(self, room_id: int, token: str) -> str:
        if not isinstance(token, str) or not TOKEN_MIN <= len(token) <= TOKEN_MAX:
            raise RoomError("bad session token")
        row = self._exec("SELECT salt FROM rooms WHERE id=?", (int(room_id),)).fetchone()
        if row is None:
            raise RoomError("this room has expired")
        return _digest(row["salt"], token)

    def vote(self, room: Room, token: str, lesson: str, step: int, choice: str,
             choices: Iterable[str]) -> str:
        """One session's vote on the question of ``step``: VOTED, CHANGED or UNCHANGED.

        Accepted only while the room is open, at that step of that lesson, and not revealed;
        otherwise RoomError with the reason (and the input is counted as ignored).
        """
        if not isinstance(choice, str) or len(choice) > CHOICE_MAX or choice not in set(choices):
            ignored("invalid choice", f"{str(choice)[:CHOICE_MAX]!r} in {room.code}")
            raise RoomError(f"{str(choice)[:CHOICE_MAX]!r} is not one of this question's choices")
        voter = self._voter(room.id, token)
        now = self.clock()
        with self._lock:
            before = self._exec("SELECT choice FROM room_votes WHERE room=? AND lesson=? AND step=? "
                                "AND voter=?", (room.id, lesson, int(step), voter)).fetchone()
            cur = self._exec(
                "INSERT INTO room_votes (room, lesson, step, voter, choice, at) "
                "SELECT r.id, ?, ?, ?, ?, ? FROM rooms r WHERE r.id = ? AND r.closed IS NULL "
                "AND r.expires > ? AND r.lesson = ? AND r.step = ? AND NOT EXISTS (SELECT 1 FROM "
                "room_reveals v WHERE v.room = r.id AND v.lesson = r.lesson AND v.step = r.step) "
                "ON CONFLICT (room, lesson, step, voter) DO UPDATE SET choice = excluded.choice, "
                "at = excluded.at",
                (lesson, int(step), voter, choice, now, room.id, now, lesson, int(step)))
        if cur.rowcount == 1:
            return VOTED if before is None else (UNCHANGED if before["choice"] == choice else CHANGED)
        pos = self.position(room.id)
        reason = ("the room has expired" if pos is None else "the room is closed" if pos.closed else
                  "the answer has been revealed: votes are final" if (pos.lesson, pos.step) == (lesson, step)
                  else "the teacher has moved to another step")
        ignored("vote refused", f"{reason} ({room.code})")
        raise RoomError(f"vote not counted: {reason}")

    def my_vote(self, room: Room, token: str, lesson: str, step: int) -> str | None:
        row = self._exec("SELECT choice FROM room_votes WHERE room=? AND lesson=? AND step=? AND voter=?",
                         (room.id, lesson, int(step), self._voter(room.id, token))).fetchone()
        return row["choice"] if row else None

    def counts(self, room_id: int, lesson: str, step: int) -> dict[str, int]:
        """Votes per choice at one step (choices nobody picked are absent)."""
        rows = self._exec("SELECT choice, COUNT(*) AS n FROM room_votes WHERE room=? AND lesson=? AND step=? "
                          "GROUP BY choice", (int(room_id), lesson, int(step))).fetchall()
        return {r["choice"]: r["n"] for r in rows}

    def seen(self, room: Room, token: str) -> None:
        """A student's session is here (the follow poll calls this every few seconds)."""
        self._exec("INSERT INTO room_presence (room, voter, seen) VALUES (?, ?, ?) "
                   "ON CONFLICT (room, voter) DO UPDATE SET seen = excluded.seen",
                   (room.id, self._voter(room.id, token), self.clock()))

    def connected(self, room_id: int, within: float = PRESENCE_S) -> int:
        """Sessions seen in the last ``within`` seconds."""
        return self._exec("SELECT COUNT(*) FROM room_presence WHERE room=? AND seen > ?",
                          (int(room_id), self.clock() - within)).fetchone()[0]

    # ---- after class ------------------------------------------------------------------------------
    def record(self, room: Room) -> list[StepRecord]:
        """Every step that got votes or a reveal, in lesson/step order: the teacher's record."""
        rows = self._exec(
            "SELECT lesson, step, choice, COUNT(*) AS n FROM room_votes WHERE room=? "
            "GROUP BY lesson, step, choice",
            (room.id,)).fetchall()
        revealed = {(r["lesson"], r["step"]) for r in
                    self._exec("SELECT lesson, step FROM room_reveals WHERE room=?", (room.id,)).fetchall()}
        counts: dict[tuple[str, int], dict[str, int]] = {pos: {} for pos in revealed}
        for r in rows:
            counts.setdefault((r["lesson"], r["step"]), {})[r["choice"]] = r["n"]
        return [StepRecord(lesson, step, counts[lesson, step], (lesson, step) in revealed)
                for lesson, step in sorted(counts)]


def _check_position(lesson: str, step: int) -> None:
    if not isinstance(lesson, str) or len(lesson) > NAME_MAX:
        raise RoomError(f"a lesson name has at most {NAME_MAX} characters")
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_STEPS:
        raise RoomError(f"a step is a whole number in [1, {MAX_STEPS}], got {step!r}")


class RateLimit:
    """A token bucket: ``rate`` actions per second on average, bursts of ``burst``. One per session
    (the dashboard keeps it in the session state); ``allow()`` says whether one more action may go."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.last = float(burst), clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
