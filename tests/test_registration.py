"""Slic-Reg, the regression baseline and the teacher: one call shape, interchangeable."""

import numpy as np
import pytest

from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.metrics import dice_per_label
from slicreg_lite.methods import Registration, SlicReg
from slicreg_lite.pipeline import load_method, stages

SMOKE = get_config("smoke")
QUIET = RunSettings(jobs=1, progress=False)


@pytest.fixture(scope="module")
def methods():
    # the suite's cache (conftest): the notebooks reuse the smoke networks trained here
    return {"slicreg": load_method(SMOKE, "phantom", "slicreg", run=QUIET),
            "regression": load_method(SMOKE, "phantom", "unet-regression", run=QUIET),
            "teacher": load_method(SMOKE, "phantom", "teacher", run=QUIET),
            "subjects": stages.cohort(SMOKE, "phantom", (1, 38), run=QUIET)}


@pytest.mark.parametrize("name", ["slicreg", "regression", "teacher"])
def test_one_call_shape_for_every_method(methods, name):
    moving = methods["subjects"][1]
    result = methods[name].register(moving)
    assert isinstance(result, Registration)
    assert result.displacement.shape == (3, *SMOKE.grid.shape)
    assert result.displacement.dtype == np.float32 and np.isfinite(result.displacement).all()
    assert result.warped_image.shape == SMOKE.grid.shape
    assert result.warped_labels.shape == SMOKE.grid.shape  # the Subject's labels came along
    assert set(result.timings) == {"inference", "alignment", "total"}
    assert result.timings["total"] >= result.timings["alignment"] > 0
    # an image instead of a Subject: no labels to warp
    assert methods[name].register(moving.image).warped_labels is None


@pytest.mark.parametrize("name", ["slicreg", "teacher"])
def test_the_template_onto_itself_stays_put(methods, name):
    template = methods["subjects"][38]
    # with the template's features taken from the network's prediction on it, Slic-Reg's
    # features cancel exactly on the template (both sides are the same prediction, which
    # the smoke network, barely trained, gets wrong)
    overrides = {"template_features": "network"} if name == "slicreg" else {}
    result = methods[name].register(template, **overrides)
    assert np.abs(result.displacement).mean() < 0.3  # voxels
    scores = dice_per_label(result.warped_labels, template.labels, [1, 2, 3, 6])
    assert np.nanmin(scores) > 0.9


def test_the_teacher_recovers_a_known_shift(methods):
    template = methods["subjects"][38]
    shifted = np.roll(template.image, 2, axis=0)  # content moves 2 voxels along d
    result = methods["teacher"].register(shifted)
    body = template.labels > 0
    assert np.median(result.displacement[0][body]) == pytest.approx(2.0, abs=0.5)
    assert np.abs(np.median(result.displacement[1:, body], axis=1)).max() < 0.5


def test_a_moving_scan_on_another_grid_is_refused(methods):
    with pytest.raises(ValueError, match=r"moving must be on the fixed scan's grid "
                                         r"\(32, 28, 36\); got shape \(10, 10, 10\)"):
        methods["slicreg"].register(np.zeros((10, 10, 10)))
    with pytest.raises(ValueError, match="labels must have the image's shape"):
        methods["teacher"].register(methods["subjects"][1].image,
                                    labels=np.zeros((3, 3, 3), np.uint8))


def test_adam_settings_can_be_overridden_per_call(methods):
    moving = methods["subjects"][1]
    slicreg = methods["slicreg"]
    few = slicreg.register(moving, iterations=3)
    assert len(few.details.losses["total"]) == 3
    with pytest.raises(ValueError, match="unknown Adam parameter"):
        slicreg.register(moving, alfa=0.1)


#: Every setting that notebook 04's "Try it yourself" changes, with a value it tries.
NOTEBOOK_OVERRIDES = [{"alpha": 0.015}, {"k": 1}, {"k": 20}, {"pool_kernel": 1},
                      {"keypoints": "random"}, {"fold": "permutation"},
                      {"template_features": "network"}, {"centre_weight": 10.0}]


def test_notebook_04s_overrides_are_all_tested():
    """Every ``name=`` that the notebook's "Try it yourself" passes is tested below."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "notebooks" /
            "04_adam_registration.py").read_text()
    tried = text[text.index("## Try it yourself"):]
    named = set(re.findall(r"`(\w+)=", tried)) | set(re.findall(r"\b(\w+)=a\b", tried))
    tested = {name for override in NOTEBOOK_OVERRIDES for name in override}
    tested |= {"centre_fit_step", "centre_stretch"}
    assert named and named <= tested, f"untested overrides: {sorted(named - tested)}"


@pytest.mark.parametrize("override", NOTEBOOK_OVERRIDES, ids=lambda o: str(o))
def test_every_override_of_notebook_04_changes_the_field(methods, override):
    """The features, keypoints and centre fit are computed again when a setting decides
    them, so no override is silently ignored."""
    slicreg = methods["slicreg"]
    moving_scan = slicreg.moving_scan(methods["subjects"][1].image)
    default = slicreg.align(moving_scan).displacement
    changed = slicreg.align(moving_scan, **override).displacement
    assert np.abs(changed - default).max() > 1e-3


def test_the_centre_fit_and_the_stretch_correction_each_change_the_field(methods):
    slicreg = methods["slicreg"]
    moving_scan = slicreg.moving_scan(methods["subjects"][1].image)
    steps = [{"centre_weight": 10.0}, {"centre_weight": 10.0, "centre_fit_step": 8},
             {"centre_weight": 10.0, "centre_fit_step": 8, "centre_stretch": True}]
    fields = [slicreg.align(moving_scan, **step).displacement for step in steps]
    for before, after in zip(fields, fields[1:]):
        assert np.abs(after - before).max() > 1e-3


def test_the_two_alignments_are_the_papers_and_the_toolkits(methods):
    paper = methods["slicreg"]
    assert paper.alignment == "paper" and paper.adam == SMOKE.adam and paper.adam.is_paper
    fit = SlicReg(paper.template_image, paper.layers, paper.model, SMOKE,
                  alignment="centre-fit")
    assert fit.adam == SMOKE.centre_fit and fit.template.centre_fit is not None
    result = fit.register(methods["subjects"][1])
    assert set(result.details.losses) == {"total", "data", "regulariser", "centres"}
    with pytest.raises(ValueError, match="alignment must be one of"):
        SlicReg(paper.template_image, paper.layers, paper.model, SMOKE, alignment="best")


def test_a_scan_unlike_the_training_scans_is_flagged_and_a_phantom_scan_is_not(methods):
    """A phantom scan as a real CT would look to the network (its intensities remapped:
    less contrast, other fat and bone values, more noise) gets a warning that says what to
    do instead; the phantom's own scans, test and validation alike, do not."""
    from slicreg_lite.methods import UntrustedResultWarning

    slicreg = methods["slicreg"]
    held_out = (*SMOKE.split.evaluation_ids, *SMOKE.split.validation_ids)
    scans = stages.cohort(SMOKE, "phantom", held_out, run=QUIET)
    for subject_id in held_out:
        assert slicreg.check_scan(scans[subject_id].image) == []
    image = methods["subjects"][1].image
    real_like = np.where(image > -500, 0.6 * image + 40, image)
    real_like += np.random.default_rng(0).normal(0, 40, image.shape)
    with pytest.warns(UntrustedResultWarning, match="unlike the scans the network was "
                                                    "trained on.*--method teacher"):
        result = slicreg.register(real_like)
    assert len(result.warnings) == 1 and "train --data folder:" in result.warnings[0]
    assert slicreg.register(scans[4]).warnings == []


# ------------------------------------------------------- a pair without the template
@pytest.fixture(scope="module")
def pair():
    """Two test subjects of smoke, neither of them the template (38), and the true
    correspondence between them."""
    from slicreg_lite.cohort.phantom import ground_truth

    scans = stages.cohort(SMOKE, "phantom", (1, 4, 38), run=QUIET)
    return scans[1], scans[4], ground_truth(1, 4, SMOKE.phantom, SMOKE.grid)


def exact_network(method):
    """Slic-Reg whose network predicts every scan's supervoxels exactly: the template's
    layers carried onto the scan by the phantom's true correspondence. Smoke's networks
    train for seconds and know little; with exact predictions the test measures what the
    pair routes do with what a network predicts."""
    from slicreg_lite.cohort.phantom import ground_truth
    from slicreg_lite.core.spatial import warp_labels

    layers = stages.template_supervoxels(SMOKE, "phantom", run=QUIET).layers
    known = {}
    for i, scan in stages.cohort(SMOKE, "phantom", (1, 4, 38), run=QUIET).items():
        to_template = ground_truth(i, 38, SMOKE.phantom, SMOKE.grid).displacement
        known[scan.image.tobytes()] = np.stack([warp_labels(layer, to_template)
                                                for layer in layers])
    method.predict = lambda image: known[np.asarray(image, np.float32).tobytes()]
    method._templates.clear()  # prepared again with the exact predictions
    method._template_prediction = None
    return method


def _pair_scores(fixed, registered_labels, field, truth):
    from slicreg_lite.core.metrics import target_registration_error

    dice = np.nanmean(dice_per_label(registered_labels, fixed.labels))
    tre = target_registration_error(field, truth.fixed_points, truth.moving_points,
                                    spacing=[SMOKE.grid.spacing_mm] * 3)
    return dice, float(np.mean(tre))


@pytest.mark.parametrize("name", ["slicreg", "slicreg-fit"])
@pytest.mark.parametrize("route", ["direct", "composed"])
def test_slicreg_registers_a_pair_without_the_template(pair, name, route):
    fixed, moving, truth = pair
    method = exact_network(load_method(SMOKE, "phantom", name, run=QUIET))
    before = _pair_scores(fixed, moving.labels, np.zeros((3, *SMOKE.grid.shape)), truth)
    result = method.register(moving, fixed=fixed, route=route)
    after = _pair_scores(fixed, result.warped_labels, result.displacement, truth)
    assert result.displacement.shape == (3, *SMOKE.grid.shape)
    assert after[0] > before[0] + 0.05, (before, after)  # Dice up by more than 5 points
    assert after[1] < before[1] - 2.0, (before, after)  # landmarks 2 mm closer at least
    assert result.details is not None


def test_a_pair_takes_the_alignments_chosen_route(methods, pair, monkeypatch):
    fixed, moving, _ = pair
    slicreg = methods["slicreg"]
    taken = []
    for route in ("direct", "composed"):
        monkeypatch.setattr(slicreg, f"_{route}",
                            lambda *a, route=route, **k: taken.append(route) or
                            SlicReg._composed(slicreg, *a, **k))
    slicreg.register(moving, fixed=fixed)
    assert taken == [SMOKE.adam.pair_route]
    with pytest.raises(ValueError, match="route must be one of"):
        slicreg.register(moving, fixed=fixed, route="sideways")


def test_the_composed_route_to_the_template_is_the_scans_own_field(methods, pair):
    # fixed = the template: its own registration is about the identity, so the pair's
    # field is close to the moving scan's registration to the template
    _, moving, _ = pair
    template = methods["subjects"][38]
    regression = methods["regression"]
    own = regression.register(moving).displacement
    through = regression.register(moving, fixed=template).displacement
    itself = regression.register(template).displacement
    body = template.image > -400
    assert np.abs(through - own)[:, body].mean() <= np.abs(itself)[:, body].mean() + 0.1


def test_a_fixed_scan_on_another_grid_is_refused(methods, pair):
    _, moving, _ = pair
    with pytest.raises(ValueError, match="fixed must be on the preset's grid"):
        methods["slicreg"].register(moving, fixed=np.zeros((8, 8, 8), np.float32))
