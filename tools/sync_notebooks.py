"""Write each notebook's .ipynb from its .py source (jupytext percent format).

The .py file is what you edit. This script turns it into the paired .ipynb, executes it
under the ``smoke`` preset and keeps the outputs of the cells tagged
``nbval-check-output`` only (text, no figures): nbval compares exactly those cells when
the test suite runs the notebooks, and the repository stays small. In the .py source such
a cell starts with ``# %% tags=["nbval-check-output"]``.

Usage::

    python tools/sync_notebooks.py notebooks/*.py            # sync and store outputs
    python tools/sync_notebooks.py --no-execute notebooks/*.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

CHECK_TAG = "nbval-check-output"


def _keep_checked_outputs(notebook) -> None:
    notebook.metadata.pop("widgets", None)  # widget state of the smoke run: not for users
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_TAG in cell.metadata.get("tags", []):
            cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream"]
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)


def sync(path: Path, execute: bool) -> Path:
    notebook = jupytext.read(path)
    target = path.with_suffix(".ipynb")
    if execute:
        from nbclient import NotebookClient

        with tempfile.TemporaryDirectory() as cache:
            os.environ.update(SLICREG_PRESET="smoke", SLICREG_CACHE=cache, MPLBACKEND="Agg")
            os.environ.pop("SLICREG_DATA", None)  # the stored outputs are the phantom's
            NotebookClient(notebook, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
    elif target.exists():
        # keep the checked outputs of cells whose source did not change
        old = {c.source: c for c in nbformat.read(target, as_version=4).cells}
        for cell in notebook.cells:
            if cell.cell_type == "code" and cell.source in old:
                cell.outputs = old[cell.source].get("outputs", [])
                cell.execution_count = old[cell.source].get("execution_count")
    _keep_checked_outputs(notebook)
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="notebooks/NN_name.py files")
    parser.add_argument("--no-execute", action="store_true",
                        help="only sync the cells; keep stored outputs of unchanged cells")
    args = parser.parse_args(argv)
    for source in args.sources:
        if source.suffix != ".py":
            parser.error(f"expected .py notebook sources; got {source}")
        print(f"{source} -> {sync(source, execute=not args.no_execute)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
