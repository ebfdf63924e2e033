"""Register your own scans: NIfTI files in, NIfTI files that other tools read out.

:func:`register_scans` is what ``python -m slicreg_lite register`` runs:

1. read the moving scan (and the fixed one for the teacher) in any orientation, voxel
   size and field of view, with optional label maps;
2. bring each onto the preset's grid (:func:`slicreg_lite.cohort.preprocessing.to_grid`) and
   register there with :class:`~slicreg_lite.methods.SlicReg` (the paper's alignment, or
   this toolkit's centre fit), :class:`~slicreg_lite.methods.RegressionBaseline` or
   :class:`~slicreg_lite.methods.PddNet` (to the template of the data source, or, but for
   PDD-Net, to any fixed scan through the template's labels), or
   :class:`~slicreg_lite.methods.Teacher` (to any fixed scan);
3. bring the result back onto the fixed scan's own grid, as stored in its file, and write:

   ``warped.nii.gz``, ``warped_labels.nii.gz``
       the moving scan (trilinear) and its labels (nearest neighbour) on the fixed grid;
   ``displacement_itk.nii.gz``
       the field in ITK's physical-space convention, which SimpleITK, ANTs and
       3D Slicer read as a displacement field transform: at every fixed point ``p`` (mm)
       the vector ``v(p)`` such that ``p + v(p)`` is the corresponding moving point, in
       LPS coordinates (:func:`slicreg_lite.cohort.nifti.save_displacement_field`);
   ``displacement_learn2reg.nii.gz``
       the Learn2Reg format: shape (X, Y, Z, 3), float32, in voxels of the files as
       stored: fixed voxel ``(i, j, k)`` corresponds to moving voxel
       ``(i, j, k) + disp[i, j, k]``;
   ``overlay.png``
       the fixed scan with the moving organs before and after (outlines), or
       checkerboards without labels;
   ``report.json``
       Dice per label (and avg(4) / avg(13) for the 13 BTCV organs), HD95 in mm,
       std(log J), % folding, seconds per part, and ``"reliable"``: false, with the
       reasons under ``"warnings"``, when the field folds or stretches beyond
       :data:`~slicreg_lite.core.metrics.FOLDING_LIMIT` /
       :data:`~slicreg_lite.core.metrics.JACOBIAN_SPREAD_LIMIT`, or when a network met a scan
       unlike the scans it was trained on (:mod:`slicreg_lite.network.domain`).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..cohort.layouts import ScanFiles, read_subject
from ..cohort.nifti import load_nifti, save_displacement_field, save_nifti, to_ras
from ..cohort.preprocessing import to_grid
from ..cohort.sources import open_source
from ..cohort.subject import Subject
from ..core.config import Config, RunSettings, get_config, is_real_ct
from ..core.files import atomic_write, atomic_write_json, check_writable
from ..core.labels import name_labels
from ..core.metrics import score_registration
from ..core.spatial import identity_grid, map_points, sample, voxel_to_world, world_to_voxel
from ..display.slices import overlay_contours, show_checkerboard, show_slice, view_slice
from ..methods import PAIR_NAMES, REGISTER_NAMES, UntrustedResultWarning, method_named
from ..pipeline import stages
from ..pipeline.load import load_method
from ..supervoxels.layers import body_mask

PathLike = Union[str, os.PathLike]
#: Voxels handled at a time when results are resampled onto the fixed grid.
_CHUNK = 2_000_000


@dataclass
class ScanRegistration:
    """What :func:`register_scans` computed (and wrote, when given a folder).

    Attributes
    ----------
    warped_image : numpy.ndarray, shape of the fixed scan
    warped_labels : numpy.ndarray or None
    displacement : numpy.ndarray, shape (X, Y, Z, 3)
        The Learn2Reg field: voxels of the stored files (moving minus fixed index).
    fixed_affine : numpy.ndarray, shape (4, 4)
        The fixed scan's voxel -> world matrix, as stored.
    report : dict
        The content of ``report.json``.
    files : dict
        Name -> path of every file written (empty without ``out``).
    """

    warped_image: np.ndarray
    warped_labels: np.ndarray | None
    displacement: np.ndarray
    fixed_affine: np.ndarray
    report: dict
    files: dict = field(default_factory=dict)


def read_scan(scan, labels=None, *, name: str = "moving") -> Subject:
    """A scan as a :class:`~slicreg_lite.cohort.subject.Subject`, as stored (not reoriented).

    Parameters
    ----------
    scan : str, os.PathLike, (array, affine) or Subject
        A NIfTI file, or an array with its voxel -> world matrix.
    labels : str, os.PathLike, array or None
        A label map on the scan's grid (a file, or an array).
    name : str
        How error messages call it ("moving", "fixed").

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file or the argument: a missing or non-NIfTI file, not a 3D volume,
        NaN intensities, labels of another shape or affine.
    """
    if isinstance(scan, Subject):
        return scan if labels is None else Subject(scan.subject_id, scan.image,
                                                   _label_array(labels, scan.affine, name),
                                                   scan.affine)
    if isinstance(scan, (str, os.PathLike)):
        if labels is None or isinstance(labels, (str, os.PathLike)):
            files = ScanFiles(Path(scan), None if labels is None else Path(labels))
            return read_subject(name, files, canonical=False)
        image, affine = load_nifti(scan, canonical=False)
        return Subject(name, image, _label_array(labels, affine, name), affine)
    if isinstance(scan, tuple) and len(scan) == 2:
        image, affine = scan
        return Subject(name, image, _label_array(labels, affine, name), affine)
    raise ValueError(f"{name} must be a NIfTI path, an (array, affine) pair or a Subject; "
                     f"got {type(scan).__name__}")


def _label_array(labels, affine, name):

    if labels is None or not isinstance(labels, (str, os.PathLike)):
        return labels
    array, label_affine = load_nifti(labels, canonical=False)
    if not np.allclose(label_affine, affine, atol=1e-3):
        raise ValueError(f"labels {str(labels)!r} must have the affine of the {name} scan")
    return array


def register_scans(moving, *, fixed=None, labels=None, fixed_labels=None,
                   method: str = "slicreg", out: PathLike | None = None,
                   cfg: Config | None = None, data="phantom",
                   run: RunSettings | None = None, registration=None) -> ScanRegistration:
    """Register a moving scan to a fixed one and bring the result onto the fixed grid.

    Parameters
    ----------
    moving : str, os.PathLike, (array, affine) or Subject
        The scan to register: any orientation, voxel size and size.
    fixed : same kinds, optional
        The fixed scan: required by ``method="teacher"``. Slic-Reg and the regression
        baseline register to it when given (any pair, :meth:`~slicreg_lite.methods.
        SlicReg.register`), else to the template of ``data``; PDD-Net to the template
        only.
    labels, fixed_labels : path or array, optional
        Label maps of the moving and the fixed scan (for the warped labels and the scores;
        the template's own labels serve as fixed labels when the data has them).
    method : {"slicreg", "slicreg-fit", "regression", "pdd", "teacher"}
        Slic-Reg with the paper's alignment, Slic-Reg with this toolkit's centre fit, the
        regression baseline, the deeds-lite teacher.
    out : str or os.PathLike, optional
        A folder for the files of the module docstring; nothing is written without it.
    cfg : Config, optional
        The preset (its grid and parameters); default ``get_config()``, with the teacher's
        settings for real CT for ``method="teacher"`` and for data other than the phantom.
    data : str or DataSource
        The cohort whose template and networks Slic-Reg uses (``"phantom"``).
    run : RunSettings, optional
    registration : optional
        The method already built for ``cfg`` and ``data`` (:func:`~slicreg_lite.pipeline.
        load.load_method`), to reuse over many pairs (the ``learn2reg`` command); built
        here when None. The teacher is always built for the fixed scan.

    Returns
    -------
    ScanRegistration

    Raises
    ------
    ValueError, FileNotFoundError
        For bad input (named in the message), before anything is written; also when no
        trained network exists for ``data`` (train it first: this function never trains).
    """
    if method not in REGISTER_NAMES:
        raise ValueError(f"method must be one of {list(REGISTER_NAMES)}; got {method!r}")
    chosen = method_named(method)
    if chosen.any_fixed_scan and fixed is None:
        raise ValueError(f"fixed: the {method} registers a pair of scans: give the fixed scan "
                         "too (--fixed FIXED.nii.gz)")
    if not chosen.any_pair and fixed is not None:
        raise ValueError(f"fixed: {method} registers to the template of its data source "
                         f"(--data); a fixed scan of your own needs one of "
                         f"{list(PAIR_NAMES)}")
    if cfg is None:  # a method for any pair registers the caller's own scans: real CT
        cfg = get_config(real_ct=chosen.any_fixed_scan or is_real_ct(data))
    run = RunSettings(progress=False) if run is None else run
    out = None if out is None else Path(out)
    created = out is not None and not out.exists()
    if out is not None:
        check_writable(out)  # now, not after minutes of computing
    try:
        return _register(moving, fixed, labels, fixed_labels, chosen, out, cfg, data, run,
                         registration)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave nothing behind for a failed call
        raise


def _register(moving, fixed, labels, fixed_labels, method, out, cfg, data, run,
              registration=None):
    """The body of :func:`register_scans` (arguments checked)."""
    timings = {}
    start = time.perf_counter()
    moving_scan = read_scan(moving, labels, name="moving")
    source = open_source(data, cfg)
    label_names = source.label_names  # the labels are named after the data source
    if fixed is not None:
        fixed_scan = read_scan(fixed, fixed_labels, name="fixed")
    else:
        template_id = source.split.template_id
        fixed_scan = stages.cohort(cfg, source, (template_id,), run=run)[template_id]
        if fixed_labels is not None:
            fixed_scan = read_scan(fixed_scan, fixed_labels, name="fixed")
    moving_grid, fixed_grid = to_grid(moving_scan, cfg.grid), to_grid(fixed_scan, cfg.grid)
    timings["reading and pre-processing"] = time.perf_counter() - start

    start = time.perf_counter()
    if method.any_fixed_scan:  # built for the caller's fixed scan
        registration = method.registration(fixed_grid.image, cfg, **method.options)
    elif registration is None:  # built for the template of the data, with its network
        registration = load_method(cfg, source, method, allow_training=False, run=run)
    timings["loading the method"] = time.perf_counter() - start
    pair = {} if fixed is None or method.any_fixed_scan else {"fixed": fixed_grid.image}
    result = registration.register(moving_grid.image, **pair)
    timings["inference"] = result.timings["inference"]
    timings["alignment"] = result.timings["alignment"]

    start = time.perf_counter()
    warped, warped_labels, voxel_field = _onto_fixed_grid(result.displacement, fixed_grid,
                                                          moving_grid, fixed_scan, moving_scan)
    timings["resampling onto the fixed grid"] = time.perf_counter() - start
    # the labels are scored on the fixed scan's own grid, the field on the preset's grid
    # (inside the body), where it was computed
    scores = score_registration(
        warped_labels, fixed_scan.labels, result.displacement, spacing=fixed_scan.spacing,
        body=body_mask(fixed_grid.image),
        label_names=None if fixed_scan.labels is None else
        name_labels(np.unique(fixed_scan.labels), label_names))
    # why the result cannot be trusted: the scan (for a network), the field (for all)
    untrusted = list(result.warnings) + [
        f"the field cannot be trusted: {reason}" for reason in scores.unreliable]
    for message in untrusted[len(result.warnings):]:
        warnings.warn(message, UntrustedResultWarning, stacklevel=3)
    report = {"method": method.name, "preset": cfg.name,
              "data": None if method.any_fixed_scan else source.spec,
              "moving": _describe(moving), "fixed": _describe(fixed) if fixed is not None
              else f"template #{template_id} of {source.spec}",
              "std_log_jacobian": scores.jacobian["std_log_jacobian"],
              "percent_folding": scores.jacobian["percent_folding"],
              "reliable": not untrusted, "warnings": untrusted,
              **_report_scores(scores), "seconds": timings}
    registered = ScanRegistration(warped, warped_labels, voxel_field, fixed_scan.affine, report)
    if out is not None:
        start = time.perf_counter()
        registered.files = _write(out, registered, fixed_scan, moving_scan)
        timings["writing"] = time.perf_counter() - start

        registered.files["report"] = atomic_write_json(out / "report.json", _json(report))
    return registered


def _describe(scan) -> str:
    if isinstance(scan, (str, os.PathLike)):
        return str(scan)
    return "an array" if not isinstance(scan, Subject) else f"subject {scan.subject_id!r}"


def _moving_voxels(fixed_scan: Subject, moving_scan: Subject, displacement=None,
                   fixed_grid: Subject | None = None, moving_grid: Subject | None = None):
    """For every voxel of the fixed scan's stored grid, the moving stored voxel it shows.

    Through a field on the preset's grids (``displacement`` between ``fixed_grid`` and
    ``moving_grid``), or, without one, by world position alone (no registration).

    Returns
    -------
    index, target : numpy.ndarray, shape (3, N)
        Fixed voxel coordinates and the corresponding moving voxel coordinates.
    """
    index = identity_grid(fixed_scan.shape, dtype=np.float64).reshape(3, -1)
    target = np.empty_like(index)
    for begin in range(0, index.shape[1], _CHUNK):
        world = voxel_to_world(fixed_scan.affine, index[:, begin:begin + _CHUNK])
        if displacement is not None:
            world = map_points(displacement, fixed_grid.affine, moving_grid.affine, world)
        target[:, begin:begin + _CHUNK] = world_to_voxel(moving_scan.affine, world)
    return index, target


def _resample_moving(moving_scan: Subject, target: np.ndarray, shape):
    """The moving image (trilinear, -1000 HU outside) and labels (nearest) at ``target``."""
    coords = target.reshape(3, *shape).astype(np.float32)
    image = sample(moving_scan.image, coords, fill=-1000.0)
    labels = None if moving_scan.labels is None else \
        sample(moving_scan.labels, coords, mode="nearest")
    return image, labels


def _onto_fixed_grid(displacement, fixed_grid: Subject, moving_grid: Subject,
                     fixed_scan: Subject, moving_scan: Subject):
    """The warped moving scan and labels on the fixed scan's stored grid, and the
    Learn2Reg field (moving stored voxel minus fixed stored voxel)."""
    index, target = _moving_voxels(fixed_scan, moving_scan, displacement, fixed_grid,
                                   moving_grid)
    warped, warped_labels = _resample_moving(moving_scan, target, fixed_scan.shape)
    voxel_field = np.moveaxis((target - index).reshape(3, *fixed_scan.shape), 0, -1)
    return warped, warped_labels, voxel_field.astype(np.float32)


def _report_scores(scores) -> dict:
    """Dice and HD95 per label (and avg(4) / avg(13) for the BTCV organs), by name."""
    if scores.dice is None:
        return {"dice": None, "hd95_mm": None,
                "note": "not scored: both the moving and the fixed labels are needed"}
    names = list(scores.label_names.values())
    return {"dice": dict(zip(names, scores.dice.tolist())),
            "hd95_mm": dict(zip(names, scores.hd95_mm.tolist())),
            **{k: v for k, v in scores.summary.items() if k != "mean"}}


def _json(value):
    """NaN and inf become None: report.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _write(out: Path, registered: ScanRegistration, fixed_scan: Subject,
           moving_scan: Subject) -> dict:
    """Write the NIfTI files and the overlay; return name -> path."""
    files = {"warped": save_nifti(out / "warped.nii.gz", registered.warped_image,
                                  fixed_scan.affine)}
    if registered.warped_labels is not None:
        files["warped_labels"] = save_nifti(out / "warped_labels.nii.gz",
                                            registered.warped_labels, fixed_scan.affine)
    voxel_field = np.moveaxis(registered.displacement, -1, 0)
    files["displacement_itk"] = save_displacement_field(
        out / "displacement_itk.nii.gz", voxel_field, fixed_scan.affine, moving_scan.affine)
    files["displacement_learn2reg"] = save_nifti(out / "displacement_learn2reg.nii.gz",
                                                 registered.displacement, fixed_scan.affine)
    files["overlay"] = _overlay(out / "overlay.png", registered, fixed_scan, moving_scan)
    return files


def _overlay(path: Path, registered: ScanRegistration, fixed_scan: Subject,
             moving_scan: Subject) -> Path:
    """The fixed scan with the moving scan before (placed by world coordinates alone) and
    after registration: organ outlines when there are labels, else checkerboards."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    # "before": the moving scan at the same world positions, no registration
    _, target = _moving_voxels(fixed_scan, moving_scan)
    before_image, before_labels = _resample_moving(moving_scan, target, fixed_scan.shape)

    def ras(volume):  # figures read RAS+ arrays: the radiological view of display
        return None if volume is None else to_ras(volume, fixed_scan.affine)[0]

    fixed_image, fixed_labels = ras(fixed_scan.image), ras(fixed_scan.labels)
    figure, axes = plt.subplots(1, 2, figsize=(10, 5))
    labelled = fixed_labels is not None and before_labels is not None
    index = int(np.argwhere(fixed_labels > 0)[:, 1].mean()) if labelled and \
        fixed_labels.any() else fixed_image.shape[1] // 2
    for ax, (name, image, labels) in zip(axes, [
            ("before", ras(before_image), ras(before_labels)),
            ("after", ras(registered.warped_image), ras(registered.warped_labels))]):
        if labelled:
            show_slice(fixed_image, axis=1, index=index, ax=ax,
                       title=f"{name}: fixed (solid), moving (dashed)")
            overlay_contours(ax, view_slice(fixed_labels, 1, index))
            overlay_contours(ax, view_slice(labels, 1, index), linestyle="dashed")
        else:
            show_checkerboard(fixed_image, image, axis=1, index=index, ax=ax,
                              title=f"{name}: fixed / moving")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)
    return path
