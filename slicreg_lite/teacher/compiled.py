"""The two heavy parts of deeds-lite compiled: the same loops as the textbook.

:mod:`~slicreg_lite.teacher.reference` holds the readable versions, vectorised with NumPy
and torch:

- :func:`~slicreg_lite.teacher.reference.cost_volume` reads strided views of a padded
  copy of the moving features, one view per (patch sample, label row);
- :func:`~slicreg_lite.teacher.reference.tree_belief_propagation` handles all nodes of one
  tree depth at once, so each depth costs a few hundred small NumPy calls and Python's
  call overhead dominates.

Here the same algorithms are written as plain loops and compiled by numba: for the data
cost, every control point, patch sample, label and feature channel in turn (features
stored channels-last, so the innermost loop reads neighbouring numbers); for belief
propagation, Felzenszwalb and Huttenlocher's lower envelope of parabolas for the distance
transform, an upward pass of messages from the leaves to the root, a downward pass of
choices from the root to the leaves.

Belief propagation does its arithmetic in the same order and precision as the reference,
so the chosen labels are identical; the data cost sums the channels in another order
than torch, so it agrees to float32 rounding (the tests compare both). The kernels
release the GIL: deeds-lite runs its two directions on two threads side by side.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from .grid import _depths, control_points


# --------------------------------------------------------------------------- data cost
@njit(cache=True, nogil=True)
def _cost_volume(fixed, moving, grid_shape, spacing, radius, quantisation, offsets, cost):
    """``cost[p, l] += sum_j sum_c (moving[p + o_j + d_l, c] - fixed[p + o_j, c])^2``.

    ``fixed`` and ``moving`` are channels-last (D, H, W, C); positions outside the volume
    read the nearest border voxel (clamped indices: the reference's replicate padding).
    """
    size = fixed.shape
    channels = size[3]
    side = 2 * radius + 1
    first = (spacing - 1) // 2
    g0, g1, g2 = grid_shape
    for p0 in range(g0):
        for p1 in range(g1):
            for p2 in range(g2):
                point = (p0 * g1 + p1) * g2 + p2
                for j in range(offsets.shape[0]):
                    x0 = p0 * spacing + first + offsets[j, 0]
                    x1 = p1 * spacing + first + offsets[j, 1]
                    x2 = p2 * spacing + first + offsets[j, 2]
                    f0 = min(max(x0, 0), size[0] - 1)
                    f1 = min(max(x1, 0), size[1] - 1)
                    f2 = min(max(x2, 0), size[2] - 1)
                    for a in range(side):
                        m0 = min(max(x0 + (a - radius) * quantisation, 0), size[0] - 1)
                        for b in range(side):
                            m1 = min(max(x1 + (b - radius) * quantisation, 0), size[1] - 1)
                            row = (a * side + b) * side
                            for c in range(side):
                                m2 = min(max(x2 + (c - radius) * quantisation, 0), size[2] - 1)
                                total = np.float32(0.0)
                                for k in range(channels):
                                    difference = moving[m0, m1, m2, k] - fixed[f0, f1, f2, k]
                                    total += difference * difference
                                cost[point, row + c] += total


def cost_volume_compiled(fixed_features: torch.Tensor, moving_features: torch.Tensor, *,
                         spacing: int, radius: int, quantisation: int,
                         offsets: np.ndarray) -> torch.Tensor:
    """The compiled twin of :func:`~slicreg_lite.teacher.reference.cost_volume` (same
    arguments, the same result up to float32 rounding)."""
    if tuple(moving_features.shape) != tuple(fixed_features.shape):
        raise ValueError(f"moving_features must have the shape of fixed_features "
                         f"{tuple(fixed_features.shape)}; got {tuple(moving_features.shape)}")
    _, grid_shape = control_points(tuple(fixed_features.shape[1:]), spacing)

    def channels_last(features):
        return np.ascontiguousarray(features.detach().float().permute(1, 2, 3, 0).numpy())

    cost = np.zeros((int(np.prod(grid_shape)), (2 * radius + 1) ** 3), np.float32)
    _cost_volume(channels_last(fixed_features), channels_last(moving_features),
                 np.asarray(grid_shape, np.int64), int(spacing), int(radius),
                 int(quantisation), np.asarray(offsets, np.int64), cost)
    return torch.from_numpy(cost)


# ------------------------------------------------------------------ belief propagation


@njit(cache=True, nogil=True)
def _lower_envelope(f, weight, shift, out, vertex, boundary):
    """``out[q] = min_j f[j] + weight * (q + shift - j)^2`` for one line of labels, in O(n).

    The parabola of label ``j`` is ``weight * (x - j)^2 + f[j]``; the lower envelope of
    all of them is built from left to right (``vertex``: its parabolas, ``boundary``:
    where each becomes the lowest), then read off at every ``q + shift``.
    """
    n = f.shape[0]
    k = 0
    vertex[0] = 0
    boundary[0] = -np.inf
    boundary[1] = np.inf
    for q in range(1, n):
        while True:  # drop the parabolas that the new one hides
            v = vertex[k]
            s = ((f[q] + weight * (q * q)) - (f[v] + weight * (v * v))) / (2 * weight * (q - v))
            if s <= boundary[k]:
                k -= 1
            else:
                break
        k += 1
        vertex[k] = q
        boundary[k] = s
        boundary[k + 1] = np.inf
    k = 0
    for q in range(n):
        x = q + shift
        while boundary[k + 1] < x:
            k += 1
        v = vertex[k]
        out[q] = weight * ((x - v) * (x - v)) + f[v]


@njit(cache=True, nogil=True)
def _transform_lines(view, weight, shift, line, result, vertex, boundary):
    """The 1D distance transform of every line along the last axis of a 3D view, in place."""
    n0, n1, n = view.shape
    for a in range(n0):
        for b in range(n1):
            for i in range(n):
                line[i] = view[a, b, i]
            _lower_envelope(line[:n], weight, shift, result, vertex, boundary)
            for i in range(n):
                view[a, b, i] = result[i]


@njit(cache=True, nogil=True)
def _distance_transform_cube(cube, weight, shifts, line, result, vertex, boundary):
    """The 3D distance transform of one label cube, in place: separable, one axis after
    the other (axis 0, then 1, then 2, as the NumPy version), each with its own shift;
    each axis in turn is made the last one of a transposed view."""
    _transform_lines(cube.transpose(1, 2, 0), weight, shifts[0], line, result, vertex,
                     boundary)
    _transform_lines(cube.transpose(0, 2, 1), weight, shifts[1], line, result, vertex,
                     boundary)
    _transform_lines(cube, weight, shifts[2], line, result, vertex, boundary)


@njit(cache=True, nogil=True)
def _belief_propagation(total, order, parents, depth, s0, s1, s2, weight, offsets):
    """Both passes on the tree; ``total`` (P, L) holds the unary costs and is updated."""
    n_nodes, n_labels = total.shape
    max_depth = 0
    for node in range(n_nodes):
        max_depth = max(max_depth, depth[node])
    longest = max(s0, s1, s2)
    cube = np.empty((s0, s1, s2))
    line, result = np.empty(longest), np.empty(longest)
    shifts = np.empty(3)
    vertex, boundary = np.empty(longest, np.int64), np.empty(longest + 1)
    # nodes in breadth-first order, grouped by depth (the NumPy version's order)
    by_depth = np.empty(n_nodes, np.int64)
    start = np.zeros(max_depth + 2, np.int64)
    for node in order:
        start[depth[node] + 1] += 1
    for d in range(max_depth + 1):
        start[d + 1] += start[d]
    filled = start.copy()
    for node in order:
        by_depth[filled[depth[node]]] = node
        filled[depth[node]] += 1
    # upward: a depth's messages are all computed before any is added to a parent
    messages = np.empty((n_nodes, n_labels))
    for d in range(max_depth, 0, -1):
        for index in range(start[d], start[d + 1]):
            node = by_depth[index]
            cube[:] = total[node].reshape(s0, s1, s2)
            for axis in range(3):  # the envelope is read at the parent's label - offset
                shifts[axis] = -offsets[node, axis]
            _distance_transform_cube(cube, weight, shifts, line, result, vertex, boundary)
            flat = cube.reshape(-1)
            smallest = flat.min()
            for label in range(n_labels):
                messages[index, label] = flat[label] - smallest
        for index in range(start[d], start[d + 1]):
            parent = parents[by_depth[index]]
            for label in range(n_labels):
                total[parent, label] += messages[index, label]
    # downward: each node's best label given its parent's choice
    chosen = np.empty(n_nodes, np.int64)
    root = by_depth[0]
    chosen[root] = np.argmin(total[root])
    for index in range(1, n_nodes):
        node = by_depth[index]
        parent_label = chosen[parents[node]]
        # the label this node would take to move exactly as its parent does
        pa = parent_label // (s1 * s2) - offsets[node, 0]
        pb = (parent_label // s2) % s1 - offsets[node, 1]
        pc = parent_label % s2 - offsets[node, 2]
        best, best_cost = 0, np.inf
        for label in range(n_labels):
            a, b, c = label // (s1 * s2), (label // s2) % s1, label % s2
            cost = total[node, label] + weight * ((a - pa) * (a - pa) + (b - pb) * (b - pb)
                                                  + (c - pc) * (c - pc))
            if cost < best_cost:
                best, best_cost = label, cost
        chosen[node] = best
    return chosen


def tree_belief_propagation_compiled(unary: np.ndarray, order: np.ndarray,
                                     parents: np.ndarray, label_shape, weight: float,
                                     offsets=None) -> np.ndarray:
    """The compiled twin of :func:`~slicreg_lite.teacher.reference.tree_belief_propagation`
    (same arguments, same result)."""
    shape = tuple(int(s) for s in label_shape)
    if len(shape) != 3 or int(np.prod(shape)) != unary.shape[1]:
        raise ValueError(f"label_shape must be 3 sizes whose product is the {unary.shape[1]} "
                         f"labels; got {tuple(label_shape)}")
    if weight <= 0:
        raise ValueError(f"weight must be positive; got {weight}")
    order = np.asarray(order, np.int64)
    parents = np.asarray(parents, np.int64)
    total = np.array(unary, dtype=np.float64)
    shifts = (np.zeros((len(total), 3)) if offsets is None
              else np.ascontiguousarray(offsets, np.float64))
    if shifts.shape != (len(total), 3):
        raise ValueError(f"offsets must have shape ({len(total)}, 3); got {shifts.shape}")
    return _belief_propagation(total, order, parents, _depths(order, parents), *shape,
                               float(weight), shifts)
