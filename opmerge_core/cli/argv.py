"""Command lines from specs, built from the commands' own parsers.

Each command module turns the spec its command runs (a frozen dataclass) into argv with
``options(parser, values)`` and back with its ``spec_from(args)``; a default is written once, in the
parser, and an option whose value is the parser's default is left out. ``parse(to_argv(spec)) == spec``
holds for every spec (tests/test_cli_argv.py), so the dashboard prints commands that run what it shows.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Mapping


@functools.cache
def command_parser(module: str, *path: str) -> argparse.ArgumentParser:
    """The parser of ``opmerge <path>`` with only ``module``'s commands registered (cached; it is
    never mutated)."""
    from opmerge_core.cli import build_parser

    parser = build_parser([module])
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def build(module: str, path: tuple[str, ...], values: Mapping[str, object]) -> list[str]:
    """The argv of ``opmerge <path>`` (without ``opmerge``) giving ``values`` (see ``options``)."""
    return [*path, *options(command_parser(module, *path), values)]


def parse_args(module: str, args: list[str]) -> argparse.Namespace:
    """``args`` (an argv without ``opmerge``) parsed by the real parser of ``module``'s commands."""
    return command_parser(module).parse_args(args)


def fmt(value: object) -> str:
    """A value as the CLI reads it back: the shortest text of a float that gives the same float
    (``0.5``, ``2``, ``3.3333333333333335``), comma lists for tuples."""
    if isinstance(value, tuple | list):
        return ",".join(fmt(v) for v in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _is_default(action: argparse.Action, value: object) -> bool:
    """Whether ``value`` is what the parser gives when the option is absent (its default read back
    as the value's type)."""
    default = action.default
    if value is None or default is None:
        return value is default
    if isinstance(value, bool):
        return value == bool(default)
    try:
        if isinstance(value, tuple):
            return fmt(value) == fmt(tuple(type(value[0])(x) for x in str(default).split(","))) \
                if value else str(default) == ""
        return type(value)(default) == value
    except (TypeError, ValueError):
        return False


def options(parser: argparse.ArgumentParser, values: Mapping[str, object]) -> list[str]:
    """``--option value`` pairs (flags alone) for ``values`` by destination, in the parser's order,
    without those equal to the parser's default."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    unknown = set(values) - set(actions)
    if unknown:
        raise KeyError(f"{parser.prog} has no option for {', '.join(sorted(unknown))}")
    out: list[str] = []
    for dest, action in actions.items():
        if dest in values and (action.required or not _is_default(action, values[dest])):
            flag = action.option_strings[0]
            out += [flag] if isinstance(action, argparse._StoreTrueAction) else [flag, fmt(values[dest])]
    return out
