"""The regression baseline of the paper's ablation: displacements + a random walk.

Instead of supervoxel labels, a network with the *regression head* predicts a
displacement at every voxel of the moving scan (it learnt the teacher's fields, with
targets at about 1,000 supervoxel centres per scan, all inside the body; the paper: "1024
per scan"). The paper regularises those noisy predictions with a "random walk
regularisation" and gives no details; here, on the keypoint graph of the alignment:

1. the predicted field ``v`` (moving voxel ``y`` <-> template voxel ``y + v(y)``) is read
   *at the template's keypoints* by inverting it there (:func:`invert_at_points`): the
   keypoint ``p`` lies at ``y = p + u`` in the moving scan, with ``u = -v(p + u)``. Only
   the values inside the moving scan's body are used: that is where the network had
   targets, and outside it its field is meaningless (hundreds of millimetres under
   ``lite``). Keypoints that nothing in the body maps to get no value;
2. those are filled from their neighbours, then every keypoint displacement is smoothed
   by a random walk on the same kNN graph as the Adam alignment (:func:`random_walk`);
3. the same thin-plate spline as :mod:`slicreg_lite.alignment` makes a dense field.

Comparing this with :func:`slicreg_lite.alignment.adam.register` isolates what the paper claims:
classifying supervoxels and aligning them beats regressing displacements directly.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.alignment import keypoint_graph
>>> points = np.random.default_rng(0).uniform(0, 10, (50, 3))
>>> noisy = np.ones((50, 3)) + np.random.default_rng(1).normal(0, 0.5, (50, 3))
>>> smoothed = random_walk(noisy, keypoint_graph(points, 5), weight=2.0)
>>> bool(np.abs(smoothed - 1).mean() < np.abs(noisy - 1).mean())
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.config import AdamConfig, RegressionConfig, config_section
from ..core.spatial import resize, resize_displacement, sample
from .keypoints import KeypointGraph, fill_from_neighbours, keypoint_graph
from .template import Template, dense_field


def invert_at_points(field, points, *, mask=None, iterations: int = 10,
                     step: int = 2, radius: float = 4.0) -> np.ndarray:
    """Displacements ``u`` at ``points`` such that ``p + u + v(p + u) = p``.

    ``v`` is trusted only inside ``mask`` (the moving scan's body, where the network had
    training targets):

    1. every ``step``-th voxel ``y`` of the mask is sent to ``q = y + v(y)``;
    2. a point ``p`` starts from ``-v`` averaged over the 8 voxels sent nearest to it
       (weighted by inverse distance), or gets no value (NaN) when the nearest lies more
       than ``radius`` voxels away: nothing in the mask corresponds to ``p``;
    3. fixed-point steps ``u <- -v(p + u)`` refine it, each kept only where ``p + u``
       stays inside the mask and the mismatch ``|u + v(p + u)|`` shrinks.

    Parameters
    ----------
    field : array_like, shape (3, D, H, W)
        ``v`` on the moving grid, in voxels, pointing into the template.
    points : array_like, shape (N, 3)
        Template voxels (on the same grid as ``field``).
    mask : array_like of bool, shape (D, H, W), optional
        Where ``v`` can be trusted; default: everywhere.
    iterations : int
        Refining fixed-point steps.
    step : int
        The voxels of the mask used in step 1 (every ``step``-th along each axis).
    radius : float
        In voxels (see step 2).

    Returns
    -------
    numpy.ndarray, shape (N, 3)
        Where each point lies in the moving scan, relative to itself; NaN rows for
        points that nothing in the mask corresponds to.

    Examples
    --------
    >>> v = np.zeros((3, 8, 8, 8), np.float32); v[0] = 2.0  # moving = template shifted
    >>> invert_at_points(v, [[3.0, 3.0, 3.0]])[0] + 0.0  # + 0.0: no "-0.0"
    array([-2.,  0.,  0.])
    """
    from scipy.spatial import cKDTree

    field = np.asarray(field, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"field must have shape (3, D, H, W); got {field.shape}")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3); got {points.shape}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0; got {iterations}")
    shape = field.shape[1:]
    mask = np.ones(shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask must have the field's grid {shape}; got {mask.shape}")
    voxels = np.argwhere(mask[::step, ::step, ::step]).astype(np.float32) * step
    if len(voxels) == 0:
        raise ValueError("mask is empty: no voxel of the field can be trusted")
    motion = field[(slice(None), *voxels.astype(np.int64).T)].T
    distance, nearest = cKDTree(voxels + motion).query(points, k=min(8, len(voxels)))
    distance, nearest = distance.reshape(len(points), -1), nearest.reshape(len(points), -1)
    weight = 1.0 / (distance + 1e-3)
    # -v near the partner: unbiased also where the nearest voxels lie on one side of p
    u = -(weight[..., None] * motion[nearest]).sum(1) / weight.sum(1, keepdims=True)
    known = distance[:, 0] <= radius

    def inside(where):
        return sample(mask.astype(np.float32), where.T) > 0.5  # 0 outside the grid

    def mismatch(u):
        return np.linalg.norm(u + sample(field, (points + u).T, padding="border").T, axis=1)

    error = mismatch(u)
    for _ in range(iterations):
        candidate = -sample(field, (points + u).T, padding="border").T
        candidate_error = mismatch(candidate)
        better = inside(points + candidate) & (candidate_error < error)
        u[better], error[better] = candidate[better], candidate_error[better]
    u = u.astype(np.float64)
    u[~known] = np.nan
    return u


def random_walk(values, graph: KeypointGraph, weight: float) -> np.ndarray:
    """Smooth values on a graph: solve ``(I + weight * L) x = values``.

    ``L`` is the Laplacian of the (symmetrised) kNN graph. The solution minimises
    ``|x - values|^2 + weight * sum over edges |x_i - x_j|^2``: each keypoint keeps its own
    value where the graph agrees and is pulled towards its neighbours where it does not
    (the random-walker view: x is the expected value a walk on the graph ends with).

    Parameters
    ----------
    values : array_like, shape (N, 3)
    graph : KeypointGraph
    weight : float
        >= 0; 0 returns ``values`` unchanged.

    Returns
    -------
    numpy.ndarray, shape (N, 3)
    """
    from scipy.sparse import coo_matrix, identity
    from scipy.sparse.csgraph import laplacian
    from scipy.sparse.linalg import spsolve

    values = np.asarray(values, dtype=np.float64)
    n = len(graph.points)
    if values.shape != (n, 3):
        raise ValueError(f"values must have shape ({n}, 3) like the graph's points; got "
                         f"{values.shape}")
    if weight < 0:
        raise ValueError(f"weight must be >= 0; got {weight}")
    if weight == 0:
        return values.copy()
    rows = np.repeat(np.arange(n), graph.k)
    adjacency = coo_matrix((np.ones(rows.size), (rows, graph.neighbours.ravel())), (n, n))
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)  # undirected, 0/1
    system = (identity(n) + weight * laplacian(adjacency)).tocsc()
    return np.asarray(spsolve(system, values))


@dataclass
class RegressionResult:
    """The outcome of one regression + random-walk registration.

    Attributes
    ----------
    keypoints, keypoint_displacement : numpy.ndarray, shape (N, 3)
        As in :class:`~slicreg_lite.alignment.adam.AdamResult` (after the random walk).
    raw_displacement : numpy.ndarray, shape (N, 3)
        The network's displacements at the keypoints, before the random walk; NaN rows
        where nothing in the moving scan's body corresponds to the keypoint.
    displacement : numpy.ndarray of float32, shape (3, *output_shape)
    timings : dict
        Seconds for ``"random_walk"``, ``"tps"`` and ``"total"``.
    graph : KeypointGraph
    """

    keypoints: np.ndarray
    keypoint_displacement: np.ndarray
    raw_displacement: np.ndarray
    displacement: np.ndarray
    timings: dict
    graph: KeypointGraph


def register(template: Template, field, cfg, *, mask=None, output_shape=None,
             weight: float | None = None, k: int | None = None) -> RegressionResult:
    """Register a moving scan to the template from the regression network's field.

    Parameters
    ----------
    template : Template
        Keypoints and grid (:func:`slicreg_lite.alignment.template.prepare_template`).
    field : array_like, shape (3, d, h, w)
        :func:`~slicreg_lite.network.models.predict_displacement` of the moving scan, on any grid
        (it is resampled to the supervoxel grid).
    cfg : Config
    mask : array_like of bool, shape (D', H', W'), optional
        The moving scan's body on any grid (resampled to the supervoxel grid): where the
        network's field is read (:func:`invert_at_points`). Default: everywhere.
    output_shape : tuple of 3 ints, optional
        Grid of the dense field; default: the supervoxel grid.
    weight, k : optional
        Override ``cfg.regression.random_walk_weight`` and ``cfg.adam.k``.

    Returns
    -------
    RegressionResult
    """
    adam = config_section(cfg, AdamConfig)
    settings = config_section(cfg, RegressionConfig)
    weight = settings.random_walk_weight if weight is None else weight
    field = np.asarray(field, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"field must have shape (3, D, H, W); got {field.shape}")
    start = time.perf_counter()
    if tuple(field.shape[1:]) != template.shape:
        field = resize_displacement(field, template.shape)
    if mask is not None and np.shape(mask) != template.shape:
        mask = resize(np.asarray(mask, dtype=np.uint8), template.shape, mode="nearest") > 0
    raw = invert_at_points(field, template.keypoints, mask=mask,
                           iterations=settings.inversion_iterations)
    graph = keypoint_graph(template.keypoints, adam.k if k is None else k)
    # keypoints without a value take their neighbours' (from the rim of the gap inwards)
    smoothed = random_walk(fill_from_neighbours(raw, graph), graph, weight)
    timings = {"random_walk": time.perf_counter() - start}
    t = time.perf_counter()
    dense = dense_field(template, smoothed, adam, output_shape)
    timings["tps"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return RegressionResult(template.keypoints, smoothed, raw, dense, timings, graph)
