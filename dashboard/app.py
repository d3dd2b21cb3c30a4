"""opmerge dashboard (placeholder until the dashboard issue lands)."""

import streamlit as st

st.set_page_config(page_title="opmerge", layout="wide")
st.title("opmerge")
st.write("The interactive lab for diffusion trajectory distillation is being built.")
