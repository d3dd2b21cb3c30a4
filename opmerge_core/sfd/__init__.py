"""Simple and Fast Distillation (SFD.md): teacher solvers, denoisers, distillation, mixtures and the
reference runs."""
