"""The stages of the method, each with its on-disk cache.

Every stage is a function ``stage(cfg, ...) -> result``. It stores what it computed under
``<cache root>/<preset>/<stage>-<key>/``, where the key is a hash of the parameters the
stage depends on, the stage's own version and the package version: change a parameter
and the stage is recomputed, never silently reused. Files are written atomically (a
temporary file, then a rename), so an interrupted run leaves no half-written file behind;
a later run simply continues.

The cache root is ``$SLICREG_CACHE`` if set, else ``data/cache`` in a source checkout,
else ``~/.cache/slicreg_lite``.

The stages, in order: :func:`cohort` (the phantom subjects), :func:`initial_alignment`
(the Dice of the unregistered test subjects against the template),
:func:`template_supervoxels` (the SLIC layers of step 1), :func:`supervision` (the
teacher registration of step 2, which carries those layers onto every training subject),
:func:`network` (step 3), :func:`teacher_direct` (the teacher registering each test
subject to the template, a row of the table) and :func:`evaluate` (steps 4 and 5: every
method of the paper's table on the test subjects).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config
from .datasets import Subject
from .files import atomic_save_npz, atomic_write_json, atomic_write_text
from .metrics import PAPER_COLUMNS, DiceTable, dice_per_label
from .phantom import PHANTOM_VERSION, generate_subject
from .spatial import resize
from .supervoxels import body_mask, slic_layers

#: Bump when the supervoxel code changes its results.
SUPERVOXELS_VERSION = 1
#: Bump when the teacher (deeds-lite) changes its results.
TEACHER_VERSION = 2
#: Bump when the evaluation changes its results.
EVALUATION_VERSION = 1
#: Bump when the networks or their training change.
NETWORK_VERSION = 1
#: The config sections a trained network depends on.
NETWORK_SECTIONS = ("phantom", "split", "supervoxels", "teacher", "network", "training")

CACHE_ENV = "SLICREG_CACHE"
#: What reading a damaged cache file raises (it is then recomputed).
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def cache_root() -> Path:
    """Folder that holds every preset's cache (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / "data" / "cache"
    return Path.home() / ".cache" / "slicreg_lite"


def stage_dir(cfg: Config, stage: str, sections: tuple[str, ...], version: int) -> Path:
    """The cache folder of one stage for one configuration.

    Parameters
    ----------
    cfg : Config
    stage : str
        Name of the stage, e.g. ``"cohort"``.
    sections : tuple of str
        The config sections the stage's result depends on.
    version : int
        The stage's own version: bump it when its code changes its results.
    """
    key = cfg.section_key(*sections)
    folder = cache_root() / cfg.name / f"{stage}-v{version}-{__version__}-{key}"
    everything = cfg.to_dict()
    expected = {"stage": stage, "preset": cfg.name, "version": version,
                "package_version": __version__, **{s: everything[s] for s in sections}}
    manifest = folder / "config.json"
    if not folder.exists():
        # say so when an older version or other parameters left a cache of this stage
        others = sorted(p.name for p in folder.parent.glob(f"{stage}-v*") if p.is_dir())
        if others:
            warnings.warn(f"the cache of stage {stage!r} in {folder.parent} was written by "
                          f"another version or with other parameters ({', '.join(others)}); "
                          f"it is not reused: computing {folder.name}", stacklevel=3)
    elif manifest.exists():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError):
            found = None
        if found != expected:
            # a folder copied from another preset, or edited by hand: never trust it
            warnings.warn(f"cache folder {folder} was written for "
                          f"{(found or {}).get('preset', 'unknown')!r} with other parameters "
                          "than its name says; emptying it and computing anew", stacklevel=3)
            for item in folder.iterdir():
                if item.is_file():
                    item.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        atomic_write_json(manifest, expected)
    return folder


# ------------------------------------------------------------------------------ cohort
def _save_subject(path: Path, subject: Subject) -> None:
    # Whole Hounsfield units fit int16 exactly, which halves the size on disk.
    atomic_save_npz(path, image=subject.image.astype(np.int16), labels=subject.labels,
                    body_mask=subject.body_mask, affine=subject.affine,
                    subject_id=np.array(subject.subject_id))


def _load_subject(path: Path) -> Subject:
    with np.load(path) as data:
        return Subject(int(data["subject_id"]), data["image"].astype(np.float32),
                       data["labels"], data["affine"], body_mask=data["body_mask"])


def cohort(cfg: Config, ids=None, *, progress: bool = True) -> dict[int, Subject]:
    """The phantom subjects of a preset, generated once and then read from the cache.

    Parameters
    ----------
    cfg : Config
    ids : iterable of int, optional
        Subject ids; default: every id of ``cfg.split``.
    progress : bool
        Show a progress bar while subjects are generated.

    Returns
    -------
    dict of int -> Subject
    """
    from tqdm.auto import tqdm

    ids = cfg.split.all_ids if ids is None else tuple(int(i) for i in ids)
    folder = stage_dir(cfg, "cohort", ("phantom",), PHANTOM_VERSION)
    subjects = {}
    missing = []
    for i in ids:
        path = folder / f"subject{i:04d}.npz"
        if path.exists():
            try:
                subjects[i] = _load_subject(path)
                continue
            except _UNREADABLE as error:
                warnings.warn(f"cached subject {path} is unreadable ({error}); regenerating it",
                              stacklevel=2)
        missing.append(i)
    for i in tqdm(missing, desc=f"phantom cohort ({cfg.name})",
                  disable=not progress or not missing):
        subjects[i] = generate_subject(i, cfg.phantom)
        _save_subject(folder / f"subject{i:04d}.npz", subjects[i])
    return {i: subjects[i] for i in ids}


# ------------------------------------------------------------------- initial alignment
def initial_alignment(cfg: Config, subjects: dict[int, Subject] | None = None) -> DiceTable:
    """Dice of every evaluation subject against the template, with no registration at all.

    This is the first row of the paper's table ("initial, not registered"): how much the
    organs overlap just because the scans share a field of view.

    Parameters
    ----------
    cfg : Config
    subjects : dict of int -> Subject, optional
        Default: :func:`cohort` of ``cfg``.

    Returns
    -------
    DiceTable
        One row per evaluation subject under the method name ``"initial, not registered"``.
    """
    split = cfg.split
    if subjects is None:
        subjects = cohort(cfg, (*split.evaluation_ids, split.template_id))
    template = subjects[split.template_id]
    table = DiceTable()
    for i in split.evaluation_ids:
        moving = subjects[i]
        if moving.shape != template.shape:
            raise ValueError(f"subject {i} has shape {moving.shape} but the template has "
                             f"{template.shape}; pre-process both to one grid first")
        table.add("initial, not registered", i, dice_per_label(moving.labels, template.labels))
    return table


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


def template_supervoxels(cfg: Config, *, progress: bool = True) -> TemplateSupervoxels:
    """Step 1: SLIC layers on the template, computed once and then read from the cache.

    The template is resampled to ``cfg.supervoxels.shape`` (half the image resolution in
    the paper), masked with :func:`~slicreg_lite.supervoxels.body_mask` (no labels used)
    and cut into layers by :func:`~slicreg_lite.supervoxels.slic_layers`.
    """
    folder = stage_dir(cfg, "supervoxels", ("phantom", "split", "supervoxels"),
                       SUPERVOXELS_VERSION)
    path = folder / "template_supervoxels.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return TemplateSupervoxels(data["layers"], data["image"], data["mask"])
        except _UNREADABLE as error:
            warnings.warn(f"cached supervoxels {path} are unreadable ({error}); "
                          "recomputing them", stacklevel=2)
    template = cohort(cfg, (cfg.split.template_id,), progress=progress)[cfg.split.template_id]
    image = template.image
    if image.shape != tuple(cfg.supervoxels.shape):
        image = resize(image, cfg.supervoxels.shape)
    mask = body_mask(image)
    layers = slic_layers(image, mask, cfg.supervoxels, progress=progress)
    atomic_save_npz(path, layers=layers, image=image, mask=mask)
    return TemplateSupervoxels(layers, image, mask)


# ------------------------------------------------------------------------- supervision
@dataclass
class Supervision:
    """What the teacher gives one training subject.

    Attributes
    ----------
    subject_id : int
    layers : numpy.ndarray of uint8, shape (L, D, H, W)
        The template's supervoxel layers carried onto this subject (the network's
        targets), on the supervoxel grid.
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        The teacher's field on the subject's image grid, in voxels: subject voxel ``x``
        corresponds to template voxel ``x + u(x)`` (targets of the regression variant).
    affine : numpy.ndarray, shape (3, 4)
        The linear part alone.
    timings : dict
        Seconds per part of the registration.
    """

    subject_id: int
    layers: np.ndarray
    displacement: np.ndarray
    affine: np.ndarray
    timings: dict


def _supervise_one(cfg: Config, subject_id: int, subject_image: np.ndarray,
                   template_image: np.ndarray, layers: np.ndarray, path: Path) -> None:
    """Register the template onto one subject, warp the layers, store the result."""
    import torch

    from .spatial import resize_displacement, warp_labels
    from .teacher import register

    # parallel workers share the cores: one thread each avoids oversubscription
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, cfg.teacher.n_jobs)))
    result = register(subject_image, template_image, cfg.teacher)
    field = result.displacement
    if tuple(layers.shape[1:]) != tuple(field.shape[1:]):
        field = resize_displacement(field, layers.shape[1:])
    warped = warp_labels(layers, field)
    atomic_save_npz(path, subject_id=np.array(subject_id), layers=warped,
                    displacement=result.displacement.astype(np.float16), affine=result.affine,
                    timings=np.array(json.dumps(result.timings)))


def _load_supervision(path: Path) -> Supervision:
    with np.load(path) as data:
        return Supervision(int(data["subject_id"]), data["layers"],
                           data["displacement"].astype(np.float32), data["affine"],
                           json.loads(str(data["timings"])))


def _per_subject(ids, paths: dict, load, job, *, n_jobs: int, desc: str,
                 progress: bool) -> dict:
    """Read each subject's cached result, compute the missing ones in parallel.

    ``job(missing_ids)`` yields one joblib ``delayed`` call per missing subject, each
    writing ``paths[i]``; ``load(path)`` reads a result back. An unreadable file is
    recomputed with a warning.
    """
    from joblib import Parallel
    from tqdm.auto import tqdm

    results = {}
    for i, path in paths.items():
        if path.exists():
            try:
                results[i] = load(path)
            except _UNREADABLE as error:
                warnings.warn(f"cached result {path} is unreadable ({error}); recomputing it",
                              stacklevel=3)
    missing = [i for i in ids if i not in results]
    if missing:
        runner = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for _ in tqdm(runner(job(missing)), total=len(missing), desc=desc,
                      disable=not progress):
            pass
        for i in missing:
            results[i] = load(paths[i])
    return {i: results[i] for i in ids}


def supervision(cfg: Config, ids=None, *, n_jobs: int | None = None,
                progress: bool = True) -> dict[int, Supervision]:
    """Step 2: deeds-lite registers the template onto every training subject.

    The template's supervoxel layers are warped onto each subject (nearest neighbour):
    these are the network's training targets. Each subject is cached on its own, so an
    interrupted run continues where it stopped.

    Subjects are registered in parallel with joblib (``cfg.teacher.n_jobs`` processes). The
    same code runs on a Dask cluster through joblib's dask backend::

        from dask.distributed import Client
        from joblib import parallel_backend

        client = Client("tcp://scheduler:8786")      # or Client() for a local cluster
        with parallel_backend("dask"):
            pipeline.supervision(cfg, n_jobs=-1)     # -1: as many tasks as the cluster takes

    Parameters
    ----------
    cfg : Config
    ids : iterable of int, optional
        Subjects to supervise; default: ``cfg.split.train_ids``.
    n_jobs : int, optional
        Parallel jobs; default ``cfg.teacher.n_jobs``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict of int -> Supervision
    """
    from joblib import delayed

    ids = cfg.split.train_ids if ids is None else tuple(int(i) for i in ids)
    folder = stage_dir(cfg, "supervision", ("phantom", "split", "supervoxels", "teacher"),
                       TEACHER_VERSION)
    paths = {i: folder / f"subject{i:04d}.npz" for i in ids}

    def jobs(missing):
        template_id = cfg.split.template_id
        subjects = cohort(cfg, (*missing, template_id), progress=progress)
        layers = template_supervoxels(cfg, progress=progress).layers
        return (delayed(_supervise_one)(cfg, i, subjects[i].image,
                                        subjects[template_id].image, layers, paths[i])
                for i in missing)

    return _per_subject(ids, paths, _load_supervision, jobs,
                        n_jobs=cfg.teacher.n_jobs if n_jobs is None else n_jobs,
                        desc=f"deeds-lite teacher ({cfg.name})", progress=progress)


def teacher_dice(cfg: Config, results: dict[int, Supervision]) -> DiceTable:
    """Dice of the template's organs carried onto each supervised subject, before/after.

    Organ labels are used here only to *measure* the teacher, never to train anything.

    Returns
    -------
    DiceTable
        Methods ``"initial, not registered"``, ``"deeds-lite: affine"`` and
        ``"deeds-lite: affine + deformable"``.
    """
    from .spatial import affine_to_displacement, warp_labels

    subjects = cohort(cfg, (*results, cfg.split.template_id), progress=False)
    template = subjects[cfg.split.template_id]
    table = DiceTable()
    for i, result in results.items():
        target = subjects[i].labels
        affine_only = warp_labels(template.labels,
                                  affine_to_displacement(result.affine, target.shape))
        table.add("initial, not registered", i, dice_per_label(template.labels, target))
        table.add("deeds-lite: affine", i, dice_per_label(affine_only, target))
        table.add("deeds-lite: affine + deformable", i,
                  dice_per_label(warp_labels(template.labels, result.displacement), target))
    return table


# ---------------------------------------------------------------------------- networks
def weights_dir() -> Path:
    """``data/weights`` of the source checkout: shipped pretrained weights + manifest."""
    return Path(__file__).resolve().parent.parent / "data" / "weights"


def _network_key(cfg: Config, backbone: str, head: str) -> str:
    return f"{backbone}-{head}-v{NETWORK_VERSION}-{cfg.section_key(*NETWORK_SECTIONS)}"


def _shipped_weights(cfg: Config, backbone: str, head: str) -> Path | None:
    """The shipped weights for this configuration, if present, verified and current."""
    from .datasets import sha256_of

    manifest_path = weights_dir() / "manifest.json"
    name = f"{cfg.name}/{backbone}_{head}.pt"
    if not manifest_path.exists():
        return None
    entry = json.loads(manifest_path.read_text()).get(name)
    path = weights_dir() / name
    if entry is None or not path.exists():
        return None
    if entry.get("config_key") != _network_key(cfg, backbone, head):
        warnings.warn(f"shipped weights {name} were trained with other parameters or an "
                      "older version; training anew instead", stacklevel=3)
        return None
    if sha256_of(path) != entry.get("sha256"):
        warnings.warn(f"shipped weights {name} do not match their checksum in "
                      f"{manifest_path}; training anew instead", stacklevel=3)
        return None
    return path


def training_data(cfg: Config, ids=None, *, displacements: bool = False, progress: bool = True):
    """The teacher-supervised scans as a :class:`~slicreg_lite.training.SupervoxelDataset`."""
    from .training import SupervoxelDataset

    supervised = supervision(cfg, ids, progress=progress)
    subjects = cohort(cfg, tuple(supervised), progress=progress)
    input_shape = tuple(cfg.network.input_shape)
    return SupervoxelDataset(
        [subjects[i].image for i in supervised], [supervised[i].layers for i in supervised],
        input_shape, tuple(n // 2 for n in input_shape),
        displacements=[supervised[i].displacement for i in supervised] if displacements
        else None, intensity_scale=cfg.training.intensity_scale)


def network(cfg: Config, backbone: str = "deeplab", head: str = "slic", *,
            retrain: bool = False, progress: bool = True):
    """Step 3: a trained network: the shipped weights, the cache, or a training run.

    Parameters
    ----------
    cfg : Config
    backbone : {"deeplab", "unet"}
    head : {"slic", "regression"}
    retrain : bool
        Ignore shipped and cached weights and train from scratch (the result is cached).
    progress : bool

    Returns
    -------
    model : SupervoxelNetwork
        In evaluation mode, on the CPU.
    checkpoint : dict
        What was stored with it: ``history`` (loss curve, validation), ``seconds``,
        ``preset``, ``package_version``.
    """
    import time

    import torch

    from .networks import build_model
    from .training import load_checkpoint, save_checkpoint, train

    if not retrain:
        shipped = _shipped_weights(cfg, backbone, head)
        if shipped is not None:
            model, checkpoint = load_checkpoint(shipped, build_model(backbone, head, cfg))
            return model.eval(), checkpoint
    folder = stage_dir(cfg, f"network-{backbone}-{head}", NETWORK_SECTIONS, NETWORK_VERSION)
    path = folder / "model.pt"
    if path.exists() and not retrain:
        try:
            model, checkpoint = load_checkpoint(path, build_model(backbone, head, cfg))
            return model.eval(), checkpoint
        except ValueError as error:
            warnings.warn(f"cached network {path} is unusable ({error}); training anew",
                          stacklevel=2)
    dataset = training_data(cfg, displacements=head == "regression", progress=progress)
    validation = training_data(cfg, cfg.split.evaluation_ids[:2],
                               displacements=head == "regression", progress=progress)
    torch.manual_seed(cfg.training.seed)
    model = build_model(backbone, head, cfg)
    start = time.perf_counter()
    history = train(model, dataset, cfg.training, validation=validation,
                    validate_every=cfg.training.validate_every, progress=progress)
    history["seconds"] = time.perf_counter() - start
    save_checkpoint(path, model.cpu(), preset=cfg.name, history=history)
    _, checkpoint = load_checkpoint(path, model)
    return model.eval(), checkpoint


def publish_weights(cfg: Config, backbone: str, head: str, checkpoint_path: Path | None = None
                    ) -> Path:
    """Copy a trained network into ``data/weights/<preset>/`` and record its checksum.

    Run by ``python -m slicreg_lite train``; the manifest ties the file to the exact
    configuration it was trained with (a later change of parameters is detected).
    """
    import shutil

    from .datasets import sha256_of
    from .files import atomic_write

    if checkpoint_path is None:
        checkpoint_path = stage_dir(cfg, f"network-{backbone}-{head}", NETWORK_SECTIONS,
                                    NETWORK_VERSION) / "model.pt"
    name = f"{cfg.name}/{backbone}_{head}.pt"
    target = weights_dir() / name
    atomic_write(target, lambda temporary: shutil.copyfile(checkpoint_path, temporary))
    manifest_path = weights_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[name] = {"sha256": sha256_of(target), "config_key": _network_key(cfg, backbone, head),
                      "package_version": __version__,
                      "command": f"python -m slicreg_lite train --preset {cfg.name} "
                                 f"--backbone {backbone} --head {head}"}
    atomic_write_json(manifest_path, dict(sorted(manifest.items())))
    return target


def network_agreement(cfg: Config, model, ids=None, *, progress: bool = True) -> dict:
    """How well predicted supervoxels match the teacher's on (test) scans, per layer.

    Returns
    -------
    dict
        ``"network"``: (n_subjects, L) agreement of the prediction with the teacher-warped
        layers; ``"template"``: the same for the trivial baseline of using the template's
        own, unwarped supervoxels; both on the supervoxel grid, inside the body.
    """
    from .metrics import supervoxel_agreement
    from .networks import predict_supervoxels

    ids = cfg.split.evaluation_ids if ids is None else tuple(ids)
    supervised = supervision(cfg, ids, progress=progress)
    subjects = cohort(cfg, ids, progress=progress)
    template_layers = template_supervoxels(cfg, progress=progress).layers
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
@dataclass
class DirectRegistration:
    """The teacher registering one test subject (moving) to the template (fixed).

    Attributes
    ----------
    subject_id : int
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        On the template's grid, pointing into the subject, in voxels.
    timings : dict
        Seconds per part of the registration.
    """

    subject_id: int
    displacement: np.ndarray
    timings: dict


def _register_direct(cfg: Config, subject_id: int, template_image: np.ndarray,
                     subject_image: np.ndarray, path: Path) -> None:
    import torch

    from .teacher import register

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, cfg.teacher.n_jobs)))
    result = register(template_image, subject_image, cfg.teacher)
    atomic_save_npz(path, subject_id=np.array(subject_id),
                    displacement=result.displacement.astype(np.float16),
                    timings=np.array(json.dumps(result.timings)))


def teacher_direct(cfg: Config, ids=None, *, n_jobs: int | None = None,
                   progress: bool = True) -> dict[int, DirectRegistration]:
    """deeds-lite registering each test subject to the template: the table's teacher row.

    The same registration as :func:`supervision` but in the evaluation's direction (the
    template is fixed), so that every row of the table warps the subject's labels onto
    the template. Cached per subject; runs ``cfg.teacher.n_jobs`` jobs in parallel.

    Parameters
    ----------
    cfg : Config
    ids : iterable of int, optional
        Default: ``cfg.split.evaluation_ids``.

    Returns
    -------
    dict of int -> DirectRegistration
    """
    from joblib import delayed

    ids = cfg.split.evaluation_ids if ids is None else tuple(int(i) for i in ids)
    folder = stage_dir(cfg, "teacher-direct", ("phantom", "split", "teacher"), TEACHER_VERSION)
    paths = {i: folder / f"subject{i:04d}.npz" for i in ids}

    def load(path):
        with np.load(path) as data:
            return DirectRegistration(int(data["subject_id"]),
                                      data["displacement"].astype(np.float32),
                                      json.loads(str(data["timings"])))

    def jobs(missing):
        template_id = cfg.split.template_id
        subjects = cohort(cfg, (*missing, template_id), progress=progress)
        return (delayed(_register_direct)(cfg, i, subjects[template_id].image,
                                          subjects[i].image, paths[i]) for i in missing)

    return _per_subject(ids, paths, load, jobs,
                        n_jobs=cfg.teacher.n_jobs if n_jobs is None else n_jobs,
                        desc=f"deeds-lite, test subjects to template ({cfg.name})",
                        progress=progress)


# -------------------------------------------------------------------------- evaluation
#: The rows of the paper's table that the phantom reproduces, and what computes each:
#: ``None`` = no registration, ``"teacher"`` = deeds-lite, else (backbone, head).
METHODS = {
    "initial, not registered": None,
    "deeds-lite teacher (direct)": "teacher",
    "3D UNet + regression + RW": ("unet", "regression"),
    "3D UNet + Slic + Adam": ("unet", "slic"),
    "3D DeepLab + regression + RW": ("deeplab", "regression"),
    "Slic-Reg: 3D DeepLab + Slic + Adam": ("deeplab", "slic"),
}
SLIC_REG = "Slic-Reg: 3D DeepLab + Slic + Adam"
TEACHER = "deeds-lite teacher (direct)"
#: Columns after the paper's Dice columns.
EXTRA_COLUMNS = ("std(log J)", "% J<=0", "inference s", "alignment s")
RESULTS_SCHEMA = "slicreg_lite.results/1"


@dataclass
class Evaluation:
    """Every method of the table on the test subjects.

    Attributes
    ----------
    dice : DiceTable
        Dice of each subject's labels warped onto the template, per method.
    deformation : dict
        ``method -> {"std_log_jacobian": [...], "percent_folding": [...]}``, one value per
        subject, inside the template's body (empty lists for "initial").
    seconds : dict
        ``method -> {"inference": [...], "alignment": [...]}`` per registration: network
        inference on the moving scan, and everything after it (for the teacher: the whole
        registration, and no inference).
    warped : dict
        ``method -> {subject_id: labels}``: the warped label maps, for figures.
    subject_ids : tuple of int
    """

    dice: DiceTable
    deformation: dict
    seconds: dict
    warped: dict
    subject_ids: tuple

    def add(self, method: str, subject_id: int, warped: np.ndarray, template_labels,
            displacement=None, body=None, inference: float | None = None,
            alignment: float | None = None) -> None:
        """Record one registration (``displacement`` None: no registration)."""
        from .metrics import jacobian_stats

        self.dice.add(method, subject_id, dice_per_label(warped, template_labels))
        stats = self.deformation.setdefault(method, {"std_log_jacobian": [],
                                                     "percent_folding": []})
        if displacement is not None:
            jacobian = jacobian_stats(displacement, body)
            stats["std_log_jacobian"].append(jacobian["std_log_jacobian"])
            stats["percent_folding"].append(jacobian["percent_folding"])
        times = self.seconds.setdefault(method, {"inference": [], "alignment": []})
        if inference is not None:
            times["inference"].append(inference)
        if alignment is not None:
            times["alignment"].append(alignment)
        self.warped.setdefault(method, {})[subject_id] = warped

    def extra(self, method: str) -> dict[str, float]:
        """The table's columns after the Dice: mean over subjects (NaN when not applicable)."""
        def mean(values):
            return float(np.mean(values)) if len(values) else float("nan")

        stats, times = self.deformation[method], self.seconds[method]
        return {"std(log J)": mean(stats["std_log_jacobian"]),
                "% J<=0": mean(stats["percent_folding"]),
                "inference s": mean(times["inference"]),
                "alignment s": mean(times["alignment"])}

    def to_markdown(self) -> str:
        """The whole table: the paper's Dice columns, then deformation quality and time."""
        dice_lines = self.dice.to_markdown().splitlines()
        formats = {"std(log J)": "{:.3f}", "% J<=0": "{:.2f}", "inference s": "{:.2f}",
                   "alignment s": "{:.2f}"}
        lines = [dice_lines[0] + " " + " | ".join(EXTRA_COLUMNS) + " |",
                 dice_lines[1] + "---|" * len(EXTRA_COLUMNS)]
        for method, line in zip(self.dice.methods, dice_lines[2:]):
            values = self.extra(method)
            cells = ["-" if np.isnan(values[c]) else formats[c].format(values[c])
                     for c in EXTRA_COLUMNS]
            lines.append(line + " " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self, cfg: Config, **extra) -> dict:
        """The results as a JSON-ready dict (the schema of ``results.json``).

        ``{"schema": "slicreg_lite.results/1", "preset", "package_version",
        "template_id", "subject_ids", "columns": [...], "methods": {name: {"dice":
        {column: [mean, std]}, "dice_per_subject": {id: [13 fractions or null]},
        "std_log_jacobian": float|null, "percent_folding": float|null,
        "max_percent_folding": float|null, "inference_seconds": float|null,
        "alignment_seconds": float|null}}, **extra}``. Dice values are percentages,
        per-subject scores fractions (as :func:`~slicreg_lite.metrics.dice_per_label`).
        """
        def number(value):
            return None if value is None or not np.isfinite(value) else float(value)

        content = self.dice.to_dict()["methods"]
        methods = {}
        for method in self.dice.methods:
            values = self.extra(method)
            folding = self.deformation[method]["percent_folding"]
            methods[method] = {
                "dice": content[method]["summary"],
                "dice_per_subject": content[method]["scores"],
                "std_log_jacobian": number(values["std(log J)"]),
                "percent_folding": number(values["% J<=0"]),
                "max_percent_folding": number(max(folding)) if folding else None,
                "inference_seconds": number(values["inference s"]),
                "alignment_seconds": number(values["alignment s"]),
            }
        return {"schema": RESULTS_SCHEMA, "preset": cfg.name, "package_version": __version__,
                "template_id": cfg.split.template_id, "subject_ids": list(self.subject_ids),
                "columns": list(PAPER_COLUMNS),
                "methods": methods, **extra}


def evaluate(cfg: Config, methods=None, *, progress: bool = True) -> Evaluation:
    """Steps 4 and 5: register every test subject to the template with every method.

    Each subject's organ labels are warped onto the template and compared with the
    template's (labels are used only here, to measure). Networks come from
    :func:`network` (shipped weights when they match), the teacher from
    :func:`teacher_direct`.

    Parameters
    ----------
    cfg : Config
    methods : sequence of str, optional
        Rows of :data:`METHODS`; all by default.
    progress : bool

    Returns
    -------
    Evaluation
    """
    import time

    from tqdm.auto import tqdm

    from . import adamreg, regression
    from .networks import predict_displacement, predict_supervoxels
    from .spatial import warp_labels

    methods = tuple(METHODS) if methods is None else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    ids = cfg.split.evaluation_ids
    subjects = cohort(cfg, (*ids, cfg.split.template_id), progress=progress)
    template = subjects[cfg.split.template_id]
    fixed_labels = template.labels
    body = body_mask(template.image)
    layers = template_supervoxels(cfg, progress=progress).layers
    result = Evaluation(DiceTable(), {}, {}, {}, ids)
    for method in methods:
        kind = METHODS[method]
        if kind is None:
            for i in ids:
                result.add(method, i, subjects[i].labels, fixed_labels)
            continue
        if kind == "teacher":
            direct = teacher_direct(cfg, ids, progress=progress)
            for i in ids:
                field = direct[i].displacement
                result.add(method, i, warp_labels(subjects[i].labels, field), fixed_labels,
                           field, body, alignment=direct[i].timings["total"])
            continue
        backbone, head = kind
        model, _ = network(cfg, backbone, head, progress=progress)
        shape = template.image.shape
        if head == "slic":
            # the template through the same network: its systematic errors cancel
            predicted = predict_supervoxels(model, template.image, cfg.network.input_shape,
                                            layers.shape[1:],
                                            intensity_scale=cfg.training.intensity_scale)
            prepared = adamreg.prepare_template(layers, cfg, feature_layers=predicted)
            # torch's first optimiser step pays a one-off start-up: not a registration cost
            adamreg.register(prepared, prepared.features, cfg, iterations=2)
        else:
            prepared = adamreg.prepare_template(layers, cfg)
        for i in tqdm(ids, desc=method, disable=not progress):
            moving = subjects[i]
            start = time.perf_counter()
            if head == "slic":
                predicted = predict_supervoxels(model, moving.image, cfg.network.input_shape,
                                                layers.shape[1:],
                                                intensity_scale=cfg.training.intensity_scale)
                inference = time.perf_counter() - start
                start = time.perf_counter()
                features = adamreg.moving_features(predicted, prepared, cfg)
                field = adamreg.register(prepared, features, cfg,
                                         output_shape=shape).displacement
            else:
                predicted = predict_displacement(model, moving.image, cfg.network.input_shape,
                                                 intensity_scale=cfg.training.intensity_scale)
                inference = time.perf_counter() - start
                start = time.perf_counter()
                field = regression.register(prepared, predicted, cfg,
                                            output_shape=shape).displacement
            alignment = time.perf_counter() - start
            result.add(method, i, warp_labels(moving.labels, field), fixed_labels, field, body,
                       inference=inference, alignment=alignment)
    return result


def findings(evaluation: Evaluation) -> list[str]:
    """The paper's comparisons, measured on this evaluation (one sentence each).

    Each compares avg(4) Dice (mean over all subject-organ pairs, in %) or time per
    registration between two rows; rows that were not evaluated are skipped.
    """
    table, rows = evaluation.dice, set(evaluation.dice.methods)
    avg4 = {m: table.column(m, "avg(4)")[0] for m in rows}
    lines = []

    def both(a, b):
        return a in rows and b in rows

    if both(SLIC_REG, TEACHER):
        lines.append(f"Slic-Reg reaches {100 * avg4[SLIC_REG] / avg4[TEACHER]:.0f}% of the "
                     f"teacher's avg(4) ({avg4[SLIC_REG]:.1f} vs {avg4[TEACHER]:.1f}).")
        slic, teacher = evaluation.extra(SLIC_REG), evaluation.extra(TEACHER)
        lines.append(f"Its alignment step takes {slic['alignment s']:.2f} s per registration "
                     f"(+ {slic['inference s']:.2f} s of network inference), "
                     f"{teacher['alignment s'] / slic['alignment s']:.0f}x faster than the "
                     f"teacher's {teacher['alignment s']:.1f} s.")
    for backbone in ("3D DeepLab", "3D UNet"):
        slic = SLIC_REG if backbone == "3D DeepLab" else "3D UNet + Slic + Adam"
        regress = f"{backbone} + regression + RW"
        if both(slic, regress):
            lines.append(f"{backbone}: supervoxel classification + Adam beats regression + RW "
                         f"by {avg4[slic] - avg4[regress]:+.1f} points "
                         f"({avg4[slic]:.1f} vs {avg4[regress]:.1f}).")
    if both(SLIC_REG, "3D UNet + Slic + Adam"):
        lines.append(f"DeepLab vs UNet (both Slic + Adam): "
                     f"{avg4[SLIC_REG] - avg4['3D UNet + Slic + Adam']:+.1f} points.")
    if SLIC_REG in rows:
        folding = evaluation.deformation[SLIC_REG]["percent_folding"]
        lines.append(f"Slic-Reg folds {np.mean(folding):.2f}% of the body's voxels on "
                     f"average (at most {np.max(folding):.2f}%).")
    return lines


def typical_subject(evaluation: Evaluation, method: str = SLIC_REG) -> int:
    """The subject whose avg(4) Dice under ``method`` is the median one (for figures)."""
    from .config import LARGE_ORGANS

    if method not in evaluation.dice.methods:
        method = evaluation.dice.methods[-1]
    ids = evaluation.dice.subject_ids(method)
    scores = evaluation.dice.scores(method)[:, [label - 1 for label in LARGE_ORGANS]]
    order = np.argsort(np.nanmean(scores, axis=1))
    return int(ids[order[len(order) // 2]])


def write_results(cfg: Config, evaluation: Evaluation, folder: Path, **extra) -> list[Path]:
    """Write ``table.md``, ``results.json`` and the figures into ``folder``.

    Figures: ``dice_boxplots.png`` (per-organ Dice of every method) and
    ``overlays.png`` (each method's warped labels of a typical subject over the
    template, the template's own labels as outlines). ``extra`` goes into
    ``results.json`` (e.g. the run time).

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed
    import matplotlib.pyplot as plt

    from .files import atomic_write
    from .viz import show_dice_boxplots, show_method_overlays

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    subjects = cohort(cfg, (cfg.split.template_id,), progress=False)
    template = subjects[cfg.split.template_id]
    typical = typical_subject(evaluation)
    text = (f"# Slic-Reg on the phantom cohort, preset {cfg.name!r}\n\n"
            f"Dice (%) of the {len(evaluation.subject_ids)} test subjects registered to "
            f"template #{cfg.split.template_id}, mean +- std (avg(4) and avg(13) over all "
            "subject-organ pairs, as in the paper); std(log J) and % J<=0 inside the "
            "template's body; seconds per registration.\n\n"
            + evaluation.to_markdown() + "\n\n"
            + "\n".join(f"- {line}" for line in findings(evaluation)) + "\n")
    paths = [atomic_write_text(folder / "table.md", text),
             atomic_write_json(folder / "results.json",
                               evaluation.to_json(cfg, typical_subject=typical, **extra))]

    def save(figure, name):
        path = folder / name
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
        plt.close(figure)
        paths.append(path)

    ax = show_dice_boxplots(evaluation.dice, title=f"Dice per organ ({cfg.name})")
    ax.figure.tight_layout()
    save(ax.figure, "dice_boxplots.png")
    warped = {method: evaluation.warped[method][typical] for method in evaluation.dice.methods}
    centre = np.argwhere(template.labels > 0).mean(0).round().astype(int)  # through organs
    figure = show_method_overlays(template.image, template.labels, warped, axis=2,
                                  index=int(centre[2]))
    figure.suptitle(f"subject {typical} (median Slic-Reg case) warped to template "
                    f"#{cfg.split.template_id}", fontsize="small")
    save(figure, "overlays.png")
    return paths
