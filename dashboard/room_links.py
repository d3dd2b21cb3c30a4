"""A room's links and its QR code (no Streamlit: the CLI uses this too).

The student link is the server's public address plus ``?room=CODE``; the teacher link adds
``&key=KEY``. The public address is, first, ``--public-url`` / ``$OPMERGE_PUBLIC_URL`` (a server behind
a proxy or a name the students know), else the address the teacher's own browser used
(``st.context.url``): right when the teacher opened the page by the address the class can reach, and
useless when it is ``localhost`` — ``loopback`` tells, so the page can say so.
"""

from __future__ import annotations

import io
import ipaddress
import os
from urllib.parse import urlencode, urlsplit, urlunsplit

import segno

from opmerge_core.basics.validation import check_base_url

PUBLIC_URL_ENV = "OPMERGE_PUBLIC_URL"
DEFAULT_BASE = "http://localhost:8501"


def configured_base() -> str | None:
    """``$OPMERGE_PUBLIC_URL`` (checked), or None."""
    raw = os.environ.get(PUBLIC_URL_ENV, "").strip()
    return check_base_url(raw) if raw else None


def base_from_browser(url: str | None, page_paths: tuple[str, ...] = ()) -> str | None:
    """The app's root from the browser's URL (``st.context.url``: scheme, host, port, path, no query):
    the path less a trailing page url path (``/phase``)."""
    if not url:
        return None
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if last in page_paths:
        path = head
    try:
        return check_base_url(urlunsplit((parts.scheme, parts.netloc, path, "", "")))
    except ValueError:
        return None


def loopback(url: str) -> bool:
    """Whether ``url`` points at the machine that opens it (localhost, 127.x, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def student_link(base: str, code: str) -> str:
    return f"{base}/?{urlencode({'room': code})}"


def teacher_link(base: str, code: str, key: str) -> str:
    return f"{base}/?{urlencode({'room': code, 'key': key})}"


def qr_png(text: str, scale: int = 16) -> bytes:
    """A QR code of ``text`` as a PNG: black modules on white, the standard 4-module quiet zone,
    ``scale`` pixels a module (a ~30-character link is a 29×29 code: 37 modules with the quiet zone,
    592 px at the default scale, drawn as large as the page allows). Error correction M."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()
