"""Tests of slicreg_lite.display: orientation, checkerboards and the figure helpers."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from slicreg_lite import display
from slicreg_lite.core.labels import NUM_LABELS

matplotlib.use("Agg")  # draw off-screen: tests have no display

SHAPE = (10, 8, 12)  # small, and different along every axis to catch transposes


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def ct() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 200.0, SHAPE).astype(np.float32)


@pytest.fixture
def organs() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:5, 2:5, 3:9] = 6  # liver
    labels[6:8, 1:3, 4:6] = 2  # right kidney
    return labels


# ---------------------------------------------------------------------------- orientation
def marker_volume(position) -> np.ndarray:
    volume = np.zeros(SHAPE)
    volume[position] = 1.0
    return volume


def marker_in_view(position, axis) -> tuple[int, int]:
    """(row, column) where a single bright voxel appears in the view."""
    view = display.view_slice(marker_volume(position), axis=axis, index=position[axis])
    rows, columns = np.nonzero(view)
    return int(rows[0]), int(columns[0])


def test_axial_view_anterior_top_patient_right_on_viewer_left():
    view = display.view_slice(np.zeros(SHAPE), axis=2)
    assert view.shape == (SHAPE[1], SHAPE[0])  # rows: posterior-anterior, columns: L-R
    last_d, last_h = SHAPE[0] - 1, SHAPE[1] - 1
    # most anterior (high axis 1) and most right (high axis 0): the top-left corner.
    assert marker_in_view((last_d, last_h, 5), axis=2) == (0, 0)
    # most posterior and most left: the bottom-right corner.
    assert marker_in_view((0, 0, 5), axis=2) == (last_h, last_d)


def test_coronal_view_superior_top_patient_right_on_viewer_left():
    assert display.view_slice(np.zeros(SHAPE), axis=1).shape == (SHAPE[2], SHAPE[0])
    assert marker_in_view((SHAPE[0] - 1, 3, SHAPE[2] - 1), axis=1) == (0, 0)
    assert marker_in_view((0, 3, 0), axis=1) == (SHAPE[2] - 1, SHAPE[0] - 1)


def test_sagittal_view_superior_top_anterior_on_the_left():
    assert display.view_slice(np.zeros(SHAPE), axis=0).shape == (SHAPE[2], SHAPE[1])
    assert marker_in_view((4, SHAPE[1] - 1, SHAPE[2] - 1), axis=0) == (0, 0)
    assert marker_in_view((4, 0, 0), axis=0) == (SHAPE[2] - 1, SHAPE[1] - 1)


def test_view_slice_middle_by_default_and_copies():
    volume = np.arange(np.prod(SHAPE), dtype=float).reshape(SHAPE)
    np.testing.assert_array_equal(display.view_slice(volume, 2),
                                  display.view_slice(volume, 2, SHAPE[2] // 2))
    view = display.view_slice(volume, 0, 1)
    view[:] = -1
    assert volume.min() == 0  # the volume is untouched


@pytest.mark.parametrize("volume, axis, index, message", [
    (np.zeros((4, 4)), 2, None, r"volume must be a 3D array .*got shape \(4, 4\)"),
    (np.zeros(SHAPE), 3, None, r"axis must be 0 \(sagittal\), 1 \(coronal\) or 2 .*got 3"),
    (np.zeros(SHAPE), 2, SHAPE[2], rf"index must be in 0\.\.{SHAPE[2] - 1}; got {SHAPE[2]}"),
    (np.zeros(SHAPE), 2, -1, r"index must be in 0\.\.11; got -1"),
    (np.zeros(SHAPE), 1, 2.5, r"index must be an integer or None; got 2\.5"),
])
def test_view_slice_rejects_bad_input(volume, axis, index, message):
    with pytest.raises(ValueError, match=message):
        display.view_slice(volume, axis, index)


# --------------------------------------------------------------------------------- colours
def test_label_colors_distinct_and_background_transparent():
    colors = np.array(display.LABEL_COLORS)
    assert colors.shape == (NUM_LABELS + 1, 4)
    assert colors[0, 3] == 0.0 and (colors[1:, 3] == 1.0).all()
    closest = min(np.linalg.norm(colors[i, :3] - colors[j, :3])
                  for i, j in itertools.combinations(range(1, NUM_LABELS + 1), 2))
    assert closest > 0.25
    colormap = display.label_colormap()
    assert isinstance(colormap, ListedColormap) and colormap.N == NUM_LABELS + 1


# ----------------------------------------------------------------------------- slice views
def test_show_slice_draws_image_and_overlay(ct, organs):
    ax = display.show_slice(ct, organs, axis=1, index=3)
    assert isinstance(ax, Axes)
    image, overlay = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), display.view_slice(ct, 1, 3))
    np.testing.assert_array_equal(overlay.get_array(), display.view_slice(organs, 1, 3))
    assert image.get_clim() == (-200.0, 300.0)
    assert ax.get_title() == "coronal 3"
    assert len(display.show_slice(ct, window=None, title="x").get_images()) == 1


def test_show_slice_rejects_bad_input(ct, organs):
    with pytest.raises(ValueError, match=r"labels must have the image's shape"):
        display.show_slice(ct, organs[:, :, :5])
    with pytest.raises(ValueError, match=r"labels must have values in 0\.\.13; got .*20"):
        display.show_slice(ct, organs + 20)
    with pytest.raises(ValueError, match=r"window must be \(low, high\) with low < high"):
        display.show_slice(ct, window=(300, -200))
    with pytest.raises(ValueError, match="image must be a 3D array"):
        display.show_slice(ct[0])


def test_show_orthogonal_three_views(ct, organs):
    figure = display.show_orthogonal(ct, organs, point=(1, 2, 3))
    assert isinstance(figure, Figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["axial 3", "coronal 2", "sagittal 1"]
    shapes = [ax.get_images()[0].get_array().shape for ax in figure.axes]
    assert shapes == [(SHAPE[1], SHAPE[0]), (SHAPE[2], SHAPE[0]), (SHAPE[2], SHAPE[1])]
    with pytest.raises(ValueError, match=r"point\[1\] must be in 0\.\.7; got 8"):
        display.show_orthogonal(ct, point=(1, 8, 3))
    with pytest.raises(ValueError, match=r"point must be 3 voxel indices"):
        display.show_orthogonal(ct, point=(1, 2))


def test_show_subjects_side_by_side(ct, organs):
    figure = display.show_subjects([ct, ct + 1], [organs, None], ["#1", "#38"], index=4)
    assert isinstance(figure, Figure)
    assert [ax.get_title() for ax in figure.axes] == ["#1", "#38"]
    assert [len(ax.get_images()) for ax in figure.axes] == [2, 1]
    with pytest.raises(ValueError, match=r"titles must have one entry per image \(2\); got 1"):
        display.show_subjects([ct, ct], titles=["only one"])
    with pytest.raises(ValueError, match="images must hold at least one volume"):
        display.show_subjects([])


# --------------------------------------------------------------------------- checkerboard
def test_checkerboard_exact_pattern():
    a = np.zeros((3, 5), dtype=int)
    b = np.ones((3, 5), dtype=int)
    # 3 x 5 pixels in 2 x 2 tiles: rows split 2 + 1, columns 3 + 2.
    expected = np.array([[0, 0, 0, 1, 1],
                         [0, 0, 0, 1, 1],
                         [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(display.checkerboard(a, b, tiles=2), expected)
    np.testing.assert_array_equal(display.checkerboard(a, b, tiles=1), a)
    pixels = display.checkerboard(a, b, tiles=3)
    assert pixels[0, 0] == 0 and pixels[0, 4] == 0 and pixels[1, 2] == 0 and pixels[1, 0] == 1


def test_checkerboard_rejects_bad_input():
    with pytest.raises(ValueError, match=r"a \(2, 2\) and b \(2, 3\)"):
        display.checkerboard(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"b must be a 2D slice; got shape \(2, 2, 2\)"):
        display.checkerboard(np.zeros((2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"tiles must be an integer in 1\.\.2 .*got 3"):
        display.checkerboard(np.zeros((2, 2)), np.zeros((2, 2)), tiles=3)


def test_show_checkerboard(ct):
    ax = display.show_checkerboard(ct, -ct, axis=0, index=2, tiles=4)
    shown = ax.get_images()[0].get_array()
    expected = display.checkerboard(display.view_slice(ct, 0, 2), display.view_slice(-ct, 0, 2), 4)
    np.testing.assert_array_equal(shown, expected)
    with pytest.raises(ValueError, match=r"moving must have the shape of fixed"):
        display.show_checkerboard(ct, ct[:5])


# ------------------------------------------------------------------------------- the grid
def grid_lines(ax) -> list[np.ndarray]:
    (collection,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    return collection.get_segments()


def test_deformation_grid_of_zero_field_is_regular():
    ax = display.show_deformation_grid(np.zeros((3, *SHAPE)), axis=2, step=4)
    lines = grid_lines(ax)
    # axial view: lines at d = 0, 4, 8 (3 of them) and at h = 0, 4 (2 of them).
    assert len(lines) == 3 + 2
    first = lines[0]  # d = 0: the patient's left, i.e. the rightmost column
    np.testing.assert_allclose(first[:, 0], SHAPE[0] - 1)
    np.testing.assert_allclose(first[:, 1], np.arange(SHAPE[1])[::-1])
    assert ax.get_ylim() == (SHAPE[1] - 0.5, -0.5)  # row 0 at the top, like imshow


def test_deformation_grid_follows_view_orientation(ct):
    field = np.zeros((3, *SHAPE))
    field[1] = 2.0  # two voxels towards anterior: up in the axial view
    field[0] = 1.0  # one voxel towards the patient's right: left in the axial view
    lines = grid_lines(display.show_deformation_grid(field, axis=2, step=4, background=ct))
    still = grid_lines(display.show_deformation_grid(np.zeros_like(field), axis=2, step=4))
    for moved, regular in zip(lines, still):
        np.testing.assert_allclose(moved - regular, np.broadcast_to([-1.0, -2.0], moved.shape))


def test_deformation_grid_rejects_bad_input(ct):
    with pytest.raises(ValueError, match=r"displacement must have shape \(3, D, H, W\)"):
        display.show_deformation_grid(np.zeros(SHAPE))
    with pytest.raises(ValueError, match=r"index must be in 0\.\.11; got 12"):
        display.show_deformation_grid(np.zeros((3, *SHAPE)), index=12)
    with pytest.raises(ValueError, match="step must be a positive integer"):
        display.show_deformation_grid(np.zeros((3, *SHAPE)), step=0)
    with pytest.raises(ValueError, match="background must have the field's spatial shape"):
        display.show_deformation_grid(np.zeros((3, *SHAPE)), background=ct[:4])
    field = np.zeros((3, *SHAPE))
    field[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="displacement contains NaN or Inf"):
        display.show_deformation_grid(field)


# -------------------------------------------------------------------------------- extras
def test_overlay_contours_one_set_per_label(ct, organs):
    ax = display.show_slice(ct, axis=2, index=4)
    labels_2d = display.view_slice(organs, axis=2, index=4)  # liver and right kidney
    before = len(ax.collections)
    assert display.overlay_contours(ax, labels_2d, linestyle="dashed") is ax
    assert len(ax.collections) - before == 2
    with pytest.raises(ValueError, match=r"labels_2d must be a 2D label slice"):
        display.overlay_contours(ax, organs)
    with pytest.raises(ValueError, match=r"labels_2d must have values in 0\.\.13"):
        display.overlay_contours(ax, labels_2d + 14)
