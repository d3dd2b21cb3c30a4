"""The linear-Gaussian model (docs/THEORY.md). T is always the number of teacher steps (THEORY §1),
in every name here too (``validation.T_MAX``, the ``*_T_MAX`` / ``*_T_MIN`` bounds of these modules).

- ``schedules``, ``operators`` (§1), ``shrinkage`` (§2), ``setting`` (``Model``: S and the model
  choices; ``Setting``: a model at T);
- ``plans`` (§3): merge plans, named strategies, parsing, enumeration;
- ``dp`` (§4): the exact min/max DP over all plans (``dp_kernels`` in numba, ``dp_numpy`` in numpy);
- ``value_sets`` (§4): sets of achievable values, for the mixed band and for every plan's value;
- ``planner`` (§4): the W2-optimal plan and its regime; ``thresholds`` (§5): λ_B and λ_V;
- ``shared_plan`` (§4, last bullet): one plan for several coordinates;
- ``sweep`` (§4–§5): strategies against the optimum over λ, phase diagrams, regimes per direction.
"""
