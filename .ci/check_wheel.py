"""Check that a built opmerge wheel holds everything `opmerge dashboard` needs (used by .ci/run and
tests/test_wheel.py): both import packages, every page, the Streamlit config, the shipped lessons, and
the assets as package data under opmerge_core/assets/. Prints one line per problem; exit code 1 if any."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGES = sorted({p.split(".")[0] for p in SETUPTOOLS["packages"]})            # top-level import packages
APP_PACKAGE = next(p for p in PACKAGES if p != "opmerge_core")                   # the app's import package
APP_SOURCE = ROOT / SETUPTOOLS["package-dir"][APP_PACKAGE]                        # its source folder


def required() -> list[str]:
    """Every file the installed app needs, derived from the source tree (pages and assets)."""
    app = APP_SOURCE
    names = ["opmerge_core/__init__.py", "opmerge_core/cli/dashboard.py", f"{APP_PACKAGE}/app.py",
             f"{APP_PACKAGE}/.streamlit/config.toml"]
    names += [f"{APP_PACKAGE}/{p.relative_to(app).as_posix()}" for p in sorted(app.rglob("*.py"))]
    names += [f"{APP_PACKAGE}/lessons/{p.name}" for p in sorted((app / "lessons").glob("*.toml"))]
    names += [f"opmerge_core/assets/{p.name}" for p in sorted((ROOT / "assets").iterdir()) if p.is_file()]
    return names


def problems(wheel: str | Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry = next((z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    out = [f"missing from the wheel: {n}" for n in required() if n not in names]
    if "opmerge = opmerge_core.cli:main" not in entry:
        out.append("console script `opmerge = opmerge_core.cli:main` is missing")
    out += [f"unexpected top-level entry: {n}" for n in sorted({n.split("/")[0] for n in names})
            if n not in PACKAGES and not n.endswith(".dist-info")]
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python .ci/check_wheel.py dist/opmerge-*.whl")
    found = problems(sys.argv[1])
    print("\n".join(found) or f"{sys.argv[1]}: ok ({len(required())} required files present)")
    sys.exit(1 if found else 0)
