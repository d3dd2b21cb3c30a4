"""The reference runs of the experiment shipped in ``assets/`` (THEORY §8), so that the "Theory vs
practice" page opens with a finished run of every teacher before anyone trains.

Built by one command, :data:`BUILD_COMMAND`, which runs the ordinary CLI (``opmerge practice … --json
--samples-out``) once per entry of :data:`RUNS` and keeps its JSON output (floats rounded to
:data:`DIGITS` significant digits, the per-direction table dropped: it is rebuilt from the rest) and a
few of its one-step samples:

* ``reference_practice.json``: ``{"label", "command", "runs": [<the CLI's JSON, with its "command">]}``
* ``reference_practice.npz``: ``"<teacher>/<student>|<key>"`` → the run's kept samples (faces' latents,
  2-D points)

Loading is safe and tolerant: size-bounded files, JSON as data only, the npz with ``allow_pickle=False``;
runs without the keys the page draws are dropped.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opmerge_core.latent.latents import assets_dir
from opmerge_core.sfd.reference import main_for, read_json, read_samples

FILE = "reference_practice.json"
SAMPLES_FILE = "reference_practice.npz"
MAX_BYTES = 3_000_000
DIGITS = 7
LABEL = "Reference run (shipped with opmerge, not yours)"
BUILD_COMMAND = "python -m opmerge_core.practice.reference --assets assets"
# The page's defaults (T = 16, every plan, seeds 0, 1, 2, S = 1) for every teacher and both students.
RUNS = tuple(("practice", "--teacher", teacher, *(("--student", "mlp") if mlp else ()))
             for teacher in ("latent-mlp", "mixture-2d", "gaussian") for mlp in (False, True))
NEEDED = ("spec", "teacher", "w2", "gains", "curves", "metrics", "plans", "verdict", "command")


@dataclass(frozen=True)
class Reference:
    runs: list[dict]                                     # the CLI's JSON of every reference run
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)   # "teacher/student" -> arrays
    command: str = BUILD_COMMAND
    label: str = LABEL

    def run_for(self, teacher: str, student: str = "linear") -> dict | None:
        """The run of this teacher with these students, else the first of this teacher (or None)."""
        mine = [r for r in self.runs if r["spec"].get("teacher") == teacher]
        return next((r for r in mine if r["spec"].get("student") == student), mine[0] if mine else None)


def load(assets: str | Path | None = None) -> Reference | None:
    """The shipped reference, or None when it is not there (bad files → ValueError, one line)."""
    folder = assets_dir(assets)
    obj = read_json(folder / FILE, MAX_BYTES)
    if obj is None:
        return None
    runs = [r for r in obj.get("runs") or []
            if isinstance(r, dict) and all(k in r for k in NEEDED) and isinstance(r["spec"], dict)]
    if not runs:
        raise ValueError(f"reference file {FILE} has no usable runs")
    return Reference(runs, _samples(folder / SAMPLES_FILE), str(obj.get("command", BUILD_COMMAND)),
                     str(obj.get("label", LABEL)))


def _samples(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``"<teacher>/<student>|<key>"`` arrays grouped by run."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, a in read_samples(path, MAX_BYTES).items():
        run, _, name = key.partition("|")
        out.setdefault(run, {})[name] = a
    return out


# ---- building (runs the ordinary CLI) -----------------------------------------------------------
def rounded(obj, digits: int = DIGITS):
    """``obj`` with every float rounded to ``digits`` significant digits (JSON stays small)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, digits) for v in obj]
    return obj


def build(assets: str | Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Run every reference command and write the two reference files into the assets folder."""
    folder = assets_dir(assets)
    runs, samples = [], {}
    with tempfile.TemporaryDirectory(prefix="opmerge_ref_") as home:
        env = {**os.environ, "OPMERGE_HOME": home}
        if assets:
            env["OPMERGE_ASSETS"] = str(folder)
        for k, args in enumerate(RUNS):
            npz = Path(home) / f"samples{k}.npz"
            cmd = [sys.executable, "-m", "opmerge_core", *args, "--json", "--no-store",
                   "--samples-out", str(npz)]
            log(f"opmerge {shlex.join(args)}")
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ValueError(f"`opmerge {shlex.join(args)}` failed: {proc.stderr.strip()[-300:]}")
            out = json.loads(proc.stdout)
            out.pop("per_direction", None)
            out.pop("run_id", None)
            runs.append(rounded(out))
            with np.load(npz, allow_pickle=False) as f:
                run = f"{out['spec']['teacher']}/{out['spec']['student']}"
                samples |= {f"{run}|{key}": f[key] for key in f.files}
    written = [folder / FILE, folder / SAMPLES_FILE]
    written[0].write_text(json.dumps({"label": LABEL, "command": BUILD_COMMAND, "runs": runs}) + "\n",
                          encoding="utf-8")
    np.savez_compressed(written[1], **samples)
    return written


def main(argv: list[str] | None = None) -> int:
    return main_for(build, "python -m opmerge_core.practice.reference", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
