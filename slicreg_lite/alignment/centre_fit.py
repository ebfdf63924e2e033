"""Beyond the paper: this toolkit's centre fit (``Config.centre_fit``, the row "Slic-Reg +
centre fit (this toolkit)"), an extension of the paper's alignment (notebook 04, "Beyond
the paper").

Where the predicted supervoxels' centres put each keypoint is a direct guess of its
displacement, which the smoothed features blur. These guesses are fitted all at once
(:func:`fit_centres`): one smooth motion whose average over every supervoxel takes it to
its predicted centre, since a supervoxel's centre moves with the average motion over the
supervoxel, not with the motion at its keypoint. Where the motion stretches one side of a
supervoxel more than the other, its centre leans to that side; the supervoxels' sizes
tell by how much (:func:`stretch_correction`). Supervoxels cut by the moving scan's edge
are left out (:func:`cut_by_the_edge`): their visible centre lies too far inside."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.spatial import resize
from ..supervoxels.layers import label_sizes
from .features import _grid_ratio, feature_shape


def cut_by_the_edge(layers, n_labels: int) -> np.ndarray:
    """Which supervoxels touch the edge of the scan (its six outer faces).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
    n_labels : int
        Labels ``1..n_labels`` of each layer (0 is the background).

    Returns
    -------
    numpy.ndarray of bool, shape (L, n_labels)

    Examples
    --------
    >>> layer = np.zeros((1, 5, 5, 5), int); layer[0, 0, 2, 2] = 1; layer[0, 2, 2, 2] = 2
    >>> cut_by_the_edge(layer, 2).tolist()
    [[True, False]]
    """
    layers = np.asarray(layers)
    cut = np.zeros((len(layers), n_labels + 1), bool)
    for axis in range(1, 4):
        for index in (0, -1):
            face = np.take(layers, index, axis=axis).reshape(len(layers), -1)
            for layer, labels in enumerate(face):
                cut[layer, labels[labels <= n_labels]] = True
    return cut[:, 1:]


# ------------------------------------------- keypoint motion fitted to supervoxel centres
def _interpolation_matrix(points: np.ndarray, shape: tuple, node_shape: tuple):
    """Trilinear weights of ``points`` (voxels of ``shape``) on a coarse node grid
    covering the same extent (corners aligned): a sparse ``(len(points), n_nodes)``
    matrix whose rows sum to 1."""
    import scipy.sparse

    scale = _grid_ratio(shape, node_shape)
    position = np.clip(np.asarray(points, dtype=np.float64) * scale, 0,
                       np.array(node_shape) - 1)
    low = np.minimum(np.floor(position).astype(np.int64), np.array(node_shape) - 2)
    low = np.maximum(low, 0)
    fraction = position - low
    rows, columns, weights = [], [], []
    for corner in np.ndindex(2, 2, 2):
        corner = np.array(corner)
        weight = np.prod(np.where(corner, fraction, 1 - fraction), axis=1)
        index = low + corner
        rows.append(np.arange(len(position)))
        columns.append(np.ravel_multi_index(tuple(index.T), node_shape))
        weights.append(weight)
    return scipy.sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
        shape=(len(position), int(np.prod(node_shape))))


def _bending_matrix(node_shape: tuple):
    """``B`` with ``u^T B u`` the sum of squared second differences of a node field along
    each axis: zero for every affine field, so the fit prefers no scale or shear."""
    import scipy.sparse

    index = np.arange(int(np.prod(node_shape))).reshape(node_shape)
    blocks = []
    for axis in range(3):
        if node_shape[axis] < 3:
            continue
        parts = [np.take(index, range(start, node_shape[axis] - 2 + start), axis=axis).ravel()
                 for start in range(3)]
        rows = np.arange(len(parts[0]))
        blocks.append(scipy.sparse.csr_matrix(
            (np.concatenate([np.ones(len(rows)), -2 * np.ones(len(rows)), np.ones(len(rows))]),
             (np.tile(rows, 3), np.concatenate(parts))),
            shape=(len(rows), index.size)))
    if not blocks:
        return scipy.sparse.csr_matrix((index.size, index.size))
    second = scipy.sparse.vstack(blocks)
    return (second.T @ second).tocsr()


@dataclass
class CentreFit:
    """The template's side of :func:`fit_centres`, computed once per template.

    Attributes
    ----------
    averages : list of scipy.sparse.csr_matrix, one per layer, shape (K, n_nodes)
        Row ``k``: the average over supervoxel ``k + 1`` of the trilinear weights of the
        node grid, so that ``averages[l] @ u`` is the mean of a node field over every
        supervoxel of layer ``l``.
    members : list of scipy.sparse.csr_matrix, one per layer, shape (K, n_samples)
        Row ``k``: which of the sample voxels (a grid of half the size) lie in supervoxel
        ``k + 1``.
    samples : numpy.ndarray, shape (n_samples, 3)
        Those voxels' positions on the supervoxel grid.
    sizes : numpy.ndarray, shape (L, K)
        The supervoxels' sizes in voxels of the supervoxel grid.
    points : numpy.ndarray, shape (N, 3)
        The keypoints: the supervoxels' centres of mass, layer after layer.
    keypoints : scipy.sparse.csr_matrix, shape (N, n_nodes)
        Their trilinear weights on the node grid.
    bending : scipy.sparse.csr_matrix, shape (n_nodes, n_nodes)
    node_shape : tuple of 3 ints
    smoothing : float
    """

    averages: list
    members: list
    samples: np.ndarray
    sizes: np.ndarray
    points: np.ndarray
    keypoints: object
    bending: object
    node_shape: tuple
    smoothing: float


def prepare_centre_fit(layers, keypoints, step: int, smoothing: float) -> CentreFit:
    """The template's supervoxels as averaging operators on a node grid every ``step``
    voxels (see :func:`fit_centres`); ``keypoints`` are their centres, ``(L * K, 3)``.
    The averages are taken on a grid of half the size (nearest neighbour), which keeps
    this to a second."""
    import scipy.sparse

    layers = np.asarray(layers)
    shape = tuple(layers.shape[1:])
    n_labels = len(keypoints) // len(layers)
    node_shape = feature_shape(shape, step)
    work = tuple(max(2, n // 2) for n in shape)
    small = np.asarray(resize(layers, work, mode="nearest")) if work != shape else layers
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, work)]
    voxels = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    weights = _interpolation_matrix(voxels, shape, node_shape)
    averages, members = [], []
    for layer in small:
        label = layer.ravel().astype(np.int64)
        inside = (label > 0) & (label <= n_labels)
        member = scipy.sparse.csr_matrix(
            (np.ones(int(inside.sum())), (label[inside] - 1, np.nonzero(inside)[0])),
            shape=(n_labels, len(label)))
        size = np.asarray(member.sum(1)).ravel()
        averages.append((scipy.sparse.diags(1.0 / np.maximum(size, 1)) @ member
                         @ weights).tocsr())
        members.append(member)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return CentreFit(averages, members, voxels, label_sizes(layers, n_labels), keypoints,
                     _interpolation_matrix(keypoints, shape, node_shape),
                     _bending_matrix(node_shape), node_shape, float(smoothing))


def fit_centres(fit: CentreFit, moving_centres) -> np.ndarray:
    """Where the keypoints lie in the moving scan, fitted to its supervoxels' centres.

    The centre of mass of a supervoxel in the moving scan is where the *average* of the
    motion over the whole supervoxel takes its centre, not where its keypoint goes: the two
    differ wherever the motion bends inside the supervoxel (about 1.2 voxels under
    ``lite`` for the teacher's own supervoxels). So a smooth field ``u`` on a coarse node
    grid is fitted to all supervoxels of all layers at once, by linear least squares:

    ``mean over S of u  =  (centre of S in the moving scan) - (centre of S)``

    for every supervoxel ``S`` found in the moving scan, plus ``smoothing`` x the squared
    second differences of ``u`` (which leave an affine motion free). The result is the
    field read at the keypoints.

    Strictly, the centre in the moving scan is the mean of ``x + u`` weighted by the
    Jacobian determinant of the motion (a stretched part of a supervoxel takes more room),
    which this linear fit cannot model; :func:`stretch_correction` takes that part out of
    the centres before the fit (``cfg.adam.centre_stretch``).

    Parameters
    ----------
    fit : CentreFit
        From :func:`prepare_centre_fit` (``Template.centre_fit``).
    moving_centres : array_like, shape (L, K, 3)
        The centre of mass of every label in the moving scan, NaN where absent
        (:func:`~slicreg_lite.supervoxels.layers.label_centres`).

    Returns
    -------
    numpy.ndarray, shape (L * K, 3)
        The keypoints' positions in the moving scan (voxels of the supervoxel grid); all
        NaN if fewer than 4 supervoxels were found.
    """
    import scipy.linalg
    import scipy.sparse

    # the keypoints are the template supervoxels' centres of mass, layer after layer
    centres = fit.points.reshape(len(fit.averages), -1, 3)
    moving_centres = np.asarray(moving_centres, dtype=np.float64)
    if moving_centres.shape != centres.shape:
        raise ValueError(f"moving_centres must have shape {centres.shape}; got "
                         f"{moving_centres.shape}")
    rows, targets = [], []
    for averages, layer_centres, moved in zip(fit.averages, centres, moving_centres):
        known = np.isfinite(moved).all(1)
        rows.append(averages[np.nonzero(known)[0]])
        targets.append(moved[known] - layer_centres[known])
    system = scipy.sparse.vstack(rows).tocsr()
    offsets = np.concatenate(targets)
    if len(offsets) < 4:
        return np.full(fit.points.shape, np.nan)
    normal = (system.T @ system + fit.smoothing * fit.bending).toarray()
    # a tiny ridge: nodes no supervoxel reaches (outside the body) stay determined
    normal[np.diag_indices_from(normal)] += 1e-6
    motion = scipy.linalg.solve(normal, system.T @ offsets, assume_a="pos")  # (n_nodes, 3)
    return fit.points + fit.keypoints @ motion


def stretch_correction(fit: CentreFit, moving_sizes) -> np.ndarray:
    """How far uneven stretch moves each supervoxel's centre in the moving scan away from
    the plain mean of the motion, which :func:`fit_centres` models.

    The centre of mass of a supervoxel ``S`` in the moving scan is the mean of ``x + u``
    over ``S`` weighted by the Jacobian determinant ``J`` of the motion: where the motion
    stretches, that part of ``S`` takes more room. Weighted or not, the means of ``u``
    differ little; the means of ``x`` differ by the *J-weighted centre of S minus its
    plain centre*, which is what this function returns, to subtract from the centres.

    ``J`` needs no field: a supervoxel twice as large in the moving scan as in the
    template has been stretched twice. Each supervoxel's size ratio (moving / template)
    is painted onto the template's grid and averaged over the layers; as the layers'
    supervoxels lie at different offsets, that stretch map is finer than any one layer.
    Whether it helps is a setting of the centre fit (``centre_stretch``), chosen on the
    validation subjects (``benchmarks/bench_settings.py`` prints what it adds there).
    Weighting instead by the Jacobian of the fitted motion itself, over a few rounds,
    gave nothing: that smooth field misses where the stretch varies.

    Parameters
    ----------
    fit : CentreFit
        From :func:`prepare_centre_fit` (``Template.centre_fit``).
    moving_sizes : array_like, shape (L, K)
        The supervoxels' sizes in the moving scan, voxels of the supervoxel grid, 0 where
        absent (:func:`~slicreg_lite.supervoxels.layers.label_sizes`).

    Returns
    -------
    numpy.ndarray, shape (L, K, 3)
        Voxels of the supervoxel grid; zero everywhere for a uniform stretch.
    """
    moving_sizes = np.asarray(moving_sizes, dtype=np.float64)
    if moving_sizes.shape != fit.sizes.shape:
        raise ValueError(f"moving_sizes must have shape {fit.sizes.shape}; got "
                         f"{moving_sizes.shape}")
    if not np.isfinite(moving_sizes).all() or (moving_sizes < 0).any():
        raise ValueError("moving_sizes must be finite counts >= 0")
    known = (moving_sizes > 0) & (fit.sizes > 0)
    ratio = np.where(known, moving_sizes / np.maximum(fit.sizes, 1), 0.0)
    total, count = np.zeros(len(fit.samples)), np.zeros(len(fit.samples))
    for member, layer_ratio, layer_known in zip(fit.members, ratio, known):
        total += member.T @ layer_ratio
        count += member.T @ layer_known.astype(np.float64)
    stretch = np.where(count > 0, total / np.maximum(count, 1), 1.0)  # 1: no information

    corrections = np.zeros(fit.sizes.shape + (3,))
    for index, member in enumerate(fit.members):
        size = np.asarray(member.sum(1)).ravel()
        weight = member @ stretch
        inside = (size > 0) & (weight > 0)
        weighted = (member @ (stretch[:, None] * fit.samples))[inside] / weight[inside, None]
        plain = (member @ fit.samples)[inside] / size[inside, None]
        corrections[index, inside] = weighted - plain
    return corrections
