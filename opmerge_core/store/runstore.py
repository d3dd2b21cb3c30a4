"""The run store: every training run, its parameters, status, metrics and artifacts, in SQLite.

Standard-library ``sqlite3`` in WAL mode (several processes may read while one writes), one connection
per store shared by threads behind a lock. Location: ``$OPMERGE_HOME/runs.sqlite`` with
``OPMERGE_HOME`` defaulting to ``~/.opmerge``; artifacts of run N go to ``$OPMERGE_HOME/runs/N/``.

Status life cycle: queued → running → done | failed | cancelled, moved on by the one writer of runs
(runs.py). A run's owner process writes its pid and refreshes ``heartbeat`` (unix time) while the run
is queued or running (``Heartbeat``). Opening
a store marks every queued/running run whose process is gone — pid not alive, or heartbeat older
than ``stale_after`` seconds — as failed with the error "interrupted: process died", so a run killed
mid-way is found as failed on the next start, never lost. A reused pid is told apart by the
process start time recorded next to it (Linux ``/proc``) and by a random token of the writing
process (``INSTANCE``): a run written by an earlier process that had *this* process's pid — a
container restarts its server as PID 1 — is dead too. The heartbeat threshold is deliberately long
(10 min) so that a slow but live run is never declared dead.

A store that cannot be used — ``OPMERGE_HOME`` a file, a folder this user cannot write, a file that is
not SQLite, a full disk — raises ``StoreError``: a ``ValueError`` whose one line names the path and
what to do (the CLI prints it and exits 2; the dashboard shows it on the pages that need the store).
The store never repairs by deleting: a damaged file is left exactly as it was.

Runs of the compute backend also record the Dask cluster they wait for (``cluster``: its scheduler's
id), when they got one of its training lanes (``dispatched``), their group (``run_group``: a room) and
whether someone asked to cancel them (``cancel_requested``). Every server process that shares the
store and the cluster (the web tier) reads the same lines from them (``lane_queue``): whose turn it is,
how many runs hold a lane, which runs a room has — and claims a lane inside one write transaction
(``transaction``), so the lanes are shared fairly by all of them (compute.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from opmerge_core.basics.validation import os_reason


class Status(StrEnum):
    """Where a run (and a compute job, compute.py) is in its life cycle. Members are the strings stored
    in the ``status`` column (``Status.DONE == "done"``)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (Status.QUEUED, Status.RUNNING)
FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)
_ACTIVE_SQL = "(" + ",".join(f"'{s}'" for s in ACTIVE) + ")"     # SQL: status IN _ACTIVE_SQL
INTERRUPTED = "interrupted: process died"
STALE_AFTER = 600.0      # seconds without a heartbeat before a run counts as dead
HEARTBEAT_EVERY = 5.0    # seconds between heartbeats
LIST_MAX = 10_000
SERVED_WINDOW = 3600.0   # seconds back a session's latest lane is remembered for whose turn it is
INSTANCE = uuid.uuid4().hex  # this process's token, recorded with every run it creates or starts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    created   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    params    TEXT NOT NULL DEFAULT '{}',
    status    TEXT NOT NULL DEFAULT 'queued',
    progress  REAL NOT NULL DEFAULT 0,
    metrics   TEXT NOT NULL DEFAULT '{}',
    artifacts TEXT NOT NULL DEFAULT '{}',
    error     TEXT,
    pid       INTEGER,
    pid_start TEXT,
    heartbeat REAL,
    owner     TEXT,
    finished  TEXT,
    instance  TEXT,
    cluster   TEXT,
    dispatched REAL,
    run_group TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""
# columns added since the first stores were written (ALTER TABLE on an older file), and their index
_ADDED = {"pid_start": "TEXT", "instance": "TEXT", "cluster": "TEXT", "dispatched": "REAL",
          "run_group": "TEXT", "cancel_requested": "INTEGER NOT NULL DEFAULT 0"}
_ADDED_INDEX = "CREATE INDEX IF NOT EXISTS runs_lanes ON runs(cluster, dispatched)"
_JSON = ("params", "metrics", "artifacts")


def opmerge_home() -> Path:
    """``$OPMERGE_HOME`` or ``~/.opmerge``."""
    return Path(os.environ.get("OPMERGE_HOME") or Path.home() / ".opmerge").expanduser()


def default_path() -> Path:
    return opmerge_home() / "runs.sqlite"


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def process_start(pid: int | None) -> str | None:
    """The start time of a process (clock ticks since boot, Linux), to tell a reused pid apart."""
    if not pid or pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None      # field 22 of proc(5)


class StoreError(ValueError):
    """The run store at ``path`` cannot be used; the message says why and what to do (one line)."""

    def __init__(self, path: Path, exc: BaseException):
        self.path = Path(path)
        super().__init__(f"run store {self.path}: {store_problem(self.path, exc)}")


def store_problem(path: Path, exc: BaseException) -> str:
    """Why the store file ``path`` (or anything else under ``OPMERGE_HOME``) cannot be used, and what
    to do, in words."""
    elsewhere = "or set OPMERGE_HOME to another folder"
    text, code = str(exc).lower(), getattr(exc, "errno", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if isinstance(exc, FileExistsError | NotADirectoryError) or code in (errno.EEXIST, errno.ENOTDIR):
        return f"{_first_file(path)} is a file where a folder should be — move it away {elsewhere}"
    if name == "SQLITE_FULL" or "disk is full" in text or code in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full — free some space (nothing recorded was lost) {elsewhere}"
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text \
            or "malformed" in text:
        return ("not a readable SQLite database (damaged?); it is left untouched — move it aside to "
                f"start a new store {elsewhere}")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) \
            or code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path.parent} (read-only or permission denied) — let this user write " \
               f"it {elsewhere}"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "busy: another process held it locked for too long — try again"
    return f"{os_reason(exc, with_file=True)} — check the folder {elsewhere}"



def _first_file(path: Path) -> Path:
    """The first component of ``path`` (from the root) that exists and is not a folder."""
    for part in reversed((path, *path.parents)):
        if part.exists() and not part.is_dir():
            return part
    return path.parent


@contextlib.contextmanager
def _as_store_error(path: Path):
    """sqlite3 and OS errors of the store → ``StoreError`` naming ``path`` (a broken constraint or a
    closed connection stays what it is)."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise                          # the caller's own affair (a duplicate key, a closed store)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(path, exc) from exc


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """One connection to the store's SQLite file (WAL, autocommit, rows by name) shared by threads
    behind a lock, with ``schema`` created idempotently. The run store and the rooms
    (``store.rooms``) are two sets of tables in one file."""

    def __init__(self, path: str | os.PathLike | None, schema: str):
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.RLock()
        with _as_store_error(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False,
                                       isolation_level=None)
            try:
                self._open(schema)
            except BaseException:
                self._db.close()       # a damaged file stays as it was: nothing is deleted or rewritten
                raise

    def _open(self, schema: str) -> None:
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()   # not SQLite: fails here
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _exec(self, sql: str, args: Iterable = ()) -> sqlite3.Cursor:
        with self._lock, _as_store_error(self.path):
            return self._db.execute(sql, tuple(args))

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (``BEGIN IMMEDIATE``): what is read inside stays true until it
        commits, in every process sharing the file; rolled back if the block raises."""
        with self._lock:
            self._exec("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                with contextlib.suppress(sqlite3.Error, StoreError):
                    self._db.execute("ROLLBACK")
                raise
            self._exec("COMMIT")


@dataclass
class LaneQueue:
    """The runs of one cluster that wait for a training lane or hold one, from every process that
    shares the store: ``waiting`` (oldest first) and ``on_lanes`` are rows (``id``, ``owner``,
    ``run_group``, ``kind``, ``status``, ``progress``, ``instance``, ``cancel_requested``); ``served``
    maps a session (owner) to when its latest run got a lane (within ``SERVED_WINDOW``)."""

    waiting: list[dict]
    on_lanes: list[dict]
    served: dict[str | None, float]


class RunStore(Database):
    """A SQLite table of runs (see the module docstring). Thread-safe; usable from many processes."""

    def __init__(self, path: str | os.PathLike | None = None, *, stale_after: float = STALE_AFTER,
                 recover: bool = True):
        super().__init__(path, _SCHEMA)
        self.stale_after = stale_after
        columns = {row[1] for row in self._exec("PRAGMA table_info(runs)")}
        for column, kind in _ADDED.items():         # a store created before the column existed
            if column not in columns:
                self._exec(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        self._exec(_ADDED_INDEX)
        self.recovered: list[int] = self.recover() if recover else []

    # ---- writing ----------------------------------------------------------------------------------
    def create(self, kind: str, params: dict | None = None, *, owner: str | None = None,
               pid: int | None = None, cluster: str | None = None, group: str | None = None) -> int:
        """A new queued run owned by this process (or by ``pid``); returns its id. ``cluster``: the
        cluster whose training lane it waits for (the compute backend's runs), ``group``: its room."""
        pid = os.getpid() if pid is None else pid
        mine = pid == os.getpid()
        cur = self._exec("INSERT INTO runs (created, kind, params, status, pid, pid_start, heartbeat, "
                         "owner, instance, cluster, run_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (_now_iso(), kind, json.dumps(params or {}), Status.QUEUED, pid,
                          process_start(pid), time.time(), owner, INSTANCE if mine else None, cluster,
                          group))
        return int(cur.lastrowid)

    def dispatch(self, run_ids: Iterable[int]) -> None:
        """These runs got a training lane of their cluster (now)."""
        ids = [int(i) for i in run_ids]
        if ids:
            self._exec(f"UPDATE runs SET dispatched=? WHERE id IN ({','.join('?' * len(ids))})",
                       [time.time(), *ids])

    def request_cancel(self, run_ids: Iterable[int]) -> None:
        """Ask the process running these runs to cancel them (it looks every second or so:
        ``cancel_requests``); finished runs are left as they are."""
        ids = [int(i) for i in run_ids]
        if ids:
            self._exec(f"UPDATE runs SET cancel_requested=1 WHERE id IN ({','.join('?' * len(ids))}) "
                       f"AND status IN {_ACTIVE_SQL}", ids)

    def start(self, run_id: int) -> None:
        self._exec("UPDATE runs SET status=?, pid=?, pid_start=?, heartbeat=?, instance=? WHERE id=?",
                   (Status.RUNNING, os.getpid(), process_start(os.getpid()), time.time(), INSTANCE, run_id))

    def update(self, run_id: int, *, progress: float | None = None, metrics: dict | None = None) -> None:
        """Progress in [0, 1] and/or metrics; also refreshes the heartbeat."""
        sets, args = ["heartbeat=?"], [time.time()]
        if progress is not None:
            sets.append("progress=?")
            args.append(float(min(max(progress, 0.0), 1.0)))
        if metrics is not None:
            sets.append("metrics=?")
            args.append(json.dumps(metrics))
        self._exec(f"UPDATE runs SET {', '.join(sets)} WHERE id=?", [*args, run_id])

    def heartbeat(self, run_ids: Iterable[int]) -> None:
        ids = list(run_ids)
        if ids:
            marks = ",".join("?" * len(ids))
            self._exec(f"UPDATE runs SET heartbeat=? WHERE id IN ({marks}) AND status IN {_ACTIVE_SQL}",
                       [time.time(), *ids])

    def finish(self, run_id: int, status: str, *, metrics: dict | None = None,
               artifacts: dict | None = None, error: str | None = None) -> None:
        if status not in FINISHED:
            raise ValueError(f"a run finishes as {', '.join(FINISHED)}, not {status!r}")
        sets = ["status=?", "finished=?", "heartbeat=?", "error=?"]
        args: list = [status, _now_iso(), time.time(), error]
        if status == Status.DONE:
            sets.append("progress=1")
        if metrics is not None:
            sets.append("metrics=?")
            args.append(json.dumps(metrics))
        if artifacts is not None:
            sets.append("artifacts=?")
            args.append(json.dumps(artifacts))
        self._exec(f"UPDATE runs SET {', '.join(sets)} WHERE id=?", [*args, run_id])

    def recover(self) -> list[int]:
        """Mark queued/running runs of dead processes as failed; returns their ids.

        Dead: written by an earlier process with this process's pid (another ``INSTANCE``), or the
        pid is not alive, or it now belongs to another process (different start time), or no
        heartbeat for ``stale_after`` seconds. Runs of this very process are alive.
        """
        now, me = time.time(), os.getpid()
        dead = []
        for row in self._exec("SELECT id, pid, pid_start, heartbeat, instance FROM runs WHERE status "
                              f"IN {_ACTIVE_SQL}").fetchall():
            pid = row["pid"]
            if row["instance"] == INSTANCE or (pid == me and row["instance"] is None):
                continue                                    # ours (or a row made for us by pid)
            stale = row["heartbeat"] is None or now - row["heartbeat"] > self.stale_after
            reused = row["pid_start"] is not None and process_start(pid) not in (None,
                                                                                  row["pid_start"])
            if pid == me or not pid_alive(pid) or reused or stale:
                dead.append(int(row["id"]))
        for run_id in dead:
            self._exec("UPDATE runs SET status=?, error=?, finished=? WHERE id=? AND "
                       f"status IN {_ACTIVE_SQL}", (Status.FAILED, INTERRUPTED, _now_iso(), run_id))
        return dead

    # ---- reading ----------------------------------------------------------------------------------
    def lane_queue(self, cluster: str) -> LaneQueue:
        """The runs waiting for or holding a training lane of ``cluster``, from every process."""
        rows = [dict(r) for r in self._exec(
            "SELECT id, owner, run_group, kind, status, progress, instance, cancel_requested, dispatched "
            f"FROM runs WHERE cluster=? AND status IN {_ACTIVE_SQL} ORDER BY id", (cluster,))]
        served = dict(self._exec("SELECT owner, max(dispatched) FROM runs WHERE cluster=? AND "
                                 "dispatched >= ? GROUP BY owner",
                                 (cluster, time.time() - SERVED_WINDOW)).fetchall())
        return LaneQueue([r for r in rows if r["dispatched"] is None and r["status"] == Status.QUEUED],
                         [r for r in rows if r["dispatched"] is not None], served)

    def cancel_requests(self) -> list[int]:
        """Runs of this process (``INSTANCE``) that another process asked to cancel."""
        return [int(r[0]) for r in self._exec(
            f"SELECT id FROM runs WHERE instance=? AND cancel_requested=1 AND status IN {_ACTIVE_SQL}",
            (INSTANCE,))]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        out = dict(row)
        for key in _JSON:
            out[key] = json.loads(out[key] or "{}")
        return out

    def get(self, run_id: int) -> dict | None:
        row = self._exec("SELECT * FROM runs WHERE id=?", (int(run_id),)).fetchone()
        return self._row(row) if row else None

    def list(self, *, kind: str | None = None, status: str | None = None,
             limit: int = 200) -> list[dict]:
        """Newest first."""
        limit = max(1, min(int(limit), LIST_MAX))
        where, args = [], []
        if kind:
            where.append("kind=?")
            args.append(kind)
        if status:
            where.append("status=?")
            args.append(status)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [self._row(r) for r in self._exec(sql + " ORDER BY id DESC LIMIT ?",
                                                 [*args, limit]).fetchall()]

    def run_dir(self, run_id: int) -> Path:
        """Where a run's artifacts go (created on demand)."""
        path = self.path.parent / "runs" / str(int(run_id))
        with _as_store_error(path / "x"):
            path.mkdir(parents=True, exist_ok=True)
        return path


class Heartbeat:
    """A daemon thread refreshing the heartbeat of some runs every ``every`` seconds.

    ``with Heartbeat(store, [run_id]): ...`` or ``hb.add(id)`` / ``hb.discard(id)`` for a runner.
    """

    def __init__(self, store: RunStore, run_ids: Iterable[int] = (), every: float = HEARTBEAT_EVERY):
        self.store, self.every = store, every
        self._ids = set(run_ids)
        self._ids_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opmerge-heartbeat", daemon=True)
        self._thread.start()

    def add(self, run_id: int) -> None:
        with self._ids_lock:
            self._ids.add(run_id)

    def discard(self, run_id: int) -> None:
        with self._ids_lock:
            self._ids.discard(run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._ids_lock:
                ids = list(self._ids)
            with contextlib.suppress(StoreError, sqlite3.Error):   # busy or closed: next beat
                self.store.heartbeat(ids)

    def stop(self) -> None:
        self._stop.set()

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
