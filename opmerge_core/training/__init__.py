"""Training students under plans (THEORY §2, §3, §6).

``trainer`` (the loop) over ``graph`` (the merges of all plans), ``students`` (their torch
parameters), ``closed_form`` (what training should give), ``config`` (the optimisation settings) and
``results``; ``train_spec`` is a training request as data.
"""
