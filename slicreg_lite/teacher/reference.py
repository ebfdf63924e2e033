"""The teacher's kernels written for reading (step 2, notebook 02): the cost volume of
MIND descriptors over every candidate displacement, the lower-envelope distance transform
(deeds' min-convolution) and belief propagation on the tree, in NumPy and torch.

:mod:`~slicreg_lite.teacher.compiled` computes the same with numba, many times faster;
tests check that both agree. The notebook teaches these versions."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .grid import _depths, control_points


# ------------------------------------------------------------------------- data cost
def cost_volume(fixed_features: torch.Tensor, moving_features: torch.Tensor, *,
                spacing: int, radius: int, quantisation: int,
                offsets: np.ndarray) -> torch.Tensor:
    """Sum of squared feature differences for every control point and displacement label.

    ``cost[p, l] = sum_j || fixed(p + o_j) - moving(p + o_j + d_l) ||^2`` for the points of
    :func:`control_points` and the labels of :func:`displacement_labels`.

    Positions are whole voxels, so no interpolation is needed (outside the volume: the
    nearest border value). Because points, offsets and labels all lie on regular grids,
    every (offset, label) pair reads a *strided view* of the padded moving volume: no
    index arrays, one vectorised difference per pair of label rows.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor, shape (C, D, H, W)
        Features on the same grid (e.g. smoothed MIND).
    spacing, radius, quantisation : int
        The control grid and the label cube (see :func:`control_points`,
        :func:`displacement_labels`).
    offsets : numpy.ndarray of int, shape (J, 3)
        Sample positions of each point's patch (:func:`patch_offsets`).

    Returns
    -------
    torch.Tensor of float32, shape (P, L)
    """
    channels, *shape = fixed_features.shape
    if tuple(moving_features.shape) != tuple(fixed_features.shape):
        raise ValueError(f"moving_features must have the shape of fixed_features "
                         f"{tuple(fixed_features.shape)}; got {tuple(moving_features.shape)}")
    _, grid_shape = control_points(shape, spacing)
    side = 2 * radius + 1
    reach = radius * quantisation
    pad = int(np.abs(offsets).max()) + reach + spacing
    fixed_padded = F.pad(fixed_features[None], (pad,) * 6, mode="replicate")[0]
    moving_padded = F.pad(moving_features[None], (pad,) * 6, mode="replicate")[0]
    # all displacements along w at once: windows of the w axis, every quantisation-th voxel
    moving_windows = moving_padded.unfold(3, 2 * reach + 1, 1)[..., ::quantisation]
    first = (spacing - 1) // 2

    def grid_view(volume, start):  # the control grid shifted to `start` (padded coords)
        return volume[:, start[0]:start[0] + spacing * grid_shape[0]:spacing,
                      start[1]:start[1] + spacing * grid_shape[1]:spacing,
                      start[2]:start[2] + spacing * grid_shape[2]:spacing]

    cost = torch.zeros(*grid_shape, side, side, side)
    for offset in np.asarray(offsets):
        start = [pad + first + int(o) for o in offset]
        fixed_samples = grid_view(fixed_padded, start)[..., None]  # (C, g0, g1, g2, 1)
        for i in range(side):
            for j in range(side):
                shifted = (start[0] + (i - radius) * quantisation,
                           start[1] + (j - radius) * quantisation, start[2] - reach)
                moving_samples = grid_view(moving_windows, shifted)  # (C, g0, g1, g2, side)
                cost[:, :, :, i, j, :] += (moving_samples - fixed_samples).square_().sum(0)
    return cost.reshape(-1, side ** 3)


# -------------------------------------------------------------- distance transforms
def distance_transform_1d(costs: np.ndarray, weight: float, offsets=None) -> np.ndarray:
    """``out[i] = min_j costs[j] + weight * (i + offset - j)^2`` along the last axis, in O(n).

    The lower envelope of parabolas (Felzenszwalb & Huttenlocher, 2012), run on all
    lines at once: the loop is over the ``n`` labels, every step works on every line.

    Parameters
    ----------
    costs : numpy.ndarray, shape (m, n)
        ``m`` independent lines of ``n`` label costs (finite).
    weight : float
        Positive weight of the squared label distance.
    offsets : numpy.ndarray, shape (m,), optional
        A shift of each line's label distance (any real number; default 0): the envelope
        is read at ``i + offset`` instead of ``i``.
    """
    if weight <= 0:
        raise ValueError(f"weight must be positive; got {weight}")
    f = np.asarray(costs, dtype=np.float64)
    m, n = f.shape
    shift = np.zeros(m) if offsets is None else np.asarray(offsets, np.float64).reshape(m)
    labels = np.arange(n)
    # The parabola of label j is weight * (x - j)^2 + f[j]; with g = f + weight * j^2 the
    # intersection of the parabolas of labels v < q is at (g[q] - g[v]) / (2 weight (q - v)).
    g = (f + weight * labels ** 2).ravel()
    line = np.arange(m) * n  # flat index of each line's first label
    vertex = np.zeros(m * n, dtype=np.int64)  # k-th parabola of each line's envelope
    boundary = np.full(m * (n + 1), np.inf)  # where the k-th parabola becomes the lowest
    boundary[np.arange(m) * (n + 1)] = -np.inf
    bline = np.arange(m) * (n + 1)
    k = np.zeros(m, dtype=np.int64)

    def intersection(q, k):
        v = vertex.take(line + k)
        return (g.take(line + q) - g.take(line + v)) / (2 * weight * (q - v))

    for q in range(1, n):
        s = intersection(q, k)
        popping = s <= boundary.take(bline + k)
        while popping.any():  # drop parabolas that the new one hides
            k -= popping
            s = np.where(popping, intersection(q, k), s)
            popping &= s <= boundary.take(bline + k)
        k += 1
        vertex[line + k] = q
        boundary[bline + k] = s
        boundary[bline + k + 1] = np.inf
    out = np.empty((m, n))
    k[:] = 0
    for q in range(n):  # read the envelope at q + offset (increasing with q)
        x = q + shift
        advancing = boundary.take(bline + k + 1) < x
        while advancing.any():
            k += advancing
            advancing &= boundary.take(bline + k + 1) < x
        v = vertex.take(line + k)
        out[:, q] = weight * (x - v) ** 2 + f.ravel().take(line + v)
    return out


def distance_transform(costs: np.ndarray, weight: float, offsets=None) -> np.ndarray:
    """The 3D distance transform of label cubes: separable, one axis after the other.

    ``out[..., a, b, c] = min over (x, y, z) of costs[..., x, y, z]
    + weight * ((a + o_0 - x)^2 + (b + o_1 - y)^2 + (c + o_2 - z)^2)``

    Parameters
    ----------
    costs : numpy.ndarray, shape (m, R, R, R)
    weight : float
    offsets : numpy.ndarray, shape (m, 3), optional
        ``(o_0, o_1, o_2)`` of every cube, in label steps (default 0).
    """
    out = np.asarray(costs, dtype=np.float64)
    shifts = np.zeros((len(out), 3)) if offsets is None else np.asarray(offsets, np.float64)
    for axis in (1, 2, 3):
        moved = np.moveaxis(out, axis, -1)
        # one offset per line: the cube's offset along this axis, repeated over its lines
        line_shifts = np.repeat(shifts[:, axis - 1], np.prod(moved.shape[1:-1]))
        lines = distance_transform_1d(moved.reshape(-1, moved.shape[-1]), weight, line_shifts)
        out = np.moveaxis(lines.reshape(moved.shape), -1, axis)
    return np.ascontiguousarray(out)


# ------------------------------------------------------------------ belief propagation
def tree_belief_propagation(unary: np.ndarray, order: np.ndarray, parents: np.ndarray,
                            label_shape, weight: float, offsets=None) -> np.ndarray:
    """Exact minimum of ``sum_p unary[p, l_p] + weight * sum_edges |l_p + o_p - l_q|^2``
    on a tree (``q`` the parent of ``p``).

    Two passes: messages from the leaves to the root (each a distance transform), then
    the best label of every node given its parent's, from the root to the leaves.
    Nodes of one depth are handled together.

    Parameters
    ----------
    unary : numpy.ndarray, shape (P, L)
        Data cost of every label at every node; labels form a cube ``label_shape``.
    order, parents : numpy.ndarray of int, shape (P,)
        Breadth-first order from the root, and parents (-1 for the root).
    label_shape : tuple of 3 ints
        ``(R, R, R)`` with ``R^3 = L``; label distances are measured on this cube.
    weight : float
        Penalty per squared label step between tree neighbours.
    offsets : numpy.ndarray, shape (P, 3), optional
        What each node's displacement already differs from its parent's before this
        optimisation, in label steps (``o_p``; default 0). With it the penalty is on the
        difference of the whole displacements, not only of the labels chosen now.

    Returns
    -------
    numpy.ndarray of int, shape (P,)
        The chosen label of every node.
    """
    total = np.array(unary, dtype=np.float64)
    shifts = np.zeros((len(total), 3)) if offsets is None else np.asarray(offsets, np.float64)
    depth = _depths(order, parents)
    by_depth = [order[depth[order] == d] for d in range(depth.max() + 1)]
    for nodes in reversed(by_depth[1:]):  # upward: leaves first
        # the message to the parent, for its label l_q: min over l_p of
        # total_p(l_p) + weight |l_p + o_p - l_q|^2, i.e. the envelope read at l_q - o_p
        message = distance_transform(total[nodes].reshape(len(nodes), *label_shape), weight,
                                     -shifts[nodes])
        message = message.reshape(len(nodes), -1)
        message -= message.min(1, keepdims=True)  # keeps numbers small; argmins unchanged
        np.add.at(total, parents[nodes], message)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in label_shape], indexing="ij"),
                    -1).reshape(-1, 3)
    labels = np.empty(len(parents), dtype=np.int64)
    labels[by_depth[0]] = np.argmin(total[by_depth[0]], axis=1)
    for nodes in by_depth[1:]:  # downward: every node given its parent's choice
        target = grid[labels[parents[nodes]]] - shifts[nodes]  # (n, 3)
        penalty = weight * ((grid[None] - target[:, None]) ** 2).sum(-1)
        labels[nodes] = np.argmin(total[nodes] + penalty, axis=1)
    return labels
