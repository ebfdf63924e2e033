"""The synthetic cohort: anatomy where it belongs, plausible HU, variability, calibration."""

import numpy as np
import pytest
from scipy.ndimage import center_of_mass

from slicreg_lite.config import LARGE_ORGANS, NUM_LABELS, get_config
from slicreg_lite.metrics import average_dice, dice_per_label
from slicreg_lite.phantom import generate_subject

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
    from slicreg_lite.layouts import export_cohort, load_bcv

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
