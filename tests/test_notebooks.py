"""The notebooks as a whole: paired .py/.ipynb in sync, lean, runnable on Colab.

nbval itself runs every notebook under the smoke preset (``notebooks/`` is in testpaths).
"""

import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from slicreg_lite.teaching import tutorial

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
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
    headings = [c.source.splitlines()[0] for c in notebook.cells if c.cell_type == "markdown"]
    assert any(h.startswith(tutorial.GOING_FURTHER) for h in headings)
    # it ends with a summary of 3-5 points and its references
    last = notebook.cells[-1].source
    assert last.startswith("## Summary") and "## References" in last, \
        "the last cell holds the summary and the references"
    summary = last.split("## References")[0]
    assert 3 <= summary.count("\n- ") <= 5
    assert notebook.cells[-1].source.split("## References")[1].count("\n- ") >= 2


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_word_budget(source):
    """About 900 words of markdown to read, outside the optional "Going further"."""
    required, optional = tutorial.markdown_words(jupytext.read(source).cells)
    assert required <= 900, f"{source.name}: {required} words outside Going further"


def _outputs_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   + o.get("data", {}).get("text/markdown", "") for o in cell.outputs)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_outputs_are_the_lite_run_with_every_figure(source):
    """What a reader sees on GitHub: the lite run's outputs, every figure stored, and no
    text of another preset (make notebooks writes them)."""
    from slicreg_lite.core.config import get_config

    path = source.with_suffix(".ipynb")
    assert path.stat().st_size < 2_000_000, f"{path.name} is over 2 MB"
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code" and "colab" not in
            c.metadata.get("tags", [])]
    for cell in code:
        if "plt.show()" in cell.source or "display(Image(" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), \
                f"{path.name}: no stored figure for the cell starting {cell.source[:60]!r}"
    printed = "\n".join(_outputs_text(cell) for cell in code)
    lite = get_config("lite")
    assert "preset 'lite'" in printed and "preset 'smoke'" not in printed
    assert "preset 'paper'" not in printed
    expected = {  # numbers each notebook prints that only the lite preset gives
        "00": f"a grid of {lite.grid.shape} voxels",
        "01": f"{lite.supervoxels.n_layers} layers of {lite.supervoxels.n_supervoxels - 1}",
        "02": f"{lite.grid.shape} voxels",
        "03": f"sees {tuple(lite.network.input_shape)} voxels",
        "04": f"{lite.supervoxels.n_layers * (lite.supervoxels.n_supervoxels - 1)} keypoints",
        "05": f"{len(lite.split.test_ids) - 1} test subjects",
    }[source.stem[:2]]
    assert expected in printed


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


def test_student_versions_are_committed_and_in_sync():
    """notebooks/student/ holds the sources without their solutions (make notebooks)."""
    from student_notebooks import STUDENT_FOLDER, student_version

    assert sorted(p.stem for p in STUDENT_FOLDER.glob("*.ipynb")) == [s.stem for s in SOURCES]
    for source in SOURCES:
        full = jupytext.read(source)
        committed = nbformat.read(STUDENT_FOLDER / f"{source.stem}.ipynb", as_version=4)
        expected = student_version(source)
        assert [(c.cell_type, c.source, c.metadata.get("tags")) for c in committed.cells] == \
            [(c.cell_type, c.source, c.metadata.get("tags")) for c in expected.cells], \
            f"notebooks/student/{source.stem}.ipynb is out of date: run make notebooks"
        kept = [c.source for c in full.cells if "solution" not in c.metadata.get("tags", [])]
        assert [c.source for c in committed.cells][1:] == kept[1:]
        assert len(committed.cells) < len(full.cells)
        assert f"notebooks/student/{source.stem}.ipynb" in committed.cells[0].source
        assert not any(c.get("outputs") for c in committed.cells if c.cell_type == "code")
        assert "jupytext" not in committed.metadata


def test_readme_lists_every_notebook_with_a_badge():
    readme = (ROOT / "README.md").read_text()
    colab = "colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/"
    for source in SOURCES:
        assert f"{colab}{source.stem}.ipynb" in readme
        assert f"{colab}student/{source.stem}.ipynb" in readme


def test_agenda_is_current():
    """The agenda's counts are today's, every notebook was timed, and the README shows the
    agenda that notebook 00 displays (make notebooks writes both)."""
    times = tutorial.measured_times()
    for source in SOURCES:
        entry = times["notebooks"][source.stem]
        assert {"warm_s", "cold_s"} <= set(entry), f"time {source.stem}: make notebook-times"
        assert tutorial.reading(jupytext.read(source).cells) == \
            {k: entry[k] for k in ("words", "exercises")}, \
            f"the agenda's counts of {source.stem} are stale: run make notebooks"
    block = tutorial.agenda_markdown(times, link_prefix="notebooks/")
    assert f"{tutorial.AGENDA_BEGIN}\n{block}\n{tutorial.AGENDA_END}" in \
        (ROOT / "README.md").read_text(), "the README's agenda is stale: run make notebooks"
    assert "tutorial.agenda_markdown()" in SOURCES[0].read_text()
    total = re.search(r"\*\*(\d+) min\*\* \|$", block.splitlines()[len(SOURCES) + 2])
    assert total and int(total.group(1)) <= 90, "the tutorial no longer fits 90 minutes"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_slow_cells_say_so(source):
    """A cell slower than 10 s under lite (as measured) has a hint above it: "⏱ ... N s"
    or "N min", within a factor of two of the slower of the measured times."""
    cells = jupytext.read(source).cells
    for slow in tutorial.measured_times()["notebooks"][source.stem]["slow_cells"]:
        index = next((k for k, c in enumerate(cells) if c.cell_type == "code"
                      and c.source.strip().startswith(slow["first_line"])), None)
        assert index is not None, f"timed cell {slow['first_line']!r} is gone: time again"
        above = next(c.source for c in reversed(cells[:index]) if c.cell_type == "markdown")
        hint = re.search(r"⏱.*?(\d+)\s*(s|min)\b", above, re.S)
        assert hint, f"no time hint above {slow['first_line']!r} in {source.name}"
        stated = int(hint.group(1)) * (60 if hint.group(2) == "min" else 1)
        measured = max(slow["cold_s"], slow["warm_s"])
        assert measured / 2 <= stated <= 2 * measured, (slow, stated)


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
    """The committed student version of every notebook runs top to bottom, on real data
    given by SLICREG_DATA, and each of its checks reports "not attempted" (the solution
    version runs under nbval on the phantom, its checks printing "correct")."""
    from nbclient import NotebookClient

    monkeypatch.setenv("SLICREG_DATA", f"folder:{own_scans}")
    monkeypatch.setenv("SLICREG_TRAIN", "1")  # this folder has no shipped networks
    notebook = nbformat.read(NOTEBOOKS / "student" / f"{source.stem}.ipynb", as_version=4)
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
