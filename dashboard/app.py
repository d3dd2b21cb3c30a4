"""opmerge dashboard: router and shared frame (presets, Reset, the bound teaching parameters).

Run with ``opmerge dashboard`` or ``streamlit run dashboard/app.py``. Pages live in
``dashboard/app_pages/``; the optional pages of other areas (train, celeba, sfd, mixtures) appear
as soon as their file exists there. ``?present=1`` switches to presentation mode.
"""

from pathlib import Path

import streamlit as st

from dashboard import common, controls, presentation

PAGES_DIR = Path(__file__).parent / "app_pages"
PRESENT = str(st.query_params.get("present", st.session_state.get("_present", ""))) == "1"
st.session_state["_present"] = "1" if PRESENT else ""

st.set_page_config(page_title="opmerge — operator merging lab", page_icon=":material/ssid_chart:",
                   layout="wide", initial_sidebar_state="collapsed" if PRESENT else "expanded")
if PRESENT:
    st.query_params["present"] = "1"
    st.html(presentation.CSS)

common.warm_up()
common.sanitize_url()

# (file, title, material icon, url path); optional pages appear when their file exists.
PAGES = [("phase.py", "Phase transition", "ssid_chart", "phase"),
         ("operators.py", "Operators", "functions", "operators"),
         ("playground.py", "Plan playground", "account_tree", "playground"),
         ("spectrum.py", "Spectrum", "equalizer", "spectrum"),
         ("experiments.py", "Paper experiments", "science", "experiments"),
         ("train.py", "Train", "model_training", "train"),
         ("celeba.py", "CelebA latents", "face", "celeba"),
         ("sfd.py", "SFD", "fast_forward", "sfd"),
         ("mixtures.py", "Mixtures", "scatter_plot", "mixtures"),
         ("about.py", "About", "info", "about")]
pages = [st.Page(PAGES_DIR / f, title=t, icon=f":material/{i}:", url_path=u, default=u == "phase")
         for f, t, i, u in PAGES if (PAGES_DIR / f).exists()]
page = st.navigation(pages, position="top")

keys = controls.for_page(page.url_path)
with st.sidebar:
    st.markdown("### opmerge")
    st.caption("Diffusion trajectory distillation as operator merging (arXiv 2505.16024).")
    controls.sidebar(keys)
    st.segmented_control("Figure export format", ["png", "svg"], key="export_format", default="png",
                         help="Format of the camera button in every figure's toolbar.")
    if not PRESENT:
        st.caption("Tip: add `?present=1` to the URL for presentation mode.")
if PRESENT:
    controls.stage(keys)

common.show_url_warnings()
common.keep_jobs_alive()
page.run()
