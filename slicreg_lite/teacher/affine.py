"""The linear step of deeds: block matching of MIND and a least-trimmed-squares affine fit.

No pre-alignment is assumed: two patients may be 10-20 mm apart, rotated by a few
degrees, 15% different in size, and their fields of view may be shifted by several
centimetres along the body. So the search starts coarse:

1. On a coarse copy of both MIND volumes (``factor`` times smaller), each block of the
   fixed body finds its best match within a large cube of displacements (the same
   cost volume as the deformable step, :func:`~slicreg_lite.teacher.reference.cost_volume`).
2. An affine matrix is fitted to the block correspondences by **least trimmed squares**:
   fit, keep the ``trim`` fraction of blocks that agree best, fit again. Blocks in
   sliding organs or empty regions are outvoted. The first fit of all is a translation
   (the median displacement), which is robust enough for the largest shifts. Two more
   guards against repetitive anatomy (vertebrae, bowel loops) voting for a collapsed
   axis: blocks next to a face of the volume (where the field of view cuts the body) are
   left out, and one round may change scale by at most ``max_step``.
3. The moving image is warped with the current matrix and steps 1-2 repeat on finer
   copies with smaller search cubes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.spatial import affine_to_displacement, warp_image
from .compiled import cost_volume_compiled
from .grid import control_points, displacement_labels, patch_offsets, smooth_features


def fit_affine(points: np.ndarray, targets: np.ndarray, *, trim: float = 0.5,
               iterations: int = 5) -> np.ndarray:
    """Least-trimmed-squares affine fit ``targets ~ A[:, :3] @ points + A[:, 3]``.

    Parameters
    ----------
    points, targets : numpy.ndarray, shape (N, 3)
        Corresponding positions (voxels).
    trim : float
        Fraction of the correspondences kept in each refit (the best-fitting ones).
    iterations : int
        Number of refits.

    Returns
    -------
    numpy.ndarray, shape (3, 4)
    """
    points = np.asarray(points, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if len(points) < 4:
        raise ValueError(f"an affine fit needs at least 4 correspondences; got {len(points)}")
    design = np.column_stack([points, np.ones(len(points))])
    keep = np.ones(len(points), dtype=bool)
    for _ in range(iterations):
        solution = np.linalg.lstsq(design[keep], targets[keep], rcond=None)[0]  # (4, 3)
        residuals = np.linalg.norm(design @ solution - targets, axis=1)
        n_keep = max(4, int(np.ceil(trim * len(points))))
        keep = np.zeros(len(points), dtype=bool)
        keep[np.argsort(residuals, kind="stable")[:n_keep]] = True
    return solution.T


def _downsample(volume: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool3d(volume[None], factor, stride=factor, ceil_mode=True)[0] \
        if factor > 1 else volume


def affine_registration(fixed_features: torch.Tensor, moving_features: torch.Tensor,
                        fixed_mask: np.ndarray, *, factors=(4, 2), radii=(6, 3),
                        iterations=(2, 3), block_spacing: int = 3, trim: float = 0.5,
                        max_step: float = 0.15, initial=None) -> np.ndarray:
    """Affine matrix (voxel coordinates, fixed -> moving) by coarse-to-fine block matching.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor, shape (C, D, H, W)
        MIND descriptors of the two images (same grid size).
    fixed_mask : numpy.ndarray of bool, shape (D, H, W)
        Where blocks may be placed (the fixed body).
    factors : sequence of int
        Downsampling factor of each level.
    radii : sequence of int
        Search radius of each level, in voxels of that level.
    iterations : sequence of int
        Block matching + fit rounds per level.
    block_spacing : int
        Distance between block centres, in voxels of the level.
    trim : float
        Fraction of blocks kept by the least-trimmed-squares fit.
    max_step : float
        Largest change of scale per round (singular values of the update within
        ``1 +- max_step``).
    initial : numpy.ndarray, shape (3, 4), optional
        Starting matrix; identity by default.

    Returns
    -------
    numpy.ndarray, shape (3, 4)
        Maps a fixed voxel ``x`` to the moving voxel ``A[:, :3] @ x + A[:, 3]``.
    """
    shape = tuple(fixed_features.shape[1:])
    matrix = np.eye(3, 4) if initial is None else np.asarray(initial, dtype=np.float64)
    mask = torch.from_numpy(np.asarray(fixed_mask, dtype=np.float32))
    first_fit = True
    for factor, radius, rounds in zip(factors, radii, iterations):
        fixed_small = _downsample(fixed_features, factor)
        small_shape = fixed_small.shape[1:]
        mask_small = _downsample(mask[None], factor)[0] > 0.5
        offsets, box = patch_offsets(2 * block_spacing)
        fixed_small = smooth_features(fixed_small, box)
        grid, _ = control_points(small_shape, block_spacing)
        inside = np.minimum(grid, np.array(small_shape) - 1)
        # Blocks near a face of the volume see the edge of the field of view (which cuts
        # the body differently in every scan) and vote for "no motion": leave them out.
        margin = block_spacing
        away_from_faces = ((grid >= margin) & (grid < np.array(small_shape) - margin)).all(1)
        in_body = mask_small.numpy()[tuple(inside.T)] & away_from_faces
        blocks = grid[in_body]
        if len(blocks) < 4:
            continue  # too small at this factor: go to the next, finer level
        candidates = displacement_labels(radius, 1)
        for _ in range(rounds):
            field = torch.from_numpy(affine_to_displacement(matrix, shape))
            moving_small = smooth_features(
                _downsample(warp_image(moving_features, field, padding="border"), factor), box)
            cost = cost_volume_compiled(fixed_small, moving_small, spacing=block_spacing,
                                        radius=radius, quantisation=1,
                                        offsets=offsets)[in_body]
            best = candidates[cost.argmin(1).numpy()]
            # block centres and matches in full-resolution voxels
            centres = blocks * factor + (factor - 1) / 2
            matches = centres + best * factor
            if first_fit:  # the first, coarsest estimate: a robust translation only
                update = np.eye(3, 4)
                update[:, 3] = np.median(best * factor, axis=0)
                first_fit = False
            else:
                update = _limit_scaling(fit_affine(centres, matches, trim=trim), max_step,
                                        centres.mean(0))
            # the moving image was already warped by `matrix`: apply the update first
            matrix = _compose_affine(matrix, update)
    return matrix


def _limit_scaling(update: np.ndarray, max_step: float, centre: np.ndarray) -> np.ndarray:
    """Clip the singular values of an update's linear part to ``1 +- max_step``.

    Block matches in repetitive anatomy (vertebrae, bowel loops) can agree on a collapsed
    axis; one round may only rotate and change sizes a little, several rounds add up.
    The translation is adjusted so that ``centre`` (the middle of the blocks) still maps
    where the unclipped update maps it.
    """
    u, singular, vt = np.linalg.svd(update[:, :3])
    clipped = np.clip(singular, 1 - max_step, 1 + max_step)
    if np.allclose(clipped, singular):
        return update
    limited = np.empty_like(update)
    limited[:, :3] = u @ np.diag(clipped) @ vt
    limited[:, 3] = update[:, :3] @ centre + update[:, 3] - limited[:, :3] @ centre
    return limited


def _compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``x -> outer(inner(x))`` for 3 x 4 matrices."""
    full = lambda m: np.vstack([m, [0, 0, 0, 1]])  # noqa: E731
    return (full(outer) @ full(inner))[:3]
