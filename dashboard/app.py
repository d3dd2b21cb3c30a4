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

st.set_page_config(page_title="opmerge — operator merging lab", page_icon="🧮", layout="wide",
                   initial_sidebar_state="collapsed" if PRESENT else "expanded")
if PRESENT:
    st.query_params["present"] = "1"
    st.html("""<style>
      html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
      [data-testid="stMetricValue"] { font-size: 3rem; }
      h1 { font-size: 2.6rem !important; } h2, h3 { font-size: 1.9rem !important; }
      .stCaption, [data-testid="stCaptionContainer"] { font-size: 1.05rem; }
    </style>""")

common.sanitize_url()

pages = [
    st.Page(PAGES_DIR / "phase.py", title="Phase transition", icon="🔀", url_path="phase", default=True),
    st.Page(PAGES_DIR / "operators.py", title="Operators", icon="📐", url_path="operators"),
    st.Page(PAGES_DIR / "playground.py", title="Plan playground", icon="🌳", url_path="playground"),
    st.Page(PAGES_DIR / "spectrum.py", title="Spectrum", icon="🌈", url_path="spectrum"),
    st.Page(PAGES_DIR / "experiments.py", title="Paper experiments", icon="🧪", url_path="experiments"),
]
OPTIONAL = [("train.py", "Train", "🏋️", "train"), ("celeba.py", "CelebA latents", "🖼️", "celeba"),
            ("sfd.py", "SFD", "⏩", "sfd"), ("mixtures.py", "Mixtures", "🎲", "mixtures")]
pages += [st.Page(PAGES_DIR / f, title=t, icon=i, url_path=u) for f, t, i, u in OPTIONAL
          if (PAGES_DIR / f).exists()]
pages.append(st.Page(PAGES_DIR / "about.py", title="About", icon="ℹ️", url_path="about"))
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
page.run()
