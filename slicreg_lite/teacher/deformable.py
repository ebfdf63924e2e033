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

from ..core.spatial import compose, sample, warp_image
from .compiled import cost_volume_compiled, tree_belief_propagation_compiled
from .grid import (
    control_points,
    displacement_labels,
    minimum_spanning_tree,
    patch_offsets,
    smooth_features,
)


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
