"""Write the student version of the notebooks: every solution cell left out.

In the sources (``notebooks/*.py``) each exercise has three cells, tagged ``exercise``
(a stub that raises ``NotImplementedError``), ``solution`` and ``check`` (prints
"correct", "not yet" with a hint, or "not attempted"). The student version drops the
``solution`` cells, so that every check says "not attempted" until the student fills in
the stub; like nbgrader's release step. Outputs are cleared.

Usage::

    python tools/student_notebooks.py                     # -> student/*.ipynb
    python tools/student_notebooks.py --out DIR notebooks/04_adam_registration.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"


def student_version(source: Path):
    """The notebook of ``source`` without its solution cells, outputs cleared."""
    notebook = jupytext.read(source)
    notebook.cells = [cell for cell in notebook.cells
                      if SOLUTION_TAG not in cell.metadata.get("tags", [])]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def write_student_versions(sources, folder: Path) -> list[Path]:
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
    parser.add_argument("--out", type=Path, default=ROOT / "student")
    args = parser.parse_args()
    for path in write_student_versions(args.sources, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
