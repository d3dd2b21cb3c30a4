"""The dashboard package's classroom commands, plugged into ``opmerge`` through the entry-point group
``opmerge.commands`` (pyproject.toml; see opmerge_core/cli/__init__.py):

- ``opmerge lesson list [--json] [--dir DIR]``: every lesson (shipped, then ``$OPMERGE_LESSONS`` or DIR)
  with its steps; a malformed lesson file is one line on stderr naming the file and the step, exit 2.
- ``opmerge lesson check FILE…``: check lesson files before class (exit 2 at the first bad one).

Registering imports nothing heavy; the lesson module (no Streamlit) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    lesson = sub.add_parser("lesson", help="lessons: guided tours of the dashboard for a class "
                                           "(docs/LESSONS.md)")
    actions = lesson.add_subparsers(dest="lesson_command", required=True)
    listing = actions.add_parser("list", help="list the lessons and their steps")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--dir", default=None,
                         help="a folder of your own lesson files (default: $OPMERGE_LESSONS)")
    listing.set_defaults(func=lesson_list)
    check = actions.add_parser("check", help="check lesson files (one line per problem, exit 2)")
    check.add_argument("files", nargs="+", help="lesson files (.toml)")
    check.set_defaults(func=lesson_check)


def lesson_list(args: argparse.Namespace) -> int:
    from opmerge_dashboard import lessons

    catalog = lessons.available(args.dir)
    if args.json:
        print(json.dumps({"lessons": [lessons.summary(x) for x in catalog.lessons.values()],
                          "errors": list(catalog.errors)}, indent=2, ensure_ascii=False))
    else:
        for x in catalog.lessons.values():
            print(f"{x.name}: {x.title} ({len(x.steps)} steps)")
            for s in x.steps:
                query = "&".join(f"{k}={v}" for k, v in lessons.step_query(x, s.index).items()
                                 if k in ("lesson", "step"))
                print(f"  {s.index:>2}. {s.title}  [{s.page}]" + ("  (question)" if s.question else "")
                      + f"  /{'' if s.page == 'phase' else s.page}?{query}")
    for problem in catalog.errors:
        print(f"opmerge lesson list: error: {problem}", file=sys.stderr)
    return 2 if catalog.errors else 0


def lesson_check(args: argparse.Namespace) -> int:
    from opmerge_dashboard import lessons

    for path in args.files:
        lesson = lessons.load_file(path)            # LessonError (a ValueError): one line, exit 2
        n_q = sum(s.question is not None for s in lesson.steps)
        print(f"{path}: ok — {lesson.title!r}, {len(lesson.steps)} steps, {n_q} questions")
    return 0
