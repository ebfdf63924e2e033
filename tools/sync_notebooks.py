"""Write each notebook's .ipynb from its .py source, with the outputs of a ``lite`` run.

The .py file (jupytext percent format) is what you edit. This script:

1. counts each notebook's words and exercises for the agenda
   (:mod:`slicreg_lite.teaching.tutorial`) and writes the agenda into the README;
2. executes every notebook under the ``lite`` preset on the phantom (with the cache in
   ``data/cache/``, so after ``make demo`` this takes a few minutes) and stores its
   outputs, figures included, as PNG at a modest resolution, so that a reader sees the
   results on GitHub before running anything. Sliders need a live kernel and are not
   stored;
3. writes the student versions (``notebooks/student/``, see ``student_notebooks.py``).

The test suite runs the notebooks under ``smoke`` with nbval in lax mode: it compares
only the cells tagged ``nbval-check-output``, whose printed text does not depend on the
preset (in the .py source such a cell starts with ``# %% tags=["nbval-check-output"]``).

Usage::

    python tools/sync_notebooks.py                      # every notebook
    python tools/sync_notebooks.py notebooks/04_adam_registration.py
    python tools/sync_notebooks.py --no-execute         # cells only, outputs kept
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from student_notebooks import write_student_versions  # noqa: E402

from slicreg_lite.teaching import tutorial  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
PRESET = "lite"
#: Resolution of the stored figures: readable on GitHub, each notebook well under 2 MB.
FIGURE_DPI = 72
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = ("import matplotlib\n"
         f"matplotlib.rcParams.update({{'figure.dpi': {FIGURE_DPI}}})")


def sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def write_agenda() -> None:
    """Count each notebook's words and exercises into the agenda's file, and write the
    agenda between the README's markers (notebook 00 shows it from the same file)."""
    times = tutorial.measured_times()
    times.setdefault("notebooks", {})
    for path in sources():
        entry = times["notebooks"].setdefault(path.stem, {})
        entry.update(tutorial.reading(jupytext.read(path).cells))
    tutorial.TIMES_FILE.write_text(json.dumps(times, indent=1) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(tutorial.AGENDA_BEGIN) + ".*?"
                         + re.escape(tutorial.AGENDA_END), re.S)
    found = pattern.search(text)
    if not found:
        raise ValueError(f"{readme} has no agenda markers {tutorial.AGENDA_BEGIN!r}")
    table = tutorial.agenda_markdown(times, link_prefix="notebooks/")
    readme.write_text(text[:found.start()] + f"{tutorial.AGENDA_BEGIN}\n{table}\n"
                      f"{tutorial.AGENDA_END}" + text[found.end():])


def _keep_for_readers(cell) -> None:
    """Outputs a reader sees on GitHub: text, tables and figures; no slider views."""
    cell.outputs = [output for output in cell.outputs
                    if WIDGET_VIEW not in output.get("data", {})]
    cell.metadata.pop("execution", None)


def sync(path: Path, execute: bool) -> Path:
    notebook = jupytext.read(path)
    target = path.with_suffix(".ipynb")
    if execute:
        from nbclient import NotebookClient

        run = nbformat.v4.new_notebook(metadata=notebook.metadata)
        run.cells = [nbformat.v4.new_code_cell(SETUP), *notebook.cells]
        os.environ.update(SLICREG_PRESET=PRESET)
        for name in ("SLICREG_DATA", "SLICREG_TRAIN", "MPLBACKEND"):  # the phantom, inline
            os.environ.pop(name, None)
        NotebookClient(run, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        for cell, done in zip(notebook.cells, run.cells[1:]):
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = done.outputs, done.execution_count - 1
    elif target.exists():
        # keep the outputs of cells whose source did not change
        old = {c.source: c for c in nbformat.read(target, as_version=4).cells}
        for cell in notebook.cells:
            if cell.cell_type == "code" and cell.source in old:
                cell.outputs = old[cell.source].get("outputs", [])
                cell.execution_count = old[cell.source].get("execution_count")
    notebook.metadata.pop("widgets", None)  # widget state of the run: not for readers
    for cell in notebook.cells:
        if cell.cell_type == "code":
            _keep_for_readers(cell)
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, default=sources(),
                        help="notebooks/NN_name.py files (all by default)")
    parser.add_argument("--no-execute", action="store_true",
                        help="only sync the cells; keep stored outputs of unchanged cells")
    args = parser.parse_args(argv)
    for source in args.sources:
        if source.suffix != ".py":
            parser.error(f"expected .py notebook sources; got {source}")
    write_agenda()
    for source in args.sources:
        target = sync(source, execute=not args.no_execute)
        print(f"{source} -> {target} ({target.stat().st_size / 1e6:.2f} MB)")
    for path in write_student_versions(sources(), NOTEBOOKS / "student"):
        print(f"student version: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
