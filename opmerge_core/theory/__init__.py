"""The linear-Gaussian model (THEORY.md): schedules, teacher operators, shrinkage, plans, the planner DP."""
