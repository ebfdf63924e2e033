"""Time every notebook under a preset, from an empty cache and again with a warm one.

The agenda (README and notebook 00) reads these times: the minutes each notebook takes to
run (``tools/sync_notebooks.py`` adds the words and exercises and rewrites the README).
Every notebook is timed on its own, each from its own empty cache (as in a fresh Colab
VM) and then a second time with the cache it just filled. Per cell, the seconds of
both runs are kept for the cells slower than 10 s: the markdown above such a cell says
so (a test compares the two).

Usage::

    python tools/time_notebooks.py                  # lite, all notebooks
    python tools/time_notebooks.py notebooks/02_deeds_supervision.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from slicreg_lite.teaching.tutorial import SLOW_CELL_SECONDS, TIMES_FILE  # noqa: E402


def _cell_seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def run_once(source: Path, preset: str, cache: str) -> tuple[float, list[float], list]:
    """Execute ``source`` once; its total seconds, each code cell's seconds, the cells."""
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    os.environ.update(SLICREG_PRESET=preset, SLICREG_CACHE=cache, MPLBACKEND="Agg")
    os.environ.pop("SLICREG_DATA", None)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=3600, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    seconds = time.perf_counter() - start
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return seconds, [_cell_seconds(cell) for cell in code], code


def time_notebook(source: Path, preset: str) -> dict:
    """Cold and warm seconds of one notebook, and its slow cells."""
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_cells, cells = run_once(source, preset, cache)
        warm, warm_cells, _ = run_once(source, preset, cache)
    slow = [{"first_line": cell.source.strip().splitlines()[0], "cold_s": round(c, 1),
             "warm_s": round(w, 1)}
            for cell, c, w in zip(cells, cold_cells, warm_cells)
            if max(c, w) > SLOW_CELL_SECONDS]
    return {"cold_s": round(cold, 1), "warm_s": round(warm, 1), "slow_cells": slow}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path,
                        default=sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")))
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--out", type=Path, default=TIMES_FILE)
    args = parser.parse_args(argv)
    times = json.loads(args.out.read_text()) if args.out.exists() else {}
    if times.get("preset") != args.preset:
        times = {"preset": args.preset, "cpu_cores": os.cpu_count(), "notebooks": {}}
    for source in args.sources:
        entry = times["notebooks"].setdefault(source.stem, {})
        entry.update(time_notebook(source, args.preset))
        print(source.stem, times["notebooks"][source.stem], flush=True)
        args.out.write_text(json.dumps(times, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
