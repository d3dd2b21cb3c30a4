"""Finished SFD runs read back from the run store (store/runstore.py): the table behind the SFD page's
"quality vs fine-tuning seconds" plot and the samples each run kept (decoded to faces by the page)."""

from __future__ import annotations

import numpy as np

from opmerge_core.sfd.lab import RUN_KIND
from opmerge_core.store.runstore import RunStore, Status


def runs_table(store: RunStore, teacher: str | None = None, limit: int = 500) -> list[dict]:
    """Finished SFD runs of the store as flat rows (newest first), plus one plain-solver row per run
    (fine-tuning 0 s): the data of the "quality vs fine-tuning seconds" plot."""
    rows = []
    for r in store.list(kind=RUN_KIND, status=Status.DONE, limit=limit):
        p, m = r["params"], r["metrics"]
        if "latent_fd" not in m or (teacher and p.get("teacher") != teacher):
            continue
        base = {"run_id": r["id"], "teacher": p.get("teacher"), "nfe": p.get("nfe"), "afs": p.get("afs"),
                "solver_name": p.get("solver"), "M": p.get("M"), "budget": p.get("budget")}
        rows.append({**base, "method": p.get("algorithm"), "seconds": m.get("finetune_seconds", 0.0),
                     "latent_fd": m["latent_fd"]})
        rows.append({**base, "method": "solver", "seconds": 0.0, "latent_fd": m["latent_fd_solver"],
                     "nfe": m.get("nfe_solver", p.get("nfe"))})      # the NFE the baseline really used
    return rows


def latest_samples(store: RunStore, teacher: str, nfe: int, afs: bool) -> dict[str, np.ndarray]:
    """The kept samples (same evaluation noise) of the newest finished run of each algorithm for this
    teacher/NFE/AFS, plus the plain solver and the teacher at many steps from the newest of them."""
    out: dict[str, np.ndarray] = {}
    for r in store.list(kind=RUN_KIND, status=Status.DONE, limit=500):
        p, path = r["params"], r["artifacts"].get("samples")
        if (p.get("teacher"), p.get("nfe"), bool(p.get("afs"))) != (teacher, nfe, afs) or not path:
            continue
        try:
            with np.load(path, allow_pickle=False) as f:
                if not out:
                    out["teacher"], out["solver"] = f["teacher"], f["solver"]
                out.setdefault(p["algorithm"], f["student"])
        except (OSError, KeyError, ValueError):
            continue
    return out
