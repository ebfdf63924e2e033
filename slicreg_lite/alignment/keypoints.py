"""The keypoints and what joins them: the kNN graph that smooths their motion, and the
thin-plate spline that turns their displacements into a dense field (step 4, notebook 04).

Keypoints are ``(N, 3)`` arrays (one row per point, like SciPy) in voxels of the
supervoxel grid. Both alignments (:mod:`~slicreg_lite.alignment.adam`) and the regression
baseline (:mod:`~slicreg_lite.alignment.regression`) share these tools."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.checks import check_points
from ..core.spatial import resize


# ---------------------------------------------------------------------------- the graph
@dataclass
class KeypointGraph:
    """Keypoints and their k nearest neighbours.

    Attributes
    ----------
    points : numpy.ndarray, shape (N, 3)
        Voxel coordinates (d, h, w).
    neighbours : numpy.ndarray of int64, shape (N, k)
        ``neighbours[i]`` are the indices of the ``k`` points nearest to point ``i``
        (itself excluded).
    """

    points: np.ndarray
    neighbours: np.ndarray

    @property
    def k(self) -> int:
        """Neighbours per keypoint."""
        return self.neighbours.shape[1]

    @property
    def edges(self) -> np.ndarray:
        """The undirected edges ``(E, 2)``, each once with ``i < j``: ``j`` is among the
        ``k`` nearest of ``i``, or ``i`` among those of ``j``."""
        rows = np.repeat(np.arange(len(self.points)), self.k)
        pairs = np.sort(np.stack([rows, self.neighbours.ravel()], 1), axis=1)
        return np.unique(pairs, axis=0)

    def adjacency(self) -> np.ndarray:
        """The symmetric 0/1 adjacency matrix ``(N, N)`` of :attr:`edges`, as the paper's
        code builds it (dense: for teaching and small graphs)."""
        matrix = np.zeros((len(self.points),) * 2)
        i, j = self.edges.T
        matrix[i, j] = matrix[j, i] = 1.0
        return matrix


def keypoint_graph(points, k: int) -> KeypointGraph:
    """Join every keypoint to its ``k`` nearest neighbours (a k-d tree, no N x N matrix).

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Voxel coordinates; duplicates are allowed.
    k : int
        Neighbours per point, ``1 <= k < N``.

    Returns
    -------
    KeypointGraph

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 3)`` and finite, or ``k`` is not in ``1..N-1``.

    Examples
    --------
    >>> graph = keypoint_graph([[0, 0, 0], [0, 0, 1], [0, 0, 3], [5, 5, 5]], k=1)
    >>> graph.neighbours.ravel().tolist()
    [1, 0, 1, 2]
    """
    from scipy.spatial import cKDTree

    points = check_points(points, minimum=2)
    n = len(points)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < n:
        raise ValueError(f"k must be an integer with 1 <= k < N = {n} keypoints; got {k!r}")
    # query one extra neighbour, then drop each point itself (it need not come first
    # when points coincide)
    _, index = cKDTree(points).query(points, k=k + 1)
    own = index == np.arange(n)[:, None]
    own[~own.any(1), -1] = True  # a duplicate pushed the point itself out: drop the last
    neighbours = index[~own].reshape(n, k)
    return KeypointGraph(points, neighbours.astype(np.int64))


def random_keypoints(mask, n: int, *, seed: int, step: int = 2) -> np.ndarray:
    """``n`` keypoints drawn at random among the voxels of ``mask`` on every ``step``-th
    voxel (all of them when there are fewer), as the authors' code draws its 2048.

    Returns
    -------
    numpy.ndarray of float64, shape (n, 3)
        Voxel coordinates, in scan order.

    Examples
    --------
    >>> mask = np.zeros((8, 8, 8), bool); mask[2:6, 2:6, 2:6] = True
    >>> points = random_keypoints(mask, 5, seed=0)
    >>> points.shape, bool((points % 2 == 0).all() and mask[tuple(points.astype(int).T)].all())
    ((5, 3), True)
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D; got shape {mask.shape}")
    candidates = np.argwhere(mask[::step, ::step, ::step]) * step
    if len(candidates) < 5:
        raise ValueError(f"the mask holds {len(candidates)} voxels on every {step}th voxel; "
                         "at least 5 keypoints are needed")
    chosen = np.random.default_rng(seed).choice(len(candidates), min(n, len(candidates)),
                                                replace=False)
    return candidates[np.sort(chosen)].astype(np.float64)  # in scan order


# ------------------------------------------------------------------------ the alignment
def fill_from_neighbours(values, graph: KeypointGraph, rounds: int = 20) -> np.ndarray:
    """Replace NaN rows by the mean of their graph neighbours' finite rows, repeatedly
    (so that gaps fill from their rim inwards); rows still empty after ``rounds`` become 0.

    Examples
    --------
    >>> graph = keypoint_graph([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3]], k=1)
    >>> fill_from_neighbours([[1, 1, 1], [np.nan] * 3, [3, 3, 3], [5, 5, 5]], graph)[1]
    array([1., 1., 1.])
    """
    values = np.array(values, dtype=np.float64)
    for _ in range(rounds):
        missing = ~np.isfinite(values).all(1)
        if not missing.any():
            break
        around = values[graph.neighbours[missing]]  # (M, k, 3)
        known = np.isfinite(around).all(-1)
        count = known.sum(1)
        filled = np.where(known[..., None], around, 0.0).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[missing] = np.where(count[:, None] > 0, filled / count[:, None], np.nan)
    values[~np.isfinite(values).all(1)] = 0.0
    return values


# ------------------------------------------------------------------ thin-plate spline
def _tps_kernel(r: np.ndarray) -> np.ndarray:
    """The 3D thin-plate kernel ``r^2 log r`` (0 at r = 0), computed in place."""
    squared = r * r
    np.log(np.maximum(r, 1e-300), out=r)
    r *= squared  # r^2 log r; at r = 0: 0 * log(tiny) = 0
    return r


class ThinPlateSpline:
    """A thin-plate spline through fixed keypoints, its linear system factorised once.

    The spline ``f(x) = sum_i w_i phi(|x - p_i|) + a + B x`` with ``phi(r) = r^2 log r``
    passes (up to ``smoothing``) through given values at the keypoints ``p_i`` and bends
    as little as possible in between. Its weights solve a linear system that depends only
    on the keypoints, so it is LU-factorised once; new values (another alpha, another
    scan) then cost one triangular solve. The same spline as SciPy's ``RBFInterpolator``
    with ``kernel="thin_plate_spline", degree=1``.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        The keypoints (any unit; repeated points are merged and their values averaged,
        so the system never becomes singular).
    smoothing : float
        0 interpolates exactly; larger values trade fidelity for smoothness.
    """

    def __init__(self, points, smoothing: float = 0.0):
        from scipy.linalg import lu_factor
        from scipy.spatial.distance import cdist

        points = check_points(points, minimum=2)
        unique, inverse = np.unique(np.round(points, 6), axis=0, return_inverse=True)
        if len(unique) < 5:
            raise ValueError(f"a thin-plate spline in 3D needs at least 5 distinct keypoints; "
                             f"got {len(unique)}")
        if not np.isfinite(smoothing) or smoothing < 0:
            raise ValueError(f"smoothing must be >= 0; got {smoothing!r}")
        self.points, self._inverse = unique, inverse.ravel()
        self._counts = np.bincount(self._inverse, minlength=len(unique))
        n = len(unique)
        system = np.zeros((n + 4, n + 4))
        system[:n, :n] = _tps_kernel(cdist(unique, unique))
        system[:n, :n] += smoothing * np.eye(n)
        system[:n, n] = system[n, :n] = 1.0
        system[:n, n + 1:] = unique
        system[n + 1:, :n] = unique.T
        self._factors = lu_factor(system)
        self._kept = None  # (key of the evaluation points, their kernel values)

    def fit(self, values) -> np.ndarray:
        """The spline's coefficients for values at the keypoints, shape (N + 4, k)."""
        from scipy.linalg import lu_solve

        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) != len(self._inverse):
            raise ValueError(f"values must have shape ({len(self._inverse)}, k), one row per "
                             f"keypoint; got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values contain NaN or Inf")
        merged = np.zeros((len(self.points), values.shape[1]))
        np.add.at(merged, self._inverse, values)
        merged /= self._counts[:, None]
        right = np.vstack([merged, np.zeros((4, values.shape[1]))])
        return lu_solve(self._factors, right)

    def evaluate(self, coefficients: np.ndarray, where, chunk: int = 4096) -> np.ndarray:
        """The spline at points ``where`` (M, 3): shape (M, k).

        The kernel values of the last set of points are kept (in float32, when they fit in
        64 MB), so evaluating the same grid again costs one matrix product; the first
        evaluation uses the same kept values, so every call gives the same result.
        """
        from scipy.spatial.distance import cdist

        where = np.asarray(where, dtype=np.float64)
        n = len(self.points)
        affine = coefficients[n] + where @ coefficients[n + 1:]
        key = (where.shape, where.tobytes())
        if (self._kept is None or self._kept[0] != key) and len(where) * n <= 2 ** 24:
            self._kept = (key, np.concatenate([
                _tps_kernel(cdist(where[first:first + chunk], self.points)).astype(np.float32)
                for first in range(0, len(where), chunk)]))
        if self._kept is not None and self._kept[0] == key:
            return self._kept[1] @ coefficients[:n].astype(np.float32) + affine
        out = np.empty((len(where), coefficients.shape[1]))  # too large to keep: in chunks
        for first in range(0, len(where), chunk):
            out[first:first + chunk] = (_tps_kernel(cdist(where[first:first + chunk],
                                                          self.points)) @ coefficients[:n])
        return out + affine


_SPLINES: dict = {}  # (keypoints, smoothing) -> ThinPlateSpline: the last few, for reuse


def _spline_for(points: np.ndarray, smoothing: float) -> ThinPlateSpline:
    """The factorised spline of these keypoints (kept, so that the sliders and every scan
    registered to one template pay the factorisation once)."""
    key = (points.shape, points.tobytes(), float(smoothing))
    if key not in _SPLINES:
        if len(_SPLINES) >= 4:
            _SPLINES.pop(next(iter(_SPLINES)))
        _SPLINES[key] = ThinPlateSpline(points, smoothing)
    return _SPLINES[key]


def thin_plate_spline(points, values, shape, *, smoothing: float = 0.001,
                      grid_step: int = 4) -> np.ndarray:
    """Extrapolate keypoint displacements to a dense field with a thin-plate spline.

    The spline (:class:`ThinPlateSpline`, kernel ``r^2 log r`` plus an affine part) is
    fitted in isotropic units of half the largest grid side, evaluated every
    ``grid_step`` voxels and upsampled trilinearly.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Keypoints in voxels of the output grid. Repeated points are merged (their values
        averaged), so the solve never becomes singular.
    values : array_like, shape (N, 3)
        Their displacements, in voxels.
    shape : tuple of 3 ints
        The output grid.
    smoothing : float
        0 interpolates exactly; larger values trade fidelity for smoothness.
    grid_step : int
        Spacing of the coarse evaluation grid, in voxels.

    Returns
    -------
    numpy.ndarray of float32, shape (3, *shape)
    """
    points = check_points(points, minimum=2)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != points.shape:
        raise ValueError(f"values must have the points' shape {points.shape}; got "
                         f"{values.shape}")
    if grid_step < 1:
        raise ValueError(f"grid_step must be >= 1; got {grid_step}")
    shape = tuple(int(n) for n in shape)
    scale = (max(shape) - 1) / 2 or 1.0
    spline = _spline_for(points / scale, smoothing)
    coefficients = spline.fit(values)
    coarse = tuple(max(2, int(np.ceil((n - 1) / grid_step)) + 1) for n in shape)
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, coarse)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    field_coarse = spline.evaluate(coefficients, grid / scale).T.reshape(3, *coarse)
    field_coarse = field_coarse.astype(np.float32)
    # the values are voxels of the output grid already: resize, do not rescale
    return resize(field_coarse, shape) if coarse != shape else field_coarse
