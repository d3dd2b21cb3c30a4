"""Eigenvalues from an uploaded file (Spectrum page): bounded in size, never unpickled."""

from __future__ import annotations

import io
import math

import numpy as np

from opmerge_core.basics.validation import check_lam

SPECTRUM_BYTES_MAX = 1_000_000   # 1 MB
SPECTRUM_VALUES_MAX = 4096       # eigenvalues (= validation.D_MAX)
REAL_KINDS = "iuf"               # numpy dtype kinds accepted: signed, unsigned integers and floats


def parse_spectrum(name: str, data: bytes) -> np.ndarray:
    """Eigenvalues from an uploaded .csv/.txt (numbers separated by commas/whitespace/newlines) or
    .npy (real floating or integer data, ≤ 2-D, ``allow_pickle=False``). Raises ValueError with a
    one-line reason."""
    if len(data) > SPECTRUM_BYTES_MAX:
        raise ValueError(f"file is {len(data):,} bytes; at most {SPECTRUM_BYTES_MAX:,} are accepted")
    if not data:
        raise ValueError("file is empty")
    if name.lower().endswith(".npy"):
        _check_npy_header(io.BytesIO(data), len(data))
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"not a readable .npy array without pickles ({exc})") from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("CSV must be UTF-8 text") from None
        tokens = [t for t in text.replace(",", " ").replace(";", " ").split() if t]
        try:
            arr = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise ValueError(f"CSV must contain only numbers; found {bad[:30]!r}") from None
    arr = np.asarray(arr, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("no eigenvalues found")
    if arr.size > SPECTRUM_VALUES_MAX:
        raise ValueError(f"{arr.size:,} eigenvalues; at most {SPECTRUM_VALUES_MAX:,} are accepted")
    return np.sort(check_lam(arr, name="eigenvalue"))[::-1].copy()


def _check_npy_header(stream, size: int) -> None:
    """Read only the .npy header: a numeric array of at most SPECTRUM_VALUES_MAX values whose data
    is really in the file — before numpy allocates anything (a 192-byte file may claim 2**40 values)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        shape, _fortran, dtype = (npy.read_array_header_1_0(stream) if version == (1, 0)
                                 else npy.read_array_header_2_0(stream))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"not a readable .npy file ({exc})") from None
    if dtype.kind not in REAL_KINDS or len(shape) > 2:     # complex, timedelta, bool, object, text …
        raise ValueError(f"expected a 1-D array of real numbers (float or integer), got dtype {dtype} "
                         f"with shape {shape}")
    count = math.prod(shape)
    if count > SPECTRUM_VALUES_MAX:
        raise ValueError(f"the file declares {count:,} eigenvalues (shape {shape}); at most "
                         f"{SPECTRUM_VALUES_MAX:,} are accepted")
    if count * dtype.itemsize > size - stream.tell():
        raise ValueError(f"the file is truncated: its header declares shape {shape} of {dtype}")


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True
