"""No markup from URLs: links, images, HTML, LaTeX and Streamlit's own directives fed through every query
parameter of every page arrive as text (escaped by ``untrusted.text``) and cut to a sensible length.

The parameters come from the app's own registry (``url_params.every_param``: the frame's, the shared
theory ones, each page's own), and a guard test checks that registry against every query parameter the
source reads or binds a widget to, so a new parameter is fuzzed as soon as it exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_dashboard import frame, untrusted, url_params

APP = "../dashboard/app.py"
DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
HOSTILE = ("x **[Teacher says: log in here](http://evil.example/login)** ![i](http://evil.example/p.png) "
           "<img src=http://evil.example/q.png> <script>alert(1)</script> <b>bold</b> $\\frac{a}{b}$ "
           ":red[red] :material/warning: www.evil.example http://evil.example/bare `code` # heading\n"
           "- item" + "A" * 10_000)      # a page's parameters at once: under Streamlit's 512 kB query limit
BODY_MAX = 2_000                   # no message echoes more than this
# the payload's markup, as it would read unescaped (the app's own pages have links of their own)
MARKUP = ("](http://evil", "![i]", "<img src=http://evil", "<script>alert", "<b>bold", "http://evil",
          "www.evil", ":red[red]", "$\\frac{a}", "`code`", "# heading", "- item")


def bodies(at: AppTest) -> list[str]:
    """Every text the page renders as markdown: alerts, markdown, captions, headings, widget labels
    and help, progress texts, exceptions (code blocks and input values are plain text already)."""
    out = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and getattr(node, "type", "") not in ("code", "text_input", "text_area"):
            for name in ("body", "label", "help", "text", "message", "caption", "placeholder"):
                value = getattr(proto, name, None)
                if isinstance(value, str) and value:
                    out.append(value)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def assert_only_text(at: AppTest) -> None:
    assert not at.exception, at.exception
    for body in bodies(at):
        assert len(body) <= BODY_MAX, f"{len(body)} characters echoed: {body[:200]}"
        for markup in MARKUP:               # unescaped: its first character has no backslash before it
            unescaped = re.search(r"(?<!\\)" + re.escape(markup), body)
            assert not unescaped, f"{markup!r} as markup in {body[:300]!r}"


def page_paths() -> list[str]:
    return [u for _, _, _, u in frame.PAGES]


def page_params(page: str) -> dict:
    """The parameters ``page`` reads besides the frame's (none on a page without controls)."""
    return url_params.page_params(page) if page in url_params.PAGES else {}


def open_page(page: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.run()
    if page != "phase" and not at.exception:
        files = {u: f for f, _, _, u in frame.PAGES}
        at.switch_page(f"app_pages/{files[page]}")
        at.run()
    return at


@pytest.mark.parametrize("page", page_paths())
def test_every_parameter_of_every_page_arrives_as_text(page, monkeypatch, tmp_path):
    """The frame's parameters and every one the page reads (``url_params.page_params``), all hostile:
    each of the page's is rejected in a warning that quotes it as text."""
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    own = page_params(page)
    at = open_page(page, dict.fromkeys((*url_params.FRAME, *own), HOSTILE))
    assert_only_text(at)
    warned = " ".join(untrusted.unescape(w.value) for w in at.warning)
    missed = [key for key in own if f"URL parameter `{key}`" not in warned]
    assert not missed, f"not checked on {page}: {missed}"
    shown = " ".join(untrusted.unescape(b) for b in bodies(at))
    assert "Teacher says: log in here" in shown, "echoed, as text"


def test_the_fuzzed_pages_read_every_registered_parameter():
    """Fuzzing each page with its own parameters and the frame's covers the whole registry."""
    fuzzed = set(url_params.FRAME).union(*(page_params(p) for p in page_paths()))
    assert fuzzed == set(url_params.every_param())


def test_a_step_of_a_real_lesson_and_a_wrong_key_of_a_real_room(monkeypatch, tmp_path):
    """Parameters read only beside a valid one: a lesson's step, a room's teacher key."""
    from opmerge_core.store.rooms import RoomStore
    from opmerge_dashboard import lessons

    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    lesson = sorted(lessons.available().lessons)[0]
    with RoomStore() as rooms:
        room, _ = rooms.create(lesson, step=1)
    at = open_page("phase", {"lesson": lesson, "step": HOSTILE, "room": room.code, "key": HOSTILE})
    assert_only_text(at)
    at = open_page("phase", {"room": HOSTILE[:15]})                   # a malformed code, quoted back
    assert_only_text(at)
    assert any("not a room code" in untrusted.unescape(b) for b in bodies(at))


def test_file_names_of_uploads_arrive_as_text():
    at = open_page("spectrum", {})
    at.segmented_control(key="sp_source").set_value("upload").run()
    name = "[click](http://evil.example) <img src=x>.csv"
    at.file_uploader(key="sp_upload").set_value((name, b"1.0\n2.0\n", "text/csv")).run()
    assert_only_text(at)
    assert any(f"from {name}" in untrusted.unescape(s.value) for s in at.success)
    at.file_uploader(key="sp_upload").set_value((name, b"banana", "text/csv")).run()
    assert_only_text(at)
    assert any(name in untrusted.unescape(e.value) for e in at.error)


def test_the_escape_leaves_no_markup_and_says_how_long_it_was():
    shown = untrusted.text(HOSTILE)
    assert "\n" not in shown and untrusted.unescape(shown).endswith(f"… ({len(HOSTILE):,} characters)")
    assert not re.search(r"(?<!\\)[\[\]()<>!*_`#$:]", shown), "every markdown character escaped"
    assert untrusted.unescape(shown).startswith("x **[Teacher says: log in here](http://evil.example/login)**")
    assert untrusted.one_line("a\u202eb\u200bc\nd") == "a b c d"                 # bidi, zero-width, newline


# ---- the registry is complete -------------------------------------------------------------------
def read_params(tree: ast.AST) -> set[str]:
    """Query parameters a module reads (``st.query_params.get("x")``, ``st.query_params["x"]``) or
    binds a widget to (``key="x"`` with ``bind="query-params"`` or ``**BOUND``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "attr", "") == "query_params" \
                and isinstance(node.slice, ast.Constant) and isinstance(node.ctx, ast.Load):
            found.add(node.slice.value)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" \
                    and getattr(func.value, "attr", "") == "query_params" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
            words = {k.arg: k.value for k in node.keywords}
            bound = (isinstance(words.get("bind"), ast.Constant) and words["bind"].value == "query-params") \
                or any(k.arg is None and getattr(k.value, "id", "") == "BOUND" for k in node.keywords)
            if bound and isinstance(words.get("key"), ast.Constant):
                found.add(words["key"].value)
    return found


def test_every_parameter_the_app_reads_is_in_the_registry():
    read = set()
    for path in DASHBOARD.rglob("*.py"):
        read |= read_params(ast.parse(path.read_text(), str(path)))
    assert read, "the scan finds the app's parameters"
    assert read <= set(url_params.every_param()), sorted(read - set(url_params.every_param()))
