"""The notebooks as a whole: paired .py/.ipynb in sync, lean, runnable on Colab.

nbval itself runs every notebook under the smoke preset (``notebooks/`` is in testpaths).
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CHECK_TAG = "nbval-check-output"


def test_every_notebook_has_its_pair():
    assert SOURCES, "no notebooks found"
    py = {p.stem for p in NOTEBOOKS.glob("*.py")}
    ipynb = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert py == ipynb, f"unpaired: {sorted(py ^ ipynb)} (run make notebooks)"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    from_py = jupytext.read(source)
    from_ipynb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    cells_py = [(c.cell_type, c.source) for c in from_py.cells]
    cells_ipynb = [(c.cell_type, c.source) for c in from_ipynb.cells]
    assert cells_py == cells_ipynb, f"{source.name} and its .ipynb differ: run make notebooks"
    assert [c.metadata.get("tags") for c in from_py.cells] == \
        [c.metadata.get("tags") for c in from_ipynb.cells]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_conventions(source):
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    text = "\n".join(c.source for c in notebook.cells)
    badge = f"colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/" \
            f"{source.stem}.ipynb"
    assert badge in notebook.cells[0].source, "the first cell needs the notebook's Colab badge"
    assert "What you will learn" in text and "Try it yourself" in text
    assert re.search(r'PRESET = os\.environ\.get\("SLICREG_PRESET", "lite"\)', text)
    # only the checked cells keep (text) outputs: small files, no stale figures
    for cell in notebook.cells:
        if cell.cell_type == "code" and CHECK_TAG not in cell.metadata.get("tags", []):
            assert not cell.outputs, f"stored output in an unchecked cell of {source.name}"


def test_readme_lists_every_notebook_with_a_badge():
    readme = (ROOT / "README.md").read_text()
    for source in SOURCES:
        assert f"notebooks/{source.stem}.ipynb" in readme
