"""The `opmerge` command line: one subcommand per capability.

Each submodule defines ``register(subparsers)`` which adds its subcommands and sets ``func`` on each
parser; registering imports nothing heavy (torch, pandas, streamlit are imported by the commands that
use them). ``main`` registers only the module of the command being run (``COMMANDS``), so e.g.
``opmerge plan`` never imports the training stack. A ``ValueError`` (bad input) anywhere becomes one
line on stderr and exit code 2, and so does an ``OSError`` (a path that cannot be read or written: the
OS's reason, never a traceback).

Packages above the core (the dashboard's classroom commands) add command modules without the core
naming them: an entry point in the group ``opmerge.commands`` (``pyproject.toml``) maps a command name to
a module with the same ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

# Submodules that contribute subcommands (each has `register(subparsers)`).
COMMAND_MODULES = ["theory", "train", "vae", "celeba", "sfd", "practice", "dashboard"]
# Which module registers each command (a command not listed here makes `main` register them all).
COMMANDS = {"plan": "theory", "eval": "theory", "sweep": "theory", "train": "train", "runs": "train",
            "vae": "vae", "celeba": "celeba", "solve": "sfd", "sfd": "sfd", "practice": "practice",
            "dashboard": "dashboard"}
PLUGIN_GROUP = "opmerge.commands"     # entry points: command name = "package.module" registering it


def plugin_commands() -> dict[str, str]:
    """Commands contributed by installed packages above the core: command -> module path."""
    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}


def _module(name: str) -> str:
    """A core command module's short name, or a plug-in's full module path."""
    return f"opmerge_core.cli.{name}" if name in COMMAND_MODULES else name


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors on a single line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(modules: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the subcommands of ``modules`` (default: all of COMMAND_MODULES and every
    plug-in module)."""
    parser = OneLineParser(prog="opmerge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    if modules is None:
        modules = [*COMMAND_MODULES, *dict.fromkeys(plugin_commands().values())]
    for name in modules:
        importlib.import_module(_module(name)).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``opmerge`` command; returns its exit code (2 for bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    module = (COMMANDS.get(argv[0]) or plugin_commands().get(argv[0])) if argv else None
    parser = build_parser(None if module is None else [module])
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.extra = extra
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:                 # `opmerge … | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValueError as exc:
        print(f"opmerge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:                  # a path that cannot be read or written: why, in one line
        from opmerge_core.basics.validation import os_reason

        print(f"opmerge {args.command}: error: {os_reason(exc, with_file=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"opmerge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
