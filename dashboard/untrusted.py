"""Text that came from outside — a URL's query string, an upload, a file name, an error message that
quotes one — shown as the text it is, never as markup.

Streamlit renders markdown almost everywhere (alerts, captions, widget labels, progress texts): a query
parameter echoed as is becomes a link, an external image, a colour, an icon or LaTeX inside an
official-looking box. ``text`` is the one way such a value reaches a markdown body: one line, cut to a
sensible length, every markdown character backslash-escaped (CommonMark lets any ASCII punctuation be
escaped: no link, image, emphasis, HTML, ``$`` math, ``:icon:`` or ``:red[…]``, and no bare-URL
autolink either, since ``http\\:\\/\\/`` no longer reads as one). Values shown in ``st.code``, a text box
or a table are text already and need nothing.
"""

from __future__ import annotations

import re
import unicodedata

TEXT_MAX = 200          # characters of an outside value shown (the rest is counted, not shown)
_MARKDOWN = re.compile(r"([!-/:-@\[-`{-~])")      # every ASCII punctuation character


def one_line(value: object, limit: int = TEXT_MAX) -> str:
    """``str(value)`` on one line (control and invisible format characters — newlines, bidi overrides,
    zero-width marks — become spaces) and cut to ``limit`` characters with the full length said."""
    raw = str(value)
    cut = raw[:limit]
    flat = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in cut)
    return flat if len(raw) <= limit else f"{flat}… ({len(raw):,} characters)"


def text(value: object, limit: int = TEXT_MAX) -> str:
    """An outside value for a markdown body: ``one_line`` and every markdown character escaped."""
    return _MARKDOWN.sub(r"\\\1", one_line(value, limit))


def unescape(markdown: str) -> str:
    """What a reader sees of a body built with ``text`` (the escapes removed; tests compare with it)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)
