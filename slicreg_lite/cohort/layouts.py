"""The file layouts of real data: reading and writing BCV, Learn2Reg and folder layouts.

=============  ====================================================================
``bcv``        the paper's "AbdomenIsoCrop": ``img/img0001.nii.gz`` and
               ``label/label0001.nii.gz`` (:func:`bcv_files`, :func:`load_bcv`)
``learn2reg``  a Learn2Reg task described by ``dataset.json``
               (:func:`learn2reg_files`, :func:`load_learn2reg`)
``folder``     ``images/*.nii.gz``, optional ``labels/`` under the same names, an
               optional ``split.json`` (:func:`folder_files`, :func:`read_split_file`)
=============  ====================================================================

:func:`read_subject` reads one scan and its labels and checks them; :func:`check_files`
checks a whole cohort's headers before any work; :func:`export_cohort` writes any cohort
in one of the layouts. Which scans train, which are tested and which is the template is
decided in :mod:`slicreg_lite.cohort.sources`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..core.checks import SubjectId, check_labels, check_volume
from ..core.config import SplitConfig
from ..core.files import atomic_write_json
from ..core.labels import BTCV_LABELS, MAX_LABEL
from .nifti import is_nifti, load_nifti, nifti_stem, read_header, save_nifti
from .subject import Subject

PathLike = Union[str, os.PathLike]
_BCV_IMAGE_NAME = re.compile(r"img(\d+)\.nii\.gz")
#: File names Learn2Reg uses for the description of a task.
LEARN2REG_JSON_NAMES = ("dataset.json", "AbdomenCTCT_dataset.json")
# AbdomenCTCT_0001_0000.nii.gz: task name, subject id, modality/time-point index.
_LEARN2REG_IMAGE_NAME = re.compile(r".*_(\d+)_\d+\.nii(\.gz)?")
#: The name of a folder's split file.
SPLIT_FILENAME = "split.json"
_SPLIT_KEYS = ("template", "test", "train", "labels")


# ------------------------------------------------------------------------ scan files
@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan: its image and (optionally) its label map."""

    image: Path
    label: Optional[Path] = None


def read_subject(subject_id: SubjectId, files: ScanFiles, *, canonical: bool = True) -> Subject:
    """Read one scan (and its labels) and check them, naming the file on any error.

    Parameters
    ----------
    subject_id : int or str
    files : ScanFiles
    canonical : bool
        Reorient to RAS+ (:func:`slicreg_lite.cohort.nifti.to_ras`).

    Returns
    -------
    Subject
        As stored in the files (not yet on a preset's grid).

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a volume is not 3D, the image holds NaN/Inf, the labels are not whole numbers
        in 0..255, or image and labels differ in shape or affine.
    """
    image, affine = load_nifti(files.image, canonical=canonical)
    image = check_volume(image, f"image {str(files.image)!r}")
    labels = None
    if files.label is not None:
        labels, label_affine = load_nifti(files.label, canonical=canonical)
        labels = check_labels(labels, image.shape, f"labels {str(files.label)!r}",
                              max_label=MAX_LABEL)
        _check_same_grid(files, image.shape, labels.shape, affine, label_affine)
    return Subject(subject_id, image, labels, affine)


def _check_same_grid(files: ScanFiles, image_shape, label_shape, image_affine,
                     label_affine) -> None:
    """Image and labels must share one voxel grid (shape and affine)."""
    if tuple(image_shape) != tuple(label_shape):
        raise ValueError(f"labels {str(files.label)!r} must have the shape of their image "
                         f"{str(files.image)!r}, {tuple(image_shape)}; got "
                         f"{tuple(label_shape)}")
    # a tolerance of 1e-3 mm / 1e-3 of a voxel: header rounding, not a real difference
    if not np.allclose(image_affine, label_affine, atol=1e-3):
        raise ValueError(f"labels {str(files.label)!r} must have the affine of their image "
                         f"{str(files.image)!r}:\n{np.round(image_affine, 3)}\ngot\n"
                         f"{np.round(label_affine, 3)}")


def check_files(files: dict) -> None:
    """Check every scan's header before any work starts: 3D, labels on the image's grid.

    Only the headers are read, so a folder of 30 CT scans is checked in well under a
    second and a bad file is named at once, not after minutes of computing.

    Raises
    ------
    ValueError
        Naming the file: not a readable NIfTI, not 3D (e.g. a 4D series), or labels of
        another shape or affine than their image.
    """
    for scan in files.values():
        image_shape, image_affine = read_header(scan.image)
        image_shape = _volume_shape(image_shape, scan.image)
        if scan.label is not None:
            label_shape, label_affine = read_header(scan.label)
            label_shape = _volume_shape(label_shape, scan.label)
            _check_same_grid(scan, image_shape, label_shape, image_affine, label_affine)


def _volume_shape(shape, path: Path) -> tuple:
    volume = tuple(shape)
    while len(volume) > 3 and volume[-1] == 1:
        volume = volume[:-1]
    if len(volume) != 3:
        raise ValueError(f"{str(path)!r} must hold a 3D volume; got shape {tuple(shape)} "
                         f"({len(volume)}D)")
    return volume


def _require_folder(folder: Path, argument: str, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: expected {what} at {str(folder)!r}; "
                                "it does not exist")


# ------------------------------------------------------------------------------- BCV
def bcv_files(root: PathLike, ids=None) -> dict[int, ScanFiles]:
    """The files of scans in the BCV "AbdomenIsoCrop" layout.

    ::

        root/img/img0001.nii.gz      root/label/label0001.nii.gz
        root/img/img0002.nii.gz      root/label/label0002.nii.gz

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``img/`` and ``label/``.
    ids : sequence of int, optional
        Subject ids (file names are zero-padded to 4 digits); default: every
        ``img*.nii.gz``, sorted by id.

    Returns
    -------
    dict of int -> ScanFiles

    Raises
    ------
    FileNotFoundError
        If ``root``, ``root/img`` or ``root/label`` is missing, if files of requested ids
        are missing (all of them are named), or if there is no image at all.
    """
    root = Path(root)
    _require_folder(root, "root", "the BCV dataset folder (holding img/ and label/)")
    image_folder, label_folder = root / "img", root / "label"
    _require_folder(image_folder, "root", "a folder img/ with the images img0001.nii.gz, ...")
    _require_folder(label_folder, "root",
                    "a folder label/ with the labels label0001.nii.gz, ...")
    if ids is None:
        matches = (_BCV_IMAGE_NAME.fullmatch(p.name) for p in image_folder.iterdir())
        ids = sorted(int(match.group(1)) for match in matches if match)
        if not ids:
            raise FileNotFoundError(f"root: expected images img0001.nii.gz, ... in "
                                    f"{str(image_folder)!r}; found none")
    elif isinstance(ids, (int, np.integer)):
        raise ValueError(f"ids must be a sequence of subject ids, e.g. [{ids}]; got {ids!r}")
    files, missing = {}, []
    for subject_id in (int(i) for i in ids):
        scan = ScanFiles(image_folder / f"img{subject_id:04d}.nii.gz",
                         label_folder / f"label{subject_id:04d}.nii.gz")
        missing += [str(p) for p in (scan.image, scan.label) if not p.is_file()]
        files[subject_id] = scan
    if missing:
        raise FileNotFoundError(f"ids: the requested subjects need {len(missing)} file(s) "
                                f"that do not exist: {', '.join(missing[:6])}"
                                + (", ..." if len(missing) > 6 else ""))
    return files


def load_bcv(root: PathLike, ids=None, *, canonical: bool = True) -> list[Subject]:
    """Load scans in the BCV "AbdomenIsoCrop" layout (see :func:`bcv_files`).

    Returns
    -------
    list of Subject
        In the order of ``ids``, as stored (not on a preset's grid); images in HU
        (float32), labels 0..13 (uint8).

    Raises
    ------
    FileNotFoundError
        See :func:`bcv_files`.
    ValueError
        If a volume is not 3D, an image holds NaN/Inf, labels are not whole numbers in
        0..255 or do not share their image's grid; the message names the file.
    """
    return [read_subject(i, scan, canonical=canonical)
            for i, scan in bcv_files(root, ids).items()]


# ------------------------------------------------------------------------- Learn2Reg
def read_learn2reg_description(root: PathLike) -> tuple[Path, dict]:
    """The path and the content of a Learn2Reg task's ``dataset.json``.

    Raises
    ------
    FileNotFoundError
        If ``root`` or the description is missing.
    ValueError
        If the description is not a JSON object.
    """
    root = Path(root)
    _require_folder(root, "root", "the Learn2Reg dataset folder (holding dataset.json)")
    candidates = [root / name for name in LEARN2REG_JSON_NAMES]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"root: expected a Learn2Reg description "
                                f"{' or '.join(LEARN2REG_JSON_NAMES)} in {str(root)!r}; "
                                "found neither")
    description = _read_json(path)
    if not isinstance(description, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object with the key 'training'; "
                         f"got {type(description).__name__}")
    return path, description


def learn2reg_files(root: PathLike, *, split: str = "training") -> dict[int, ScanFiles]:
    """The files of one list (``split``) of a Learn2Reg task's ``dataset.json``.

    The description lists the scans with paths relative to ``root``::

        {"name": "AbdomenCTCT", ...,
         "training": [{"image": "./imagesTr/AbdomenCTCT_0001_0000.nii.gz",
                       "label": "./labelsTr/AbdomenCTCT_0001_0000.nii.gz"}, ...],
         "registration_val": [{"fixed": "./imagesTr/AbdomenCTCT_0002_0000.nii.gz",
                               "moving": "./imagesTr/AbdomenCTCT_0001_0000.nii.gz"}, ...]}

    Returns
    -------
    dict of int -> ScanFiles
        The subject id comes from the file name (``AbdomenCTCT_0001_0000.nii.gz`` -> 1).

    Raises
    ------
    FileNotFoundError
        If ``root``, the description or a file it lists is missing.
    ValueError
        If the description is not valid JSON, has no list ``split``, an entry has no
        ``"image"``, a file name has no subject id, or two entries share a subject id.
    """
    root = Path(root)
    path, description = read_learn2reg_description(root)
    found_keys = sorted(description)
    if split not in description or not isinstance(description[split], list):
        raise ValueError(f"split: expected the key {split!r} with a list of scans in "
                         f"{str(path)!r}; found keys {found_keys}")
    files = {}
    for index, entry in enumerate(description[split]):
        if not isinstance(entry, dict) or "image" not in entry:
            entry_keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"entry {index} of {split!r} in {str(path)!r} must have the key "
                             f"'image' (and optionally 'label'); found keys {entry_keys}")
        scan = ScanFiles(root / entry["image"],
                         root / entry["label"] if entry.get("label") else None)
        for listed in (scan.image, scan.label):
            if listed is not None and not listed.is_file():
                raise FileNotFoundError(f"{str(path)!r} lists the file {str(listed)!r}, "
                                        "which does not exist")
        subject_id = learn2reg_subject_id(scan.image.name)
        if subject_id in files:
            raise ValueError(f"{str(path)!r} lists two images of subject {subject_id} "
                             f"({files[subject_id].image.name}, {scan.image.name}); expected "
                             "one scan per subject (an inter-patient task such as "
                             "AbdomenCTCT)")
        files[subject_id] = scan
    return files


def load_learn2reg(root: PathLike, *, split: str = "training",
                   canonical: bool = True) -> list[Subject]:
    """Load one list of a Learn2Reg task (see :func:`learn2reg_files`), as stored.

    Returns
    -------
    list of Subject
        In the order of the description; ``labels`` is None for entries without one.
    """
    return [read_subject(i, scan, canonical=canonical)
            for i, scan in learn2reg_files(root, split=split).items()]


def learn2reg_subject_id(filename: str) -> int:
    """The subject id in a Learn2Reg file name: ``"AbdomenCTCT_0001_0000.nii.gz"`` -> 1.

    Raises
    ------
    ValueError
        If the name does not look like ``<task>_<id>_<index>.nii.gz``.
    """
    match = _LEARN2REG_IMAGE_NAME.fullmatch(filename)
    if match is None:
        raise ValueError(f"filename: expected <task>_<id>_<index>.nii.gz, e.g. "
                         f"'AbdomenCTCT_0001_0000.nii.gz'; got {filename!r}")
    return int(match.group(1))


def learn2reg_split(description: dict, ids, path: PathLike = "dataset.json") -> dict:
    """Test scans and template of a Learn2Reg task, from its ``registration_val`` pairs.

    The test scans are those the pairs name. The template is the one this toolkit's
    export names (the key :data:`LEARN2REG_OWN_KEY`), else the scan most often fixed in
    the pairs (the smallest id of a tie): a task that registers every scan to one names
    that one.

    Returns
    -------
    dict
        ``{"test": [...], "template": id}``; empty when the description has no
        ``registration_val`` (the defaults of :func:`default_split` apply then).
    """
    pairs = description.get("registration_val") or []
    own = description.get(LEARN2REG_OWN_KEY)
    if not isinstance(pairs, list) or not all(isinstance(p, dict) and {"fixed", "moving"}
                                                <= set(p) for p in pairs):
        raise ValueError(f"'registration_val' in {str(path)!r} must be a list of "
                         "{'fixed': ..., 'moving': ...} pairs")
    if not pairs:
        return {}
    fixed = Counter(learn2reg_subject_id(Path(p["fixed"]).name) for p in pairs)
    named = {learn2reg_subject_id(Path(p[key]).name) for p in pairs for key in ("fixed", "moving")}
    unknown = sorted(named - set(ids))
    if unknown:
        raise ValueError(f"'registration_val' in {str(path)!r} names subjects {unknown} that "
                         "are not in its 'training' list")
    if isinstance(own, dict) and own.get("template"):  # written by export_cohort
        template = learn2reg_subject_id(Path(own["template"]).name)
        if template not in set(ids):
            raise ValueError(f"'{LEARN2REG_OWN_KEY}' in {str(path)!r} names the template "
                             f"{template}, which is not in its 'training' list")
        return {"test": sorted(named), "template": template}
    most = max(fixed.values())
    return {"test": sorted(named), "template": min(i for i, n in fixed.items() if n == most)}


def learn2reg_label_names(description: dict, path: PathLike = "dataset.json") -> dict | None:
    """The label names of a Learn2Reg (or nnU-Net / Medical Decathlon) description.

    Accepts ``{"labels": {"0": {"1": "spleen", ...}}}`` (Learn2Reg: per modality),
    ``{"labels": {"1": "spleen", ...}}`` (Decathlon) and ``{"labels": {"spleen": 1}}``
    (nnU-Net v2). Background (0) is left out. None when there is no ``labels`` key.
    """
    labels = description.get("labels")
    if labels is None:
        return None
    if isinstance(labels, dict) and labels and all(isinstance(v, dict) for v in labels.values()):
        labels = next(iter(labels.values()))  # Learn2Reg: one mapping per modality
    return parse_label_names(labels, f"'labels' in {str(path)!r}")


def parse_label_names(labels, where: str) -> dict[int, str]:
    """``{number: name}`` from ``{"1": "liver"}`` or ``{"liver": 1}``, background left out.

    Raises
    ------
    ValueError
        If it is not such a mapping, or a number is outside 1..255.
    """
    if not isinstance(labels, dict):
        raise ValueError(f"{where} must map label numbers to names, e.g. {{'1': 'liver'}}; "
                         f"got {type(labels).__name__}")
    names = {}
    for key, value in labels.items():
        number, name = (key, value) if str(key).strip().isdigit() else (value, key)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must map label numbers to names, e.g. "
                             f"{{'1': 'liver'}}; got the entry {key!r}: {value!r}") from None
        if number == 0:
            continue  # background
        if not 1 <= number <= MAX_LABEL:
            raise ValueError(f"{where}: label numbers must be in 1..{MAX_LABEL}; got {number}")
        names[number] = str(name)
    return dict(sorted(names.items()))


# ---------------------------------------------------------------------------- folders
def folder_files(root: PathLike) -> dict[str, ScanFiles]:
    """The scans of a folder of NIfTI files and their optional labels.

    Images are ``root/images/*.nii.gz`` (or ``*.nii``), or ``root/*.nii.gz`` when there is
    no ``images/`` folder; labels are ``root/labels/<the same name>``. The subject id is
    the file name without its suffix.

    Returns
    -------
    dict of str -> ScanFiles
        Sorted by name; ``label`` is None for a scan without a label file.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or holds no NIfTI scan.
    ValueError
        If a label file has no image of the same name, or two files share a name.
    """
    root = Path(root)
    _require_folder(root, "root", "a folder of NIfTI scans")
    image_folder = root / "images" if (root / "images").is_dir() else root
    label_folder = root / "labels"
    images = sorted(p for p in image_folder.iterdir() if p.is_file() and is_nifti(p))
    if not images:
        raise FileNotFoundError(f"root: expected NIfTI scans (*.nii.gz or *.nii) in "
                                f"{str(image_folder)!r}; found none")
    files = {}
    for path in images:
        stem = nifti_stem(path)
        if stem in files:
            raise ValueError(f"root: two scans are called {stem!r} in {str(image_folder)!r} "
                             f"({files[stem].image.name} and {path.name}); rename one")
        files[stem] = ScanFiles(path)
    if label_folder.is_dir():
        for path in sorted(p for p in label_folder.iterdir() if p.is_file() and is_nifti(p)):
            stem = nifti_stem(path)
            if stem not in files:
                raise ValueError(f"the label file {str(path)!r} has no image of the same name "
                                 f"in {str(image_folder)!r}; expected one of "
                                 f"{sorted(files)[:5]}{', ...' if len(files) > 5 else ''}")
            files[stem] = ScanFiles(files[stem].image, path)
    return files


def read_split_file(path: PathLike) -> dict:
    """The content of a split file (keys ``template``, ``test``, ``train``, ``labels``).

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing, not JSON, or holds other keys or types.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split_file: expected a JSON split file at {str(path)!r}; "
                                "it does not exist")
    content = _read_json(path)
    if not isinstance(content, dict) or set(content) - set(_SPLIT_KEYS):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{str(path)!r} must be a JSON object with some of the keys "
                         f"{list(_SPLIT_KEYS)}; found {found}")
    for key in ("test", "train"):
        if key in content and not isinstance(content[key], list):
            raise ValueError(f"{key!r} in {str(path)!r} must be a list of scan ids; got "
                             f"{content[key]!r}")
    return content


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error


# ---------------------------------------------------------------------------- writing
#: The layouts :func:`export_cohort` writes (and :func:`open_source` reads back).
LAYOUTS = ("bcv", "learn2reg", "folder")


def export_cohort(subjects, dest: PathLike, *, layout: str = "bcv",
                  split: SplitConfig | None = None, label_names: dict | None = None,
                  task: str = "AbdomenCTCT") -> Path:
    """Write scans as NIfTI files in one of the layouts that :func:`open_source` reads.

    ``bcv``: ``img/img0001.nii.gz`` + ``label/label0001.nii.gz``. ``learn2reg``:
    ``imagesTr/<task>_0001_0000.nii.gz`` + ``labelsTr/...`` and a ``dataset.json`` with
    every key of the AbdomenCTCT task's (:func:`learn2reg_description`), whose
    ``registration_val`` pairs are every pair among the test scans. ``folder``:
    ``images/<id>.nii.gz`` + ``labels/<id>.nii.gz`` and a ``split.json``. Any NIfTI tool
    (ITK-SNAP, 3D Slicer, nibabel) opens the files.

    Parameters
    ----------
    subjects : dict of id -> Subject, or iterable of Subject
    dest : str or os.PathLike
        The folder to write into (created if needed).
    layout : {"bcv", "learn2reg", "folder"}
    split : SplitConfig, optional
        Written into ``dataset.json`` / ``split.json`` (needed for those two layouts).
    label_names : dict of int -> str, optional
        Written into ``dataset.json`` / ``split.json``; the 13 BTCV organs by default.
    task : str
        The Learn2Reg task name in the file names.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}; got {layout!r}")
    if layout != "bcv" and split is None:
        raise ValueError(f"split is needed for the {layout!r} layout (its description "
                         "names the template and the test scans)")
    dest = Path(dest)
    items = list(subjects.values() if isinstance(subjects, dict) else subjects)
    labels = dict(BTCV_LABELS if label_names is None else label_names)
    if layout != "folder" and not all(isinstance(s.subject_id, int) for s in items):
        raise ValueError(f"the {layout!r} layout numbers its files: every subject_id must "
                         "be an int; use layout='folder' for named scans")

    def names(subject):
        i = subject.subject_id
        if layout == "bcv":
            return f"img/img{i:04d}.nii.gz", f"label/label{i:04d}.nii.gz"
        if layout == "learn2reg":
            return (f"imagesTr/{task}_{i:04d}_0000.nii.gz",
                    f"labelsTr/{task}_{i:04d}_0000.nii.gz")
        return f"images/{i}.nii.gz", f"labels/{i}.nii.gz"

    training = []
    for subject in items:
        image_name, label_name = names(subject)
        save_nifti(dest / image_name, subject.image, subject.affine)
        entry = {"image": f"./{image_name}"}
        if subject.labels is not None:
            save_nifti(dest / label_name, subject.labels, subject.affine)
            entry["label"] = f"./{label_name}"
        training.append(entry)
    if layout == "learn2reg":
        atomic_write_json(dest / LEARN2REG_JSON_NAMES[0],
                          learn2reg_description(items, training, split, labels, task))
    elif layout == "folder":
        atomic_write_json(dest / SPLIT_FILENAME, {
            "template": split.template_id, "test": list(split.test_ids),
            "train": list(split.train_ids), "labels": {str(n): v for n, v in labels.items()}})
    return dest


#: The key of a Learn2Reg description that holds what only this toolkit reads: the
#: template of the split (the challenge's pairs do not say which scan it is).
LEARN2REG_OWN_KEY = "slicreg_lite"


def learn2reg_description(subjects, training: list, split: SplitConfig, labels: dict,
                          task: str = "AbdomenCTCT") -> dict:
    """A ``dataset.json`` with every key of the Learn2Reg AbdomenCTCT task's description.

    The challenge's tools read it (``create_evaluation_config.py`` takes ``name``,
    ``tensorImageShape`` and the pairs). Its values are true for the export: the grid of
    the scans, modality CT, the training list (every scan, with its labels),
    ``registration_val``: every pair among the test scans but the template
    (``split.evaluation_ids``), the earlier one fixed, as the task's 45 validation pairs;
    no test scans and no test pairs (the phantom has no hidden test set). The template,
    which the pairs no longer name, is kept under :data:`LEARN2REG_OWN_KEY` for
    :func:`learn2reg_split`.

    Raises
    ------
    ValueError
        If the scans differ in shape: the description has one ``tensorImageShape``.
    """
    shapes = sorted({tuple(int(n) for n in s.image.shape) for s in subjects})
    if len(shapes) != 1:
        raise ValueError(f"the learn2reg layout describes one tensorImageShape: every scan "
                         f"must have the same shape; got {shapes} (write them on one grid, "
                         "or use layout='folder')")
    spacing = sorted({tuple(round(float(v), 3) for v in s.spacing) for s in subjects})
    ids = [s.subject_id for s in subjects]
    test = [i for i in split.evaluation_ids if i in ids]

    def image_of(i):
        return f"./imagesTr/{task}_{i:04d}_0000.nii.gz"

    pairs = [{"fixed": image_of(a), "moving": image_of(b)} for a, b in combinations(test, 2)]
    provided = ["image", "label"] if any("label" in entry for entry in training) \
        else ["image"]
    return {
        "name": task,
        "release": "1.1",
        "description": (f"{len(ids)} abdominal CT scans written by slicreg_lite in the "
                        f"layout of the Learn2Reg {task} task, on one grid of "
                        f"{' x '.join(map(str, shapes[0]))} voxels of "
                        f"{' / '.join(' x '.join(f'{v:g}' for v in sp) for sp in spacing)} "
                        "mm. The validation pairs are every pair among the split's test "
                        "scans but its template."),
        "licence": "as the scans it was written from (the phantom: generated, free to use)",
        "reference": "Heinrich, Slic-Reg, MIDL 2021; Hering et al., Learn2Reg, IEEE TMI 2023",
        "pairings": "unpaired",
        "provided_data": {"0": provided},
        "registration_direction": {"fixed": 0, "moving": 0},
        "modality": {"0": "CT"},
        "img_shift": {"fixed": "patient", "moving": "another patient"},
        "labels": {"0": {"0": "background", **{str(n): v for n, v in labels.items()}}},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(shapes[0])},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "numPairedTraining": 0,
        "training_paired_images": [],
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(pairs),
        "registration_val": pairs,
        "numRegistration_test": 0,
        "registration_test": [],
        LEARN2REG_OWN_KEY: {"template": image_of(split.template_id)},
    }
