"""Reference runs shipped in ``assets/`` so that the SFD page and the CelebA trainer check never open
empty (SFD.md "Training", "An honest latent FD"; THEORY.md §2, §6 for the trainer check).

Built by one command, ``python -m opmerge_core.sfd.reference --assets assets``, which runs the ordinary
CLI (``opmerge sfd train … --json`` in a throw-away run store, ``opmerge celeba compare --train
--json``) and keeps its JSON output verbatim plus a few evaluation latents (no images, no pickles):

* ``reference_sfd.json``: ``{"label", "command", "runs": [{"command", "params", "metrics"}]}``
* ``reference_sfd_samples.npz``: ``teacher``, ``solver`` and one array per algorithm, (n, d) float32
  latents from the same evaluation noise (decoded to faces by the page)
* ``reference_celeba.json``: ``{"label", "command", "setting", "cli", "result"}``, ``result`` the JSON
  output of the ``cli`` command

Loading is tolerant by design: metrics are kept as they are (keys added by later versions of the CLI
are shown, missing ones are simply absent), files are size-bounded, JSON is parsed as data only and the
npz with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
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

SFD_FILE = "reference_sfd.json"
SFD_SAMPLES_FILE = "reference_sfd_samples.npz"
CELEBA_FILE = "reference_celeba.json"
MAX_BYTES = 2_000_000          # per reference file
KEEP = 8                       # latents kept per method (one row of faces)
LABEL = "Reference run (shipped with opmerge, not yours)"
BUILD_COMMAND = "python -m opmerge_core.sfd.reference --assets assets"

# The page defaults: latent MLP teacher, NFE 3, DPM-Solver++(3M), M = 3, no AFS, default budget.
SFD_ARGS = ("--teacher", "latent-mlp", "--nfe", "3", "--solver", "dpmpp3m", "--M", "3")
SFD_ALGORITHMS = ("sfd", "alg1")
# The shared defaults of the dashboard (T = 32, S = 1, trig, teacher init and surrogate).
CELEBA_SETTING = {"T": 32, "S": 1.0, "schedule": "trig", "init": "teacher", "surrogate": "teacher"}
CELEBA_ARGS = ("celeba", "compare", "--T", "32", "--samples", "6", "--train", "--json")


@dataclass(frozen=True)
class SFDReference:
    runs: list[dict]                                   # {"command", "params", "metrics"}
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (n, d) latents
    command: str = BUILD_COMMAND
    label: str = LABEL


@dataclass(frozen=True)
class CelebAReference:
    setting: dict
    result: dict                                       # the JSON of `opmerge celeba compare --train --json`
    command: str = BUILD_COMMAND
    label: str = LABEL


# ---- loading (safe, tolerant) -------------------------------------------------------------------
def read_json(path: Path, max_bytes: int = MAX_BYTES) -> dict | None:
    """A reference file's JSON object (data only), None when it is not there; too large or unreadable
    → ValueError (one line)."""
    if not path.is_file():
        return None
    if path.stat().st_size > max_bytes:
        raise ValueError(f"reference file {path.name} is larger than {max_bytes:,} bytes")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"reference file {path.name} is unreadable ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"reference file {path.name} must hold a JSON object")
    return obj


def read_samples(path: Path, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """The finite 2-D float arrays of a reference npz (``allow_pickle=False``; anything else skipped)."""
    if not path.is_file() or path.stat().st_size > max_bytes:
        return {}
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                try:
                    arrays[key] = f[key]
                except ValueError:          # an object array: would need a pickle, skipped
                    continue
    except (OSError, ValueError, EOFError):
        return {}
    return {k: a.astype(np.float32) for k, a in arrays.items()
            if a.ndim == 2 and np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all()}


def load_sfd(assets: str | Path | None = None) -> SFDReference | None:
    """The shipped SFD reference, or None when it is not there. Runs without a metrics dict are
    dropped; samples that are not finite 2-D float arrays are ignored."""
    folder = assets_dir(assets)
    obj = read_json(folder / SFD_FILE)
    if obj is None:
        return None
    runs = [r for r in obj.get("runs", []) if isinstance(r, dict) and isinstance(r.get("metrics"), dict)
            and isinstance(r.get("params", {}), dict)]
    if not runs:
        raise ValueError(f"reference file {SFD_FILE} has no runs")
    return SFDReference(runs=runs, samples=read_samples(folder / SFD_SAMPLES_FILE),
                        command=str(obj.get("command", BUILD_COMMAND)), label=str(obj.get("label", LABEL)))


def load_celeba(assets: str | Path | None = None) -> CelebAReference | None:
    obj = read_json(assets_dir(assets) / CELEBA_FILE)
    if obj is None:
        return None
    if not isinstance(obj.get("result"), dict) or not isinstance(obj.get("setting"), dict):
        raise ValueError(f"reference file {CELEBA_FILE} needs 'setting' and 'result' objects")
    return CelebAReference(setting=obj["setting"], result=obj["result"],
                           command=str(obj.get("command", BUILD_COMMAND)), label=str(obj.get("label", LABEL)))


def scalars(metrics: dict) -> dict[str, float]:
    """The finite numeric entries of a metrics dict (whatever keys the CLI wrote)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def sfd_rows(ref: SFDReference, teacher: str | None = None) -> list[dict]:
    """The reference runs as rows of the "quality vs fine-tuning seconds" plot (the shape of
    :func:`opmerge_core.sfd.history.runs_table`): one row per run plus its plain-solver baseline at 0 s."""
    rows = []
    for i, r in enumerate(ref.runs):
        p, m = r.get("params", {}), r["metrics"]
        if "latent_fd" not in m or (teacher and p.get("teacher") != teacher):
            continue
        base = {"run_id": f"ref{i + 1}", "teacher": p.get("teacher"), "nfe": p.get("nfe"),
                "afs": p.get("afs"), "solver_name": p.get("solver"), "M": p.get("M"),
                "budget": p.get("budget")}
        rows.append({**base, "method": p.get("algorithm"), "seconds": m.get("finetune_seconds", 0.0),
                     "latent_fd": m["latent_fd"]})
        if "latent_fd_solver" in m:
            rows.append({**base, "method": "solver", "seconds": 0.0, "latent_fd": m["latent_fd_solver"]})
    return rows


def celeba_rows(ref: CelebAReference, labels: dict[str, str]) -> list[dict]:
    """One row per method of the reference: every trained W2 key it has, and the theory W2."""
    rows = []
    for method, entry in ref.result.items():
        if not isinstance(entry, dict):
            continue
        trained = entry.get("trained") if isinstance(entry.get("trained"), dict) else {}
        row = {"method": labels.get(method, method),
               **{f"{k} (trained)": v for k, v in scalars(trained).items()}}
        if "w2" in entry:
            row["W2 (theory)"] = entry["w2"]
        rows.append(row)
    return rows


# ---- building (runs the ordinary CLI) -----------------------------------------------------------
def _cli(args: list[str], env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "opmerge_core", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"`opmerge {shlex.join(args)}` failed: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def _keep(a: np.ndarray) -> np.ndarray:
    return np.asarray(a[:KEEP], dtype=np.float32)


def build(assets: str | Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Run the reference commands and write the three reference files into the assets folder."""
    from opmerge_core.store.runstore import RunStore

    folder = assets_dir(assets)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="opmerge_ref_") as home:
        env = {**os.environ, "OPMERGE_HOME": home}
        if assets:
            env["OPMERGE_ASSETS"] = str(folder)
        runs, samples = [], {}
        for algorithm in SFD_ALGORITHMS:
            args = ["sfd", "train", *SFD_ARGS, "--algorithm", algorithm, "--json"]
            log(f"opmerge {shlex.join(args)}")
            metrics = _cli(args, env)
            with RunStore(Path(home) / "runs.sqlite") as store:
                run = store.get(int(metrics["run_id"]))
            params = {k: run["params"].get(k) for k in ("teacher", "algorithm", "nfe", "afs", "solver", "M",
                                                         "budget")}
            with np.load(run["artifacts"]["samples"], allow_pickle=False) as f:
                samples.setdefault("teacher", _keep(f["teacher"]))
                samples.setdefault("solver", _keep(f["solver"]))
                samples[algorithm] = _keep(f["student"])
            metrics.pop("run_id", None)
            runs.append({"command": f"opmerge {shlex.join(args)}", "params": params, "metrics": metrics})
        obj = {"label": LABEL, "command": BUILD_COMMAND, "runs": runs}
        written.append(folder / SFD_FILE)
        written[-1].write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
        written.append(folder / SFD_SAMPLES_FILE)
        np.savez_compressed(written[-1], **samples)

        args = [*CELEBA_ARGS, "--out", str(Path(home) / "grid.png")]
        log(f"opmerge {shlex.join(args)}")
        result = _cli(args, env)
        result.pop("grid", None)
        obj = {"label": LABEL, "command": BUILD_COMMAND, "setting": CELEBA_SETTING,
               "cli": f"opmerge {shlex.join(CELEBA_ARGS)} --out grid.png", "result": result}
        written.append(folder / CELEBA_FILE)
        written[-1].write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    return written


def main_for(build_fn: Callable[..., list[Path]], prog: str, description: str,
             argv: list[str] | None = None) -> int:
    """The command line of a reference builder: ``--assets``, the files written (exit 2 on bad input)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--assets", default=None, help="assets folder (default $OPMERGE_ASSETS or assets/)")
    args = parser.parse_args(argv)
    try:
        for path in build_fn(args.assets, log=lambda m: print(m, file=sys.stderr, flush=True)):
            print(f"{path} ({path.stat().st_size:,} bytes)")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return main_for(build, "python -m opmerge_core.sfd.reference", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
