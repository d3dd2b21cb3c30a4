"""opmerge dashboard: router and shared frame (presets, Reset, the bound teaching parameters).

Run with ``opmerge dashboard`` or ``streamlit run dashboard/app.py``. Pages live in
``dashboard/app_pages/``; the optional pages of other areas (train, celeba, sfd, mixtures) appear
as soon as their file exists there. ``?present=1`` switches to presentation mode.
"""

from pathlib import Path

import streamlit as st

from dashboard import common

PAGES_DIR = Path(__file__).parent / "app_pages"
PRESENT = str(st.query_params.get("present", st.session_state.get("_present", ""))) == "1"
st.session_state["_present"] = "1" if PRESENT else ""

st.set_page_config(page_title="opmerge — operator merging lab", page_icon=":material/ssid_chart:",
                   layout="wide", initial_sidebar_state="collapsed" if PRESENT else "expanded")
if PRESENT:
    st.query_params["present"] = "1"
    st.html("""<style>
      html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
      [data-testid="stMetricValue"] { font-size: 3rem; }
      h1 { font-size: 2.6rem !important; } h2, h3 { font-size: 1.9rem !important; }
      .stCaption, [data-testid="stCaptionContainer"] { font-size: 1.05rem; }
    </style>""")

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

with st.sidebar:
    st.markdown("### opmerge")
    st.caption("Diffusion trajectory distillation as operator merging (arXiv 2505.16024). "
               "Every control below is in the URL: share the link to share the state.")
    common.parameter_widgets()
    p = common.params()
    st.markdown("**Active model choices** (assumptions, see About)")
    st.caption(common.model_choices_text(p))
    st.segmented_control("Figure export format", ["png", "svg"], key="export_format", default="png",
                         help="Format of the camera button in every figure's toolbar.")
    if not PRESENT:
        st.caption("Tip: add `?present=1` to the URL for presentation mode.")

common.show_url_warnings()
common.keep_jobs_alive()
page.run()
