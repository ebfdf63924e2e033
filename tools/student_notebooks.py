"""Write the student version of the notebooks: every solution cell left out.

In the sources (``notebooks/*.py``) each exercise has three cells, tagged ``exercise``
(a stub that raises ``NotImplementedError``), ``solution`` and ``check`` (prints
"correct", "not yet" with a hint, or "not attempted"). The student version drops the
``solution`` cells, so that every check says "not attempted" until the student fills in
the stub; like nbgrader's release step. Outputs are cleared, and the Colab badge opens
the student version. The versions are committed under ``notebooks/student/`` (a test
checks that they match the sources); ``tools/sync_notebooks.py`` rewrites them.

Usage::

    python tools/student_notebooks.py                     # -> notebooks/student/*.ipynb
    python tools/student_notebooks.py --out DIR notebooks/04_adam_registration.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
STUDENT_FOLDER = ROOT / "notebooks" / "student"


def student_version(source: Path):
    """The notebook of ``source`` without its solution cells, outputs cleared."""
    source = Path(source)
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)  # not paired with a .py: a plain notebook
    notebook.cells = [cell for cell in notebook.cells
                      if SOLUTION_TAG not in cell.metadata.get("tags", [])]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    first = notebook.cells[0]
    first.source = first.source.replace(f"notebooks/{source.stem}.ipynb",
                                        f"notebooks/student/{source.stem}.ipynb")
    first.source = first.source.replace(
        "\n\n", "\n\n*Student version: the exercises are yours to solve.*\n\n", 1)
    return notebook


def write_student_versions(sources, folder: Path = STUDENT_FOLDER) -> list[Path]:
    """Write ``folder/<name>.ipynb`` for every source; returns the written paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = folder / f"{Path(source).stem}.ipynb"
        nbformat.write(student_version(Path(source)), target)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path,
                        default=sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")))
    parser.add_argument("--out", type=Path, default=STUDENT_FOLDER)
    args = parser.parse_args()
    for path in write_student_versions(args.sources, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
