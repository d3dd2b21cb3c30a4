"""Simple and Fast Distillation (SFD.md), one module per piece, each importing only those above it:

- ``solvers``: the ODE solvers of the EDM/VE form and the one ``Denoiser`` type every sampler calls;
- ``mixtures``: Gaussian mixtures with their exact denoiser (the 2-D teachers, THEORY §7);
- ``networks``: the denoiser networks (EDM-preconditioned MLP, trainable exact GMM denoiser);
- ``metrics``: the latent FD, its floor, mean ± sd;
- ``teachers``: which teachers exist, DSM training of the latent teacher, loading and saving;
- ``sampling``: the starting noise, the student's sampler, the plain solver at a given NFE;
- ``distill``: the SFD training loop (Algorithm 2), Algorithm 1 and SFD-v;
- ``assets``: building the latent teachers; ``lab``: one experiment end to end (run store);
  ``reference``: the reference runs shipped in ``assets/``.
"""
