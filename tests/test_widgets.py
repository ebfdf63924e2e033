"""The panels redraw when a control changes (driven from Python); slow updates run in the
background, say that they are busy, and coalesce the moves made meanwhile."""

import threading
import time

import matplotlib
import numpy as np
import pytest
import torch

from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import get_config
from slicreg_lite.display import LatestOnly, SliceViewer, SupervoxelExplorer, view_slice
from tests.test_alignment import edge_differences

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def subjects():
    cfg = get_config("smoke")
    return {i: generate_subject(i, cfg.phantom, cfg.grid) for i in (1, 38)}


def test_slider_and_controls_update_the_picture(subjects):
    viewer = SliceViewer(subjects)
    assert viewer.subject.value == 1 and viewer.view.value == 2
    viewer.slice.value = 5
    np.testing.assert_array_equal(viewer.image_artist.get_array(),
                                  view_slice(subjects[1].image, 2, 5))
    viewer.subject.value = 38
    np.testing.assert_array_equal(viewer.image_artist.get_array(),
                                  view_slice(subjects[38].image, 2, viewer.slice.value))
    viewer.view.value = 0  # sagittal: the slider range follows the new axis
    assert viewer.slice.max == subjects[38].shape[0] - 1
    assert viewer.ax.get_title().startswith("subject 38, sagittal")
    viewer.show_labels.value = False
    assert viewer.label_artist is None


def test_bad_input(subjects):
    with pytest.raises(ValueError, match="at least one Subject"):
        SliceViewer({})
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        SliceViewer(subjects, axis=3)


def test_supervoxel_explorer_recomputes_on_slider_change(subjects):
    from slicreg_lite.supervoxels import body_mask

    image = subjects[38].image
    explorer = SupervoxelExplorer(image, body_mask(image), get_config("smoke").supervoxels)
    assert len(explorer._layers) == 1 and "127 supervoxels" in explorer.info.value
    assert explorer.compactness.value == 1.5  # the start is one of the slider's steps
    explorer.slice.value = 3  # only redraws
    assert explorer.live.wait(60)
    assert len(explorer._layers) == 1
    explorer.n_segments.value = 160  # recomputes the layer with the new parameter
    assert explorer.live.wait(60)
    assert len(explorer._layers) == 2
    assert (160, round(explorer.compactness.value, 4), 0) in explorer._layers
    assert explorer.ax.get_title().startswith("n_segments 160")


def test_teacher_explorer_registers_once_per_alpha(subjects):
    from slicreg_lite.display import TeacherExplorer

    cfg = get_config("smoke").teacher
    explorer = TeacherExplorer(subjects[1], subjects[38], cfg)
    assert len(explorer._fields) == 1 and "avg(4) Dice" in explorer.info.value
    assert len(explorer.fields()) == len(cfg.grid_spacings) + 1  # affine + each level
    explorer.level.value = 0
    assert explorer.live.wait(60)
    assert "affine" in explorer.info.value and len(explorer._fields) == 1
    assert explorer.alpha.value == cfg.regularisation  # the start is a step of the slider
    affine = explorer.fields()[0]
    explorer.alpha.value = 1.0  # a new weight: one more registration, the same affine step
    assert explorer.live.wait(60)
    assert len(explorer._fields) == 2 and explorer.info.value.startswith("alpha 1,")
    assert np.array_equal(explorer.fields()[0], affine)


def adam_panel(subjects):
    """Notebook 04's panel on two smoke subjects: an untrained network, the moving scan's
    own SLIC layers as its 'prediction'."""
    from slicreg_lite import alignment
    from slicreg_lite.display import AdamExplorer
    from slicreg_lite.methods import SlicReg
    from slicreg_lite.network.models import build_model
    from slicreg_lite.supervoxels import body_mask, slic_layers

    cfg = get_config("smoke")
    fixed, moving = subjects[38], subjects[1]
    layers = slic_layers(fixed.image, body_mask(fixed.image), cfg.supervoxels)
    torch.manual_seed(0)
    slicreg = SlicReg(fixed.image, layers, build_model("deeplab", "slic", cfg), cfg)
    moved_layers = slic_layers(moving.image, body_mask(moving.image), cfg.supervoxels)
    moving_scan = alignment.moving_scan(moved_layers, slicreg.template, cfg)
    return AdamExplorer(slicreg, moving_scan, fixed, moving), slicreg, cfg


def test_adam_sliders_register_again_and_update_dice_and_picture(subjects):

    explorer, _, cfg = adam_panel(subjects)
    first = (explorer.result, explorer.info.value)
    assert "avg(4) Dice" in first[1] and "folding" in first[1]
    assert explorer.alpha.value == cfg.adam.alpha  # the start is one of the slider's steps
    explorer.alpha.value = 5.0
    assert explorer.live.wait(60)
    assert explorer.result is not first[0]
    assert explorer.info.value != first[1] and "alpha 5" in explorer.info.value
    # a much stronger regulariser: a smoother keypoint field
    assert (edge_differences(explorer.result.keypoint_displacement, explorer.result.graph)
            < edge_differences(first[0].keypoint_displacement, first[0].graph))
    explorer.k.value = 3
    assert explorer.live.wait(60)
    assert explorer.result.graph.k == 3
    explorer.iterations.value = 10
    assert explorer.live.wait(60)
    assert len(explorer.result.losses["total"]) == 10
    registered = explorer.result
    explorer.slice.value = 3  # only redraws
    assert explorer.live.wait(60)
    assert explorer.result is registered
    assert explorer.ax.get_title().startswith("template (solid)")
    assert explorer.output.value[:8] == b"\x89PNG\r\n\x1a\n"  # the picture, as a PNG


def test_moves_made_while_busy_are_coalesced_into_the_latest():
    """Three moves during a slow update: the update runs once more, with the last value."""
    gate, seen = threading.Event(), []
    value = {"alpha": 0}

    def work():
        seen.append(value["alpha"])
        gate.wait(10)  # a slow registration

    live = LatestOnly(work)
    live.request()  # the first move starts the work ...
    time.sleep(0.05)
    assert live.busy and seen == [0]
    for alpha in (1, 2, 3):  # ... three more arrive while it runs
        value["alpha"] = alpha
        live.request()
    gate.set()
    assert live.wait(10) and not live.busy
    assert seen == [0, 3] and live.runs == 2  # 1 and 2 were never computed


def test_a_failing_update_is_reported_and_the_panel_stays_usable():
    errors, calls = [], []

    def work():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bad alpha")

    live = LatestOnly(work, on_error=errors.append)
    live.request()
    assert live.wait(10)
    assert [str(e) for e in errors] == ["bad alpha"] and not live.busy
    live.request()
    assert live.wait(10) and len(calls) == 2


def test_the_adam_panel_says_it_is_busy_and_computes_only_the_last_move(subjects):
    explorer, slicreg, _ = adam_panel(subjects)
    gate, aligned = threading.Event(), []
    align = slicreg.align

    def slow_align(scan, **settings):
        aligned.append(settings["alpha"])
        gate.wait(10)
        return align(scan, **settings)

    slicreg.align = slow_align
    explorer.alpha.value = 0.5
    time.sleep(0.05)
    assert explorer.live.busy and "registering with alpha 0.5" in explorer.info.value
    for alpha in (1.5, 5.0, 0.015):
        explorer.alpha.value = alpha
    gate.set()
    assert explorer.live.wait(60)
    assert aligned == [0.5, 0.015]
    assert explorer.info.value.startswith("alpha 0.015,") and "avg(4) Dice" in explorer.info.value


def test_the_adam_panel_starts_at_the_papers_loss_and_offers_the_centre_term(subjects):
    explorer, _, cfg = adam_panel(subjects)
    assert explorer.centre_weight.value == 0.0 and not explorer.centre_fit.value
    paper = explorer.result
    assert set(paper.losses) == {"total", "data", "regulariser"}  # the paper's loss
    explorer.centre_weight.value = 10.0
    assert explorer.live.wait(60)
    assert "centres" in explorer.result.losses and "centre weight 10" in explorer.info.value
    own_centres = explorer.result
    explorer.centre_fit.value = True
    assert explorer.live.wait(60)
    assert "(fitted)" in explorer.info.value and explorer.result is not own_centres
    assert explorer.settings()["centre_fit_step"] == cfg.centre_fit.centre_fit_step
