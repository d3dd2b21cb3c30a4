"""Theory meets practice (THEORY §8): merge plans trained on nonlinear teachers, judged per direction.

One pipeline for three teachers — the Gaussian (exact linear denoiser: the calibration case), the 2-D
Gaussian mixtures (exact nonlinear denoiser) and the CelebA latent MLP teacher — each run as a T-step
DDIM sampler on a schedule of THEORY §1. Every merge of a plan is one student trained with the same
budget (THEORY §2–§3); the one-step students are compared with the teacher direction by direction in
the data's eigenbasis, next to the closed form's prediction.

- ``teachers``: the teachers in centred eigen-coordinates (DDIM step, data, spectrum);
- ``students``: linear (per direction) and small-MLP students, stacked over merges and seeds;
- ``judge``: per-direction W2, the BOOT-vs-vanilla agreement with its bootstrap interval, the verdict;
- ``experiment``: the run spec, training under every plan, evaluation, the JSON result;
- ``reference``: the reference runs shipped in ``assets/``.
"""
