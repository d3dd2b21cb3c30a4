"""opmerge core: the operator-merging model of diffusion trajectory distillation.

Pure Python + numpy/torch; no Streamlit. See ../shared/docs/THEORY.md and SFD.md.
"""

__version__ = "0.1.0"
