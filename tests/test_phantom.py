"""The synthetic cohort: anatomy where it belongs, plausible HU, variability, calibration,
and its exact ground truth."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import center_of_mass

from slicreg_lite.cohort.phantom import (
    LANDMARKS,
    _draw_pose,
    corresponding_landmarks,
    generate_subject,
    ground_truth,
    landmark_positions,
    true_displacement,
)
from slicreg_lite.core.config import get_config
from slicreg_lite.core.labels import LARGE_ORGANS, NUM_LABELS
from slicreg_lite.core.metrics import (
    average_dice,
    dice_per_label,
    endpoint_error_map,
    jacobian_determinant,
    target_registration_error,
)
from slicreg_lite.core.spatial import warp_labels

LITE = get_config("lite")
SMOKE = get_config("smoke")


@pytest.fixture(scope="module")
def template():
    return generate_subject(LITE.split.template_id, LITE.phantom, LITE.grid)


def test_types_shapes_and_affine(template):
    assert template.image.shape == LITE.grid.shape == template.labels.shape
    assert template.image.dtype == np.float32 and template.labels.dtype == np.uint8
    assert template.body_mask.dtype == bool
    assert template.spacing == (4.0, 4.0, 4.0)
    # the field of view is centred on the world origin
    centre = template.affine @ np.r_[(np.array(template.shape) - 1) / 2, 1]
    np.testing.assert_allclose(centre[:3], 0, atol=1e-9)
    # whole Hounsfield units, like a real scanner
    assert np.array_equal(template.image, np.round(template.image))


def test_deterministic_for_a_seed():
    a = generate_subject(5, SMOKE.phantom, SMOKE.grid)
    b = generate_subject(5, SMOKE.phantom, SMOKE.grid)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    c = generate_subject(6, SMOKE.phantom, SMOKE.grid)
    assert not np.array_equal(a.labels, c.labels)
    other_seed = generate_subject(5, SMOKE.with_updates(phantom={"seed": 7}).phantom,
                                  SMOKE.grid)
    assert not np.array_equal(a.image, other_seed.image)


def test_every_btcv_label_with_plausible_volume(template):
    volumes_ml = np.bincount(template.labels.ravel(), minlength=NUM_LABELS + 1)[1:] \
        * np.prod(template.spacing) / 1000
    assert (volumes_ml > 0).all(), volumes_ml
    spleen, r_kidney, l_kidney, gallbladder, esophagus, liver = volumes_ml[:6]
    assert 1000 < liver < 2500
    assert 60 < spleen < 400 and 50 < r_kidney < 300 and 50 < l_kidney < 300
    assert liver == volumes_ml.max()
    assert volumes_ml[11] < 15 and volumes_ml[12] < 15  # adrenal glands are small


def test_organs_where_they_belong(template):
    # RAS+ axes: 0 -> patient's right, 1 -> anterior, 2 -> superior
    centre = {label: np.array(center_of_mass(template.labels == label))
              for label in range(1, NUM_LABELS + 1)}
    spleen, r_kid, l_kid, gall, eso, liver, stomach, aorta, ivc = (centre[i] for i in range(1, 10))
    assert liver[0] > spleen[0] and liver[0] > stomach[0]  # liver on the right
    assert r_kid[0] > l_kid[0]
    assert ivc[0] > aorta[0]  # IVC right of the aorta
    assert liver[2] > r_kid[2] and spleen[2] > l_kid[2]  # liver and spleen above the kidneys
    assert r_kid[1] < liver[1] and aorta[1] < stomach[1]  # retroperitoneum is posterior
    assert gall[1] > r_kid[1]  # gallbladder anterior
    assert eso[2] > stomach[2]  # esophagus enters the stomach from above
    assert centre[12][2] > r_kid[2] and centre[13][2] > l_kid[2]  # adrenals on top


def test_plausible_hounsfield_units(template):
    image, labels, body = template.image, template.labels, template.body_mask
    assert np.median(image[~body]) < -950  # air outside the body
    liver = image[labels == 6]
    assert 60 < np.median(liver) < 160 and liver.std() > 5  # enhanced, with texture
    kidney = np.median(image[labels == 2])
    assert kidney > np.median(liver)  # kidney cortex enhances more than liver
    assert np.median(image[labels == 4]) < 40  # gallbladder: bile
    assert (image[labels == 7] < -500).any()  # air in the stomach
    assert (image[body] > 400).sum() > 100  # bones
    assert (image[body & (labels == 0)] < -500).sum() > 100  # bowel gas, lungs
    assert (labels[~body] == 0).all()


def test_subjects_differ_in_pose_and_size():
    a = generate_subject(38, SMOKE.phantom, SMOKE.grid)
    b = generate_subject(2, SMOKE.phantom, SMOKE.grid)
    ca = np.array(center_of_mass(a.labels == 6))
    cb = np.array(center_of_mass(b.labels == 6))
    assert np.linalg.norm((ca - cb) * 12.0) > 5.0  # liver moved by more than 5 mm
    assert a.body_mask.sum() != b.body_mask.sum()


def test_initial_misalignment_is_calibrated():
    """Under lite the 4 large organs overlap 10-35% without registration (paper: 16.4%)."""
    template = generate_subject(LITE.split.template_id, LITE.phantom, LITE.grid)
    avg4, avg13 = [], []
    for i in LITE.split.evaluation_ids:
        moving = generate_subject(i, LITE.phantom, LITE.grid)
        scores = dice_per_label(moving.labels, template.labels)
        avg4.append(average_dice(scores, LARGE_ORGANS))
        avg13.append(average_dice(scores, range(1, 14)))
    assert 0.10 < np.mean(avg4) < 0.35
    assert np.mean(avg13) < np.mean(avg4)


def test_bad_input():
    with pytest.raises(ValueError, match="non-negative integer"):
        generate_subject(-1, SMOKE.phantom, SMOKE.grid)
    with pytest.raises(TypeError, match="PhantomConfig"):
        generate_subject(1, SMOKE, SMOKE.grid)
    with pytest.raises(TypeError, match="GridConfig"):
        generate_subject(1, SMOKE.phantom, SMOKE)
    with pytest.raises(ValueError, match="at least 8 voxels"):
        generate_subject(1, SMOKE.phantom, SMOKE.with_updates(grid={"shape": (4, 4, 4)}).grid)


def test_export_nifti_round_trip(tmp_path):
    from slicreg_lite.cohort.layouts import export_cohort, load_bcv

    subjects = {i: generate_subject(i, SMOKE.phantom, SMOKE.grid) for i in (1, 38)}
    export_cohort(subjects, tmp_path)
    assert (tmp_path / "img" / "img0038.nii.gz").exists()
    assert (tmp_path / "label" / "label0001.nii.gz").exists()
    loaded = {s.subject_id: s for s in load_bcv(tmp_path)}
    assert sorted(loaded) == [1, 38]
    for i, subject in subjects.items():
        assert np.array_equal(loaded[i].image, subject.image)
        assert np.array_equal(loaded[i].labels, subject.labels)
        np.testing.assert_allclose(loaded[i].affine, subject.affine)


# ------------------------------------------------------------------------- ground truth
def test_true_field_carries_the_moving_labels_onto_the_fixed_ones(template):
    """At 4 mm the true field overlaps the large organs almost perfectly; what is left is
    nearest-neighbour sampling of the labels on the voxel grid."""
    moving = generate_subject(26, LITE.phantom, LITE.grid)
    truth = true_displacement(LITE.split.template_id, 26, LITE.phantom, LITE.grid)
    before = dice_per_label(moving.labels, template.labels)
    after = dice_per_label(warp_labels(moving.labels, truth), template.labels)
    large = [label - 1 for label in LARGE_ORGANS]
    assert before[large].mean() < 0.2  # subject 26 is far off before registration
    assert after[large].min() > 0.9 and after[5] > 0.95  # liver
    assert average_dice(after, range(1, 14)) > 0.85
    # a smooth correspondence: no folding, no wild compression
    determinant = jacobian_determinant(truth)[template.body_mask]
    assert determinant.min() > 0.2


def test_true_field_maps_each_voxel_to_the_same_canonical_point():
    """Exact, not only at the labels' outlines: fixed voxel x and moving point x + u(x)
    show one canonical point (to 1e-3 mm)."""
    grid = SMOKE.grid
    fixed, moving = _draw_pose(38, SMOKE.phantom, grid), _draw_pose(5, SMOKE.phantom, grid)
    truth = true_displacement(38, 5, SMOKE.phantom, grid)
    voxels = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"))
    target = (voxels + truth).reshape(3, -1)
    centre = (np.array(grid.shape)[:, None] - 1) / 2
    shown_by_moving = moving.canonical_at((target - centre) * grid.spacing_mm)
    shown_by_fixed = np.stack(fixed.grid_coordinates()).reshape(3, -1)
    assert np.abs(shown_by_moving - shown_by_fixed).max() < 1e-3


@settings(max_examples=20, deadline=None)
@given(subject_id=st.integers(0, 60),
       point=st.tuples(*[st.floats(-150, 150) for _ in range(3)]))
def test_inverse_of_a_subject_round_trips(subject_id, point):
    pose = _draw_pose(subject_id, SMOKE.phantom, SMOKE.grid)
    canonical = np.array(point, float)[:, None]
    world = pose.world_of(canonical)
    np.testing.assert_allclose(pose.canonical_at(world), canonical, atol=1e-3)


def test_landmarks_lie_in_their_organs(template):
    organs = {"liver, right lobe": 6, "liver, left lobe": 6, "spleen": 1, "right kidney": 2,
              "left kidney": 3, "gallbladder": 4, "pancreas, head": 11, "aortic bifurcation": 8,
              "portal confluence": 10}
    for subject in (template, generate_subject(26, LITE.phantom, LITE.grid)):
        positions = landmark_positions(subject.subject_id, LITE.phantom, LITE.grid)
        for name, label in organs.items():
            voxel = tuple(np.round(positions[name]).astype(int))
            if all(0 <= v < n for v, n in zip(voxel, LITE.grid.shape)):
                assert subject.labels[voxel] == label, (subject.subject_id, name)
        # vertebral bodies are bone (marrow and cortex, well above soft tissue)
        bones = [np.round(p).astype(int) for n, p in positions.items() if "vertebral" in n]
        inside = [tuple(v) for v in bones if all(0 <= a < n for a, n in zip(v, LITE.grid.shape))]
        assert len(inside) >= 6
        assert np.median([subject.image[v] for v in inside]) > 150


def test_tre_of_identity_is_the_landmark_offset_and_of_the_truth_about_zero():
    cfg, fixed_id, moving_id = SMOKE.phantom, 38, 7
    names, fixed, moving = corresponding_landmarks(fixed_id, moving_id, cfg, SMOKE.grid)
    assert len(names) >= 10 and set(names) <= set(LANDMARKS)
    spacing = SMOKE.grid.spacing_mm
    # the offsets, from each subject's own landmark positions
    a = landmark_positions(fixed_id, cfg, SMOKE.grid, names)
    b = landmark_positions(moving_id, cfg, SMOKE.grid, names)
    offsets = np.array([np.linalg.norm((b[n] - a[n]) * spacing) for n in names])
    identity = np.zeros((3, *SMOKE.grid.shape), np.float32)
    np.testing.assert_allclose(target_registration_error(identity, fixed, moving, spacing),
                               offsets, atol=1e-9)
    assert offsets.mean() > 10  # the subjects differ by centimetres
    truth = ground_truth(fixed_id, moving_id, cfg, SMOKE.grid)
    tre = target_registration_error(truth.displacement, truth.fixed_points,
                                    truth.moving_points, spacing)
    assert tre.max() < 0.1 * spacing  # trilinear interpolation of a smooth field
    assert endpoint_error_map(truth.displacement, truth.displacement, spacing).max() == 0
    assert endpoint_error_map(identity, truth.displacement, spacing).max() > 10


def test_ground_truth_bad_input():
    with pytest.raises(ValueError, match="non-negative integer"):
        true_displacement(38, -2, SMOKE.phantom, SMOKE.grid)
    with pytest.raises(TypeError, match="PhantomConfig"):
        true_displacement(38, 2, SMOKE, SMOKE.grid)
    with pytest.raises(ValueError, match="unknown landmark"):
        landmark_positions(38, SMOKE.phantom, SMOKE.grid, ["appendix"])
