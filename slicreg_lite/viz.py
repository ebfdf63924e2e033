"""Figures for the notebooks: slices with organ overlays, checkerboards, deformation grids.

Orientation
    Volumes are RAS+ (see :mod:`slicreg_lite.spatial`): axis 0 runs from the patient's
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
>>> from slicreg_lite.viz import view_slice
>>> volume = np.zeros((4, 5, 6))
>>> volume[:, 4, :] = 1              # the most anterior plane
>>> view_slice(volume, axis=2)[0]    # the top row of the axial view
array([1., 1., 1., 1.])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap

from .checks import check_labels, check_volume
from .config import LABEL_NAMES, NUM_LABELS

#: The name of the view through each axis of a RAS+ volume.
VIEW_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}

#: One RGBA colour per label value 0..13; 0 (background) is fully transparent.
LABEL_COLORS = (
    (0.00, 0.00, 0.00, 0.0),  # 0 background
    (0.58, 0.40, 0.74, 1.0),  # 1 spleen: purple
    (1.00, 0.50, 0.05, 1.0),  # 2 right kidney: orange
    (1.00, 0.85, 0.00, 1.0),  # 3 left kidney: yellow
    (0.17, 0.63, 0.17, 1.0),  # 4 gallbladder: green
    (0.89, 0.47, 0.76, 1.0),  # 5 esophagus: pink
    (0.55, 0.34, 0.29, 1.0),  # 6 liver: brown
    (0.09, 0.75, 0.81, 1.0),  # 7 stomach: cyan
    (0.84, 0.15, 0.16, 1.0),  # 8 aorta: red (arterial)
    (0.12, 0.47, 0.71, 1.0),  # 9 inferior vena cava: blue (venous)
    (0.40, 0.40, 1.00, 1.0),  # 10 portal and splenic vein: light blue
    (0.74, 0.74, 0.13, 1.0),  # 11 pancreas: olive
    (1.00, 0.00, 1.00, 1.0),  # 12 right adrenal gland: magenta
    (0.60, 1.00, 0.20, 1.0),  # 13 left adrenal gland: lime
)

#: Default CT window in Hounsfield units: soft tissue from -200 (fat) to 300 (contrast).
SOFT_TISSUE_WINDOW = (-200.0, 300.0)


def label_colormap() -> ListedColormap:
    """The colormap of the 13 BTCV labels (:data:`LABEL_COLORS`), background transparent.

    Use it with ``vmin=-0.5, vmax=13.5`` so that every integer gets its own colour, as
    :func:`show_slice` does.
    """
    return ListedColormap(LABEL_COLORS, name="btcv_labels")


# ------------------------------------------------------------------------------ checks
def add_organ_key(figure, labels_list):
    """A key of the organ colours (those present in any of ``labels_list``) below a figure.

    Returns the legend, or None when no organ is present.
    """
    from matplotlib.patches import Patch

    present = set()
    for labels in labels_list:
        if labels is not None:
            present |= set(np.unique(np.asarray(labels)).tolist())
    present = sorted(int(n) for n in present if 1 <= n <= NUM_LABELS)
    if not present:
        return None
    colours = label_colormap()
    handles = [Patch(facecolor=colours(n), label=LABEL_NAMES[n - 1]) for n in present]
    columns = max(2, int(figure.get_figwidth() / 1.8))  # about 1.8 inches per name
    return figure.legend(handles=handles, loc="outside lower center", ncol=columns,
                         fontsize="x-small", frameon=False)


def _check_axis(axis) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial); got {axis!r}")
    return int(axis)


def _check_index(index, size: int, name: str = "index") -> int:
    """A slice index in ``0..size-1``; None means the middle slice."""
    if index is None:
        return size // 2
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"{name} must be an integer or None; got {index!r}")
    if not 0 <= index < size:
        raise ValueError(f"{name} must be in 0..{size - 1}; got {index}")
    return int(index)


def _check_window(window) -> tuple[float, float] | None:
    if window is None:
        return None
    low, high = (float(v) for v in window)
    if not low < high:
        raise ValueError(f"window must be (low, high) with low < high; got {tuple(window)}")
    return low, high


def _in_plane_axes(axis: int) -> tuple[int, int]:
    """The two array axes ``(a, b)``, ``a < b``, that lie in the plane of a view."""
    a, b = (i for i in range(3) if i != axis)
    return a, b


def _display_position(shape, axis: int, coords) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) in :func:`view_slice`'s image of points with voxel coordinates.

    ``coords`` is a sequence of 3 voxel coordinates (arrays or numbers, (d, h, w)); the
    one along ``axis`` is ignored.
    """
    a, b = _in_plane_axes(axis)
    rows = (shape[b] - 1) - np.asarray(coords[b], dtype=np.float64)
    columns = (shape[a] - 1) - np.asarray(coords[a], dtype=np.float64)
    return rows, columns


def _new_axes(ax, figsize=(4.0, 4.0)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


# ---------------------------------------------------------------------------- slicing
def view_slice(volume, axis: int = 2, index: int | None = None) -> np.ndarray:
    """One slice of a RAS+ volume, oriented for display in the radiological convention.

    Parameters
    ----------
    volume : array_like, shape (D, H, W)
        Image or label map in RAS+ orientation.
    axis : {0, 1, 2}
        0 = sagittal, 1 = coronal, 2 = axial view.
    index : int, optional
        The slice along ``axis``; the middle slice by default.

    Returns
    -------
    numpy.ndarray, 2D
        A copy, for ``imshow(..., origin="upper")``. For ``axis=2`` (axial) its shape is
        ``(H, D)``: anterior at the top, the patient's right on the viewer's left. See the
        table in the module docstring for the other views.

    Raises
    ------
    ValueError
        If ``volume`` is not 3D, ``axis`` is not 0, 1 or 2, or ``index`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> view_slice(np.zeros((96, 80, 112)), axis=2).shape  # axial: (anterior..posterior, R..L)
    (80, 96)
    """
    volume = check_volume(volume, "volume", finite=False)
    axis = _check_axis(axis)
    index = _check_index(index, volume.shape[axis])
    plane = np.take(volume, index, axis=axis)  # axes (a, b), a < b
    # Transposing puts b on the rows, a on the columns; flipping both puts the high
    # indices (anterior / superior, and the patient's right) at the top and on the left.
    return plane.T[::-1, ::-1].copy()


# -------------------------------------------------------------------------- slice views
def show_slice(image, labels=None, *, axis: int = 2, index: int | None = None, ax=None,
               window: tuple[float, float] | None = SOFT_TISSUE_WINDOW, alpha: float = 0.45,
               title: str | None = None):
    """A CT slice in grey with an optional colour overlay of the organ labels.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in Hounsfield units (RAS+).
    labels : array_like, shape (D, H, W), optional
        Label map with values in ``0..13``, drawn with :data:`LABEL_COLORS`; background
        stays transparent.
    axis : {0, 1, 2}
        0 = sagittal, 1 = coronal, 2 = axial.
    index : int, optional
        The slice along ``axis``; the middle slice by default.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    window : (float, float) or None
        Grey values from ``low`` (black) to ``high`` (white), in HU; None scales to the
        slice's own minimum and maximum (for images that are not in HU).
    alpha : float
        Opacity of the label overlay, in ``0..1``.
    title : str, optional
        Title of the axes; by default the view and the slice index, e.g. "axial 56".

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        For a non-3D image, labels of another shape or outside ``0..13``, a bad axis,
        index, window or alpha.
    """
    image = check_volume(image, "image", finite=False)
    axis = _check_axis(axis)
    index = _check_index(index, image.shape[axis])
    window = _check_window(window)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1; got {alpha}")
    ax = _new_axes(ax)
    low, high = window if window is not None else (None, None)
    ax.imshow(view_slice(image, axis, index), cmap="gray", vmin=low, vmax=high,
              origin="upper", interpolation="nearest")
    if labels is not None:
        labels = check_labels(labels, image.shape, "labels")
        ax.imshow(view_slice(labels, axis, index), cmap=label_colormap(), vmin=-0.5,
                  vmax=NUM_LABELS + 0.5, alpha=alpha, origin="upper", interpolation="nearest")
    ax.set_title(f"{VIEW_NAMES[axis]} {index}" if title is None else title)
    ax.set_axis_off()
    return ax


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


def show_orthogonal(image, labels=None, *, point: Sequence[int] | None = None,
                    window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                    alpha: float = 0.45, crosshair: bool = True, figsize=(12.0, 4.0)):
    """Axial, coronal and sagittal views through one point, side by side.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in HU (RAS+).
    labels : array_like, shape (D, H, W), optional
        Label overlay, see :func:`show_slice`.
    point : sequence of 3 ints, optional
        The voxel ``(d, h, w)`` the three planes pass through; the centre by default.
    window, alpha
        See :func:`show_slice`.
    crosshair : bool
        Mark the other two planes in each view with thin lines.
    figsize : (float, float)
        Size of the figure in inches.

    Returns
    -------
    matplotlib.figure.Figure
        With three axes: axial, coronal, sagittal.

    Raises
    ------
    ValueError
        If ``point`` does not have 3 entries or lies outside the volume (and see
        :func:`show_slice`).
    """
    import matplotlib.pyplot as plt

    image = check_volume(image, "image", finite=False)
    if point is None:
        point = tuple(n // 2 for n in image.shape)
    if len(point) != 3:
        raise ValueError(f"point must be 3 voxel indices (d, h, w); got {tuple(point)}")
    point = tuple(_check_index(p, n, f"point[{i}]")
                  for i, (p, n) in enumerate(zip(point, image.shape)))

    figure, axes = plt.subplots(1, 3, figsize=figsize, layout="constrained")
    for ax, axis in zip(axes, (2, 1, 0)):
        show_slice(image, labels, axis=axis, index=point[axis], ax=ax, window=window,
                   alpha=alpha)
        if crosshair:
            row, column = _display_position(image.shape, axis, point)
            ax.axhline(row, color="w", linewidth=0.5, alpha=0.6)
            ax.axvline(column, color="w", linewidth=0.5, alpha=0.6)
    return figure


def show_subjects(images: Sequence, labels_list: Sequence | None = None,
                  titles: Sequence[str] | None = None, *, axis: int = 2,
                  index: int | None = None,
                  window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                  alpha: float = 0.45, size: float = 3.0):
    """Several subjects side by side, each at the same slice index.

    Parameters
    ----------
    images : sequence of arrays, each (D, H, W)
        CT volumes in HU (RAS+); shapes may differ if ``index`` fits all of them.
    labels_list : sequence of arrays or None, optional
        One label map (or None) per image.
    titles : sequence of str, optional
        One title per image; "subject 0", "subject 1", ... by default.
    axis, index, window, alpha
        See :func:`show_slice`.
    size : float
        Width and height of each panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        With one axes per subject.

    Raises
    ------
    ValueError
        If there are no images or ``labels_list`` / ``titles`` have another length.
    """
    import matplotlib.pyplot as plt

    count = len(images)
    if count == 0:
        raise ValueError("images must hold at least one volume; got an empty sequence")
    if labels_list is None:
        labels_list = [None] * count
    if titles is None:
        titles = [f"subject {i}" for i in range(count)]
    for name, values in (("labels_list", labels_list), ("titles", titles)):
        if len(values) != count:
            raise ValueError(f"{name} must have one entry per image ({count}); "
                             f"got {len(values)}")
    figure, axes = plt.subplots(1, count, figsize=(size * count, size), squeeze=False,
                                layout="constrained")
    for ax, image, labels, title in zip(axes[0], images, labels_list, titles):
        show_slice(image, labels, axis=axis, index=index, ax=ax, window=window, alpha=alpha,
                   title=title)
    add_organ_key(figure, labels_list)
    return figure


# ----------------------------------------------------------------------- checkerboards
def checkerboard(a, b, tiles: int = 8) -> np.ndarray:
    """Mix two 2D slices in a checkerboard: ``a`` on the "white", ``b`` on the "black" tiles.

    Edges that continue smoothly from one tile into the next show a good alignment.

    Parameters
    ----------
    a, b : array_like, 2D, same shape
        E.g. ``view_slice(fixed)`` and ``view_slice(warped_moving)``.
    tiles : int
        Number of tiles along each side (tiles differ by at most one pixel in size). The
        top-left tile comes from ``a``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``a``.

    Raises
    ------
    ValueError
        If a slice is not 2D, the shapes differ, or ``tiles`` is not in
        ``1..min(shape)``.

    Examples
    --------
    >>> import numpy as np
    >>> checkerboard(np.zeros((4, 4)), np.ones((4, 4)), tiles=2)
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.]])
    """
    a = np.asarray(a)
    b = np.asarray(b)
    for name, arr in (("a", a), ("b", b)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2D slice; got shape {arr.shape}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got a {a.shape} and b {b.shape}")
    if isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer)) \
            or not 1 <= tiles <= min(a.shape):
        raise ValueError(f"tiles must be an integer in 1..{min(a.shape)} (the slice is "
                         f"{a.shape}); got {tiles!r}")
    tile_row = np.arange(a.shape[0]) * tiles // a.shape[0]
    tile_column = np.arange(a.shape[1]) * tiles // a.shape[1]
    from_a = (tile_row[:, None] + tile_column[None, :]) % 2 == 0
    return np.where(from_a, a, b)


def show_checkerboard(fixed, moving, *, axis: int = 2, index: int | None = None,
                      tiles: int = 8, window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
                      ax=None, title: str | None = None):
    """A checkerboard of two volumes in one slice, to judge their alignment by eye.

    Parameters
    ----------
    fixed, moving : array_like, shape (D, H, W)
        E.g. the template and a scan warped onto it; same shape.
    axis, index, window, ax, title
        See :func:`show_slice`.
    tiles : int
        Tiles along each side, see :func:`checkerboard`.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the volumes are not 3D or have different shapes (and see :func:`checkerboard`).
    """
    fixed = check_volume(fixed, "fixed", finite=False)
    moving = check_volume(moving, "moving", finite=False)
    if fixed.shape != moving.shape:
        raise ValueError(f"moving must have the shape of fixed {fixed.shape}; "
                         f"got {moving.shape}")
    axis = _check_axis(axis)
    index = _check_index(index, fixed.shape[axis])
    window = _check_window(window)
    mixed = checkerboard(view_slice(fixed, axis, index), view_slice(moving, axis, index), tiles)
    ax = _new_axes(ax)
    low, high = window if window is not None else (None, None)
    ax.imshow(mixed, cmap="gray", vmin=low, vmax=high, origin="upper", interpolation="nearest")
    ax.set_title(f"checkerboard, {VIEW_NAMES[axis]} {index}" if title is None else title)
    ax.set_axis_off()
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
        Voxel displacements in (d, h, w) order (:mod:`slicreg_lite.spatial`).
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
    (:func:`slicreg_lite.metrics.endpoint_error_map`), or any other map in mm.

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


def overlay_contours(ax, labels_2d, *, labels: Sequence[int] | None = None,
                     linewidth: float = 1.0, linestyle: str = "solid"):
    """Draw the outline of each organ of a 2D label slice, in its label colour.

    Handy to compare two segmentations in one image, e.g. the template's labels as solid
    and the warped labels as dashed outlines over the same CT slice.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Usually one returned by :func:`show_slice`.
    labels_2d : array_like, 2D
        A label slice already oriented for display (from :func:`view_slice`), values
        ``0..13``.
    labels : sequence of int, optional
        Which labels to outline; every label present by default.
    linewidth : float
    linestyle : str
        E.g. "solid" or "dashed".

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, with one contour set per drawn label.

    Raises
    ------
    ValueError
        If ``labels_2d`` is not 2D or holds values outside ``0..13``.
    """
    slice_2d = np.asarray(labels_2d)
    if slice_2d.ndim != 2:
        raise ValueError(f"labels_2d must be a 2D label slice; got shape {slice_2d.shape}")
    slice_2d = check_labels(slice_2d[None], name="labels_2d")[0]
    if labels is None:
        labels = [int(v) for v in np.unique(slice_2d) if v > 0]
    for label in labels:
        if not 1 <= label <= NUM_LABELS:
            raise ValueError(f"labels must be label numbers in 1..{NUM_LABELS}; got {label}")
        mask = slice_2d == label
        if mask.any():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[LABEL_COLORS[label][:3]],
                       linewidths=linewidth, linestyles=linestyle)
    return ax


def show_dice_bars(table_or_scores, *, ax=None, title: str | None = None):
    """A bar chart of Dice per organ, one group of bars per label, one colour per method.

    Parameters
    ----------
    table_or_scores : DiceTable, dict or array_like
        A :class:`slicreg_lite.metrics.DiceTable` (every method, mean +- std over its
        subjects); a dict ``method -> scores``; or the scores of one method. Scores are
        fractions in ``0..1`` as returned by :func:`slicreg_lite.metrics.dice_per_label`,
        shape ``(13,)`` for one subject or ``(n_subjects, 13)`` (mean +- std). Absent
        labels (NaN) get no bar.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If some scores do not have 13 entries per row.
    """
    from .metrics import DiceTable  # here, so that importing viz stays light

    if isinstance(table_or_scores, DiceTable):
        series = {m: table_or_scores.per_label_summary(m) for m in table_or_scores.methods}
    else:
        named = (table_or_scores if isinstance(table_or_scores, dict)
                 else {"Dice": table_or_scores})
        series = {name: _bar_heights(scores, name) for name, scores in named.items()}
    if not series:
        raise ValueError("table_or_scores holds no method; nothing to draw")

    ax = _new_axes(ax, figsize=(10.0, 4.0))
    positions = np.arange(NUM_LABELS)
    width = 0.8 / len(series)
    for i, (name, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(positions + offset, np.nan_to_num(means), width, yerr=stds, capsize=2,
               label=name)
    ax.set_xticks(positions)
    ax.set_xticklabels(LABEL_NAMES, rotation=45, ha="right")
    ax.set_ylabel("Dice (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    if title is not None:
        ax.set_title(title)
    return ax


def _bar_heights(scores, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean (and std over rows, ignoring NaN) of Dice scores, in percent."""
    values = np.asarray(scores, dtype=np.float64) * 100.0
    if values.ndim not in (1, 2) or values.shape[-1] != NUM_LABELS:
        raise ValueError(f"scores of {name!r} must have shape ({NUM_LABELS},) or "
                         f"(n_subjects, {NUM_LABELS}); got {values.shape}")
    if values.ndim == 1:
        return values, None
    means, stds = [], []
    for column in values.T:
        finite = column[np.isfinite(column)]
        means.append(finite.mean() if finite.size else np.nan)
        stds.append(finite.std() if finite.size else np.nan)
    return np.array(means), np.array(stds)


def show_dice_boxplots(table, *, methods: Sequence[str] | None = None,
                       labels: Sequence[int] | None = None, ax=None,
                       title: str | None = None):
    """Box plots of Dice per organ: one group per organ, one box per method.

    Parameters
    ----------
    table : DiceTable
        Per-subject scores of every method (:class:`slicreg_lite.metrics.DiceTable`).
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
