"""docs/quickstart.ipynb runs top to bottom in a fresh Jupyter kernel (nbclient), so it never rots: every
code cell executes without an error and the figures and the face grid are really produced."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"
PLOTLY, PNG = "application/vnd.plotly.v1+json", "image/png"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))        # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    shown = [kind for out in outputs for kind in out.get("data", {})]
    assert shown.count(PLOTLY) == 3 and shown.count(PNG) == 1, shown
    text = "".join(out.get("text", "") for out in outputs)
    assert "Sequential BOOT" in text and "Vanilla" in text          # the flip at λ ≈ 1
