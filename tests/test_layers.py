"""The layers of the code, read from every module's imports (``ast``, nothing is imported).

``opmerge_core``'s subpackages are layers, lowest first: basics → store → backend → theory → training →
latent → sfd → practice → figures → cli; a module may import its own layer and the layers below it,
never one above. The core never imports Streamlit or the dashboard; the dashboard
(``opmerge_dashboard``, source folder ``dashboard/``) sits above the whole core. Module-level imports
(``TYPE_CHECKING`` ones included) form no cycle; imports inside functions (lazy loading) only have to
respect the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("basics", "store", "backend", "theory", "training", "latent", "sfd", "practice", "figures", "cli")
SOURCES = {"opmerge_core": ROOT / "opmerge_core", "opmerge_dashboard": ROOT / "dashboard"}


def module_files() -> dict[str, Path]:
    """Every module of the core and the dashboard by its import name."""
    out = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = module_files()


def imports(path: Path, name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import of the file; ``from a import b`` names
    ``a.b`` when that is a module of ours, else ``a``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    top_level |= {id(node) for stmt in tree.body if isinstance(stmt, ast.If) for node in stmt.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else base, id(node) in top_level))
    return found


def layer(module: str) -> int:
    """The layer of a module of ours: its core subpackage, the top of the core for the package's
    own ``opmerge_core`` / ``__main__``, above the core for the dashboard."""
    parts = module.split(".")
    if parts[0] == "opmerge_dashboard":
        return len(LAYERS)
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS) - 1


def ours(module: str) -> bool:
    return module.split(".")[0] in SOURCES


def test_every_subpackage_is_a_layer():
    subpackages = {p.name for p in SOURCES["opmerge_core"].iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(LAYERS)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("opmerge_core")))
def test_no_layer_imports_a_higher_one(name):
    for target, _ in imports(MODULES[name], name):
        root = target.split(".")[0]
        assert root not in ("streamlit", "opmerge_dashboard"), f"{name} imports {target}"
        if ours(target):
            assert layer(target) <= layer(name), f"{name} (layer {LAYERS[layer(name)]}) imports {target}"


def test_module_level_imports_have_no_cycle():
    graph = {name: {t for t, top in imports(path, name) if top and t in MODULES and t != name}
             for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " → ".join([*path[path.index(node):], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_the_checker_sees_a_violation(tmp_path):
    """The checks read real imports: a lower layer importing a higher one is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from opmerge_core.theory import dp\nimport streamlit\n")
    found = imports(bad, "opmerge_core.basics.bad")
    assert ("opmerge_core.theory.dp", True) in found and ("streamlit", True) in found
    assert layer("opmerge_core.theory.dp") > layer("opmerge_core.basics.bad")
