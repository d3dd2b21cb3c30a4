"""Rooms in the SQLite store: codes and keys, permissions, votes (one per session, changeable until the
reveal, never double counted), presence, expiry, and several processes sharing one file."""

import subprocess
import sys
import textwrap

import pytest

from opmerge_core.store import rooms
from opmerge_core.store.rooms import RateLimit, RoomError, RoomStore
from opmerge_core.store.runstore import RunStore

CHOICES = ("boot", "vanilla", "hybrid")


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with RoomStore(tmp_path / "runs.sqlite", clock=clock) as s:
        yield s


def tokens(n):
    return [rooms.new_session_token() for _ in range(n)]


def test_code_and_key(store):
    room, key = store.create("phase")
    assert len(room.code) == rooms.CODE_LEN and set(room.code) <= set(rooms.ALPHABET)
    assert not set("01OIL") & set(rooms.ALPHABET)
    assert len(key) >= 32                                   # 24 random bytes ≥ 128 bits
    raw = store._exec("SELECT * FROM rooms").fetchone()
    assert key not in tuple(map(str, raw)) and raw["key_hash"] != key   # only a hash is stored
    assert store.find(room.code.lower()).id == room.id       # typed codes are case-insensitive
    assert store.find(f" {room.code[:3]}-{room.code[3:]} ").id == room.id
    assert store.teacher(room.code, key).id == room.id
    other, other_key = store.create()
    assert other.code != room.code and other_key != key
    assert not store.is_teacher(room, other_key) and not store.is_teacher(room, None)
    assert not store.is_teacher(room, "x" * 10_000)
    assert not any(rooms.new_key().startswith("-") for _ in range(2000))   # not an option on a CLI


@pytest.mark.parametrize("bad", ["", "ABC", "ABCDEFG", "ABCDE0", "ABCDEI", "ABC DE!", "ÄBCDEF"])
def test_malformed_codes(store, bad):
    with pytest.raises(RoomError, match="is not a room code"):
        store.find(bad)


def test_unknown_room_and_wrong_key_change_nothing(store):
    room, key = store.create("phase")
    with pytest.raises(RoomError, match="no room"):
        store.find("ZZZZZZ" if room.code != "ZZZZZZ" else "YYYYYY")
    before = rooms.IGNORED["wrong teacher key"]
    for action in (lambda k: store.move(room, k, "phase", 3), lambda k: store.reveal(room, k),
                   lambda k: store.close_room(room, k)):
        with pytest.raises(RoomError, match="wrong teacher key"):
            action(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert rooms.IGNORED["wrong teacher key"] == before + 3
    assert store.get(room.id) == room                       # not even the revision moved
    with pytest.raises(RoomError, match="wrong teacher key"):
        store.teacher(room.code, "")


def test_teacher_moves_reveals_closes(store):
    room, key = store.create("phase")
    pos = store.position(room.id)
    assert (pos.lesson, pos.step, pos.revealed, pos.closed) == ("phase", 1, False, False)
    room = store.move(room, key, "phase", 2)
    assert store.position(room.id).step == 2 and room.revision == pos.revision + 1
    room = store.reveal(room, key)
    assert store.position(room.id).revealed
    room = store.move(room, key, "phase", 3)
    assert not store.position(room.id).revealed             # a reveal belongs to its step
    room = store.move(room, key, "phase", 2)
    assert store.position(room.id).revealed                 # and stays when the teacher comes back
    with pytest.raises(RoomError, match="step"):
        store.move(room, key, "phase", 0)
    room = store.close_room(room, key)
    assert room.closed and store.position(room.id).closed
    with pytest.raises(RoomError, match="closed"):
        store.move(room, key, "phase", 1)


def test_one_vote_per_session_changeable_until_reveal(store):
    room, key = store.create("phase", step=2)
    a, b, c = tokens(3)
    assert store.vote(room, a, "phase", 2, "boot", CHOICES) == rooms.VOTED
    assert store.vote(room, b, "phase", 2, "boot", CHOICES) == rooms.VOTED
    assert store.vote(room, c, "phase", 2, "vanilla", CHOICES) == rooms.VOTED
    assert store.counts(room.id, "phase", 2) == {"boot": 2, "vanilla": 1}
    for _ in range(50):                                     # a replayed vote is not counted again
        assert store.vote(room, a, "phase", 2, "boot", CHOICES) == rooms.UNCHANGED
    assert store.vote(room, b, "phase", 2, "hybrid", CHOICES) == rooms.CHANGED
    assert store.counts(room.id, "phase", 2) == {"boot": 1, "vanilla": 1, "hybrid": 1}
    assert store.my_vote(room, b, "phase", 2) == "hybrid"
    assert store.my_vote(room, tokens(1)[0], "phase", 2) is None
    store.reveal(room, key)
    with pytest.raises(RoomError, match="revealed"):
        store.vote(room, a, "phase", 2, "vanilla", CHOICES)
    with pytest.raises(RoomError, match="revealed"):
        store.vote(room, tokens(1)[0], "phase", 2, "vanilla", CHOICES)
    assert store.counts(room.id, "phase", 2) == {"boot": 1, "vanilla": 1, "hybrid": 1}


def test_bad_votes_are_refused(store):
    room, key = store.create("phase", step=2)
    (a,) = tokens(1)
    for choice in ("nope", "", "x" * 10_000, None, 3):
        with pytest.raises(RoomError, match="not one of"):
            store.vote(room, a, "phase", 2, choice, CHOICES)
    with pytest.raises(RoomError, match="moved to another step"):
        store.vote(room, a, "phase", 3, "boot", CHOICES)
    with pytest.raises(RoomError, match="moved to another step"):
        store.vote(room, a, "other", 2, "boot", CHOICES)
    with pytest.raises(RoomError, match="session token"):
        store.vote(room, "short", "phase", 2, "boot", CHOICES)
    store.close_room(room, key)
    with pytest.raises(RoomError, match="closed"):
        store.vote(room, a, "phase", 2, "boot", CHOICES)
    assert store.counts(room.id, "phase", 2) == {}


def test_voters_are_anonymous_and_salted_per_room(store):
    r1, _ = store.create("phase", step=1)
    r2, _ = store.create("phase", step=1)
    (a,) = tokens(1)
    store.vote(r1, a, "phase", 1, "boot", CHOICES)
    store.vote(r2, a, "phase", 1, "boot", CHOICES)
    voters = [row["voter"] for row in store._exec("SELECT voter FROM room_votes")]
    assert len(set(voters)) == 2 and a not in voters         # no token, and not linkable across rooms
    columns = {row[1] for t in ("rooms", "room_votes", "room_presence")
               for row in store._exec(f"PRAGMA table_info({t})")}
    assert not columns & {"ip", "address", "name", "user", "token"}


def test_presence(store, clock):
    room, _ = store.create()
    a, b = tokens(2)
    store.seen(room, a)
    store.seen(room, a)
    clock.t += 20
    store.seen(room, b)
    assert store.connected(room.id) == 2
    clock.t += rooms.PRESENCE_S - 5                      # a was last seen 45 s ago, b 25 s ago
    assert store.connected(room.id) == 1


def test_expiry_deletes_room_and_votes(tmp_path, clock):
    path = tmp_path / "runs.sqlite"
    store = RoomStore(path, clock=clock)
    room, key = store.create("phase", hours=1)
    keep, _ = store.create("phase", hours=2)
    store.vote(room, tokens(1)[0], "phase", 1, "boot", CHOICES)
    store.seen(room, tokens(1)[0])
    store.reveal(room, key)
    clock.t += 3600 - 1
    assert store.find(room.code).id == room.id
    clock.t += 2
    with pytest.raises(RoomError, match="no room"):          # expired: gone at once, even before purge
        store.find(room.code)
    assert store.position(room.id) is None and store.get(room.id) is None
    with pytest.raises(RoomError):
        store.vote(room, tokens(1)[0], "phase", 1, "boot", CHOICES)
    store.close()
    store = RoomStore(path, clock=clock)                     # a store opening purges
    for table in ("rooms", "room_votes", "room_reveals", "room_presence"):
        assert store._exec(f"SELECT COUNT(*) FROM {table} WHERE {'id' if table == 'rooms' else 'room'}=?",
                           (room.id,)).fetchone()[0] == 0
    assert store.find(keep.code).id == keep.id
    with pytest.raises(RoomError, match="hours"):
        store.create(hours=0)
    with pytest.raises(RoomError, match="hours"):
        store.create(hours=rooms.MAX_HOURS + 1)
    store.close()


def test_record(store):
    room, key = store.create("phase", step=1)
    a, b = tokens(2)
    store.vote(room, a, "phase", 1, "boot", CHOICES)
    store.vote(room, b, "phase", 1, "vanilla", CHOICES)
    store.reveal(room, key)
    store.move(room, key, "phase", 3)
    store.vote(room, a, "phase", 3, "hybrid", CHOICES)
    store.move(room, key, "phase", 5)
    store.reveal(room, key)                                  # revealed with no votes: still in the record
    assert store.record(room) == [rooms.StepRecord("phase", 1, {"boot": 1, "vanilla": 1}, True),
                                  rooms.StepRecord("phase", 3, {"hybrid": 1}, False),
                                  rooms.StepRecord("phase", 5, {}, True)]


def test_rate_limit():
    clock = Clock(0.0)
    limit = RateLimit(rate=2.0, burst=5, clock=clock)
    assert sum(limit.allow() for _ in range(100)) == 5       # a burst, then nothing
    clock.t += 1.0
    assert sum(limit.allow() for _ in range(100)) == 2       # then `rate` per second


def test_shared_file_across_processes(tmp_path):
    """Another process (another server of the web tier) sees the room and its votes at once."""
    path = tmp_path / "runs.sqlite"
    store = RoomStore(path)
    room, key = store.create("phase", step=2)
    script = textwrap.dedent(f"""
        from opmerge_core.store.rooms import RoomStore, new_session_token
        s = RoomStore({str(path)!r})
        room = s.find({room.code!r})
        for _ in range(5):
            s.vote(room, new_session_token(), "phase", 2, "vanilla", ("boot", "vanilla"))
        s.move(room, {key!r}, "phase", 3)
        print(s.position(room.id).step)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    assert store.counts(room.id, "phase", 2) == {"vanilla": 5} and store.position(room.id).step == 3
    assert store._exec("PRAGMA journal_mode").fetchone()[0] == "wal"
    with RunStore(path) as runs:                             # the run store's tables live beside
        assert runs.get(runs.create("train"))["status"] == "queued"
    assert store.find(room.code).id == room.id
    store.close()
