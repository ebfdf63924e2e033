"""Pre-processing onto the preset's grid: resampling, the soft-tissue crop, world positions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from slicreg_lite.cohort.nifti import save_nifti
from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.cohort.preprocessing import (
    AIR_HU,
    crop_or_pad,
    crop_origin,
    on_grid,
    preprocess,
    soft_tissue_centre,
)
from slicreg_lite.cohort.subject import Subject
from slicreg_lite.core.config import GridConfig, SplitConfig, get_config
from slicreg_lite.core.labels import LARGE_ORGANS


def _world(affine, voxel):
    return affine[:3, :3] @ np.asarray(voxel, dtype=float) + affine[:3, 3]


# ------------------------------------------------------------------- preprocessing
def _blob_scan(shape, centre, radius, spacing):
    """Air everywhere with a soft-tissue ball (60 HU, label 6) at ``centre``."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    inside = ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) <= radius**2
    image = np.where(inside, 60.0, AIR_HU).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-40.0, 15.0, 120.0)
    return Subject(7, image, inside.astype(np.uint8) * 6, affine)


def test_soft_tissue_centre_ignores_isolated_voxels():
    subject = _blob_scan((30, 30, 30), (8, 20, 12), 4, (2, 2, 2))
    image = subject.image.copy()
    image[28, 2, 27] = 100.0  # one noisy soft-tissue voxel far away: eroded away
    np.testing.assert_allclose(soft_tissue_centre(image), (8, 20, 12), atol=1e-3)


def test_crop_or_pad_copies_and_pads():
    volume = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    np.testing.assert_array_equal(crop_origin((2, 3, 3), (3, 3, 3)), (1, 2, 2))
    np.testing.assert_array_equal(crop_or_pad(volume, (2, 3, 3), (3, 3, 3)),
                                  volume[1:4, 2:5, 2:5])
    # Centred at voxel 0, a box of 4 starts one voxel before the volume: one voxel of fill.
    padded = crop_or_pad(volume, (0, 0, 0), (4, 4, 4), fill=-1)
    np.testing.assert_array_equal(padded[1:, 1:, 1:], volume[:3, :3, :3])
    assert (padded[0] == -1).all() and padded.dtype == volume.dtype
    assert (crop_or_pad(volume, (100, 0, 0), (2, 2, 2), fill=-1) == -1).all()


def test_preprocess_output_shape_and_spacing():
    subject = _blob_scan((20, 18, 12), (10, 9, 6), 4, (3.0, 3.0, 4.0))

    result = preprocess(subject, spacing_mm=2.0, shape=(16, 20, 24))

    assert result.shape == (16, 20, 24)
    np.testing.assert_allclose(result.spacing, (2.0, 2.0, 2.0))
    assert result.image.dtype == np.float32 and result.labels.dtype == np.uint8
    assert result.image.min() == AIR_HU  # padding is air
    assert result.subject_id == subject.subject_id


def test_preprocess_centres_an_off_centre_blob():
    subject = _blob_scan((40, 40, 40), (10, 28, 12), 4, (2.0, 2.0, 2.0))
    shape = (24, 24, 24)

    result = preprocess(subject, spacing_mm=2.0, shape=shape)

    middle = (np.array(shape) - 1) / 2
    np.testing.assert_allclose(soft_tissue_centre(result.image), middle, atol=1.0)
    label_centre = np.argwhere(result.labels == 6).mean(axis=0)
    np.testing.assert_allclose(label_centre, middle, atol=1.0)


def test_preprocess_keeps_world_positions():
    subject = _blob_scan((20, 18, 12), (10, 9, 6), 4, (3.0, 3.0, 4.0))
    marked = (11, 8, 5)
    subject.labels[marked] = 13  # one marked voxel inside the blob

    result = preprocess(subject, spacing_mm=2.0, shape=(24, 24, 24))

    # Upsampling with nearest neighbour: every output voxel carrying the mark lies within
    # half an input voxel of the marked input voxel.
    found = np.argwhere(result.labels == 13)
    assert len(found) > 0
    before = _world(subject.affine, marked)
    for voxel in found:
        offset = np.abs(_world(result.affine, voxel) - before)
        assert (offset <= np.array(subject.spacing) / 2 + 1e-6).all()
    # The blob's world centre is where it was (within half an output voxel).
    blob_before = _world(subject.affine, np.argwhere(subject.labels > 0).mean(axis=0))
    blob_after = _world(result.affine, np.argwhere(result.labels > 0).mean(axis=0))
    np.testing.assert_allclose(blob_after, blob_before, atol=1.0)


def test_preprocess_rejects_a_bad_shape():
    subject = _blob_scan((10, 10, 10), (5, 5, 5), 3, (2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match=re.escape("shape must be three positive integers")):
        preprocess(subject, shape=(16, 16))


# ------------------------------------------------------------- onto the preset's grid
SMOKE = get_config("smoke")


def test_a_scan_on_the_grid_is_taken_as_it_is(tmp_path):
    """Exported phantom scans read back through a folder: pre-processing is the identity."""
    from slicreg_lite.cohort.layouts import export_cohort
    from slicreg_lite.cohort.sources import open_source

    subjects = {i: generate_subject(i, SMOKE.phantom, SMOKE.grid) for i in (1, 2, 38)}
    export_cohort(subjects, tmp_path, layout="folder",
                  split=SplitConfig(train_ids=(2,), test_ids=(1, 38), template_id=38))
    data = open_source(f"folder:{tmp_path}", SMOKE)
    for i, subject in subjects.items():
        assert on_grid(subject, SMOKE.grid)
        loaded = data.load(str(i))
        np.testing.assert_array_equal(loaded.image, subject.image)
        np.testing.assert_array_equal(loaded.labels, subject.labels)
        np.testing.assert_array_equal(loaded.affine, subject.affine)


def _resample_onto(subject, affine, shape):
    """The subject's image (linear) and labels (nearest) on another grid of the world."""
    from slicreg_lite.core.spatial import identity_grid, sample

    voxels = identity_grid(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ voxels + affine[:3, 3:]
    inverse = np.linalg.inv(subject.affine)
    source = (inverse[:3, :3] @ world + inverse[:3, 3:]).reshape(3, *shape)
    image = sample(subject.image, source, fill=AIR_HU)
    labels = sample(subject.labels, source, mode="nearest")
    return image.astype(np.float32), labels


def _organ_centre(labels, affine, label):
    return _world(affine, np.argwhere(labels == label).mean(axis=0))


def test_an_lps_anisotropic_scan_lands_on_the_grid_where_it_should(tmp_path):
    """A phantom scan rewritten as a scanner would store it: LPS, 4 x 4 x 10 mm voxels,
    another size and field of view. Read from a folder, each large organ's centre must
    land where it is in the world, within one voxel of the preset's grid."""
    from slicreg_lite.cohort.sources import open_source

    fine = GridConfig(shape=(96, 84, 108), spacing_mm=4.0)  # the smoke field of view
    subjects = {i: generate_subject(i, SMOKE.phantom, fine) for i in (1, 4, 38)}
    # LPS: axis 0 runs towards the patient's left, axis 1 towards posterior
    shape = (90, 80, 40)
    lps = np.diag([-4.0, -4.0, 10.0, 1.0])
    lps[:3, 3] = (178.0, 150.0, -190.0)
    for i, subject in subjects.items():
        image, labels = _resample_onto(subject, lps, shape)
        save_nifti(tmp_path / "images" / f"scan{i}.nii.gz", image, lps)
        save_nifti(tmp_path / "labels" / f"scan{i}.nii.gz", labels, lps)
    data = open_source(f"folder:{tmp_path}", SMOKE)
    for i, subject in subjects.items():
        scan = data.load(f"scan{i}")
        assert scan.shape == SMOKE.grid.shape
        np.testing.assert_allclose(scan.spacing, SMOKE.grid.spacing_mm)
        assert (np.diag(scan.affine)[:3] > 0).all()  # RAS+ axes
        for label in LARGE_ORGANS:
            before = _organ_centre(subject.labels, subject.affine, label)
            after = _organ_centre(scan.labels, scan.affine, label)
            assert np.abs(after - before).max() < SMOKE.grid.spacing_mm, (i, label)
