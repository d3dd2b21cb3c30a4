"""Training students under a plan (THEORY.md §2, §4): the batched torch trainer and its run spec."""
