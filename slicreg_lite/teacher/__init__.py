"""Step 2 of Slic-Reg (notebook 02): deeds-lite, the conventional registration that
teaches the network.

``register(fixed, moving, cfg)`` runs the three parts of deeds on two CT scans:

- :mod:`~slicreg_lite.teacher.mind`: MIND-SSC descriptors of both images;
- :mod:`~slicreg_lite.teacher.affine`: block matching + least trimmed squares, no
  pre-alignment needed;
- :mod:`~slicreg_lite.teacher.deformable`: coarse-to-fine discrete optimisation on a
  minimum spanning tree with belief propagation, symmetric, on the grids of
  :mod:`~slicreg_lite.teacher.grid`; its kernels come twice: written for reading
  (:mod:`~slicreg_lite.teacher.reference`, what the notebook teaches) and compiled with
  numba (:mod:`~slicreg_lite.teacher.compiled`).

In Slic-Reg the *fixed* image is a training scan and the *moving* image the template: the
resulting field carries the template's supervoxels onto the training scan
(:func:`slicreg_lite.pipeline.stages.supervision`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.checks import check_volume
from ..core.config import TeacherConfig, config_section
from ..core.spatial import affine_to_displacement, invert_affine
from ..supervoxels.layers import body_mask
from .affine import affine_registration
from .deformable import deformable_registration
from .mind import mind_ssc


@dataclass
class TeacherResult:
    """What :func:`register` returns.

    Attributes
    ----------
    affine : numpy.ndarray, shape (3, 4)
        The linear step: fixed voxel -> moving voxel.
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        The whole transform (affine and deformable) as a displacement field in voxels on
        the fixed grid: ``warp_image(moving, displacement)`` lies on the fixed image.
    backward : numpy.ndarray of float32, shape (3, D, H, W)
        The inverse direction (moving grid -> fixed image), consistent with ``displacement``.
    timings : dict
        Seconds per part: ``"MIND"``, ``"affine"``, ``"cost volume"``,
        ``"belief propagation"``, ``"warping"`` (the last three summed over both
        directions, which run side by side on two threads) and ``"total"`` (wall clock).
    levels : list of numpy.ndarray
        The field after each deformable level (only with ``keep_levels=True``).
    """

    affine: np.ndarray
    displacement: np.ndarray
    backward: np.ndarray
    timings: dict
    levels: list = field(default_factory=list)


def register(fixed, moving, cfg, *, affine=None, keep_levels: bool = False) -> TeacherResult:
    """Register ``moving`` onto ``fixed`` with deeds-lite: affine, then deformable.

    Parameters
    ----------
    fixed, moving : array_like, shape (D, H, W)
        CT scans on grids of the same size (in HU; MIND does not care about the units).
    cfg : TeacherConfig or Config
        Parameters (``get_config(preset).teacher``).
    affine : array_like, shape (3, 4), optional
        A known result of the affine step (e.g. of an earlier call on the same pair with
        other deformable settings): the affine step is then skipped.
    keep_levels : bool
        Keep the field after every level (for teaching figures).

    Returns
    -------
    TeacherResult

    Raises
    ------
    ValueError
        If an image is not 3D, holds NaN / Inf, or the shapes differ.
    """
    cfg = config_section(cfg, TeacherConfig)
    # copies: writable float32 arrays that torch can share memory with
    fixed = np.array(check_volume(fixed, "fixed"), dtype=np.float32)
    moving = np.array(check_volume(moving, "moving"), dtype=np.float32)
    if fixed.shape != moving.shape:
        raise ValueError(f"moving must have the shape of fixed {fixed.shape}; got "
                         f"{moving.shape} (resample both to one grid first)")
    timings = {}
    begin = start = time.perf_counter()
    fixed_mind = mind_ssc(fixed, radius=cfg.mind_radius, dilation=cfg.mind_dilation)
    moving_mind = mind_ssc(moving, radius=cfg.mind_radius, dilation=cfg.mind_dilation)
    timings["MIND"] = time.perf_counter() - start

    start = time.perf_counter()
    if affine is None:
        try:
            mask = body_mask(fixed)
        except ValueError:  # no tissue at all (e.g. a constant image): use every voxel
            mask = np.ones(fixed.shape, dtype=bool)
        affine = affine_registration(fixed_mind, moving_mind, mask,
                                     factors=cfg.affine_factors, radii=cfg.affine_radii,
                                     iterations=cfg.affine_iterations,
                                     block_spacing=cfg.affine_block_spacing,
                                     trim=cfg.affine_trim_fraction)
    else:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (3, 4) or not np.isfinite(affine).all():
            raise ValueError(f"affine must be a finite 3 x 4 matrix; got shape {affine.shape}")
    timings["affine"] = time.perf_counter() - start

    forward = torch.from_numpy(affine_to_displacement(affine, fixed.shape))
    backward = torch.from_numpy(affine_to_displacement(invert_affine(affine), fixed.shape))
    forward, backward, levels = deformable_registration(
        torch.from_numpy(fixed), torch.from_numpy(moving), fixed_mind, moving_mind,
        forward, backward, spacings=cfg.grid_spacings, radii=cfg.search_radii,
        quantisations=cfg.quantisations, alpha=cfg.regularisation,
        symmetric=cfg.symmetric, consistency_iterations=cfg.consistency_iterations,
        regularise_total=cfg.regularise_total, patch_samples=cfg.patch_samples,
        smooth_patch=cfg.smooth_patch, timings=timings, keep_levels=keep_levels)
    timings["total"] = time.perf_counter() - begin
    return TeacherResult(affine, forward.numpy(), backward.numpy(), timings,
                         [level.numpy() for level in levels])
