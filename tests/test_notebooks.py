"""The notebooks as a whole: paired .py/.ipynb in sync, lean, runnable on Colab.

nbval itself runs every notebook under the smoke preset (``notebooks/`` is in testpaths).
"""

import re
import sys
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
def test_opening_and_saving_changes_nothing(source):
    """JupyterLab's default kernel is named "Python 3 (ipykernel)", and jupytext writes
    back exactly the header it reads: opening and saving leaves both files as they are."""
    notebook = jupytext.read(source)
    assert notebook.metadata["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert jupytext.writes(notebook, fmt="py:percent") == source.read_text()
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert stored.metadata["kernelspec"] == notebook.metadata["kernelspec"]


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


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_notebook_has_exercises_with_stub_solution_and_stored_check(source):
    """1-3 exercises, each a stub, then its solution, then a check whose output nbval
    compares: the solution version must print "correct"."""
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    tagged = [(set(cell.metadata.get("tags", [])) & {"exercise", "solution", "check"}, cell)
              for cell in notebook.cells]
    tagged = [(tags.pop(), cell) for tags, cell in tagged if tags]
    kinds = [kind for kind, _ in tagged]
    assert 1 <= kinds.count("exercise") <= 3
    assert kinds == ["exercise", "solution", "check"] * kinds.count("exercise")
    for kind, cell in tagged:
        if kind == "exercise":
            assert "raise NotImplementedError" in cell.source
        if kind == "check":
            assert "exercises.check_" in cell.source and CHECK_TAG in cell.metadata["tags"]
            assert [o.get("text") for o in cell.outputs] == ["correct\n"]


def test_student_version_leaves_out_exactly_the_solutions(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    from student_notebooks import write_student_versions

    written = write_student_versions(SOURCES, tmp_path)
    for source, path in zip(SOURCES, written):
        full = jupytext.read(source)
        student = nbformat.read(path, as_version=4)
        kept = [c.source for c in full.cells if "solution" not in c.metadata.get("tags", [])]
        assert [c.source for c in student.cells] == kept
        assert len(student.cells) < len(full.cells)


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
    from slicreg_lite.cohort.layouts import export_cohort
    from slicreg_lite.core.config import RunSettings, get_config
    from slicreg_lite.pipeline import stages

    cfg = get_config("smoke")
    folder = tmp_path_factory.mktemp("own-scans")
    subjects = stages.cohort(cfg, "phantom", run=RunSettings(jobs=1, progress=False))
    export_cohort(subjects, folder, layout="folder", split=cfg.split,
                  label_names={n: f"structure {n}" for n in range(1, 14)})
    return folder


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_version_runs_on_a_folder_of_scans(source, own_scans, monkeypatch):
    """The student version of every notebook runs top to bottom, on real data given by
    SLICREG_DATA, and each of its checks reports "not attempted" (the solution version
    runs under nbval on the phantom, its checks printing "correct")."""
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "tools"))
    from student_notebooks import student_version

    monkeypatch.setenv("SLICREG_DATA", f"folder:{own_scans}")
    notebook = student_version(source)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    checks = [cell for cell in notebook.cells if "check" in cell.metadata.get("tags", [])]
    assert checks and all(
        "".join(o.get("text", "") for o in cell.outputs).startswith("not attempted")
        for cell in checks)
    printed = "\n".join(output.get("text", "") + output.get("data", {}).get("text/markdown", "")
                        for cell in notebook.cells if cell.cell_type == "code"
                        for output in cell.get("outputs", []))
    if source.stem.startswith("00"):
        assert "folder:" in printed and "structure 6" in printed
    if source.stem.startswith("05"):
        assert "| method | structure 1 |" in printed and "avg(13)" in printed
