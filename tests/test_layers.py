"""The package's layers: no module imports from a layer above its own, and no import circles.

Imports are read from the source, including those inside functions, which Python runs
only when the function is called and which would otherwise hide a circle.
"""

import ast
from pathlib import Path

import pytest

import slicreg_lite

PACKAGE = Path(slicreg_lite.__file__).parent

#: Bottom to top (see ARCHITECTURE.md). The steps follow the method's order: a step may use
#: an earlier one (the alignment reads supervoxels), never a later one.
LAYERS = (
    ("core",),
    ("cohort",),
    ("supervoxels",),
    ("teacher",),
    ("network",),
    ("alignment",),
    ("display",),
    ("methods",),
    ("pipeline",),
    ("evaluation",),
    ("apps", "teaching"),
    ("__init__", "__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS")


def imports_of(module: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of the package in ``module``, at any
    depth (``from X import name`` counts as importing ``X.name`` when that is a module)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES
                       else source for alias in node.names]
        else:
            continue
        found += [(target, node.lineno) for target in targets
                  if target == "slicreg_lite" or target.startswith("slicreg_lite.")]
    return found


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_its_own(module):
    rank = layer_of(module)
    above = [f"line {line}: {target} (layer {LAYERS[layer_of(target)]})"
             for target, line in imports_of(module) if layer_of(target) > rank]
    assert not above, f"{module} (layer {LAYERS[rank]}) imports from above: {above}"


def test_no_import_circles():
    graph = {module: {target for target, _ in imports_of(module) if target != module}
             for module in MODULES}
    circles = []
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_layering_test_sees_imports_inside_functions(tmp_path, monkeypatch):
    """A function-level import that runs back up is caught, not hidden."""
    core_module = "slicreg_lite.core.metrics"
    source = MODULES[core_module].read_text() + (
        "\n\ndef _late():\n    from ..pipeline import stages\n    return stages\n")
    written = tmp_path / "metrics.py"
    written.write_text(source)
    monkeypatch.setitem(MODULES, core_module, written)
    imported = dict(imports_of(core_module))
    assert "slicreg_lite.pipeline.stages" in imported
    assert layer_of("slicreg_lite.pipeline.stages") > layer_of(core_module)
