"""Belief propagation on the spanning tree, compiled: the same loops as the textbook.

:func:`~slicreg_lite.teacher.discrete.tree_belief_propagation` in ``discrete.py`` is the
readable reference, vectorised with NumPy: it handles all nodes of one tree depth at
once, so each depth costs a few hundred small NumPy calls and Python's call overhead
dominates. Here the same algorithm is written as plain loops, one node and one line of
labels at a time, and compiled by numba: Felzenszwalb and Huttenlocher's lower envelope
of parabolas for the distance transform, an upward pass of messages from the leaves to
the root, a downward pass of choices from the root to the leaves.

The arithmetic is done in the same order and precision as the reference, so the chosen
labels are identical (the tests compare both on random trees). The kernels release the
GIL: deeds-lite runs its two directions on two threads side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _lower_envelope(f, weight, out, vertex, boundary):
    """``out[q] = min_j f[j] + weight * (q - j)^2`` for one line of labels, in O(n).

    The parabola of label ``j`` is ``weight * (x - j)^2 + f[j]``; the lower envelope of
    all of them is built from left to right (``vertex``: its parabolas, ``boundary``:
    where each becomes the lowest), then read off at every label.
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
        while boundary[k + 1] < q:
            k += 1
        v = vertex[k]
        out[q] = weight * ((q - v) * (q - v)) + f[v]


@njit(cache=True, nogil=True)
def _transform_lines(view, weight, line, result, vertex, boundary):
    """The 1D distance transform of every line along the last axis of a 3D view, in place."""
    n0, n1, n = view.shape
    for a in range(n0):
        for b in range(n1):
            for i in range(n):
                line[i] = view[a, b, i]
            _lower_envelope(line[:n], weight, result, vertex, boundary)
            for i in range(n):
                view[a, b, i] = result[i]


@njit(cache=True, nogil=True)
def _distance_transform_cube(cube, weight, line, result, vertex, boundary):
    """The 3D distance transform of one label cube, in place: separable, one axis after
    the other (axis 0, then 1, then 2, as the NumPy version); each axis in turn is made
    the last one of a transposed view."""
    _transform_lines(cube.transpose(1, 2, 0), weight, line, result, vertex, boundary)
    _transform_lines(cube.transpose(0, 2, 1), weight, line, result, vertex, boundary)
    _transform_lines(cube, weight, line, result, vertex, boundary)


@njit(cache=True, nogil=True)
def _belief_propagation(total, order, parents, depth, s0, s1, s2, weight):
    """Both passes on the tree; ``total`` (P, L) holds the unary costs and is updated."""
    n_nodes, n_labels = total.shape
    max_depth = 0
    for node in range(n_nodes):
        max_depth = max(max_depth, depth[node])
    longest = max(s0, s1, s2)
    cube = np.empty((s0, s1, s2))
    line, result = np.empty(longest), np.empty(longest)
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
            _distance_transform_cube(cube, weight, line, result, vertex, boundary)
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
        pa, pb, pc = parent_label // (s1 * s2), (parent_label // s2) % s1, parent_label % s2
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
                                     parents: np.ndarray, label_shape,
                                     weight: float) -> np.ndarray:
    """The compiled twin of :func:`~slicreg_lite.teacher.discrete.tree_belief_propagation`
    (same arguments, same result)."""
    from .discrete import _depths

    shape = tuple(int(s) for s in label_shape)
    if len(shape) != 3 or int(np.prod(shape)) != unary.shape[1]:
        raise ValueError(f"label_shape must be 3 sizes whose product is the {unary.shape[1]} "
                         f"labels; got {tuple(label_shape)}")
    if weight <= 0:
        raise ValueError(f"weight must be positive; got {weight}")
    order = np.asarray(order, np.int64)
    parents = np.asarray(parents, np.int64)
    total = np.array(unary, dtype=np.float64)
    return _belief_propagation(total, order, parents, _depths(order, parents), *shape,
                               float(weight))
