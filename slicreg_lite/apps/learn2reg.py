"""A Learn2Reg submission: every pair of a task registered, one field per pair in the
challenge's format (``python -m slicreg_lite learn2reg TASK_DIR``).

A Learn2Reg task (e.g. AbdomenCTCT) is a folder with ``imagesTr/``, ``labelsTr/`` and a
``dataset.json`` that lists the pairs to register: ``registration_val`` (scored on the
challenge's site during the validation phase) and ``registration_test``.
:func:`write_submission` registers every pair of one list with
:func:`~slicreg_lite.apps.register.register_scans` (the same path as the ``register``
command, the method built once) and writes, flat in one folder,

``disp_<fixed id>_<fixed modality>_<moving id>_<moving modality>.nii.gz``
    e.g. ``disp_0001_0000_0004_0000.nii.gz``: shape ``(*tensorImageShape, 3)``, float32,
    in voxels of the files as stored; fixed voxel ``x`` corresponds to moving voxel
    ``x + disp[x]`` (the challenge's evaluation warps the moving labels with
    ``scipy.ndimage.map_coordinates(moving, identity + disp, order=0)``);
``scores.json``
    Dice, HD95 and std(log J) of each pair, where both scans have labels: the moving
    labels warped by the field as written, as the challenge warps them
    (:func:`warp_as_the_challenge`), so that its Dice is ours;

and, with ``zip_file=True``, ``<folder>.zip`` holding the fields alone, to upload.

The challenge's own scores differ in two ways from ours: its HD95 is in voxels (ours in
mm), and its SDlogJ is taken of ``J + 3`` over the whole grid (ours of ``J`` inside the
fixed scan's body). Its Dice is the same.
"""

from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..cohort.layouts import read_learn2reg_description
from ..cohort.nifti import save_nifti
from ..cohort.sources import open_source
from ..core.config import Config, RunSettings, get_config, is_real_ct
from ..core.files import atomic_write_json, check_writable
from ..core.labels import MAX_LABEL
from ..core.metrics import dice_per_label, hd95_per_label
from ..methods import PAIR_NAMES, method_named
from ..pipeline.load import load_method
from .register import register_scans

PathLike = Union[str, os.PathLike]
#: The lists of pairs in a task's description, by the name of ``--pairs``.
PAIR_LISTS = {"val": "registration_val", "test": "registration_test"}
#: Where a submission goes.
UPLOAD_URL = "https://learn2reg.grand-challenge.org/"


@dataclass
class TaskPair:
    """One pair of a Learn2Reg task: the files and the submission's name for its field."""

    fixed: Path
    moving: Path
    fixed_labels: Path | None
    moving_labels: Path | None
    name: str


@dataclass
class Submission:
    """What :func:`write_submission` wrote and measured.

    Attributes
    ----------
    folder : Path
    fields : list of Path
        One ``disp_*.nii.gz`` per pair, in the description's order.
    scores : dict
        ``field name -> {"fixed", "moving", "dice": mean over labels, "hd95_mm",
        "std_log_jacobian", "reliable", "warnings", "seconds"}`` (Dice and HD95 None
        without labels; ``warnings``: why a field cannot be trusted).
    zip_file : Path or None
    """

    folder: Path
    fields: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    zip_file: Path | None = None

    def means(self) -> dict:
        """The mean of each score over the pairs that have it (NaN where none has)."""
        keys = ("dice", "hd95_mm", "std_log_jacobian", "seconds")
        return {key: float(np.mean(values)) if (values := [
            s[key] for s in self.scores.values() if s[key] is not None]) else float("nan")
            for key in keys}


def field_name(fixed: PathLike, moving: PathLike) -> str:
    """The challenge's name of a pair's field, from the two image files' names.

    Examples
    --------
    >>> field_name("imagesTr/AbdomenCTCT_0001_0000.nii.gz", "AbdomenCTCT_0004_0000.nii.gz")
    'disp_0001_0000_0004_0000.nii.gz'
    """
    parts = []
    for path in (fixed, moving):
        stem = Path(path).name.split(".nii")[0]
        pieces = stem.rsplit("_", 2)
        if len(pieces) != 3 or not all(p.isdigit() and len(p) == 4 for p in pieces[1:]):
            raise ValueError(f"expected a Learn2Reg image name <task>_<4-digit id>_<4-digit "
                             f"modality>.nii.gz, e.g. AbdomenCTCT_0001_0000.nii.gz; got "
                             f"{Path(path).name!r}")
        parts += pieces[1:]
    return "disp_" + "_".join(parts) + ".nii.gz"


def task_pairs(task_dir: PathLike, pairs: str = "val") -> tuple[list[TaskPair], tuple]:
    """The pairs of one list of a task, their label files, and the expected shape.

    Labels are those the ``training`` list gives each image, else the file of the same
    name under ``labelsTr/`` (as the challenge's evaluation finds them), else None.

    Returns
    -------
    pairs : list of TaskPair
    shape : tuple of 3 ints or None
        ``tensorImageShape`` of modality 0, when the description has it.

    Raises
    ------
    ValueError
        For an unknown ``pairs``, a description without the list or with an empty one,
        or an entry without ``fixed`` and ``moving``.
    FileNotFoundError
        For a missing task folder, description or listed file.
    """
    if pairs not in PAIR_LISTS:
        raise ValueError(f"pairs must be one of {list(PAIR_LISTS)}; got {pairs!r}")
    root = Path(task_dir)
    path, description = read_learn2reg_description(root)
    key = PAIR_LISTS[pairs]
    listed = description.get(key)
    if not isinstance(listed, list) or not listed:
        raise ValueError(f"{str(path)!r} lists no {key!r} pairs (found keys "
                         f"{sorted(description)}); expected a list of {{'fixed': ..., "
                         f"'moving': ...}} image paths to register")
    labels_of = {os.path.normpath(e["image"]): e["label"] for e in
                 description.get("training") or [] if isinstance(e, dict) and
                 e.get("image") and e.get("label")}

    def label(image: str) -> Path | None:
        named = labels_of.get(os.path.normpath(image))
        candidate = root / (named if named else image.replace("images", "labels", 1))
        return candidate if candidate.is_file() else None

    chosen = []
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or not {"fixed", "moving"} <= set(entry):
            raise ValueError(f"entry {index} of {key!r} in {str(path)!r} must have the keys "
                             f"'fixed' and 'moving'; got {entry!r}")
        for role in ("fixed", "moving"):
            if not (root / entry[role]).is_file():
                raise FileNotFoundError(f"{str(path)!r}: the {role} scan of pair {index} of "
                                        f"{key!r}, {str(root / entry[role])!r}, does not "
                                        "exist")
        chosen.append(TaskPair(root / entry["fixed"], root / entry["moving"],
                               label(entry["fixed"]), label(entry["moving"]),
                               field_name(entry["fixed"], entry["moving"])))
    shape = (description.get("tensorImageShape") or {}).get("0")
    return chosen, None if shape is None else tuple(int(n) for n in shape)


def _check_shapes(chosen: list[TaskPair], shape) -> None:
    """Every image of the pairs has the description's ``tensorImageShape``."""
    import nibabel as nib

    if shape is None:
        return
    for path in sorted({p for pair in chosen for p in (pair.fixed, pair.moving)}):
        found = tuple(nib.load(str(path)).shape)
        if found != shape:
            raise ValueError(f"{str(path)!r} has shape {found}; the task's dataset.json "
                             f"says tensorImageShape {list(shape)} (the challenge expects "
                             f"fields of shape {[*shape, 3]}): is it the task's own file?")


def warp_as_the_challenge(moving_labels, disp) -> np.ndarray:
    """The moving labels on the fixed grid as the challenge's evaluation puts them there:
    the field as written (``(X, Y, Z, 3)``, voxels), nearest neighbour, 0 outside."""
    from scipy.ndimage import map_coordinates

    identity = np.indices(disp.shape[:3], dtype=np.float64)
    return map_coordinates(np.asarray(moving_labels), identity + np.moveaxis(disp, -1, 0),
                           order=0)


def challenge_scores(pair: TaskPair, disp, labels) -> tuple:
    """Mean Dice (a fraction) and mean HD95 (mm) over ``labels`` of one written field,
    the moving labels warped as the challenge warps them (:func:`warp_as_the_challenge`),
    a label absent from both maps left out; ``(None, None)`` without both label maps."""
    import nibabel as nib

    if pair.fixed_labels is None or pair.moving_labels is None:
        return None, None
    fixed = nib.load(str(pair.fixed_labels))
    fixed_labels = np.asarray(fixed.dataobj)
    warped = warp_as_the_challenge(np.asarray(nib.load(str(pair.moving_labels)).dataobj), disp)
    dice = dice_per_label(warped, fixed_labels, labels)
    hd95 = hd95_per_label(warped, fixed_labels, fixed.header.get_zooms()[:3], labels)
    return float(np.nanmean(dice)), float(np.nanmean(hd95))


def write_submission(task_dir: PathLike, out: PathLike, *, method: str = "slicreg",
                     pairs: str = "val", cfg: Config | None = None, data="phantom",
                     run: RunSettings | None = None, zip_file: bool = False,
                     progress=None) -> Submission:
    """Register every pair of a Learn2Reg task and write the challenge's files.

    Parameters
    ----------
    task_dir : str or os.PathLike
        The task folder (``dataset.json``, ``imagesTr/``, ``labelsTr/``).
    out : str or os.PathLike
        The submission folder (created; the fields lie flat in it).
    method : str
        A method of the ``register`` command that registers any pair
        (:attr:`~slicreg_lite.methods.Method.any_pair`): ``"slicreg"`` (default),
        ``"slicreg-fit"``, ``"regression"``, ``"teacher"``.
    pairs : {"val", "test"}
        ``registration_val`` or ``registration_test``.
    cfg : Config, optional
        Default ``get_config()``, real CT's teacher settings for data other than the
        phantom (and for the teacher).
    data : str or DataSource
        The cohort whose template and trained networks the method uses (train them on
        the task first: ``python -m slicreg_lite train --data learn2reg:TASK_DIR --all``).
    run : RunSettings, optional
    zip_file : bool
        Also write ``<out>.zip`` with the fields alone.
    progress : callable, optional
        Called with ``(index, n_pairs, name, scores)`` after each pair (the command
        prints a line).

    Returns
    -------
    Submission

    Raises
    ------
    ValueError, FileNotFoundError
        Before anything is registered: an unknown method or list, a task without the
        list, a missing file, an image whose shape is not ``tensorImageShape``.
    """
    chosen_method = method_named(method)
    if not chosen_method.any_pair:
        raise ValueError(f"method must register any pair of scans, one of "
                         f"{list(PAIR_NAMES)}; got {method!r}")
    chosen, shape = task_pairs(task_dir, pairs)
    _check_shapes(chosen, shape)
    if cfg is None:
        cfg = get_config(real_ct=chosen_method.any_fixed_scan or is_real_ct(data))
    run = RunSettings(progress=False) if run is None else run
    out = Path(out)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    registration = None
    if not chosen_method.any_fixed_scan:  # the network and template, loaded once
        registration = load_method(cfg, open_source(data, cfg), chosen_method,
                                   allow_training=False, run=run)
    labels = sorted(open_source(data, cfg).label_names or range(1, MAX_LABEL + 1))
    submission = Submission(out)
    for index, pair in enumerate(chosen):
        start = time.perf_counter()
        registered = register_scans(pair.moving, fixed=pair.fixed, labels=pair.moving_labels,
                                    fixed_labels=pair.fixed_labels, method=method, cfg=cfg,
                                    data=data, run=run, registration=registration)
        seconds = time.perf_counter() - start
        submission.fields.append(save_nifti(out / pair.name,
                                            registered.displacement.astype(np.float32),
                                            registered.fixed_affine))
        report = registered.report
        dice, hd95 = challenge_scores(pair, registered.displacement.astype(np.float32),
                                      labels)
        submission.scores[pair.name] = {"fixed": pair.fixed.name, "moving": pair.moving.name,
                                        "dice": dice, "hd95_mm": hd95,
                                        "std_log_jacobian": report["std_log_jacobian"],
                                        "reliable": report["reliable"],
                                        "warnings": report["warnings"], "seconds": seconds}
        if progress is not None:
            progress(index, len(chosen), pair.name, submission.scores[pair.name])
    atomic_write_json(out / "scores.json", {
        "task": Path(task_dir).name, "pairs": PAIR_LISTS[pairs], "method": method,
        "preset": cfg.name, "per_pair": submission.scores, "mean": submission.means()})
    if zip_file:
        submission.zip_file = out.parent / f"{out.name}.zip"
        temporary = out.parent / f"{out.name}.zip.partial"
        try:
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in submission.fields:
                    archive.write(path, path.name)  # flat: the evaluation reads one folder
            temporary.replace(submission.zip_file)  # no half-written zip left behind
        finally:
            temporary.unlink(missing_ok=True)
    return submission


__all__ = ["PAIR_LISTS", "Submission", "TaskPair", "UPLOAD_URL", "challenge_scores",
           "field_name", "task_pairs", "warp_as_the_challenge", "write_submission"]
