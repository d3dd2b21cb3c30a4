"""The dashboard's frame: page config, presentation mode, the router and the shared controls.

``dashboard/app.py`` (the Streamlit entry point) calls ``run()`` on every script run.
"""

from pathlib import Path

# Imported here, before any session draws: the warm-up thread imports torch and Pillow while sessions
# serialise figures, and Plotly's encoder reads PIL.Image from sys.modules without importing it — a
# half-initialised module there broke a student's first page ("partially initialized module 'PIL.Image'").
import PIL.Image  # noqa: F401
import streamlit as st

from opmerge_dashboard import controls, lesson_view, presentation, room_view
from opmerge_dashboard.backend import keep_jobs_alive, warm_up
from opmerge_dashboard.params import keep_in_url, sanitize_page, sanitize_url, show_url_warnings

PAGES_DIR = Path(__file__).parent / "app_pages"
# (file, title, material icon, url path), in the order of the navigation bar
PAGES = [("phase.py", "Phase transition", "ssid_chart", "phase"),
         ("operators.py", "Operators", "functions", "operators"),
         ("playground.py", "Plan playground", "account_tree", "playground"),
         ("spectrum.py", "Spectrum", "equalizer", "spectrum"),
         ("experiments.py", "Paper experiments", "science", "experiments"),
         ("train.py", "Train", "model_training", "train"),
         ("celeba.py", "CelebA latents", "face", "celeba"),
         ("sfd.py", "SFD", "fast_forward", "sfd"),
         ("mixtures.py", "Mixtures", "scatter_plot", "mixtures"),
         ("practice.py", "Theory vs practice", "compare_arrows", "practice"),
         ("about.py", "About", "info", "about"),
         ("lessons.py", "Lessons", "school", "lessons")]


def session_pages() -> dict:
    """url path → ``st.Page``, made once per session (each page costs path checks and hashing; a page
    object is not shared between sessions, whose script runs mark it callable in turn)."""
    if "_pages" not in st.session_state:
        st.session_state["_pages"] = {
            u: st.Page(PAGES_DIR / f, title=t, icon=f":material/{i}:", url_path=u, default=u == "phase")
            for f, t, i, u in PAGES}
    return st.session_state["_pages"]


def run() -> None:
    """One script run: the frame around the current page, then the page."""
    present = str(st.query_params.get("present", st.session_state.get("_present", ""))) == "1"
    st.session_state["_present"] = "1" if present else ""

    st.set_page_config(page_title="opmerge — operator merging lab", page_icon=":material/ssid_chart:",
                       layout="wide", initial_sidebar_state="collapsed" if present else "expanded")
    if present:
        keep_in_url("present", "1")
        st.html(presentation.CSS)

    warm_up()
    nav = room_nav()
    room_view.enter(nav)            # ?room=…: join; a student following gets the teacher's step in the URL
    lesson_view.open_step()         # ?lesson=…&step=…: the step's state, before any widget exists
    sanitize_url()

    pages = session_pages()
    page = st.navigation(list(pages.values()), position="top")
    lesson_view.switch_if_needed(page.url_path or "phase", pages)
    sanitize_page(page.url_path or "phase")

    keys = controls.for_page(page.url_path)
    with st.sidebar:
        # one element (each costs server CPU on every rerun of every student)
        st.markdown("### opmerge\n:small[:gray[Diffusion trajectory distillation as operator merging "
                    "(arXiv 2505.16024)." + ("" if present else " Tip: add `?present=1` to the URL for "
                                                               "presentation mode.") + "]]")
        st.page_link(pages["lessons"], label="Lessons: guided tours for a class", icon=":material/school:")
        controls.sidebar(keys)
        st.segmented_control("Figure export format", ["png", "svg"], key="export_format", default="png",
                             help="Format of the camera button in every figure's toolbar.")
        room_view.sidebar(nav)
    if room_view.main():            # the teacher's join screen fills the page
        return
    if present:
        controls.stage(keys)

    show_url_warnings()
    keep_jobs_alive()
    lesson_view.bar()
    page.run()


def room_nav() -> room_view.Nav:
    """How a room sees this session's lesson step and moves it (the lesson's URL parameters, applied
    by ``lesson_view.open_step`` in the same run)."""
    found = lesson_view.current()
    return room_view.Nav((found[0].name, found[1].index) if found else None, _open_lesson_step)


def _open_lesson_step(lesson: str, k: int) -> None:
    st.query_params["lesson"] = lesson
    st.query_params["step"] = str(k)
