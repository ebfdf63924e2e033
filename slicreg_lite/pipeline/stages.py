"""The stages of the method, each computed once and then read from the cache.

Every stage is a function ``stage(cfg, data, ...) -> result``: ``cfg`` is the preset
(:func:`slicreg_lite.core.config.get_config`), ``data`` the cohort (a string such as
``"phantom"`` or ``"bcv:/data/BCV"``, or a :class:`~slicreg_lite.cohort.sources.
DataSource`) and the keyword ``run`` (:class:`~slicreg_lite.core.config.RunSettings`) says
how to run it (parallel workers, progress bars, device), which never changes a result.
Results are cached per data source by :mod:`slicreg_lite.pipeline.cache`; a missing
earlier stage is computed on the way.

The stages, in order:

- :func:`cohort`: the scans on the preset's grid (generated, or read and pre-processed);
- :func:`initial_alignment`: Dice of the unregistered test scans against the template;
- :func:`template_supervoxels`: step 1, the template's layers of SLIC supervoxels;
- :func:`supervision`: step 2, the teacher (deeds-lite) carries the layers onto every
  training scan;
- :func:`network`: step 3, a trained network (shipped weights, the cache, or training);
  PDD-Net, the paper's comparator, is trained and cached the same way;
- :func:`teacher_direct`: the teacher registering each test scan to the template (a row
  of the table); one job (:class:`TeacherRun`) serves both teacher stages.

Steps 4 and 5 (registering the test scans with every method, the table) are in
:mod:`slicreg_lite.evaluation`.

Examples
--------
>>> from slicreg_lite.core.config import RunSettings, get_config
>>> cfg = get_config("smoke")
>>> scans = cohort(cfg, "phantom", ids=(38,), run=RunSettings(progress=False))
>>> scans[38].shape
(32, 28, 36)
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..alignment.pdd import PddNetwork, train_pdd
from ..cohort.sources import DataSource, open_source
from ..cohort.subject import Subject, subject_filename
from ..core.config import Config, RunSettings, get_config
from ..core.dice_table import DiceTable
from ..core.files import atomic_save_npz, atomic_write_json
from ..core.metrics import score_registration, supervoxel_agreement
from ..core.spatial import affine_to_displacement, resize, resize_displacement, warp_labels
from ..network.domain import intensity_profile
from ..network.models import HEADS, build_model, predict_supervoxels
from ..network.training import SupervoxelDataset, load_checkpoint, save_checkpoint, train
from ..supervoxels.layers import body_mask, slic_layers
from ..teacher import register as teacher_register
from .cache import UNREADABLE, per_subject, stage_dir
from .weights import decided_by_sections, publish_weights, shipped_weights, weights_dir

#: Bump when reading scans into the cohort changes (the reader has its own version too).
COHORT_VERSION = 1
#: Bump when the supervoxel code changes its results.
SUPERVOXELS_VERSION = 1
#: Bump when the teacher (deeds-lite) changes its results.
TEACHER_VERSION = 3
#: The teacher on the test subjects: its version, and its files' layout (4: with the
#: linear part, as the supervision's files; the files of 3 lack it and are recomputed).
TEACHER_DIRECT_VERSION = 4
#: Bump when the intensity profiles (:mod:`slicreg_lite.network.domain`) change.
PROFILES_VERSION = 1

_DEFAULT_RUN = RunSettings()


def _setup(cfg: Config, data, run: RunSettings | None) -> tuple[DataSource, RunSettings]:
    """The data source opened for ``cfg`` and the run settings (defaults if None)."""
    return open_source(data, cfg), _DEFAULT_RUN if run is None else run


def _subject_files(folder: Path, data: DataSource, ids, default) -> tuple[tuple, dict]:
    """The subjects of a per-subject stage (``default`` when ``ids`` is None) and the cache
    file of each in ``folder``."""
    ids = default if ids is None else tuple(data.find(i) for i in ids)
    return ids, {i: folder / subject_filename(i) for i in ids}


# ------------------------------------------------------------------------------ cohort
def _save_subject(path: Path, subject: Subject) -> None:
    arrays = {"image": subject.image, "affine": subject.affine,
              "subject_id": np.array(subject.subject_id)}
    image = subject.image
    if np.array_equal(image, np.round(image)) and image.min() >= -32768 and image.max() < 32768:
        # whole Hounsfield units (the phantom's) fit int16 exactly: half the size on disk
        arrays["image"] = image.astype(np.int16)
    if subject.labels is not None:
        arrays["labels"] = subject.labels
    if subject.body_mask is not None:
        arrays["body_mask"] = subject.body_mask
    atomic_save_npz(path, **arrays)


def _load_subject(path: Path) -> Subject:
    with np.load(path) as data:
        subject_id = data["subject_id"].item()
        return Subject(subject_id, data["image"].astype(np.float32),
                       data["labels"] if "labels" in data else None, data["affine"],
                       body_mask=data["body_mask"] if "body_mask" in data else None)


def _prepare_one(data: DataSource, subject_id, path: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _save_subject(path, data.load(subject_id))


def cohort(cfg: Config, data="phantom", ids=None, *,
           run: RunSettings | None = None) -> dict:
    """The scans of a data source on the preset's grid, prepared once and then cached.

    The phantom's subjects are generated; real scans are read, reoriented, resampled and
    cropped (:func:`slicreg_lite.cohort.preprocessing.to_grid`), in parallel.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        ``"phantom"`` (default), ``"bcv:PATH"``, ``"learn2reg:PATH"`` or ``"folder:PATH"``.
    ids : iterable, optional
        Subject ids; default: every id of the source's split.
    run : RunSettings, optional

    Returns
    -------
    dict of id -> Subject
    """
    from joblib import delayed

    data, run = _setup(cfg, data, run)
    folder = stage_dir(cfg, data, "cohort", (), COHORT_VERSION, with_split=False)
    ids, paths = _subject_files(folder, data, ids, data.split.all_ids)

    def jobs(missing, threads):
        return (delayed(_prepare_one)(data, i, paths[i], threads) for i in missing)

    what = "phantom cohort" if data.kind == "phantom" else f"reading {data.kind} scans"
    return per_subject(ids, paths, _load_subject, jobs, run=run,
                       desc=f"{what} ({cfg.name})")


def unlabelled_training_ids(cfg: Config, data="phantom", *,
                            run: RunSettings | None = None) -> list:
    """The training subjects without organ labels: a network that learns from labels
    (PDD-Net's row trained with them) cannot be trained while any is left."""
    data, run = _setup(cfg, data, run)
    subjects = cohort(cfg, data, data.split.train_ids, run=run)
    return [i for i in data.split.train_ids if subjects[i].labels is None]


def training_profiles(cfg: Config, data="phantom", *,
                      run: RunSettings | None = None) -> np.ndarray:
    """The intensity profiles of the training scans (:mod:`slicreg_lite.network.domain`), computed
    once and then read from the cache: what a scan given to a trained network is
    compared with.

    Returns
    -------
    numpy.ndarray, shape (n_training, 7)
    """
    data, run = _setup(cfg, data, run)
    folder = stage_dir(cfg, data, "profiles", (), PROFILES_VERSION)
    path = folder / "training_profiles.json"
    if path.exists():
        try:
            return np.array(json.loads(path.read_text())["profiles"])
        except (*UNREADABLE, TypeError) as error:
            warnings.warn(f"cached profiles {path} are unreadable ({error}); recomputing "
                          "them", stacklevel=2)
    ids = data.split.train_ids
    subjects = cohort(cfg, data, ids, run=run)
    # the body found from the intensities, as for any scan given later
    profiles = np.array([intensity_profile(subjects[i].image) for i in ids])
    atomic_write_json(path, {"subject_ids": [str(i) for i in ids],
                             "profiles": profiles.tolist()})
    return profiles


# ------------------------------------------------------------------- initial alignment
def initial_alignment(cfg: Config, data="phantom", subjects: dict | None = None, *,
                      run: RunSettings | None = None) -> DiceTable:
    """Dice of every evaluation subject against the template, with no registration at all.

    This is the first row of the paper's table ("initial, not registered"): how much the
    organs overlap just because the scans share a field of view.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
    subjects : dict of id -> Subject, optional
        Default: :func:`cohort`.
    run : RunSettings, optional

    Returns
    -------
    DiceTable
        One row per evaluation subject with labels under the method name
        ``"initial, not registered"``; empty when the template has no labels.
    """
    data, run = _setup(cfg, data, run)
    split = data.split
    if subjects is None:
        subjects = cohort(cfg, data, (*split.evaluation_ids, split.template_id), run=run)
    template = subjects[split.template_id]
    table = DiceTable(label_names=label_set(data, template))
    if template.labels is None:
        return table
    for i in split.evaluation_ids:
        moving = subjects[i]
        if moving.shape != template.shape:
            raise ValueError(f"subject {i} has shape {moving.shape} but the template has "
                             f"{template.shape}; pre-process both to one grid first")
        if moving.labels is not None:
            table.add("initial, not registered", i, score_registration(
                moving.labels, template.labels, label_names=table.label_names,
                hd95=False).dice)
    return table


def label_set(data: DataSource, template: Subject) -> dict:
    """The label set of a table: the source's names, or the values found in the template."""
    values = [] if template.labels is None else np.unique(template.labels)
    return data.names_for(values) or {1: "label 1"}


# ------------------------------------------------------------------ template supervoxels
@dataclass
class TemplateSupervoxels:
    """The template on the supervoxel grid and its layers of supervoxels.

    Attributes
    ----------
    layers : numpy.ndarray of uint8, shape (L, D, H, W)
        ``cfg.supervoxels.n_layers`` layers with labels 0..127 (0 = background).
    image : numpy.ndarray of float32, shape (D, H, W)
        The template in HU, resampled to ``cfg.supervoxels.shape``.
    mask : numpy.ndarray of bool, shape (D, H, W)
        The label-free body mask the supervoxels fill.
    """

    layers: np.ndarray
    image: np.ndarray
    mask: np.ndarray


def template_supervoxels(cfg: Config, data="phantom", *,
                         run: RunSettings | None = None) -> TemplateSupervoxels:
    """Step 1: SLIC layers on the template, computed once and then read from the cache.

    The template is resampled to ``cfg.supervoxels.shape`` (half the image resolution in
    the paper), masked with :func:`~slicreg_lite.supervoxels.layers.body_mask` (no labels used)
    and cut into layers by :func:`~slicreg_lite.supervoxels.layers.slic_layers`.
    """
    data, run = _setup(cfg, data, run)
    folder = stage_dir(cfg, data, "supervoxels", ("supervoxels",), SUPERVOXELS_VERSION)
    path = folder / "template_supervoxels.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return TemplateSupervoxels(stored["layers"], stored["image"], stored["mask"])
        except UNREADABLE as error:
            warnings.warn(f"cached supervoxels {path} are unreadable ({error}); "
                          "recomputing them", stacklevel=2)
    template_id = data.split.template_id
    image = cohort(cfg, data, (template_id,), run=run)[template_id].image
    if image.shape != tuple(cfg.supervoxels.shape):
        image = resize(image, cfg.supervoxels.shape)
    mask = body_mask(image)
    layers = slic_layers(image, mask, cfg.supervoxels, progress=run.progress)
    atomic_save_npz(path, layers=layers, image=image, mask=mask)
    return TemplateSupervoxels(layers, image, mask)


# ------------------------------------------------------------------------- supervision
@dataclass
class TeacherRun:
    """The teacher (deeds-lite) on one subject and the template, as the cache keeps it.

    :func:`supervision` registers the template onto a training subject (the subject is
    fixed), :func:`teacher_direct` a test subject onto the template (the template is
    fixed); both carry the template's supervoxel layers onto the subject.

    Attributes
    ----------
    subject_id : int or str
    layers : numpy.ndarray of uint8, shape (L, D, H, W)
        The template's supervoxel layers carried onto this subject, on the supervoxel
        grid: the network's targets (supervision), or what a perfect network would
        predict for this scan (the evaluation's oracle rows).
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        The teacher's field on the fixed scan's grid, in voxels, pointing into the moving
        scan (the targets of the regression variant, the table's teacher row).
    affine : numpy.ndarray, shape (3, 4)
        The linear part alone (fixed voxel -> moving voxel).
    timings : dict
        Seconds per part of the registration.
    """

    subject_id: object
    layers: np.ndarray
    displacement: np.ndarray
    affine: np.ndarray
    timings: dict


def _run_teacher(cfg: Config, subject_id, fixed_image: np.ndarray, moving_image: np.ndarray,
                 template_layers: np.ndarray, subject_is_fixed: bool, path: Path,
                 threads: int) -> None:
    """Register ``moving_image`` to ``fixed_image`` with the teacher, carry the template's
    layers onto the subject, store the result: the one job of both teacher stages."""
    import torch

    torch.set_num_threads(threads)
    result = teacher_register(fixed_image, moving_image, cfg.teacher)
    # the field that points from the subject's grid into the template carries its layers:
    # the forward field when the subject is fixed, else the inverse one
    carrying = result.displacement if subject_is_fixed else result.backward
    if tuple(template_layers.shape[1:]) != tuple(carrying.shape[1:]):
        carrying = resize_displacement(carrying, template_layers.shape[1:])
    atomic_save_npz(path, subject_id=np.array(subject_id),
                    layers=warp_labels(template_layers, carrying),
                    displacement=result.displacement.astype(np.float16), affine=result.affine,
                    timings=np.array(json.dumps(result.timings)))


def _load_teacher_run(path: Path) -> TeacherRun:
    with np.load(path) as stored:
        return TeacherRun(stored["subject_id"].item(), stored["layers"],
                          stored["displacement"].astype(np.float32), stored["affine"],
                          json.loads(str(stored["timings"])))


def _teacher_runs(cfg: Config, data: DataSource, ids, default_ids, *, stage: str,
                  version: int, subject_is_fixed: bool, desc: str,
                  run: RunSettings) -> dict:
    """The teacher on each subject and the template, cached per subject, in parallel."""
    from joblib import delayed

    folder = stage_dir(cfg, data, stage, ("supervoxels", "teacher"), version)
    ids, paths = _subject_files(folder, data, ids, default_ids)

    def jobs(missing, threads):
        template_id = data.split.template_id
        subjects = cohort(cfg, data, (*missing, template_id), run=run)
        layers = template_supervoxels(cfg, data, run=run).layers
        template = subjects[template_id].image
        for i in missing:
            fixed, moving = (subjects[i].image, template) if subject_is_fixed else \
                (template, subjects[i].image)
            yield delayed(_run_teacher)(cfg, i, fixed, moving, layers, subject_is_fixed,
                                        paths[i], threads)

    return per_subject(ids, paths, _load_teacher_run, jobs, run=run, desc=desc)


def supervision(cfg: Config, data="phantom", ids=None, *,
                run: RunSettings | None = None) -> dict:
    """Step 2: deeds-lite registers the template onto every training subject.

    The template's supervoxel layers are warped onto each subject (nearest neighbour):
    these are the network's training targets. Each subject is cached on its own, so an
    interrupted run continues where it stopped.

    Subjects are registered in parallel with joblib (``run.workers`` processes). The same
    code runs on a Dask cluster through joblib's dask backend::

        from dask.distributed import Client
        from joblib import parallel_backend

        client = Client("tcp://scheduler:8786")      # or Client() for a local cluster
        with parallel_backend("dask"):
            stages.supervision(cfg, "phantom", run=RunSettings(jobs=-1))  # all it takes

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
    ids : iterable, optional
        Subjects to supervise; default: the source's training ids.
    run : RunSettings, optional

    Returns
    -------
    dict of id -> TeacherRun
    """
    data, run = _setup(cfg, data, run)
    return _teacher_runs(cfg, data, ids, data.split.train_ids, stage="supervision",
                         version=TEACHER_VERSION, subject_is_fixed=True,
                         desc=f"deeds-lite teacher ({cfg.name})", run=run)


def teacher_dice(cfg: Config, data, results: dict, *,
                 run: RunSettings | None = None) -> DiceTable:
    """Dice of the template's organs carried onto each supervised subject, before/after.

    Organ labels are used here only to *measure* the teacher, never to train anything.
    Subjects without labels are left out (the table is empty when the template has none).

    Returns
    -------
    DiceTable
        Methods ``"initial, not registered"``, ``"deeds-lite: affine"`` and
        ``"deeds-lite: affine + deformable"``.
    """
    data, run = _setup(cfg, data, run)
    template_id = data.split.template_id
    subjects = cohort(cfg, data, (*results, template_id), run=run)
    template = subjects[template_id]
    table = DiceTable(label_names=label_set(data, template))
    if template.labels is None:
        return table
    for i, result in results.items():
        target = subjects[i].labels
        if target is None:
            continue
        affine_only = warp_labels(template.labels,
                                  affine_to_displacement(result.affine, target.shape))
        deformed = warp_labels(template.labels, result.displacement)
        for method, warped in (("initial, not registered", template.labels),
                               ("deeds-lite: affine", affine_only),
                               ("deeds-lite: affine + deformable", deformed)):
            table.add(method, i, score_registration(warped, target,
                                                    label_names=table.label_names,
                                                    hd95=False).dice)
    return table


# ---------------------------------------------------------------------------- networks
def training_data(cfg: Config, data="phantom", ids=None, *, displacements: bool = False,
                  run: RunSettings | None = None):
    """The teacher-supervised scans as a
    :class:`~slicreg_lite.network.training.SupervoxelDataset`."""
    data, run = _setup(cfg, data, run)
    supervised = supervision(cfg, data, ids, run=run)
    subjects = cohort(cfg, data, tuple(supervised), run=run)
    input_shape = tuple(cfg.network.input_shape)
    return SupervoxelDataset(
        [subjects[i].image for i in supervised], [supervised[i].layers for i in supervised],
        input_shape, tuple(n // 2 for n in input_shape),
        displacements=[supervised[i].displacement for i in supervised] if displacements
        else None, intensity_scale=cfg.training.intensity_scale)


#: PDD-Net's two trainings, the "heads" of ``network(cfg, data, "pdd", head)``: from the
#: scans alone (MIND similarity), or with the training scans' labels (the MICCAI paper).
PDD_TRAININGS = ("unsupervised", "labels")


def network_dir(cfg: Config, data, backbone: str, head: str) -> Path:
    """The cache folder of a network trained on ``data``."""
    sections, version = decided_by_sections(backbone)
    return stage_dir(cfg, open_source(data, cfg), f"network-{backbone}-{head}", sections,
                     version)


def build_network(cfg: Config, backbone: str, head: str):
    """An untrained network of step 3 (``backbone`` "deeplab" or "unet", ``head`` "slic"
    or "regression"), or PDD-Net (``backbone`` "pdd", ``head`` one of
    :data:`PDD_TRAININGS`)."""
    if backbone != "pdd":
        return build_model(backbone, head, cfg)
    if head not in PDD_TRAININGS:
        raise ValueError(f"PDD-Net's head (its training) must be one of "
                         f"{list(PDD_TRAININGS)}; got {head!r}")
    settings = cfg.pdd
    return PddNetwork(channels=settings.channels, width=settings.width,
                      grid_step=settings.grid_step, radius=settings.radius,
                      steps=settings.steps, iterations=settings.mean_field_iterations,
                      intensity_scale=settings.intensity_scale)


def _train_network(cfg: Config, data: DataSource, model, backbone: str, head: str,
                   run: RunSettings) -> dict:
    """Train a network built by :func:`build_network` on the training subjects."""
    if backbone == "pdd":
        subjects = cohort(cfg, data, data.split.train_ids, run=run)
        ids = data.split.train_ids
        unlabelled = unlabelled_training_ids(cfg, data, run=run) if head == "labels" else []
        if unlabelled:
            raise ValueError(f"PDD-Net trained with labels needs the training scans' labels; "
                             f"{data.spec!r} has none for subjects {unlabelled}")
        settings = cfg.pdd
        return train_pdd(model, [subjects[i].image for i in ids],
                         labels=[subjects[i].labels for i in ids] if head == "labels"
                         else None, iterations=settings.iterations,
                         learning_rate=settings.learning_rate,
                         regularisation=settings.regularisation, seed=settings.seed,
                         progress=run.progress)
    regression = HEADS[head].predicts_displacements
    dataset = training_data(cfg, data, displacements=regression, run=run)
    # watched during training, never used to choose anything: two validation subjects
    # (real cohorts have none, and show two test subjects instead)
    watched = (data.split.validation_ids or data.split.evaluation_ids)[:2]
    validation = training_data(cfg, data, watched, displacements=regression, run=run)
    return train(model, dataset, cfg.training, validation=validation, run=run)


def network(cfg: Config, data="phantom", backbone: str = "deeplab", head: str = "slic", *,
            retrain: bool = False, allow_training: bool = True,
            run: RunSettings | None = None):
    """Step 3: a trained network: the shipped weights, the cache, or a training run.

    Also PDD-Net, the paper's comparator (``backbone="pdd"``, ``head`` one of
    :data:`PDD_TRAININGS`), which goes through the same cache and shipped weights.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        The cohort it is trained on; shipped weights exist for the phantom (``lite``).
    backbone : {"deeplab", "unet", "pdd"}
    head : {"slic", "regression"}, or {"unsupervised", "labels"} for PDD-Net
    retrain : bool
        Ignore shipped and cached weights and train from scratch (the result is cached).
    allow_training : bool
        Train when neither shipped nor cached weights exist (``False``: raise
        FileNotFoundError instead, e.g. for a command that should not train for minutes).
    run : RunSettings, optional
        Device, validation frequency, mixed precision and checkpointing of the training.

    Returns
    -------
    model : SupervoxelNetwork or PddNetwork
        In evaluation mode, on the CPU.
    checkpoint : dict
        What was stored with it: ``history`` (loss curve, validation), ``seconds``,
        ``preset``, ``package_version``.
    """
    import time

    import torch

    data, run = _setup(cfg, data, run)
    if not retrain:
        shipped = shipped_weights(cfg, data, backbone, head)
        if shipped is not None:
            model, checkpoint = load_checkpoint(shipped, build_network(cfg, backbone, head))
            return model.eval(), checkpoint
    path = network_dir(cfg, data, backbone, head) / "model.pt"
    if path.exists() and not retrain:
        try:
            model, checkpoint = load_checkpoint(path, build_network(cfg, backbone, head))
            return model.eval(), checkpoint
        except ValueError as error:
            warnings.warn(f"cached network {path} is unusable ({error}); training anew",
                          stacklevel=2)
    if not allow_training and not retrain:
        raise FileNotFoundError(
            f"no trained {backbone} + {head} network for preset {cfg.name!r} and data "
            f"{data.spec!r}: train it first with python -m slicreg_lite train --preset "
            f"{cfg.name} --data {data.spec} --backbone {backbone} --head {head} (or run "
            "the whole pipeline with python -m slicreg_lite run)")
    seed = cfg.pdd.seed if backbone == "pdd" else cfg.training.seed
    torch.manual_seed(seed)
    model = build_network(cfg, backbone, head)
    start = time.perf_counter()
    history = _train_network(cfg, data, model, backbone, head, run)
    history["seconds"] = time.perf_counter() - start
    save_checkpoint(path, model.cpu(), preset=cfg.name, history=history)
    _, checkpoint = load_checkpoint(path, model)
    return model.eval(), checkpoint


def untrained_networks(cfg: Config, data, networks, *,
                       run: RunSettings | None = None) -> list[tuple[str, str]]:
    """Of ``networks`` (``(backbone, head)`` pairs), those :func:`network` would train:
    neither shipped weights nor a cached network exist for this preset and data."""
    data, _ = _setup(cfg, data, run)
    missing = []
    for backbone, head in dict.fromkeys(networks):  # in order, each once
        if shipped_weights(cfg, data, backbone, head) is None and \
                not (network_dir(cfg, data, backbone, head) / "model.pt").exists():
            missing.append((backbone, head))
    return missing


def expected_training_seconds(cfg: Config, backbone: str, head: str) -> float | None:
    """A rough training time on 2 CPU cores: the shipped ``lite`` network's measured
    seconds, scaled by this preset's iterations and voxels (None when nothing is shipped).
    """
    import torch

    path = weights_dir() / "lite" / f"{backbone}_{head}.pt"
    if not path.exists():
        return None
    seconds = torch.load(path, map_location="cpu", weights_only=False)["history"]["seconds"]
    lite = get_config("lite")
    if backbone == "pdd":
        iterations = cfg.pdd.iterations / lite.pdd.iterations
        voxels = np.prod(cfg.grid.shape) / np.prod(lite.grid.shape)
    else:
        iterations = cfg.training.iterations / lite.training.iterations
        voxels = np.prod(cfg.network.input_shape) / np.prod(lite.network.input_shape)
    return float(seconds * iterations * voxels)


def publish_network(cfg: Config, data, backbone: str, head: str) -> Path:
    """Publish the cached network of :func:`network` as shipped weights (``train``)."""
    data = open_source(data, cfg)
    return publish_weights(cfg, data, backbone, head,
                           network_dir(cfg, data, backbone, head) / "model.pt")


def network_agreement(cfg: Config, data, model, ids=None, *,
                      run: RunSettings | None = None) -> dict:
    """How well predicted supervoxels match the teacher's on (test) scans, per layer.

    Returns
    -------
    dict
        ``"network"``: (n_subjects, L) agreement of the prediction with the teacher-warped
        layers; ``"template"``: the same for the trivial baseline of using the template's
        own, unwarped supervoxels; both on the supervoxel grid, inside the body.
    """
    data, run = _setup(cfg, data, run)
    ids = data.split.evaluation_ids if ids is None else tuple(ids)
    supervised = supervision(cfg, data, ids, run=run)
    subjects = cohort(cfg, data, ids, run=run)
    template_layers = template_supervoxels(cfg, data, run=run).layers
    rows = {"network": [], "template": []}
    for i in ids:
        target = supervised[i].layers
        predicted = predict_supervoxels(model, subjects[i].image, cfg.network.input_shape,
                                        target.shape[1:],
                                        intensity_scale=cfg.training.intensity_scale)
        rows["network"].append(supervoxel_agreement(predicted, target))
        rows["template"].append(supervoxel_agreement(template_layers, target))
    return {name: np.array(values) for name, values in rows.items()}


# ----------------------------------------------------------------- the teacher, direct
def teacher_direct(cfg: Config, data="phantom", ids=None, *,
                   run: RunSettings | None = None) -> dict:
    """deeds-lite registering each test subject to the template: the table's teacher row.

    The same registration as :func:`supervision` but in the evaluation's direction (the
    template is fixed), so that every row of the table warps the subject's labels onto
    the template. Its inverse carries the template's supervoxel layers onto the subject:
    the teacher's supervoxels, for the evaluation's oracle rows. Cached per subject; runs
    ``run.workers`` jobs in parallel.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
    ids : iterable, optional
        Default: the source's evaluation ids.
    run : RunSettings, optional

    Returns
    -------
    dict of id -> TeacherRun
    """
    data, run = _setup(cfg, data, run)
    return _teacher_runs(cfg, data, ids, data.split.evaluation_ids, stage="teacher-direct",
                         version=TEACHER_DIRECT_VERSION, subject_is_fixed=False,
                         desc=f"deeds-lite, test subjects to template ({cfg.name})", run=run)
