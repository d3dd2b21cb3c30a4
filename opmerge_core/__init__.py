"""opmerge core: the operator-merging model of diffusion trajectory distillation.

Pure Python + numpy/numba/torch; never Streamlit (the dashboard is ``opmerge_dashboard``). The
specification is the repository's ``docs/THEORY.md`` (the model) and ``docs/SFD.md`` (Simple and
Fast Distillation). Subpackages, lowest layer first (a layer imports only the layers above it in this list):

- ``basics``   input validation, the progress signature and cancellation, the torch device;
- ``store``    the SQLite run store, the one run life cycle and the shared result cache ($OPMERGE_HOME);
- ``backend``  the compute backend: heavy results and training jobs on a Dask cluster;
- ``theory``   the linear-Gaussian model: schedules, teacher operators, shrinkage, merge plans, the
               exact DP, the optimal plan, thresholds, shared plans, phase sweeps (THEORY §1–§5);
- ``training`` students trained under a plan with torch, and the run spec (THEORY §2, §6);
- ``latent``   CelebA in latent space: the VAE, latent statistics, images (THEORY §1, per direction);
- ``sfd``      teacher solvers, distillation, mixtures and reference runs (SFD.md);
- ``practice`` theory meets practice: merge plans trained on nonlinear teachers, judged per
               eigen-direction against the closed form (THEORY §8);
- ``figures``  every Plotly figure builder (data in, ``go.Figure`` out), for the dashboard and notebooks;
- ``cli``      the ``opmerge`` command line, one module per command group.
"""

__version__ = "0.1.0"
