"""The tutorial as a whole: its agenda, its conventions, and how long each notebook takes.

The agenda that opens the README and notebook 00 is written by :func:`agenda_markdown`
from what the student does in each notebook (:data:`NOTEBOOKS`) and from
:data:`TIMES_FILE`: the running times that ``tools/time_notebooks.py`` measured under
``lite``, and the words to read outside the optional "Going further" sections and the
exercises, which ``tools/sync_notebooks.py`` counts (:func:`reading`). A test checks
that the file holds today's counts and that the README shows today's agenda.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

#: The agenda's data: running times measured by ``tools/time_notebooks.py`` and the
#: words and exercises counted by ``tools/sync_notebooks.py``, per notebook.
TIMES_FILE = Path(__file__).with_name("notebook_times.json")
#: A cell slower than this (seconds under ``lite`` on 2 CPU cores) says so above it.
SLOW_CELL_SECONDS = 10.0
#: Reading speed of a student meeting the material for the first time (words a minute,
#: formulas and figures included).
WORDS_PER_MINUTE = 100
#: Minutes for one exercise: reading its cell, writing a few lines, running the check.
EXERCISE_MINUTES = 4
#: The heading that starts a notebook's optional part (it ends at the next "## " heading).
GOING_FURTHER = "## Going further"
#: The markers around the agenda in the README.
AGENDA_BEGIN, AGENDA_END = "<!-- agenda:begin -->", "<!-- agenda:end -->"


@dataclass(frozen=True)
class Notebook:
    """One notebook of the agenda: its file stem, its title and what the student does."""

    stem: str
    title: str
    activity: str


NOTEBOOKS = (
    Notebook("00_data", "The data",
             "see the method in one figure, meet the cohort, measure the initial overlap; "
             "write Dice"),
    Notebook("01_slic_supervoxels", "SLIC supervoxels",
             "cut the template into 16 layers of supervoxels; find a supervoxel's centre"),
    Notebook("02_deeds_supervision", "The teacher",
             "watch deeds-lite carry the supervoxels onto a training scan; write one "
             "min-sum message"),
    Notebook("03_network_training", "The network",
             "see what the 3D DeepLab learnt; write one layer's loss"),
    Notebook("04_adam_registration", "Adam registration",
             "run the paper's Adam loop by hand; fold the features, write the kNN "
             "penalty"),
    Notebook("05_evaluation", "Evaluation",
             "the paper's table on the phantom, PDD-Net, Dice against true correspondence; "
             "write the TRE"),
)


# ----------------------------------------------------------------------------- words
def _is_going_further(source: str) -> bool:
    return source.lstrip().startswith(GOING_FURTHER)


def _opens_section(source: str) -> bool:
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    return first.startswith("## ") or first.startswith("# ")


def markdown_words(cells) -> tuple[int, int]:
    """Words of markdown a student reads: ``(required, optional)``.

    Parameters
    ----------
    cells : iterable
        The notebook's cells, each with ``cell_type`` and ``source`` (nbformat's cells).

    Returns
    -------
    (int, int)
        Words outside and inside the "Going further" sections. A section starts with a
        markdown cell whose first line is ``## Going further ...`` and ends before the
        next cell that opens a ``## `` (or ``# ``) heading. Links count as one word (the
        reader does not read their targets).
    """
    required = optional = 0
    inside = False
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        source = cell.source
        if _is_going_further(source):
            inside = True
        elif inside and _opens_section(source):
            inside = False
        source = re.sub(r"\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)", "badge", source)  # a badge
        source = re.sub(r"\]\([^)]*\)", "]", source)  # a link's target is not read
        words = len(source.split())
        if inside:
            optional += words
        else:
            required += words
    return required, optional


def exercise_count(cells) -> int:
    """The number of exercises (cells tagged ``exercise``)."""
    return sum("exercise" in cell.metadata.get("tags", []) for cell in cells)


def reading(cells) -> dict:
    """What a student reads and does in a notebook: ``{"words": required words,
    "exercises": count}`` (stored beside the times in :data:`TIMES_FILE`)."""
    return {"words": markdown_words(cells)[0], "exercises": exercise_count(cells)}


# ------------------------------------------------------------------------------ times
def measured_times(path: Path = TIMES_FILE) -> dict:
    """The running times and reading counts stored in :data:`TIMES_FILE` (``{}`` if none)."""
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def agenda_markdown(times: dict | None = None, *, link_prefix: str = "") -> str:
    """The agenda: a Markdown table of the notebooks, what the student does and minutes.

    Parameters
    ----------
    times : dict, optional
        Per notebook: running seconds (``warm_s``, ``cold_s``), the required ``words`` and
        the ``exercises`` (:func:`measured_times` by default).
    link_prefix : str
        How the links reach the notebooks from where the table is shown (``""`` from a
        notebook, ``"notebooks/"`` from the README).

    Returns
    -------
    str
        Markdown: one row per notebook and a total. Reading counts the words outside
        "Going further" at :data:`WORDS_PER_MINUTE`, plus :data:`EXERCISE_MINUTES` per
        exercise; running is measured under the timed preset, from a warm cache (the
        stages were computed before) and from an empty one (a fresh Colab VM).
    """
    times = measured_times() if times is None else times
    measured = times.get("notebooks", {})
    missing = [n.stem for n in NOTEBOOKS if "words" not in measured.get(n.stem, {})]
    if missing:
        raise ValueError(f"the agenda needs the reading counts of every notebook; missing "
                         f"{missing} (run tools/sync_notebooks.py)")
    lines = ["| # | notebook | what you do | reading + exercises | running, warm cache | "
             "running, empty cache | total, warm |", "|---|---|---|---|---|---|---|"]
    totals = [0.0, 0.0, 0.0]
    for notebook in NOTEBOOKS:
        entry = measured[notebook.stem]
        minutes = (entry["words"] / WORDS_PER_MINUTE + EXERCISE_MINUTES * entry["exercises"],
                   entry.get("warm_s", math.nan) / 60, entry.get("cold_s", math.nan) / 60)
        totals = [total + value for total, value in zip(totals, minutes)]
        reading_min, warm, cold = minutes
        lines.append(f"| {notebook.stem[:2]} | [{notebook.title}]({link_prefix}"
                     f"{notebook.stem}.ipynb) | {notebook.activity} | {_minutes(reading_min)} "
                     f"| {_minutes(warm)} | {_minutes(cold)} | {_minutes(reading_min + warm)} |")
    lines.append(f"| | **all six** | | {_minutes(totals[0])} | {_minutes(totals[1])} | "
                 f"{_minutes(totals[2])} | **{_minutes(totals[0] + totals[1])}** |")
    preset = times.get("preset", "lite")
    cores = times.get("cpu_cores", "?")
    return ("\n".join(lines) + f"\n\nMinutes; running measured under `{preset}` on "
            f"{cores} CPU cores by `tools/time_notebooks.py`, each notebook on its own; "
            f"reading at {WORDS_PER_MINUTE} words a minute plus {EXERCISE_MINUTES} minutes "
            "an exercise, without the optional \"Going further\" sections.")


def _minutes(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.0f} min" if value >= 2 else f"{value:.1f} min"


# ------------------------------------------------------------------------ conventions
def grids_markdown(cfg) -> str:
    """The grids in play under a preset, as a Markdown table (notebook 00's conventions).

    Every grid spans the same field of view; its voxel size follows from its shape.
    """
    extent = [n * cfg.grid.spacing_mm for n in cfg.grid.shape]  # mm along (d, h, w)

    def size(shape) -> str:
        spacing = sum(e / n for e, n in zip(extent, shape)) / 3
        return f"{' x '.join(str(int(n)) for n in shape)} voxels of {spacing:g} mm"

    supervoxel_mm = extent[0] / cfg.supervoxels.shape[0]
    output = tuple(n // 2 for n in cfg.network.input_shape)
    features = tuple(-(-n // cfg.adam.feature_step) for n in cfg.supervoxels.shape)
    teacher_mm = ", ".join(f"{s * cfg.grid.spacing_mm:g}" for s in cfg.teacher.grid_spacings)
    rows = [("scans (step 0)", size(cfg.grid.shape),
             "every scan after resampling; fields and Dice live here"),
            ("supervoxels (step 1)", size(cfg.supervoxels.shape),
             "the template's layers and the keypoints"),
            ("teacher's control points (step 2)", f"every {teacher_mm} mm, coarse to fine",
             "deeds-lite's levels"),
            ("network (step 3)", f"in: {size(cfg.network.input_shape)}; out: {size(output)}",
             "what the network sees and answers"),
            ("Adam's features (step 4)", size(features),
             "the folded, smoothed supervoxel channels"),
            ("thin-plate spline (step 4)",
             f"every {cfg.adam.tps_grid_step * supervoxel_mm:g} mm, then upsampled",
             "from keypoint motion to a dense field")]
    lines = ["| grid | size | used for |", "|---|---|---|"]
    lines += [f"| {name} | {shape} | {use} |" for name, shape, use in rows]
    return "\n".join(lines)


def device() -> str:
    """Where training computes: CUDA when PyTorch sees a GPU, else the CPU. (Results and
    their cache are the same either way: the device never enters a cache key.)"""
    import torch

    if torch.cuda.is_available():
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return f"the CPU ({os.cpu_count()} cores)"


# --------------------------------------------------------------------------- training
def networks_of(methods=None) -> list[tuple[str, str]]:
    """The ``(backbone, head)`` of every network the named methods need (all rows of
    :data:`~slicreg_lite.methods.METHODS` by default)."""
    from ..methods import METHODS, method_named

    rows = METHODS if methods is None else [method_named(m) for m in methods]
    return list(dict.fromkeys(row.network for row in rows if row.network is not None))


def check_training(cfg, data, networks, train: bool) -> list[tuple[str, str]]:
    """Before a notebook trains for minutes, say so, and ask for ``TRAIN = True``.

    Networks are shipped for the phantom under ``lite``; any other data or preset trains
    its own the first time (then they are cached).

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
    networks : sequence of (str, str)
        ``(backbone, head)`` pairs the notebook uses (:func:`networks_of`).
    train : bool
        The notebook's ``TRAIN`` parameter: whether training may start.

    Returns
    -------
    list of (str, str)
        The networks that will be trained (empty when all exist).

    Raises
    ------
    RuntimeError
        When some network would have to be trained and ``train`` is False; the message
        gives the expected time and how to allow it.
    """
    from ..cohort.sources import open_source
    from ..pipeline import stages

    data = open_source(data, cfg)
    missing = stages.untrained_networks(cfg, data, networks)
    if ("pdd", "labels") in missing and stages.unlabelled_training_ids(cfg, data):
        missing.remove(("pdd", "labels"))  # no labels to train it with: its row is skipped
    if not missing:
        return []
    seconds = [stages.expected_training_seconds(cfg, *n) for n in missing]
    known = [s for s in seconds if s is not None]
    estimate = (f"about {max(1, round(sum(known) / 60))} min on 2 CPU cores (less with a GPU)"
                if known else "an unknown time")
    names = ", ".join(f"{backbone} + {head}" for backbone, head in missing)
    if not train:
        raise RuntimeError(
            f"no trained network for {data.spec!r} under preset {cfg.name!r}: {names}. "
            f"Training takes {estimate}. Set TRAIN = True in the parameters cell (or the "
            "environment variable SLICREG_TRAIN=1) and run again; the networks are cached "
            "for every later run.")
    print(f"training {names}: {estimate}; cached afterwards")
    return missing
