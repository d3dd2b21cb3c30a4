"""Training students under plans (THEORY §2, §3, §6).

``trainer`` (the config and the loop) over ``graph`` (the merges of all plans), ``students`` (their
torch parameters), ``closed_form`` (what training should give) and ``results``; ``train_spec`` is a
training request as data.
"""
