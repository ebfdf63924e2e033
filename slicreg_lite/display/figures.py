"""Figures for the notebooks: slices with organ overlays, checkerboards, deformation grids.

Orientation
    Volumes are RAS+ (see :mod:`slicreg_lite.core.spatial`): axis 0 runs from the patient's
    left to right, axis 1 from posterior to anterior, axis 2 from inferior to superior.
    :func:`view_slice` turns a slice into a 2D array for ``imshow(..., origin="upper")``
    in the radiological convention, as a radiologist would see it:

    ==========  ========  ==================  ================================
    view        ``axis``  top of the image    left of the image
    ==========  ========  ==================  ================================
    axial       2         anterior            the patient's right
    coronal     1         superior            the patient's right
    sagittal    0         superior            anterior
    ==========  ========  ==================  ================================

    In all three views the same rule holds: of the two remaining axes ``a < b``, ``b``
    runs from the top (high index) down and ``a`` from the left (high index) to the right.
    The voxels are assumed isotropic (as after pre-processing), so pixels are square.

Every function that draws takes an optional ``ax`` (a new figure when it is None) and
returns the Axes or Figure, so that notebooks can add titles, save or close it.
``matplotlib.pyplot`` is imported only when a figure is created.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.display import view_slice
>>> volume = np.zeros((4, 5, 6))
>>> volume[:, 4, :] = 1              # the most anterior plane
>>> view_slice(volume, axis=2)[0]    # the top row of the axial view
array([1., 1., 1., 1.])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.collections import LineCollection

from ..core.checks import check_labels, check_volume
from ..core.labels import LABEL_NAMES, NUM_LABELS
from .slices import (
    SOFT_TISSUE_WINDOW,
    VIEW_NAMES,
    _check_axis,
    _check_index,
    _check_window,
    _display_position,
    _in_plane_axes,
    _new_axes,
    add_organ_key,
    overlay_contours,
    show_slice,
    view_slice,
)


def show_supervoxels(image, segments, *, axis: int = 2, index: int | None = None, ax=None,
                     window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                     alpha: float = 0.35, title: str | None = None, seed: int = 0,
                     outlines: bool = True):
    """A CT slice with a segmentation: every segment in a random colour, white outlines.

    Works for supervoxel layers (labels 0..127) and for any integer segmentation, e.g.
    the intersection cells of several layers.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in HU (RAS+).
    segments : array_like of int, shape (D, H, W)
        0 = background (transparent), positive = segments.
    axis, index, ax, window, alpha, title
        As in :func:`show_slice`.
    seed : int
        Chooses the random colours (the same seed gives the same colours).
    outlines : bool
        Draw the segments' boundaries in white (turn off for many tiny segments).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from skimage.segmentation import find_boundaries

    image = check_volume(image, "image", finite=False)
    segments = check_volume(segments, "segments")
    if segments.shape != image.shape:
        raise ValueError(f"segments must have the image's shape {image.shape}; "
                         f"got {segments.shape}")
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    ax = show_slice(image, axis=axis, index=index, ax=ax, window=window, title=title)
    plane = view_slice(segments, axis, index).astype(np.int64)
    colours = np.random.default_rng(seed).uniform(0.15, 1.0, (int(plane.max()) + 1, 4))
    colours[:, 3] = alpha
    colours[0] = 0.0  # background stays transparent
    rgba = colours[plane]
    if outlines:
        rgba[find_boundaries(plane, mode="inner") & (plane > 0)] = (1.0, 1.0, 1.0, 0.9)
    ax.imshow(rgba, origin="upper", interpolation="nearest")
    return ax


def show_keypoints(image, points, *, axis: int = 2, index: int | None = None,
                   thickness: float = 1.5, ax=None,
                   window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                   title: str | None = None, **scatter):
    """A CT slice with the keypoints that lie within ``thickness`` voxels of it.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
    points : array_like, shape (N, 3)
        Voxel coordinates (d, h, w), e.g. supervoxel centres.
    thickness : float
        Half-thickness of the slab around the slice whose points are drawn.
    **scatter
        Passed to :meth:`matplotlib.axes.Axes.scatter` (``s``, ``c``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    image = check_volume(image, "image", finite=False)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    ax = show_slice(image, axis=axis, index=index, ax=ax, window=window, title=title)
    near = np.abs(points[:, axis] - index) <= thickness
    rows, columns = _display_position(image.shape, axis, points[near].T)
    ax.scatter(columns, rows, **{"s": 12, "c": "tab:orange", "edgecolors": "k",
                                 "linewidths": 0.4, **scatter})
    return ax


def show_tree(image, points, parents, *, axis: int = 1, index: int | None = None,
              thickness: float = 2.0, ax=None,
              window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
              title: str | None = None, color: str = "tab:orange"):
    """A CT slice with the edges of a tree over control points that lie near it.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
    points : array_like, shape (P, 3)
        Voxel coordinates of the tree's nodes (d, h, w).
    parents : array_like of int, shape (P,)
        Each node's parent (-1 for the root).
    thickness : float
        Only edges with both ends within this many voxels of the slice are drawn.

    Returns
    -------
    matplotlib.axes.Axes
    """
    image = check_volume(image, "image", finite=False)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    parents = np.asarray(parents)
    if parents.shape != (len(points),):
        raise ValueError(f"parents must have one entry per point ({len(points)}); "
                         f"got shape {parents.shape}")
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    ax = show_slice(image, axis=axis, index=index, ax=ax, window=window, title=title)
    child = np.flatnonzero(parents >= 0)
    near = (np.abs(points[child, axis] - index) <= thickness) & \
        (np.abs(points[parents[child], axis] - index) <= thickness)
    child = child[near]
    rows_a, columns_a = _display_position(image.shape, axis, points[child].T)
    rows_b, columns_b = _display_position(image.shape, axis, points[parents[child]].T)
    segments = np.stack([np.stack([columns_a, rows_a], -1), np.stack([columns_b, rows_b], -1)],
                        axis=1)
    ax.add_collection(LineCollection(segments, colors=color, linewidths=1.2))
    return ax


def show_keypoint_graph(image, points, edges, *, displacement=None, axis: int = 1,
                        index: int | None = None, thickness: float = 2.0, ax=None,
                        window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                        title: str | None = None, color: str = "tab:orange"):
    """A CT slice with the keypoints near it, their graph edges and (optionally) motion.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
    points : array_like, shape (N, 3)
        Voxel coordinates (d, h, w) of the keypoints.
    edges : array_like of int, shape (E, 2)
        Pairs of point indices (e.g. ``KeypointGraph.edges``).
    displacement : array_like, shape (N, 3), optional
        Each keypoint's displacement in voxels; its in-plane part is drawn as an arrow.
    thickness : float
        Only points (and edges with both ends) within this many voxels of the slice.

    Returns
    -------
    matplotlib.axes.Axes
    """
    image = check_volume(image, "image", finite=False)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    ax = show_slice(image, axis=axis, index=index, ax=ax, window=window, title=title)
    near = np.abs(points[:, axis] - index) <= thickness
    shown = edges[near[edges[:, 0]] & near[edges[:, 1]]]
    rows_a, columns_a = _display_position(image.shape, axis, points[shown[:, 0]].T)
    rows_b, columns_b = _display_position(image.shape, axis, points[shown[:, 1]].T)
    segments = np.stack([np.stack([columns_a, rows_a], -1), np.stack([columns_b, rows_b], -1)],
                        axis=1)
    ax.add_collection(LineCollection(segments, colors=color, linewidths=0.6, alpha=0.7))
    rows, columns = _display_position(image.shape, axis, points[near].T)
    ax.scatter(columns, rows, s=10, c=color, edgecolors="k", linewidths=0.3, zorder=3)
    if displacement is not None:
        motion = np.asarray(displacement, dtype=np.float64).reshape(-1, 3)
        if motion.shape != points.shape:
            raise ValueError(f"displacement must have the points' shape {points.shape}; "
                             f"got {motion.shape}")
        a, b = _in_plane_axes(axis)
        # display rows and columns run against axes b and a (see _display_position)
        ax.quiver(columns, rows, -motion[near, a], -motion[near, b], color="tab:cyan",
                  angles="xy", scale_units="xy", scale=1, width=0.004, zorder=4)
    return ax


# ------------------------------------------------------------------------ deformations
def show_deformation_grid(displacement, *, axis: int = 2, index: int | None = None,
                          step: int = 4, ax=None, background=None,
                          window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                          color: str = "tab:orange", linewidth: float = 0.8,
                          title: str | None = None):
    """Grid lines deformed by a displacement field, in one slice.

    A regular grid with a line every ``step`` voxels is drawn at the positions
    ``x + u(x)`` (the in-plane components of ``u``): where each point of the fixed grid
    reads from the moving image. Straight, evenly spaced lines mean no deformation;
    crossing lines mean folding. The orientation matches :func:`view_slice`.

    Parameters
    ----------
    displacement : array_like, shape (3, D, H, W)
        Voxel displacements in (d, h, w) order (:mod:`slicreg_lite.core.spatial`).
    axis, index
        The slice, see :func:`view_slice`.
    step : int
        Distance between grid lines, in voxels.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    background : array_like, shape (D, H, W), optional
        A volume drawn in grey underneath (e.g. the moving image).
    window : (float, float) or None
        Grey window of the background, see :func:`show_slice`.
    color, linewidth
        Style of the grid lines.
    title : str, optional
        By default "deformation, <view> <index>".

    Returns
    -------
    matplotlib.axes.Axes
        The lines are one :class:`matplotlib.collections.LineCollection` in
        ``ax.collections``.

    Raises
    ------
    ValueError
        For a field that is not ``(3, D, H, W)`` or not finite, a background of another
        shape, a bad axis or index, or ``step < 1``.
    """
    field = np.asarray(displacement, dtype=np.float64)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W) in voxels; "
                         f"got {field.shape}")
    if not np.isfinite(field).all():
        raise ValueError("displacement contains NaN or Inf values; expected finite numbers")
    shape = field.shape[1:]
    axis = _check_axis(axis)
    index = _check_index(index, shape[axis])
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be a positive integer (voxels); got {step!r}")
    a, b = _in_plane_axes(axis)

    # Voxel coordinates x + u(x) of the slice's points; each array has axes (a, b).
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    moved = [np.take(grid[i] + field[i], index, axis=axis) for i in range(3)]
    rows, columns = _display_position(shape, axis, moved)
    points = np.stack([columns, rows], axis=-1)  # matplotlib wants (x, y) = (column, row)
    lines = [points[i, :] for i in range(0, shape[a], step)]  # constant a, along b
    lines += [points[:, j] for j in range(0, shape[b], step)]  # constant b, along a

    ax = _new_axes(ax)
    if background is not None:
        background = check_volume(background, "background", finite=False)
        if background.shape != shape:
            raise ValueError(f"background must have the field's spatial shape {shape}; "
                             f"got {background.shape}")
        low, high = _check_window(window) or (None, None)
        ax.imshow(view_slice(background, axis, index), cmap="gray", vmin=low, vmax=high,
                  origin="upper", interpolation="nearest")
    ax.add_collection(LineCollection(lines, colors=color, linewidths=linewidth))
    # The same frame as imshow(origin="upper"): row 0 at the top.
    ax.set_xlim(-0.5, shape[a] - 0.5)
    ax.set_ylim(shape[b] - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_title(f"deformation, {VIEW_NAMES[axis]} {index}" if title is None else title)
    ax.set_axis_off()
    return ax


# ---------------------------------------------------------------------------- extras
def show_error_map(image, error_mm, labels=None, *, axis: int = 2, index: int | None = None,
                   ax=None, vmax: float | None = None, mask=None, title: str | None = None):
    """A CT slice in grey with a per-voxel error (mm) in colour and the organs outlined.

    For the endpoint error against the phantom's true field
    (:func:`slicreg_lite.core.metrics.endpoint_error_map`), or any other map in mm.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in HU (RAS+).
    error_mm : array_like, shape (D, H, W)
        The error at every voxel, in mm.
    labels : array_like, shape (D, H, W), optional
        Organ labels (``0..13``) to outline.
    axis, index : int
        The slice (see :func:`view_slice`).
    ax : matplotlib.axes.Axes, optional
    vmax : float, optional
        The error shown in the brightest colour; the 99th percentile by default.
    mask : array_like of bool, shape (D, H, W), optional
        Colour the error only here (e.g. the body).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
        With a colour bar in mm.
    """
    image = check_volume(image, "image", finite=False)
    error = check_volume(error_mm, "error_mm")
    if error.shape != image.shape:
        raise ValueError(f"error_mm must have the image's shape {image.shape}; got {error.shape}")
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    ax = show_slice(image, axis=axis, index=index, ax=ax, title=title)
    shown = np.ma.masked_array(view_slice(error, axis, index))
    if mask is not None:
        mask = check_volume(np.asarray(mask, bool), "mask")
        shown.mask = ~view_slice(mask, axis, index).astype(bool)
    vmax = float(np.percentile(error, 99)) if vmax is None else float(vmax)
    drawn = ax.imshow(shown, cmap="magma", vmin=0, vmax=max(vmax, 1e-6), alpha=0.75,
                      origin="upper", interpolation="nearest")
    ax.figure.colorbar(drawn, ax=ax, fraction=0.046, pad=0.04, label="error (mm)")
    if labels is not None:
        labels = check_labels(labels, image.shape, "labels")
        overlay_contours(ax, view_slice(labels, axis, index), linewidth=1.0)
    return ax


def show_dice_boxplots(table, *, methods: Sequence[str] | None = None,
                       labels: Sequence[int] | None = None, ax=None,
                       title: str | None = None):
    """Box plots of Dice per organ: one group per organ, one box per method.

    Parameters
    ----------
    table : DiceTable
        Per-subject scores of every method (:class:`slicreg_lite.core.dice_table.DiceTable`).
    methods : sequence of str, optional
        Which methods, in this order; all by default.
    labels : sequence of int, optional
        Organ label numbers (1..13); all 13 by default.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    methods = list(table.methods if methods is None else methods)
    labels = list(range(1, NUM_LABELS + 1) if labels is None else labels)
    if not methods:
        raise ValueError("the table holds no method; nothing to draw")
    ax = _new_axes(ax, figsize=(max(8.0, 1.1 * len(labels)), 4.5))
    width = 0.8 / len(methods)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m, method in enumerate(methods):
        scores = table.scores(method) * 100.0  # (n_subjects, 13)
        data = [scores[:, label - 1][np.isfinite(scores[:, label - 1])] for label in labels]
        positions = np.arange(len(labels)) + (m - (len(methods) - 1) / 2) * width
        colour = colours[m % len(colours)]
        ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                   showfliers=False, boxprops={"facecolor": colour, "alpha": 0.6},
                   medianprops={"color": "black"}, manage_ticks=False)
        ax.plot([], [], color=colour, linewidth=6, alpha=0.6, label=method)  # legend entry
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels([LABEL_NAMES[label - 1] for label in labels], rotation=45, ha="right")
    ax.set_ylabel("Dice (%)")
    ax.set_ylim(0, 100)
    # beside the plot, not over the boxes
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title is not None:
        ax.set_title(title)
    return ax


def show_method_overlays(image, reference_labels, warped: dict, *, axis: int = 2,
                         index: int | None = None, ncols: int = 3):
    """One panel per method: its warped labels over the fixed scan, reference as outlines.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        The fixed scan (the template) in HU.
    reference_labels : array_like, shape (D, H, W)
        The fixed scan's own labels, drawn as outlines.
    warped : dict
        ``method name -> label map`` (the moving scan's labels warped onto ``image``).
    axis, index : int
        The slice (see :func:`view_slice`); by default the middle of ``axis``.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not warped:
        raise ValueError("warped holds no method; nothing to draw")
    image = check_volume(image, "image", finite=False)
    reference_labels = check_labels(reference_labels, image.shape, "reference_labels")
    nrows = int(np.ceil(len(warped) / ncols))
    figure, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows + 0.6),
                                squeeze=False, layout="constrained")
    for ax, (method, labels) in zip(axes.ravel(), warped.items()):
        show_slice(image, labels, axis=axis, index=index, ax=ax, title=method)
        overlay_contours(ax, view_slice(reference_labels, axis, index), linewidth=0.8)
        ax.title.set_fontsize("small")
    for ax in axes.ravel()[len(warped):]:
        ax.set_axis_off()
    add_organ_key(figure, [reference_labels, *warped.values()])
    return figure
