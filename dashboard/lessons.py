"""Lessons: an ordered list of steps a teacher leads a room through (docs/LESSONS.md).

A step is a page, its state (the same URL parameters the page reads, checked by the page's own checks,
``url_params``), a short narrative and an optional question whose answer the engine computes
(``questions``). Lessons are TOML files: the shipped ones in this package's ``lessons/`` folder, a
teacher's own in the folder named by ``$OPMERGE_LESSONS`` (or passed as ``folder``); a teacher's lesson
with the name of a shipped one replaces it.

A malformed file gives one line naming the file and the step (``LessonError``), never a traceback.
Files are parsed once per process and content (cached by path, size and modification time), so the
lesson bar costs a directory listing per rerun, not a parse. No Streamlit here: the CLI imports it.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from opmerge_dashboard import questions
from opmerge_dashboard.url_params import check_page_params

SHIPPED = Path(__file__).parent / "lessons"
ENV = "OPMERGE_LESSONS"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FILE_BYTES_MAX = 64_000
FILES_MAX = 200                 # lesson files read from one folder
STEPS_MAX = 40
TITLE_MAX = 120
SUMMARY_MAX = 600
NARRATIVE_MAX = 2_500           # characters of markdown: a few sentences, on a projector
PARAMS_MAX = 24                 # URL parameters of one step
VALUE_MAX = 2_000               # characters of one parameter value (a plan in bracket notation)


class LessonError(ValueError):
    """A malformed lesson: one line that names the file and, when it is about one, the step."""


@dataclass(frozen=True)
class Question:
    kind: str
    prompt: str
    choices: tuple[tuple[str, str], ...]    # (key, label)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    index: int                              # 1-based
    title: str
    page: str                               # the page's url path, e.g. "phase"
    params: dict[str, str | list[str]]      # URL parameters as written (strings; a list for a multiselect)
    narrative: str                          # markdown
    question: Question | None = None
    state: dict[str, object] = field(default_factory=dict)   # every parameter of the page: given or default


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    source: str                             # the file it was read from

    def step(self, k: int) -> Step:
        """Step ``k`` (1-based), clamped into the lesson."""
        return self.steps[min(max(int(k), 1), len(self.steps)) - 1]


@dataclass(frozen=True)
class Catalog:
    """The lessons found, by name, and one line per file that could not be read."""

    lessons: dict[str, Lesson]
    errors: tuple[str, ...]


# ---- reading one file ----------------------------------------------------------------------------
def _text(table: dict, key: str, where: str, limit: int, *, required: bool = True) -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise LessonError(f"{where}: missing field `{key}`")
        return ""
    if not isinstance(value, str):
        raise LessonError(f"{where}: `{key}` must be text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise LessonError(f"{where}: `{key}` is empty")
    if len(value) > limit:
        raise LessonError(f"{where}: `{key}` is too long ({len(value)} characters, max {limit})")
    return value


def _url_value(value: object) -> str | list[str]:
    """A TOML value as the URL string a page reads (true/false, 0.5, 32, text); an array (the values
    of a multiselect) as the list of those strings."""
    if isinstance(value, list):
        return [_one_url_value(v) for v in value]
    return _one_url_value(value)


def _one_url_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"must be text, a number, true/false or an array of those, got {type(value).__name__}")


def _string_table(table: object, what: str, where: str) -> dict[str, str | list[str]]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise LessonError(f"{where}: `{what}` must be a table of name = value")
    if len(table) > PARAMS_MAX:
        raise LessonError(f"{where}: `{what}` has {len(table)} entries (max {PARAMS_MAX})")
    out = {}
    for key, value in table.items():
        try:
            out[key] = _url_value(value)
        except ValueError as exc:
            raise LessonError(f"{where}: `{what}.{key}` {exc}") from None
        if len(str(out[key])) > VALUE_MAX:
            raise LessonError(f"{where}: `{what}.{key}` is too long (max {VALUE_MAX} characters)")
    return out


STEP_FIELDS = {"title", "page", "params", "narrative", "question"}
QUESTION_FIELDS = {"kind", "prompt", "params"}
LESSON_FIELDS = {"title", "summary", "steps"}


def _unknown(table: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise LessonError(f"{where}: unknown field `{extra[0]}` (fields: {', '.join(sorted(allowed))})")


def _question(table: object, where: str, state: dict[str, object], page: str) -> Question:
    if not isinstance(table, dict):
        raise LessonError(f"{where}: `question` must be a table")
    _unknown(table, QUESTION_FIELDS, f"{where}, question")
    kind = _text(table, "kind", f"{where}, question", 64)
    qparams = _string_table(table.get("params"), "question.params", where)
    try:
        spec = questions.prepare(kind, qparams, state, page)
    except ValueError as exc:
        raise LessonError(f"{where}: question: {exc}") from None
    prompt = _text(table, "prompt", f"{where}, question", questions.PROMPT_MAX, required=False)
    return Question(kind, prompt or spec.prompt, spec.choices, qparams)


def _step(table: object, index: int, where: str) -> Step:
    if not isinstance(table, dict):
        raise LessonError(f"{where}: must be a table ([[steps]])")
    _unknown(table, STEP_FIELDS, where)
    title = _text(table, "title", where, TITLE_MAX)
    page = _text(table, "page", where, 32)
    params = _string_table(table.get("params"), "params", where)
    try:
        state = check_page_params(page, params)
    except ValueError as exc:
        raise LessonError(f"{where}: {exc}") from None
    narrative = _text(table, "narrative", where, NARRATIVE_MAX)
    question = None if table.get("question") is None else _question(table["question"], where, state, page)
    return Step(index, title, page, params, narrative, question, state)


def parse(text: str, source: str) -> Lesson:
    """A lesson from TOML text; ``source`` is the file (its stem is the lesson's name)."""
    path = Path(source)
    name = path.stem
    where = f"lesson file {path.name}"
    if not NAME.fullmatch(name):
        raise LessonError(f"{where}: the file name must be a lesson name: lower-case letters, digits, "
                          "'-' or '_' (at most 64), then .toml")
    if len(text.encode()) > FILE_BYTES_MAX:
        raise LessonError(f"{where}: too large ({len(text.encode()):,} bytes, max {FILE_BYTES_MAX:,})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"{where}: not valid TOML: {exc}") from None
    _unknown(data, LESSON_FIELDS, where)
    title = _text(data, "title", where, TITLE_MAX)
    summary = _text(data, "summary", where, SUMMARY_MAX, required=False)
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{where}: needs at least one step ([[steps]] tables)")
    if len(steps) > STEPS_MAX:
        raise LessonError(f"{where}: {len(steps)} steps (max {STEPS_MAX})")
    parsed = tuple(_step(s, k, f"{where}, step {k}") for k, s in enumerate(steps, start=1))
    return Lesson(name, title, summary, parsed, str(path))


@functools.lru_cache(maxsize=256)
def _read(path: str, size: int, mtime_ns: int) -> Lesson | LessonError:
    """Parse a file once per content stamp (cached for the process; the error is cached too)."""
    try:
        if size > FILE_BYTES_MAX:
            raise LessonError(f"lesson file {Path(path).name}: too large ({size:,} bytes, max "
                              f"{FILE_BYTES_MAX:,})")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LessonError(f"lesson file {Path(path).name}: cannot be read: {exc}") from None
        return parse(text, path)
    except LessonError as exc:
        return exc


def load_file(path: str | Path) -> Lesson:
    """One lesson file (cached by size and modification time); LessonError if it is malformed."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise LessonError(f"lesson file {path.name}: cannot be read: {exc.strerror}") from None
    out = _read(str(path), st.st_size, st.st_mtime_ns)
    if isinstance(out, LessonError):
        raise out
    return out


# ---- every lesson --------------------------------------------------------------------------------
def folders(extra: str | Path | None = None) -> list[Path]:
    """Where lessons are read from: the shipped folder, then ``$OPMERGE_LESSONS`` or ``extra``."""
    out = [SHIPPED]
    own = extra if extra is not None else os.environ.get(ENV)
    if own:
        out.append(Path(own).expanduser())
    return out


def available(folder: str | Path | None = None) -> Catalog:
    """Every lesson found (shipped first; a teacher's file replaces a shipped one of the same name),
    and one line per file that could not be read."""
    lessons: dict[str, Lesson] = {}
    errors: list[str] = []
    for where in folders(folder):
        if where != SHIPPED and not where.is_dir():
            errors.append(f"lesson folder {where} ({ENV}) is not a folder")
            continue
        files = sorted(where.glob("*.toml"))
        if len(files) > FILES_MAX:
            errors.append(f"lesson folder {where}: {len(files)} files, only the first {FILES_MAX} are read")
        for path in files[:FILES_MAX]:
            try:
                lesson = load_file(path)
            except LessonError as exc:
                errors.append(str(exc))
                continue
            lessons[lesson.name] = lesson
    return Catalog(lessons, tuple(errors))


def load(name: str, folder: str | Path | None = None) -> Lesson:
    """The lesson called ``name``; LessonError naming it (or its file's problem) if there is none."""
    catalog = available(folder)
    if name in catalog.lessons:
        return catalog.lessons[name]
    problem = next((e for e in catalog.errors if e.startswith(f"lesson file {name}.toml")), None)
    if problem:
        raise LessonError(problem)
    known = ", ".join(sorted(catalog.lessons)) or "none"
    raise LessonError(f"unknown lesson {name!r}; lessons: {known}")


def step_query(lesson: Lesson, k: int) -> dict[str, str]:
    """The URL query that opens step ``k`` of ``lesson`` (its page's parameters, lesson= and step=)."""
    step = lesson.step(k)
    return {**step.params, "lesson": lesson.name, "step": str(step.index)}


def summary(lesson: Lesson) -> dict:
    """A lesson as plain data (``opmerge lesson list --json``)."""
    return {"name": lesson.name, "title": lesson.title, "summary": lesson.summary, "source": lesson.source,
            "steps": [{"step": s.index, "title": s.title, "page": s.page, "params": s.params,
                       "question": None if s.question is None else
                       {"kind": s.question.kind, "prompt": s.question.prompt,
                        "choices": [k for k, _ in s.question.choices], "params": s.question.params}}
                      for s in lesson.steps]}
