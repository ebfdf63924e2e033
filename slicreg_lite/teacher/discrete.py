"""The deformable step of deeds: discrete optimisation on a minimum spanning tree.

At each level of a coarse-to-fine hierarchy:

1. **Control points** on a regular grid (``spacing`` voxels apart) of the fixed image.
2. **Labels**: a dense cube of candidate displacements, ``-radius..radius`` steps of
   ``quantisation`` voxels along each axis: ``(2 radius + 1)^3`` labels.
3. **Data cost** of every label at every control point: the sum of squared differences
   of MIND descriptors over a patch around the point (:func:`cost_volume`).
4. **Minimum spanning tree** of the grid, from intensity differences between
   neighbouring cells (:func:`minimum_spanning_tree`): edges rarely cross organ
   boundaries, so organs can slide along each other.
5. **Belief propagation** on the tree (:func:`tree_belief_propagation`): the exact
   minimum of data cost + ``alpha * |d_p - d_q|^2 / spacing^2`` over all tree edges. Each
   message is a min-convolution with a quadratic, computed by the lower-envelope
   *distance transform* (:func:`distance_transform`) in time linear in the number of
   labels.
6. The chosen displacements are interpolated to a dense field and composed with the
   previous levels; forward and backward fields are made inverse-consistent.

Registration runs the data cost and belief propagation compiled
(:mod:`slicreg_lite.teacher.compiled`): the same loops, a fraction of the time. The
vectorised versions here are the readable references the tests compare them with.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.csgraph import minimum_spanning_tree as _scipy_mst

from ..spatial import compose, sample, warp_image
from .compiled import cost_volume_compiled, tree_belief_propagation_compiled


# ------------------------------------------------------------------------ grids, labels
def control_points(shape, spacing: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Control points in the centres of ``spacing``-sized cells covering the volume.

    The grid is regular: point ``i`` along an axis lies at ``i * spacing + (spacing - 1)
    // 2``; the last one may lie just outside a volume whose size is not a multiple of
    the spacing (reads there see the border).

    Returns
    -------
    points : numpy.ndarray of int64, shape (P, 3)
        Voxel coordinates (d, h, w), in C order of the grid.
    grid_shape : tuple of 3 ints
    """
    grid_shape = tuple(int(np.ceil(n / spacing)) for n in shape)
    axes = [np.arange(g) * spacing + (spacing - 1) // 2 for g in grid_shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return points.astype(np.int64), grid_shape


def displacement_labels(radius: int, quantisation: int) -> np.ndarray:
    """The cube of candidate displacements: shape ``((2 radius + 1)^3, 3)``, in voxels."""
    steps = np.arange(-radius, radius + 1) * quantisation
    return np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)


def patch_offsets(spacing: int, samples: int = 8,
                  smooth: bool = True) -> tuple[np.ndarray, int]:
    """The sample positions of a control point's patch, and the box size to smooth with.

    ``samples=8``: 2 x 2 x 2 sub-blocks at ``+-half`` along each axis (``half = spacing //
    4``); ``samples=27``: 3 x 3 x 3 positions ``-step, 0, +step`` (``step = spacing // 3``).
    With ``smooth`` each sample reads features averaged over a ``(2 half + 1)^3`` box, so
    that the 8 samples together cover about one grid cell; without, each reads its own
    voxel: finer texture, which real CT has and the phantom lacks.
    """
    if samples == 8:
        half = max(1, spacing // 4)
        steps = np.array([-1, 1]) * half
    elif samples == 27:
        half = max(1, spacing // 3)
        steps = np.array([-1, 0, 1]) * half
    else:
        raise ValueError(f"samples must be 8 or 27; got {samples}")
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
    return offsets, (2 * max(1, spacing // 4) + 1) if smooth else 1


def smooth_features(features: torch.Tensor, box: int) -> torch.Tensor:
    """Box-filter every channel (odd ``box``), keeping the size.

    Separable: three 1D means along d, h and w cost ``3 * box`` instead of ``box^3``
    operations per voxel.
    """
    if box <= 1:
        return features
    out = features[None]
    for axis in range(3):
        kernel = [1, 1, 1]
        kernel[axis] = box
        padding = [0] * 6
        padding[4 - 2 * axis:6 - 2 * axis] = [box // 2, box // 2]  # F.pad lists w, h, d
        out = F.avg_pool3d(F.pad(out, padding, mode="replicate"), kernel, stride=1)
    return out[0]


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


# ---------------------------------------------------------------------- spanning tree
def minimum_spanning_tree(image: torch.Tensor, points: np.ndarray, grid_shape,
                          spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """The minimum spanning tree of the control grid, from intensity differences.

    Each grid cell gets the mean intensity of its ``spacing``-sized block; the 6
    neighbours of the grid are linked with weight ``|mean_p - mean_q|``. The tree keeps
    the edges between similar cells, so that it rarely links two different organs.

    Returns
    -------
    order : numpy.ndarray of int, shape (P,)
        The nodes in breadth-first order from the root (the grid's centre).
    parents : numpy.ndarray of int, shape (P,)
        Each node's parent in the tree; -1 for the root.
    """
    box = smooth_features(image[None].float(), spacing if spacing % 2 else spacing + 1)[0]
    inside = np.minimum(points, np.array(image.shape) - 1)  # the last points may lie outside
    means = box[tuple(torch.from_numpy(inside).T)].numpy()
    index = np.arange(len(points)).reshape(grid_shape)
    sources, targets = [], []
    for axis in range(3):
        a = np.moveaxis(index, axis, 0)
        sources.append(a[:-1].ravel())
        targets.append(a[1:].ravel())
    sources, targets = np.concatenate(sources), np.concatenate(targets)
    # +1e-6: scipy treats a zero weight as "no edge"
    weights = np.abs(means[sources] - means[targets]).astype(np.float64) + 1e-6
    graph = coo_matrix((weights, (sources, targets)), shape=(len(points),) * 2).tocsr()
    tree = _scipy_mst(graph)
    root = _tree_centre(tree)
    order, predecessors = breadth_first_order(tree, root, directed=False,
                                              return_predecessors=True)
    parents = np.where(predecessors < 0, -1, predecessors)
    return order, parents


def _depths(order: np.ndarray, predecessors: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(order), dtype=np.int64)
    for node in order[1:]:
        depth[node] = depth[predecessors[node]] + 1
    return depth


def _tree_centre(tree) -> int:
    """The middle node of the tree's longest path: rooting there makes the tree shallowest,
    and belief propagation handles one depth at a time."""
    order, predecessors = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    end = int(np.argmax(_depths(order, predecessors)))  # one end of a longest path
    order, predecessors = breadth_first_order(tree, end, directed=False,
                                              return_predecessors=True)
    depth = _depths(order, predecessors)
    node = int(np.argmax(depth))  # the other end
    for _ in range(depth.max() // 2):  # walk back half of the longest path
        node = int(predecessors[node])
    return node


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


# ----------------------------------------------------------------------- dense fields
def dense_field(point_displacements: np.ndarray, grid_shape, spacing: int,
                shape) -> torch.Tensor:
    """Trilinear interpolation of control-point displacements to every voxel.

    Parameters
    ----------
    point_displacements : numpy.ndarray, shape (P, 3)
        In voxels, for the points of :func:`control_points` (C order of the grid).
    """
    coarse = torch.from_numpy(np.ascontiguousarray(
        point_displacements.T.reshape(3, *grid_shape), dtype=np.float32))
    axes = [(torch.arange(n, dtype=torch.float32) - (spacing - 1) // 2) / spacing
            for n in shape]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return sample(coarse, coords, padding="border")


def make_inverse_consistent(forward: torch.Tensor, backward: torch.Tensor,
                            iterations: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Nudge two fields towards being each other's inverse (as deeds does).

    Repeats ``u <- (u - v(x + u)) / 2`` and ``v <- (v - u(x + v)) / 2``: a field and the
    inverse of the other are averaged. Exact inverses are a fixed point.
    """
    for _ in range(iterations):
        forward, backward = (0.5 * (forward - warp_image(backward, forward, padding="border")),
                             0.5 * (backward - warp_image(forward, backward, padding="border")))
    return forward, backward


def register_level(fixed_features: torch.Tensor, moving_features: torch.Tensor,
                   fixed_image: torch.Tensor, *, spacing: int, radius: int,
                   quantisation: int, alpha: float, prior=None, patch_samples: int = 8,
                   smooth_patch: bool = True, timings=None) -> tuple[torch.Tensor, dict]:
    """One level: the best displacement of every control point, as a dense field.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor, shape (C, D, H, W)
        MIND of the fixed image and of the moving image *as currently warped*, both
        smoothed with the box of :func:`patch_offsets` for this ``spacing`` (and
        ``patch_samples``, ``smooth_patch``, which choose the patch's samples).
    fixed_image : torch.Tensor, shape (D, H, W)
        Intensities of the fixed image, for the spanning tree.
    spacing, radius, quantisation : int
        Control-point spacing, search radius (in steps) and step size, in voxels.
    alpha : float
        Regularisation weight.
    prior : torch.Tensor, shape (3, D, H, W), optional
        The deformation found so far (by the previous levels, beyond the affine step).
        Given, the penalty is on the gradient of ``prior + step``, as in deeds: a level
        also smooths what the previous ones left. Without it, only the step's own
        gradient is penalised.
    timings : dict, optional
        Seconds of ``"cost volume"`` and ``"belief propagation"`` are added to it.

    Returns
    -------
    field : torch.Tensor, shape (3, D, H, W)
        The level's displacement (to compose with the current warp).
    details : dict
        ``points``, ``grid_shape``, ``labels``, ``cost`` (P, L), ``order``, ``parents``,
        ``point_displacements``: everything a notebook might want to draw.
    """
    timings = {} if timings is None else timings
    shape = tuple(fixed_image.shape)
    points, grid_shape = control_points(shape, spacing)
    offsets, _ = patch_offsets(spacing, patch_samples, smooth_patch)
    candidates = displacement_labels(radius, quantisation)
    start = time.perf_counter()
    # the compiled twin of cost_volume: the same numbers, a fraction of the time
    cost = cost_volume_compiled(fixed_features, moving_features, spacing=spacing,
                                radius=radius, quantisation=quantisation, offsets=offsets)
    _add_time(timings, "cost volume", start)
    start = time.perf_counter()
    order, parents = minimum_spanning_tree(fixed_image, points, grid_shape, spacing)
    # alpha penalises the squared displacement *gradient*: |d_p - d_q|^2 / spacing^2
    weight = alpha * quantisation ** 2 / spacing ** 2
    side = 2 * radius + 1
    # the compiled twin of tree_belief_propagation: same labels, a fraction of the time
    offsets = None
    if prior is not None:  # what each point already moves more than its parent, in steps
        inside = np.minimum(points, np.array(shape) - 1)
        before = prior[(slice(None), *torch.from_numpy(inside).T)].T.numpy().astype(np.float64)
        offsets = np.where(parents[:, None] >= 0, before - before[parents], 0) / quantisation
    labels = tree_belief_propagation_compiled(cost.numpy(), order, parents, (side,) * 3,
                                              weight, offsets)
    _add_time(timings, "belief propagation", start)
    chosen = candidates[labels].astype(np.float32)
    field = dense_field(chosen, grid_shape, spacing, shape)
    return field, {"points": points, "grid_shape": grid_shape, "labels": candidates,
                   "cost": cost, "order": order, "parents": parents,
                   "point_displacements": chosen}


def deformable_registration(fixed_image, moving_image, fixed_features, moving_features,
                            forward, backward, *, spacings, radii, quantisations,
                            alpha: float, symmetric: bool = True,
                            consistency_iterations: int = 2,
                            regularise_total: bool = True, patch_samples: int = 8,
                            smooth_patch: bool = True, timings=None,
                            keep_levels: bool = False):
    """All levels of the deformable step, coarse to fine, starting from given fields.

    Parameters
    ----------
    fixed_image, moving_image : torch.Tensor, shape (D, H, W)
    fixed_features, moving_features : torch.Tensor, shape (C, D, H, W)
        MIND descriptors of both images.
    forward : torch.Tensor, shape (3, D, H, W)
        Initial fixed -> moving field (e.g. of the affine step).
    backward : torch.Tensor, shape (3, D, H, W)
        Initial moving -> fixed field (its inverse).
    spacings, radii, quantisations : sequences of int
        One entry per level.
    alpha : float
        Regularisation weight.
    symmetric : bool
        Also register moving -> fixed and make both fields inverse-consistent.
    consistency_iterations : int
        Rounds of :func:`make_inverse_consistent` after each level (when symmetric).
    regularise_total : bool
        Penalise the gradient of the whole deformation so far (beyond the initial
        fields), not only of each level's step (see :func:`register_level`).
    patch_samples, smooth_patch
        The samples of a control point's patch in the data cost (:func:`patch_offsets`).
    timings : dict, optional
        Seconds spent in ``"cost volume"``, ``"belief propagation"`` and ``"warping"``
        are added to it (summed over both directions, which run on two threads).
    keep_levels : bool
        Also return the forward field after every level.

    Returns
    -------
    forward, backward : torch.Tensor, shape (3, D, H, W)
    levels : list of torch.Tensor
        Forward field after each level (empty unless ``keep_levels``).
    """
    timings = {} if timings is None else timings
    levels = []
    initial = {"forward": forward, "backward": backward}  # e.g. the affine step
    smoothed = {}  # box size -> both images' MIND smoothed with it (computed once)
    for spacing, radius, quantisation in zip(spacings, radii, quantisations):
        box = patch_offsets(spacing, patch_samples, smooth_patch)[1]
        if box not in smoothed:
            start = time.perf_counter()
            smoothed[box] = (smooth_features(fixed_features, box),
                             smooth_features(moving_features, box))
            _add_time(timings, "cost volume", start)
        fixed_smooth, moving_smooth = smoothed[box]
        directions = [(fixed_image, fixed_smooth, moving_smooth, forward, "forward")]
        if symmetric:
            directions.append((moving_image, moving_smooth, fixed_smooth, backward,
                               "backward"))

        def one_direction(image, own, other, field, name, clock,
                          level=(spacing, radius, quantisation)):
            start = time.perf_counter()
            # smoothing and warping nearly commute for smooth fields: warp the smoothed copy
            warped = warp_image(other, field, padding="border")
            _add_time(clock, "warping", start)
            prior = field - initial[name] if regularise_total else None
            step, _ = register_level(own, warped, image, spacing=level[0], radius=level[1],
                                     quantisation=level[2], alpha=alpha, prior=prior,
                                     patch_samples=patch_samples,
                                     smooth_patch=smooth_patch, timings=clock)
            start = time.perf_counter()
            composed = compose(field, step)
            _add_time(clock, "warping", start)
            return composed

        # the two directions are independent: run them side by side on two threads,
        # each with its own clock (summed afterwards: seconds of work, not of waiting)
        clocks = [{} for _ in directions]
        with ThreadPoolExecutor(max_workers=len(directions)) as pool:
            updated = list(pool.map(lambda args: one_direction(*args),
                                    [(*d, c) for d, c in zip(directions, clocks)]))
        for clock in clocks:
            for name, seconds in clock.items():
                timings[name] = timings.get(name, 0.0) + seconds
        if symmetric:
            start = time.perf_counter()
            forward, backward = make_inverse_consistent(*updated, consistency_iterations)
            _add_time(timings, "warping", start)
        else:
            forward = updated[0]
        if keep_levels:
            levels.append(forward.clone())
    return forward, backward, levels


def _add_time(timings: dict, name: str, start: float) -> None:
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
