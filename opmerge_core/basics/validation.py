"""Input checks shared by the library, the CLI and the dashboard: the one validation layer.

Every check raises ``ValueError`` with a one-line message that names the parameter, the bad value and
what is allowed; the CLI prints that line and exits with code 2, the dashboard shows it as a warning.
Callers with tighter ranges (the dashboard's sliders, the trainer's T) pass their bounds as
arguments (``lo``, ``hi``) rather than checking again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

T_MAX = 4096          # largest number of teacher steps the planner accepts
LAM_MAX = 1e6         # largest data variance accepted
S_MAX = 1e4           # largest shrinkage budget accepted
D_MAX = 4096          # largest number of coordinates (eigen-directions) at once


def check_int(value: object, name: str, *, lo: int = 1, hi: int) -> int:
    """An integer in [lo, hi] (ints, integral floats and their strings; never bools)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    try:
        if isinstance(value, str):
            value = value.strip()
        number = int(value)  # type: ignore[arg-type]
        if isinstance(value, float | np.floating) and number != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {number}")
    return number


def check_count(value: object, name: str, *, hi: int) -> int:
    """A positive integer <= hi (a number of steps, a batch size); a non-positive value gets a
    message that says so."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if math.isfinite(number) and number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return check_int(value, name, hi=hi)


def check_T(T: object, *, lo: int = 1, hi: int = T_MAX) -> int:
    """The number of teacher steps T in [lo, hi] (THEORY §1)."""
    return check_int(T, "T", lo=lo, hi=hi)


def check_positive(x: object, name: str, *, lo: float = 0.0, hi: float = math.inf,
                   allow_zero: bool = False) -> float:
    """A finite float > 0 (or >= 0), >= lo and <= hi."""
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value:g}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo:g}, got {value:g}")
    if value > hi:
        raise ValueError(f"{name} must be <= {hi:g}, got {value:g}")
    return value


def check_lam(lam: object, *, name: str = "lam", lo: float = 0.0, hi: float = LAM_MAX) -> np.ndarray:
    """Data variances λ: a scalar or 1-D sequence of finite values > 0, >= lo and <= hi (default
    (0, LAM_MAX]). Returns 1-D float64."""
    try:
        arr = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a list of numbers, got {lam!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a 1-D list of numbers")
    if arr.size > D_MAX:
        raise ValueError(f"{name} has {arr.size} values; at most {D_MAX} are allowed")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {arr[bad][0]}")
    if (arr <= 0).any():
        raise ValueError(f"{name} must be > 0 (a variance), got {arr[arr <= 0][0]:g}")
    if (arr < lo).any():
        raise ValueError(f"{name} must be >= {lo:g}, got {arr[arr < lo][0]:g}")
    if (arr > hi).any():
        raise ValueError(f"{name} must be <= {hi:g}, got {arr[arr > hi][0]:g}")
    return arr


def check_S(S: object, *, lo: float = 0.0, hi: float = S_MAX) -> float:
    """The shrinkage budget S = κτ in [lo, hi] (default [0, S_MAX]; THEORY §2)."""
    return check_positive(S, "S (shrinkage)", lo=lo, hi=hi, allow_zero=True)


def check_choice(value: object, choices: Iterable[str], name: str) -> str:
    options: Sequence[str] = list(choices)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(options)}")
    return value


def parse_float_list(text: str, name: str) -> list[float]:
    """'0.5' or '0.5,1,2' -> floats (used by the CLI)."""
    try:
        return [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{name} must be a number or a comma list of numbers, got {text!r}") from None


def parse_T_list(text: str) -> list[int]:
    """'8' or '4,8,16' -> numbers of teacher steps T, each checked by ``check_T`` (used by the CLI)."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"T must be an integer or a comma list of integers, got {text!r}")
    return [check_T(p) for p in parts]


def parse_lam_grid(text: str) -> np.ndarray:
    """A λ grid: 'a:b:n:log', 'a:b:n' (linear) or a comma list."""
    parts = str(text).split(":")
    if len(parts) == 1:
        return check_lam(parse_float_list(text, "lam"))
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
        raise ValueError(f"lam grid must look like 'a:b:n[:log|lin]', got {text!r}")
    lo, hi = check_lam([parts[0], parts[1]]) if _is_num(parts[:2]) else (None, None)
    if lo is None:
        raise ValueError(f"lam grid bounds must be numbers, got {text!r}")
    n = check_int(parts[2], "number of grid points", lo=2, hi=D_MAX)
    if hi <= lo:
        raise ValueError(f"lam grid needs a < b, got {text!r}")
    log = len(parts) == 4 and parts[3] == "log"
    return np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)


def _is_num(parts: Sequence[str]) -> bool:
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


URL_MAX = 500         # characters of a server address given by a flag or the environment


def check_base_url(raw: object, name: str = "public URL") -> str:
    """A server's base address: http(s)://host[:port][/path], no query or fragment; returned without
    a trailing slash (a room's links are built on it)."""
    from urllib.parse import urlsplit, urlunsplit
    url = str(raw).strip()
    try:
        parts = urlsplit(url)
        _ = parts.port                          # raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or len(url) > URL_MAX or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment or any(c.isspace() for c in url):
        raise ValueError(f"{name} must be http(s)://host[:port][/path], got {str(raw)[:80]!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def os_reason(exc: BaseException, *, with_file: bool = False) -> str:
    """An OS error in words: the OS message (never "None"; pandas, for one, raises
    ``OSError("Cannot save file into a non-existent directory: …")`` without one), prefixed by the
    file it concerns if ``with_file``."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    filename = getattr(exc, "filename", None)
    return f"{filename}: {reason}" if with_file and filename and getattr(exc, "strerror", None) else reason
