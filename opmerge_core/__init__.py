"""opmerge core: the operator-merging model of diffusion trajectory distillation.

Pure Python + numpy/numba/torch; never Streamlit (the dashboard is ``opmerge_dashboard``). The
specification is the repository's ``docs/THEORY.md`` (the model) and ``docs/SFD.md`` (Simple and
Fast Distillation). Subpackages:

- ``theory``   the linear-Gaussian model: schedules, teacher operators, shrinkage, merge plans, the
               exact DP, the optimal plan, thresholds, shared plans, phase sweeps (THEORY §1–§5);
- ``training`` students trained under a plan with torch, and the run spec (THEORY §2, §6);
- ``latent``   CelebA in latent space: the VAE, latent statistics, images (THEORY §1, per direction);
- ``sfd``      teacher solvers, distillation, mixtures and reference runs (SFD.md);
- ``infra``    the compute backend, the run store, validation, devices, progress and cancellation;
- ``cli``      the ``opmerge`` command line, one module per command group.
"""

__version__ = "0.1.0"
