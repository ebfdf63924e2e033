"""The regression baseline of the paper's ablation: displacements + a random walk.

Instead of supervoxel labels, a network with the *regression head* predicts a
displacement at every voxel of the moving scan (it learnt the teacher's fields, with
targets at about 1,000 supervoxel centres per scan). The paper regularises those noisy
predictions with a random walk on the keypoint graph; here:

1. the predicted field ``v`` (moving voxel ``y`` <-> template voxel ``y + v(y)``) is read
   *at the template's keypoints* by inverting it there (:func:`invert_at_points`): the
   keypoint ``p`` lies at ``y = p + u`` in the moving scan, with ``u = -v(p + u)``;
2. the keypoint displacements are smoothed by a random walk on the same kNN graph as the
   Adam alignment (:func:`random_walk`);
3. the same thin-plate spline as :mod:`slicreg_lite.adamreg` makes a dense field.

Comparing this with :func:`slicreg_lite.adamreg.register` isolates what the paper claims:
classifying supervoxels and aligning them beats regressing displacements directly.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.adamreg import keypoint_graph
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

from .adamreg import KeypointGraph, Template, dense_field, keypoint_graph
from .config import AdamConfig, RegressionConfig, config_section
from .spatial import resize_displacement, sample


def invert_at_points(field, points, *, iterations: int = 10) -> np.ndarray:
    """Displacements ``u`` at ``points`` such that ``p + u + v(p + u) = p``.

    Parameters
    ----------
    field : array_like, shape (3, D, H, W)
        ``v`` on the moving grid, in voxels, pointing into the template.
    points : array_like, shape (N, 3)
        Template voxels (on the same grid as ``field``).
    iterations : int
        Fixed-point steps ``u <- -v(p + u)``; they converge when ``v`` is smooth.

    Returns
    -------
    numpy.ndarray, shape (N, 3)
        Where each point lies in the moving scan, relative to itself.

    Examples
    --------
    >>> v = np.zeros((3, 8, 8, 8), np.float32); v[0] = 2.0  # moving = template shifted
    >>> invert_at_points(v, [[3.0, 3.0, 3.0]])[0] + 0.0  # + 0.0: no "-0.0"
    array([-2.,  0.,  0.])
    """
    field = np.asarray(field, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"field must have shape (3, D, H, W); got {field.shape}")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3); got {points.shape}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    u = np.zeros_like(points)
    for _ in range(iterations):
        u = -sample(field, (points + u).T, padding="border").T
    return u.astype(np.float64)


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
        As in :class:`~slicreg_lite.adamreg.AdamResult` (after the random walk).
    raw_displacement : numpy.ndarray, shape (N, 3)
        The network's displacements at the keypoints, before the random walk.
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


def register(template: Template, field, cfg, *, output_shape=None,
             weight: float | None = None, k: int | None = None) -> RegressionResult:
    """Register a moving scan to the template from the regression network's field.

    Parameters
    ----------
    template : Template
        Keypoints and grid (:func:`slicreg_lite.adamreg.prepare_template`).
    field : array_like, shape (3, d, h, w)
        :func:`~slicreg_lite.networks.predict_displacement` of the moving scan, on any grid
        (it is resampled to the supervoxel grid).
    cfg : Config
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
    raw = invert_at_points(field, template.keypoints,
                           iterations=settings.inversion_iterations)
    graph = keypoint_graph(template.keypoints, adam.k if k is None else k)
    smoothed = random_walk(raw, graph, weight)
    timings = {"random_walk": time.perf_counter() - start}
    t = time.perf_counter()
    dense = dense_field(template, smoothed, adam, output_shape)
    timings["tps"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return RegressionResult(template.keypoints, smoothed, raw, dense, timings, graph)
