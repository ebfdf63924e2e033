"""The slice viewer redraws when a control changes (driven from Python)."""

import matplotlib
import numpy as np
import pytest

from slicreg_lite.config import get_config
from slicreg_lite.phantom import generate_subject
from slicreg_lite.viz import view_slice
from slicreg_lite.widgets import SliceViewer

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def subjects():
    cfg = get_config("smoke").phantom
    return {i: generate_subject(i, cfg) for i in (1, 38)}


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
