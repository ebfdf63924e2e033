"""deeds-lite against deedsBCV (and convexAdam), side by side on the same pairs in one run.

Two cases:

(a) the lite phantom's test subjects registered to template #38: avg(4) and avg(13) Dice,
    target registration error at the phantom's landmarks and endpoint error against its
    exact correspondence, seconds per pair;
(b) a CT given by path (``--ct``, with ``--seg`` labels) registered to a copy of itself
    under a seeded smooth deformation (at most 6 voxels, plus a shift of 3 / -2 / 0
    voxels), on its own voxel grid: mean Dice over its labels, endpoint error (mm) inside
    the body, seconds. deeds-lite uses its settings for real CT
    (``get_config("lite", real_ct=True)``).

References, each run only when available:

- **deedsBCV**, built from its public source (github.com/mattiaspaul/deedsBCV, ``make``),
  with its default settings (``linearBCV``, then ``deedsBCV -A`` with the affine matrix),
  when the environment variable ``DEEDS_BCV_DIR`` names the folder of its binaries. Its
  whole field is read back by warping three coordinate images with ``applyBCVfloat``;
- **convexAdam** when the package is installed
  (``pip install -c constraints.txt convexAdam``), with its default settings.

Target: deeds-lite no slower per pair than deedsBCV on both cases (ratio <= 1; stretch:
0.5), with Dice on (b) at least deedsBCV's and an endpoint error no worse.

Usage::

    DEEDS_BCV_DIR=~/deedsBCV python benchmarks/bench_teacher_vs_deeds.py \\
        [--pairs 9] [--ct CT.nii.gz --seg LABELS.nii.gz] [--teacher regularisation=4 ...]

``--teacher NAME=VALUE`` changes a setting of deeds-lite (a field of ``TeacherConfig``,
the value read as JSON, e.g. ``grid_spacings=[8,7,6,5,4]``), to measure candidates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from slicreg_lite.cohort.phantom import ground_truth
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.labels import BTCV_LABELS, name_labels
from slicreg_lite.core.metrics import (
    endpoint_error_map,
    score_registration,
)
from slicreg_lite.core.spatial import resize, warp_image, warp_labels
from slicreg_lite.pipeline import stages
from slicreg_lite.supervoxels import body_mask
from slicreg_lite.teacher import register as deeds_lite


# -------------------------------------------------------------------------- the methods
def run_deeds_lite(fixed, moving, moving_labels, affine, cfg):
    """deeds-lite with the preset's teacher settings: (field in voxels, seconds)."""
    start = time.perf_counter()
    result = deeds_lite(fixed, moving, cfg.teacher)
    return result.displacement, time.perf_counter() - start


def run_deeds_bcv(fixed, moving, moving_labels, affine, cfg, binaries: Path):
    """deedsBCV's default pipeline (linearBCV, then deedsBCV): (field in voxels, seconds).

    The seconds are those of the two registration binaries; reading the field back
    (three coordinate images warped with applyBCVfloat) is not counted.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)

        def write(array, name, dtype):
            path = folder / name
            nib.save(nib.Nifti1Image(np.asarray(array, dtype), affine), path)
            return str(path)

        fixed_path = write(fixed, "fixed.nii.gz", np.float32)
        moving_path = write(moving, "moving.nii.gz", np.float32)
        stem = str(folder / "out")

        def call(*arguments):
            subprocess.run([str(binaries / arguments[0]), *arguments[1:]], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        start = time.perf_counter()
        call("linearBCV", "-F", fixed_path, "-M", moving_path, "-O", stem + "_affine")
        call("deedsBCV", "-F", fixed_path, "-M", moving_path, "-O", stem,
             "-A", stem + "_affine_matrix.txt")
        seconds = time.perf_counter() - start
        # x + u(x) along each axis: warp the image of each voxel coordinate
        field = np.empty((3, *fixed.shape), np.float32)
        for axis in range(3):
            coordinate = np.indices(fixed.shape, dtype=np.float32)[axis]
            source = write(coordinate, f"coordinate{axis}.nii.gz", np.float32)
            warped = str(folder / f"warped{axis}.nii.gz")
            call("applyBCVfloat", "-M", source, "-O", stem, "-D", warped,
                 "-A", stem + "_affine_matrix.txt")
            field[axis] = np.asarray(nib.load(warped).dataobj, np.float32) - coordinate
    return field, seconds


def run_convex_adam(fixed, moving, moving_labels, affine, cfg):
    """convexAdam (MIND features) with its defaults: (field in voxels, seconds)."""
    from convexAdam.convex_adam_MIND import convex_adam_pt

    start = time.perf_counter()
    displacement = convex_adam_pt(img_fixed=np.asarray(fixed, np.float32),
                                  img_moving=np.asarray(moving, np.float32))
    seconds = time.perf_counter() - start
    return np.moveaxis(np.asarray(displacement, np.float32), -1, 0), seconds


def available_methods() -> dict:
    methods = {"deeds-lite": run_deeds_lite}
    folder = os.environ.get("DEEDS_BCV_DIR")
    if folder and all((Path(folder).expanduser() / b).exists()
                      for b in ("deedsBCV", "linearBCV", "applyBCVfloat")):
        binaries = Path(folder).expanduser()
        methods["deedsBCV"] = lambda *a: run_deeds_bcv(*a, binaries=binaries)
    else:
        print("deedsBCV: skipped (set DEEDS_BCV_DIR to the folder of its built binaries)")
    try:
        import convexAdam  # noqa: F401

        methods["convexAdam"] = run_convex_adam
    except ImportError:
        print("convexAdam: skipped (pip install -c constraints.txt convexAdam)")
    return methods


# ---------------------------------------------------------------------------- case (a)
def phantom_pairs(methods: dict, pairs: int, cfg) -> dict:
    template_id = cfg.split.template_id
    ids = cfg.split.evaluation_ids[:pairs]
    subjects = stages.cohort(cfg, "phantom", (*ids, template_id),
                             run=RunSettings(progress=False))
    template = subjects[template_id]
    body = body_mask(template.image)
    spacing = template.spacing
    rows = {name: {"avg4": [], "avg13": [], "tre": [], "epe": [], "seconds": []}
            for name in methods}
    for i in ids:
        moving = subjects[i]
        truth = ground_truth(template_id, i, cfg.phantom, cfg.grid)
        for name, method in methods.items():
            field, seconds = method(template.image, moving.image, moving.labels,
                                    template.affine, cfg)
            scores = score_registration(warp_labels(moving.labels, field), template.labels,
                                        field, label_names=BTCV_LABELS, spacing=spacing,
                                        body=body, truth=truth, hd95=False)
            row = rows[name]
            row["avg4"].append(100 * scores.summary["avg(4)"])
            row["avg13"].append(100 * scores.summary["avg(13)"])
            row["tre"].extend(scores.tre_mm)
            row["epe"].append(scores.epe_mm)
            row["seconds"].append(seconds)
            print(f"  (a) {i:2d} -> {template_id}  {name:<11s} avg(4) {row['avg4'][-1]:5.1f}  "
                  f"{seconds:6.1f} s")
    return rows


# ---------------------------------------------------------------------------- case (b)
def known_deformation(shape, spacing_mm: float, seed: int = 0) -> np.ndarray:
    """A smooth random field (at most 6 voxels) plus a shift of (3, -2, 0) voxels."""
    rng = np.random.default_rng(seed)
    coarse = tuple(max(2, int(round(n * spacing_mm / 40.0))) for n in shape)  # ~40 mm
    field = resize(rng.normal(0, 1, (3, *coarse)).astype(np.float32), shape)
    field *= 6.0 / np.linalg.norm(field, axis=0).max()
    return field + np.array([3.0, -2.0, 0.0], np.float32)[:, None, None, None]


def ct_case(methods: dict, ct_path: Path, seg_path: Path, cfg) -> dict:
    from slicreg_lite.cohort.nifti import load_nifti

    image, affine = load_nifti(ct_path)
    labels = load_nifti(seg_path)[0].astype(np.int32)
    if labels.shape != image.shape:  # labels of the last slices only: pad with background
        padded = np.zeros(image.shape, np.int32)
        padded[..., image.shape[2] - labels.shape[2]:] = labels
        labels = padded
    numbers = [int(v) for v in np.unique(labels) if v > 0]
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    truth = known_deformation(image.shape, float(spacing.mean()))
    # the fixed scan is the CT under the known field: fixed x shows moving x + u(x)
    fixed = warp_image(image, truth, fill=float(image.min()))
    fixed_labels = warp_labels(labels.astype(np.int16), truth)
    body = body_mask(fixed)
    rows = {}
    for name, method in methods.items():
        field, seconds = method(fixed, image, labels, affine, cfg)
        scores = score_registration(warp_labels(labels.astype(np.int16), field), fixed_labels,
                                    label_names=name_labels(numbers), hd95=False)
        rows[name] = {"dice": 100 * scores.headline,
                      "epe": float(endpoint_error_map(field, truth, spacing)[body].mean()),
                      "seconds": seconds}
        print(f"  (b) {name:<11s} Dice {rows[name]['dice']:5.1f}  {seconds:6.1f} s")
    return rows


# ------------------------------------------------------------------------------ report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=9, help="phantom test pairs (a)")
    parser.add_argument("--ct", type=Path, help="a CT scan (NIfTI) for case (b)")
    parser.add_argument("--seg", type=Path, help="its labels (NIfTI), for case (b)")
    parser.add_argument("--teacher", action="append", default=[], metavar="NAME=VALUE",
                        help="change a deeds-lite setting (TeacherConfig), value as JSON")
    args = parser.parse_args()
    if (args.ct is None) != (args.seg is None):
        parser.error("--ct and --seg go together")
    changes = {}
    for item in args.teacher:
        name, _, value = item.partition("=")
        value = json.loads(value)
        changes[name] = tuple(value) if isinstance(value, list) else value
    cfg = get_config("lite", teacher=changes)
    # the real CT of case (b) with deeds-lite's settings for real CT
    ct_cfg = get_config("lite", real_ct=True, teacher=changes)
    if changes:
        print(f"deeds-lite with {changes}")
    methods = available_methods()
    deeds_lite(np.zeros((16, 16, 16), np.float32), np.zeros((16, 16, 16), np.float32),
               get_config("smoke").teacher)  # compile the kernels before timing

    phantom = phantom_pairs(methods, args.pairs, cfg) if args.pairs > 0 else {}
    if phantom:
        print(f"\n(a) lite phantom, {args.pairs} test pairs -> template #38")
        print("| method | avg(4) | avg(13) | TRE mm | EPE mm | s per pair | ratio to "
              "deedsBCV |\n|---|---|---|---|---|---|---|")
        reference = np.mean(phantom["deedsBCV"]["seconds"]) if "deedsBCV" in phantom else None
        for name, row in phantom.items():
            seconds = np.mean(row["seconds"])
            ratio = f"{seconds / reference:.2f}" if reference else "-"
            print(f"| {name} | {np.mean(row['avg4']):.1f} | {np.mean(row['avg13']):.1f} | "
                  f"{np.mean(row['tre']):.1f} | {np.mean(row['epe']):.1f} | {seconds:.1f} | "
                  f"{ratio} |")
    if args.ct is not None:
        ct = ct_case(methods, args.ct, args.seg, ct_cfg)
        print(f"\n(b) {args.ct.name} registered to itself under a known smooth deformation")
        print("| method | Dice % | EPE mm | s | ratio to deedsBCV |\n|---|---|---|---|---|")
        reference = ct["deedsBCV"]["seconds"] if "deedsBCV" in ct else None
        for name, row in ct.items():
            ratio = f"{row['seconds'] / reference:.2f}" if reference else "-"
            print(f"| {name} | {row['dice']:.1f} | {row['epe']:.2f} | {row['seconds']:.1f} | "
                  f"{ratio} |")
    print("\ntarget: deeds-lite's ratio to deedsBCV <= 1 on both cases (stretch 0.5); on (b) "
          "Dice >= deedsBCV's and EPE no worse")


if __name__ == "__main__":
    main()
