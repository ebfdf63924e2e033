"""Slices of a volume for any step: a slice in the radiological view, organ outlines and
their colour key, three orthogonal views, several subjects side by side, checkerboards.

Arrays are ``(D, H, W)`` with RAS+ axes (:mod:`slicreg_lite.core.spatial`); ``axis`` 0,
1, 2 is a sagittal, coronal or axial slice. The per-step figures build on these
(:mod:`slicreg_lite.display.figures`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.colors import ListedColormap

from ..core.checks import check_labels, check_volume
from ..core.labels import LABEL_NAMES, NUM_LABELS

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
