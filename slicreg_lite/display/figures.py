"""Figures for the notebooks: the pipeline at a glance, supervoxels, keypoints and their
graph, deformation grids, error maps, the table's box plots and each method's overlay.

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

from typing import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.collections import LineCollection

from ..core.checks import check_labels, check_volume
from ..core.config import Config
from ..core.labels import ORGAN_GROUPS
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
                   ax=None, vmax: float | None = None, mask=None, title: str | None = None,
                   label: str = "error (mm)"):
    """A CT slice in grey with a non-negative per-voxel map in colour, the organs outlined.

    Made for the endpoint error against the phantom's true field
    (:func:`slicreg_lite.core.metrics.endpoint_error_map`), it draws any non-negative map
    (notebook 04 shows the network's entropy, 0..1, and the spread of the supervoxel
    centres, in mm); name what is shown with ``label``. The colours run from 0 (dark) to
    ``vmax`` (bright); values below 0 would take the darkest colour.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in HU (RAS+).
    error_mm : array_like, shape (D, H, W)
        The value at every voxel: the error in mm, or any other non-negative quantity.
    labels : array_like, shape (D, H, W), optional
        Organ labels (``0..13``) to outline.
    axis, index : int
        The slice (see :func:`view_slice`).
    ax : matplotlib.axes.Axes, optional
    vmax : float, optional
        The value shown in the brightest colour; the 99th percentile by default.
    mask : array_like of bool, shape (D, H, W), optional
        Colour the map only here (e.g. the body).
    title : str, optional
    label : str
        The colour bar's label, with the unit: ``"error (mm)"`` by default, e.g.
        ``"entropy (0..1)"`` or ``"spread (mm)"``.

    Returns
    -------
    matplotlib.axes.Axes
        With a colour bar labelled ``label``.
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
    ax.figure.colorbar(drawn, ax=ax, fraction=0.046, pad=0.04, label=str(label))
    if labels is not None:
        labels = check_labels(labels, image.shape, "labels")
        overlay_contours(ax, view_slice(labels, axis, index), linewidth=1.0)
    return ax


def _check_methods(table, methods) -> list[str]:
    """The methods to draw, in order, each one of the table's."""
    known = list(table.methods)
    if not known:
        raise ValueError("the table holds no method; nothing to draw (fill it with "
                         "DiceTable.add first)")
    if methods is None:
        return known
    if isinstance(methods, str):
        raise ValueError(f"methods must be a sequence of method names, not one string; "
                         f"got {methods!r} (write [{methods!r}])")
    methods = list(methods)
    if not methods:
        raise ValueError(f"methods must name at least one method of the table; expected "
                         f"some of {known}; got []")
    for method in methods:
        if method not in known:
            raise ValueError(f"unknown method {method!r} in methods; expected some of "
                             f"{known}")
    return methods


def _check_organ_groups(table, groups, labels) -> dict[str, tuple[int, ...]]:
    """The panels to draw: group name -> label numbers, each number one of the table's."""
    if groups is not None and labels is not None:
        raise ValueError("give groups (several panels) or labels (one panel), not both")
    if labels is not None:
        name = "labels"
        groups = {"": labels}
    elif groups is None:
        return dict(ORGAN_GROUPS) if table.is_btcv else {"": table.labels}
    else:
        name = "groups"
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty dict of group name -> label numbers, "
                         f"e.g. {{'kidneys': (2, 3)}}; got {groups!r}")
    valid = f"label numbers of the table: {table.label_names}"
    checked = {}
    for group, numbers in groups.items():
        where = "labels" if name == "labels" else f"groups[{group!r}]"
        if isinstance(numbers, (str, bytes)) or not isinstance(numbers, Iterable):
            raise ValueError(f"{where} must be a sequence of {valid}; got {numbers!r}")
        numbers = tuple(numbers)
        if not numbers:
            raise ValueError(f"{where} is empty; expected at least one of the {valid}")
        for number in numbers:
            if (isinstance(number, (bool, np.bool_))
                    or not isinstance(number, (int, np.integer))
                    or int(number) not in table.label_names):
                raise ValueError(f"{where} holds {number!r}, which is not a label of the "
                                 f"table; expected {valid}")
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"{where} names a label twice: {numbers}")
        checked[str(group)] = tuple(int(n) for n in numbers)
    return checked


def _method_colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10 methods, tab20 up to 20, then a rainbow."""
    import matplotlib

    if n <= 10:
        return list(matplotlib.colormaps["tab10"].colors[:n])
    if n <= 20:
        tab20 = matplotlib.colormaps["tab20"].colors
        return list((tab20[0::2] + tab20[1::2])[:n])  # the dark ten first
    return list(matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n)))


def show_dice_boxplots(table, *, methods: Sequence[str] | None = None,
                       groups: Mapping[str, Sequence[int]] | None = None,
                       labels: Sequence[int] | None = None, title: str | None = None,
                       figsize: tuple[float, float] | None = None):
    """Box plots of Dice per organ: one panel per organ group, one box per method.

    The panels stand in one row and share the y axis (Dice, 0..100%); each panel's x axis
    holds the organs of its group, and every organ one box per method (the spread over
    the subjects; the line in a box is the median). One legend below the panels names the
    methods.

    Parameters
    ----------
    table : DiceTable
        Per-subject scores of every method (:class:`slicreg_lite.core.dice_table.DiceTable`).
    methods : sequence of str, optional
        Which methods, in this order; all, in the table's order, by default.
    groups : dict of str -> sequence of int, optional
        The panels: title -> label numbers of the table, drawn in this order. By default
        :data:`slicreg_lite.core.labels.ORGAN_GROUPS` for the 13 BTCV organs (the four
        large organs of avg(4), other organs, vessels and oesophagus, adrenal glands), and
        one panel of every label for any other label set.
    labels : sequence of int, optional
        Instead of ``groups``: one panel of these label numbers (no panel title).
    title : str, optional
        The figure's title.
    figsize : (float, float), optional
        In inches, without the legend; by default 4 inches high and about 0.9 inch wide
        per organ for 5 methods (wider for more methods): readable at 100 dpi.

    Returns
    -------
    matplotlib.figure.Figure
        ``figure.axes[:len(groups)]`` are the panels, in the order of ``groups``;
        ``figure.legends[0]`` is the legend of the methods.

    Raises
    ------
    ValueError
        If the table holds no method, ``methods`` is empty or names a method the table
        does not hold, a group is empty or holds a number that is not one of the table's
        labels, or both ``groups`` and ``labels`` are given.

    Examples
    --------
    >>> import numpy as np
    >>> from slicreg_lite.core.dice_table import DiceTable
    >>> table = DiceTable()
    >>> for subject in (1, 4, 7):
    ...     table.add("initial", subject, np.full(13, 0.2))
    >>> figure = show_dice_boxplots(table, groups={"kidneys": (2, 3), "liver": (6,)})
    >>> [ax.get_title() for ax in figure.axes]
    ['kidneys', 'liver']
    """
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    methods = _check_methods(table, methods)
    groups = _check_organ_groups(table, groups, labels)
    colours = _method_colours(len(methods))
    scores = {method: table.scores(method) * 100.0 for method in methods}  # (subjects, n)

    n_organs = [len(numbers) for numbers in groups.values()]
    slot = max(0.75, 0.11 * len(methods) + 0.35)  # inches per organ: 0.9 for 5 methods
    width = 0.8 / len(methods)  # of one box, in organ slots
    # the legend below: as many columns as fit the width
    longest = max(len(method) for method in methods)
    if figsize is None:
        figsize = (max(6.0, 0.9 + slot * sum(n_organs)), 4.0)
    fit = int(max(1, min(len(methods), figsize[0] // (0.07 * longest + 0.6))))
    rows = -(-len(methods) // fit)
    columns = -(-len(methods) // rows)  # rows as full as possible
    figure, axes = plt.subplots(1, len(groups), sharey=True, squeeze=False,
                                figsize=(figsize[0], figsize[1] + 0.22 * rows),
                                width_ratios=n_organs, layout="constrained")
    axes = axes[0]
    for ax, (group, numbers) in zip(axes, groups.items()):
        columns_of = [table.labels.index(number) for number in numbers]
        for m, method in enumerate(methods):
            offset = (m - (len(methods) - 1) / 2) * width
            data, positions = [], []
            for o, column in enumerate(columns_of):
                values = scores[method][:, column]
                values = values[np.isfinite(values)]
                if values.size:  # an organ no subject has: no box
                    data.append(values)
                    positions.append(o + offset)
            if not data:
                continue
            ax.boxplot(data, positions=positions, widths=width * 0.85, patch_artist=True,
                       manage_ticks=False,
                       boxprops={"facecolor": colours[m], "alpha": 0.75, "linewidth": 0.6},
                       medianprops={"color": "black", "linewidth": 1.0},
                       whiskerprops={"linewidth": 0.6}, capprops={"linewidth": 0.6},
                       flierprops={"marker": ".", "markersize": 3,
                                   "markerfacecolor": colours[m],
                                   "markeredgecolor": colours[m]})
        ax.set_xticks(np.arange(len(numbers)))
        ax.set_xticklabels([textwrap.fill(table.label_names[number], 13)
                            for number in numbers], fontsize="small")
        ax.set_xlim(-0.5, len(numbers) - 0.5)
        for boundary in np.arange(len(numbers) - 1) + 0.5:  # between organs
            ax.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
        ax.grid(axis="y", color="0.92", zorder=0)
        ax.set_axisbelow(True)
        ax.set_title(group, fontsize="medium")
    axes[0].set_ylim(-1, 101)  # boxes at 0 or 100 stay visible
    axes[0].set_yticks(np.arange(0, 101, 20))
    axes[0].set_ylabel("Dice (%)")
    handles = [Patch(facecolor=colour, alpha=0.75, edgecolor="black", linewidth=0.6)
               for colour in colours]
    figure.legend(handles, methods, loc="outside lower center", ncols=columns,
                  fontsize="small", frameon=False)
    if title is not None:
        figure.suptitle(title)
    return figure


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


# ------------------------------------------------------------------------- the overview
#: The steps of Slic-Reg as :func:`show_pipeline` draws them: (number, name, notebook).
PIPELINE_STEPS = ((0, "scans", "00"), (1, "supervoxels", "01"), (2, "teacher", "02"),
                  (3, "network", "03"), (4, "Adam", "04"), (5, "field", "05"))
_TRAINING_COLOUR, _TRAINING_FACE = "tab:blue", "#dcebf7"
_REGISTRATION_COLOUR, _REGISTRATION_FACE = "tab:orange", "#fde6cf"


def _pipeline_captions(cfg) -> list[str]:
    """One caption per step of :data:`PIPELINE_STEPS`, with the preset's numbers if any.

    Non-breaking spaces (``\\u00a0``) keep formulas and brackets on one line."""
    if cfg is None:
        layers = "L layers of K supervoxels (+\u00a0background)"
        keypoints = "N\u00a0=\u00a0L\u00a0×\u00a0K keypoints"
        adam, network = "kNN penalty", "a 3D DeepLab learns to predict them"
    else:
        n_layers = cfg.supervoxels.n_layers
        per_layer = cfg.supervoxels.n_supervoxels - 1  # label 0 is the background
        layers = f"{n_layers} layers of {per_layer} supervoxels (+\u00a0background)"
        if cfg.adam.keypoints == "centres":
            keypoints = (f"{n_layers * per_layer} keypoints "
                         f"({n_layers}\u00a0×\u00a0{per_layer})")
        else:
            keypoints = f"{cfg.adam.n_keypoints} random keypoints"
        adam = f"{cfg.adam.iterations} iterations, kNN penalty (k\u00a0=\u00a0{cfg.adam.k})"
        network = (f"a 3D DeepLab learns to predict them ({cfg.training.iterations} "
                   "training iterations)")
    return [
        "the template and the training scans: CT only, no labels needed",
        f"the template cut into {layers}",
        "deeds-lite carries them onto every training scan",
        network,
        f"{keypoints} of the template aligned with the moving scan's predicted "
        f"supervoxels: Adam, {adam}; a thin-plate spline",
        "a dense displacement field, scored (Dice, HD95, folding)",
    ]


def _bracket(ax, x0: float, x1: float, y: float, tip: float, heading: str, text: str,
             colour: str):
    """A square bracket from ``x0`` to ``x1`` at height ``y``, its ends towards ``tip``,
    with a bold ``heading`` and a line of ``text`` centred on its other side."""
    ax.plot([x0, x0, x1, x1], [tip, y, y, tip], color=colour, linewidth=1.5,
            solid_joinstyle="miter")
    middle = (x0 + x1) / 2
    if tip > y:  # the bracket opens upwards: the words go below it
        ax.text(middle, y - 0.07, heading, color=colour, ha="center", va="top",
                fontsize=10, fontweight="bold")
        ax.text(middle, y - 0.3, text, color=colour, ha="center", va="top", fontsize=9)
    else:
        ax.text(middle, y + 0.07, text, color=colour, ha="center", va="bottom", fontsize=9)
        ax.text(middle, y + 0.3, heading, color=colour, ha="center", va="bottom",
                fontsize=10, fontweight="bold")


def show_pipeline(cfg=None, *, ax=None):
    """An overview of the Slic-Reg pipeline: its steps, their notebooks and the two paths.

    Six boxes, left to right: 0 scans (notebook 00), 1 supervoxels (01), 2 teacher (02),
    3 network (03), 4 Adam (04) and 5 field (05), each with a short caption. A blue
    bracket above marks what is done once, offline (steps 1-3, the training); an orange
    one below what is done for every new scan (network inference, Adam, field: seconds
    per scan). Matplotlib only; drawn for about 12 x 4 inches.

    Parameters
    ----------
    cfg : slicreg_lite.core.config.Config, optional
        A preset (e.g. ``get_config("smoke")``): the captions then carry its numbers
        (supervoxel layers, supervoxels per layer, keypoints, Adam's iterations and ``k``,
        training iterations) and the title its name. Generic text (L layers, K
        supervoxels) by default.
    ax : matplotlib.axes.Axes, optional
        Where to draw (its frame is turned off); a new 12 x 4 inch figure by default.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        If ``cfg`` is neither None nor a :class:`~slicreg_lite.core.config.Config`.

    Examples
    --------
    >>> from slicreg_lite.core.config import get_config
    >>> figure = show_pipeline(get_config("smoke"))
    >>> words = " ".join(text.get_text() for text in figure.axes[0].texts).split()
    >>> "508 keypoints (4 × 127)" in " ".join(words)  # 4 layers of 127 supervoxels
    True
    """
    import textwrap

    from matplotlib.patches import FancyBboxPatch

    if cfg is not None and not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a slicreg_lite.core.config.Config (e.g. "
                        f"get_config('smoke')) or None; got {type(cfg).__name__}")
    captions = _pipeline_captions(cfg)
    if ax is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(12, 4))
        ax = figure.add_axes((0, 0, 1, 1))
    width, height = 12.0, 4.0  # data units are inches of the 12 x 4 inch figure

    margin, gap = 0.15, 0.4
    box = (width - 2 * margin - 5 * gap) / 6  # 1.62 inches wide
    bottom, top = 0.9, 2.9
    left = [margin + i * (box + gap) for i in range(6)]
    faces = ["#eeeeee", _TRAINING_FACE, _TRAINING_FACE, None, _REGISTRATION_FACE,
             _REGISTRATION_FACE]
    edges = ["0.45", _TRAINING_COLOUR, _TRAINING_COLOUR, _TRAINING_COLOUR,
             _REGISTRATION_COLOUR, _REGISTRATION_COLOUR]
    for (number, name, notebook), caption, x, face, edge in zip(
            PIPELINE_STEPS, captions, left, faces, edges):
        patch = FancyBboxPatch((x, bottom), box, top - bottom,
                               boxstyle="round,pad=0,rounding_size=0.1",
                               facecolor=face or "none", edgecolor=edge, linewidth=1.5,
                               zorder=2)
        ax.add_patch(patch)
        if face is None:  # the network: trained once (blue), run on every scan (orange)
            from matplotlib.colors import to_rgb

            fade = np.linspace(0, 1, 64)[:, None, None]
            shades = (1 - fade) * to_rgb(_TRAINING_FACE) + fade * to_rgb(_REGISTRATION_FACE)
            shading = ax.imshow(shades, extent=(x, x + box, bottom, top), aspect="auto",
                                origin="upper", interpolation="bilinear", zorder=1)
            shading.set_clip_path(patch)
        centre = x + box / 2
        ax.text(centre, top - 0.1, f"{number} {name}", ha="center", va="top",
                fontsize=12, fontweight="bold", zorder=3)
        ax.text(centre, top - 0.38, f"notebook {notebook}", ha="center", va="top",
                fontsize=8.5, color="0.35", style="italic", zorder=3)
        ax.text(centre, top - 0.64, textwrap.fill(caption, 24, break_on_hyphens=False),
                ha="center", va="top", fontsize=8.5, linespacing=1.25, zorder=3)
        if number:
            ax.annotate("", xy=(x - 0.04, (bottom + top) / 2),
                        xytext=(x - gap + 0.04, (bottom + top) / 2),
                        arrowprops={"arrowstyle": "-|>", "color": "0.3", "linewidth": 1.5,
                                    "shrinkA": 0, "shrinkB": 0}, zorder=3)
    _bracket(ax, left[1], left[3] + box, top + 0.2, top + 0.1, "once, offline (training)",
             "the template's supervoxels, taught by deeds-lite, learned by the network",
             _TRAINING_COLOUR)
    _bracket(ax, left[3], left[5] + box, bottom - 0.2, bottom - 0.1,
             "per new scan (registration)",
             "network inference → Adam → field: seconds per scan", _REGISTRATION_COLOUR)
    ax.annotate("a new (moving) scan", xy=(left[3] - 0.06, bottom - 0.2),
                xytext=(left[2] + box / 2, bottom - 0.2), ha="center", va="center",
                fontsize=9, color=_REGISTRATION_COLOUR,
                arrowprops={"arrowstyle": "-|>", "color": _REGISTRATION_COLOUR,
                            "linewidth": 1.2, "shrinkA": 4, "shrinkB": 0})
    ax.text(margin, height - 0.12,
            "the Slic-Reg pipeline" + (f", preset {cfg.name!r}" if cfg is not None else ""),
            ha="left", va="top", fontsize=13, fontweight="bold")
    ax.set_xlim(0, width)  # after imshow, which would set its own
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return ax.figure
