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


def test_every_notebook_reads_its_data_from_the_environment():
    for source in SOURCES:
        text = source.read_text()
        assert 'DATA = os.environ.get("SLICREG_DATA", "phantom")' in text, source.name


@pytest.fixture(scope="module")
def own_scans(tmp_path_factory):
    """The smoke cohort as a folder of "your own" scans: named files, a split file, and
    labels under other names than the BTCV organs' (so no avg(4) column exists)."""
    from slicreg_lite import stages
    from slicreg_lite.config import RunSettings, get_config
    from slicreg_lite.layouts import export_cohort

    cfg = get_config("smoke")
    folder = tmp_path_factory.mktemp("own-scans")
    subjects = stages.cohort(cfg, "phantom", run=RunSettings(jobs=1, progress=False))
    export_cohort(subjects, folder, layout="folder", split=cfg.split,
                  label_names={n: f"structure {n}" for n in range(1, 14)})
    return folder


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_on_a_folder_of_scans(source, own_scans, monkeypatch):
    """Every notebook runs top to bottom on real data given by SLICREG_DATA."""
    from nbclient import NotebookClient

    monkeypatch.setenv("SLICREG_DATA", f"folder:{own_scans}")
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    printed = "\n".join(output.get("text", "") for cell in notebook.cells
                        for output in cell.get("outputs", []) if cell.cell_type == "code")
    if source.stem.startswith("00"):
        assert "folder:" in printed and "structure 6" in printed
    if source.stem.startswith("05"):
        assert "| method | structure 1 |" in printed and "avg(13)" in printed
