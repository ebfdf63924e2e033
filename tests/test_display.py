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
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.text import Text

from slicreg_lite import display
from slicreg_lite.core.config import get_config
from slicreg_lite.core.dice_table import DiceTable
from slicreg_lite.core.labels import (
    ALL_LABELS,
    LABEL_NAMES,
    LARGE_ORGANS,
    NUM_LABELS,
    ORGAN_GROUPS,
)

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


def test_show_error_map_colour_bar_label(ct, organs):
    error = np.abs(ct) / 100.0
    ax = display.show_error_map(ct, error, organs, index=4)
    assert ax.get_images()[-1].colorbar.ax.get_ylabel() == "error (mm)"  # the default
    ax = display.show_error_map(ct, np.clip(error / error.max(), 0, 1), label="entropy (0..1)",
                                vmax=1.0, title="network entropy")
    drawn = ax.get_images()[-1]
    assert drawn.colorbar.ax.get_ylabel() == "entropy (0..1)"
    assert drawn.get_clim() == (0.0, 1.0)
    assert ax.get_title() == "network entropy"


# ------------------------------------------------------------------------- the box plots
FIVE_METHODS = ("initial, not registered", "PDD-Net, two warps", "3D DeepLab + regression + RW",
                "Slic-Reg (paper): 3D DeepLab + Slic + Adam",
                "Slic-Reg + centre fit (this toolkit)")


def dice_table(methods=FIVE_METHODS, subjects=(1, 4, 7, 10, 23, 26, 29, 32, 35),
               label_names=None) -> DiceTable:
    """A table of random scores; label 4 (gallbladder) is absent in subject 4."""
    rng = np.random.default_rng(7)
    table = DiceTable() if label_names is None else DiceTable(label_names=label_names)
    for method in methods:
        for subject in subjects:
            scores = rng.uniform(0.0, 1.0, len(table.labels))
            if subject == 4 and 4 in table.labels:
                scores[table.labels.index(4)] = np.nan
            table.add(method, subject, scores)
    return table


def tick_names(ax) -> list[str]:
    """The x tick labels of a panel, line breaks undone."""
    return [" ".join(label.get_text().split()) for label in ax.get_xticklabels()]


def boxes(ax) -> int:
    return sum(isinstance(patch, PathPatch) for patch in ax.patches)


def test_organ_groups_cover_every_organ_once():
    numbers = [n for group in ORGAN_GROUPS.values() for n in group]
    assert sorted(numbers) == list(ALL_LABELS)
    assert ORGAN_GROUPS["the four large organs (avg(4))"] == LARGE_ORGANS


def test_dice_boxplots_one_panel_per_organ_group():
    figure = display.show_dice_boxplots(dice_table(), title="Dice per organ and method")
    assert isinstance(figure, Figure)
    panels = figure.axes
    assert len(panels) == len(ORGAN_GROUPS)
    assert [ax.get_title() for ax in panels] == list(ORGAN_GROUPS)
    for ax, numbers in zip(panels, ORGAN_GROUPS.values()):
        assert tick_names(ax) == [LABEL_NAMES[n - 1] for n in numbers]
        assert boxes(ax) == len(FIVE_METHODS) * len(numbers)  # one per method and organ
        assert ax.get_shared_y_axes().joined(panels[0], ax)
        low, high = ax.get_ylim()
        assert low <= 0 and 100 <= high <= 105
    assert panels[0].get_ylabel() == "Dice (%)"
    (legend,) = figure.legends  # one legend for the whole figure, none per panel
    assert [text.get_text() for text in legend.get_texts()] == list(FIVE_METHODS)
    assert all(ax.get_legend() is None for ax in panels)
    assert figure.get_suptitle() == "Dice per organ and method"
    width, height = figure.get_size_inches()
    assert 8 <= width <= 16 and height <= 6  # readable at 100 dpi
    figure.canvas.draw()  # lays out without error (legend outside the panels)
    legend_box = legend.get_window_extent()
    assert all(not legend_box.overlaps(ax.get_window_extent()) for ax in panels)


def test_dice_boxplots_methods_groups_and_labels():
    table = dice_table()
    chosen = [FIVE_METHODS[3], FIVE_METHODS[0]]
    figure = display.show_dice_boxplots(table, methods=chosen,
                                        groups={"kidneys": (2, 3), "liver": [6]})
    assert [ax.get_title() for ax in figure.axes] == ["kidneys", "liver"]
    assert tick_names(figure.axes[0]) == ["right kidney", "left kidney"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == chosen
    assert [boxes(ax) for ax in figure.axes] == [4, 2]
    single = display.show_dice_boxplots(table, labels=(6, 1))  # one panel, no title
    assert len(single.axes) == 1 and single.axes[0].get_title() == ""
    assert tick_names(single.axes[0]) == ["liver", "spleen"]


def test_dice_boxplots_absent_organ_and_other_label_sets():
    table = dice_table(subjects=(4,))  # the gallbladder is absent: no box, no error
    figure = display.show_dice_boxplots(table, groups={"g": (4, 7)})
    assert boxes(figure.axes[0]) == len(FIVE_METHODS)
    other = dice_table(methods=("a", "b"), label_names={1: "liver", 2: "tumour"})
    figure = display.show_dice_boxplots(other)  # not BTCV: one panel of its labels
    assert len(figure.axes) == 1 and tick_names(figure.axes[0]) == ["liver", "tumour"]


@pytest.mark.parametrize("arguments, message", [
    ({"groups": {"kidneys": (2, 14)}},
     r"groups\['kidneys'\] holds 14, which is not a label of the table; expected label "
     r"numbers of the table"),
    ({"groups": {"kidneys": ()}}, r"groups\['kidneys'\] is empty; expected at least one"),
    ({"groups": {}}, r"groups must be a non-empty dict of group name -> label numbers"),
    ({"groups": {"x": (2, 2)}}, r"groups\['x'\] names a label twice"),
    ({"labels": []}, r"labels is empty; expected at least one of the label numbers"),
    ({"labels": (1,), "groups": {"x": (2,)}}, r"give groups .* or labels .*, not both"),
    ({"methods": []}, r"methods must name at least one method of the table; expected some "
                      r"of \['initial, not registered'"),
    ({"methods": ["deeds"]}, r"unknown method 'deeds' in methods; expected some of"),
    ({"methods": "PDD-Net, two warps"}, r"methods must be a sequence of method names"),
])
def test_dice_boxplots_reject_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        display.show_dice_boxplots(dice_table(), **arguments)


def test_dice_boxplots_reject_an_empty_table():
    with pytest.raises(ValueError, match="the table holds no method; nothing to draw"):
        display.show_dice_boxplots(DiceTable())


# ------------------------------------------------------------------------- the pipeline
STEP_NAMES = ("0 scans", "1 supervoxels", "2 teacher", "3 network", "4 Adam", "5 field")


def pipeline_texts(figure) -> list[str]:
    """Every text of the figure, line breaks and non-breaking spaces made plain spaces."""
    return [" ".join(text.get_text().split()) for text in figure.findobj(Text)
            if text.get_text().strip()]


@pytest.mark.parametrize("preset", [None, "smoke"])
def test_show_pipeline_draws_the_six_steps(preset):
    figure = display.show_pipeline(None if preset is None else get_config(preset))
    assert isinstance(figure, Figure)
    texts = pipeline_texts(figure)
    for name in STEP_NAMES:
        assert name in texts
    for notebook in range(6):
        assert f"notebook {notebook:02d}" in texts
    assert "once, offline (training)" in texts and "per new scan (registration)" in texts
    assert np.allclose(figure.get_size_inches(), (12, 4))


def test_show_pipeline_captions_carry_the_presets_numbers():
    cfg = get_config("smoke")
    layers, per_layer = cfg.supervoxels.n_layers, cfg.supervoxels.n_supervoxels - 1
    everything = " ".join(pipeline_texts(display.show_pipeline(cfg)))
    for part in (f"{layers} layers of {per_layer} supervoxels (+ background)",
                 f"{layers * per_layer} keypoints ({layers} × {per_layer})",
                 f"{cfg.adam.iterations} iterations", f"(k = {cfg.adam.k})",
                 f"({cfg.training.iterations} training iterations)", "preset 'smoke'"):
        assert part in everything
    generic = " ".join(pipeline_texts(display.show_pipeline()))
    assert "L layers of K supervoxels" in generic and "N = L × K keypoints" in generic
    assert str(layers * per_layer) not in generic and "preset" not in generic


@pytest.mark.parametrize("preset", [None, "smoke", "paper"])
def test_show_pipeline_texts_neither_overlap_nor_leave_their_boxes(preset):
    figure = display.show_pipeline(None if preset is None else get_config(preset))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (ax,) = figure.axes
    texts = [text for text in ax.texts if text.get_text().strip()]
    extents = [text.get_window_extent(renderer) for text in texts]
    for (a, box_a), (b, box_b) in itertools.combinations(zip(texts, extents), 2):
        assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())
    whole = figure.bbox
    for text, extent in zip(texts, extents):
        assert whole.x0 <= extent.x0 and extent.x1 <= whole.x1, text.get_text()
        assert whole.y0 <= extent.y0 and extent.y1 <= whole.y1, text.get_text()
    steps = [patch for patch in ax.patches if isinstance(patch, FancyBboxPatch)]
    assert len(steps) == len(STEP_NAMES)
    for step in steps:
        frame = step.get_window_extent(renderer)
        inside = [extent for extent in extents
                  if frame.contains(*extent.get_points().mean(axis=0))]
        assert len(inside) == 3  # the step's name, its notebook and its caption
        for extent in inside:
            assert (frame.x0 < extent.x0 and extent.x1 < frame.x1
                    and frame.y0 < extent.y0 and extent.y1 < frame.y1)


def test_show_pipeline_into_an_axes_and_bad_cfg():
    figure, ax = plt.subplots(figsize=(12, 4))
    assert display.show_pipeline(ax=ax) is figure
    assert not ax.axison
    with pytest.raises(TypeError, match=r"cfg must be a slicreg_lite\.core\.config\.Config"):
        display.show_pipeline("smoke")
