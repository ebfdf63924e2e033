"""The paper's alignment (step 4, notebook 04): Adam moves every keypoint so that the
moving scan's features, sampled at the displaced keypoint, match the template's, while
``alpha`` x the squared differences of neighbouring displacements keeps the motion smooth
(:func:`align_keypoints`); :func:`register` runs it and the spline for one scan.

With ``centre_weight`` > 0 (``Config.centre_fit``) Adam also starts from, and is drawn to,
the centre fit of :mod:`~slicreg_lite.alignment.centre_fit`: this toolkit's extension,
not the paper's.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.alignment import prepare_template
>>> from slicreg_lite.core.config import get_config
>>> cfg = get_config("smoke")
>>> d, h, w = np.indices(cfg.supervoxels.shape)  # 32 x 28 x 36: 64 blocks as supervoxels
>>> blocks = (1 + d // 8 * 16 + h // 7 * 4 + w // 9).astype(np.uint8)
>>> template = prepare_template(np.stack([blocks, blocks]), cfg)
>>> template.keypoints.shape, tuple(template.features.shape)
((128, 3), (32, 16, 14, 18))
>>> result = register(template, template.features, cfg)  # the template onto itself
>>> bool(np.abs(result.displacement).max() < 0.05)
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import AdamConfig
from ..core.spatial import resize_displacement, sample
from .features import _grid_ratio, channels_last, sample_features
from .keypoints import KeypointGraph, fill_from_neighbours, keypoint_graph
from .template import (
    MOVING_FIELDS,
    TEMPLATE_FIELDS,
    MovingScan,
    Template,
    dense_field,
    with_overrides,
)


def align_keypoints(fixed_features, moving_features, points, graph: KeypointGraph, *,
                    learning_rate: float = 0.05, alpha: float = 0.15,
                    iterations: int = 100, initial=None, centres=None,
                    centre_weight: float = 0.0) -> tuple[np.ndarray, dict]:
    """Adam optimisation of one displacement per keypoint.

    Minimises the paper's loss ``mean((f_fixed[i] - f_moving(p_i + u_i))^2) + alpha *
    sum_{i, j} A_ij |u_i - u_j|^2 / N``, with ``A`` the symmetric adjacency matrix of the
    kNN graph (``A_ij = 1`` when ``j`` is among the ``k`` nearest of ``i`` or ``i`` among
    those of ``j``, so every edge counts twice, as in the authors' code), plus this
    toolkit's ``centre_weight * sum_i |u_i - c_i|^2 / N`` when the displacements ``c_i``
    to the supervoxels' centres in the moving scan are given.

    Parameters
    ----------
    fixed_features : torch.Tensor, shape (N, C)
        The template's features at its keypoints.
    moving_features : torch.Tensor, shape (C, D, H, W)
        The moving scan's features on the feature grid.
    points : array_like, shape (N, 3)
        The keypoints in voxels of the *feature* grid.
    graph : KeypointGraph
        Their kNN graph (only ``neighbours`` is used).
    learning_rate, alpha : float
    iterations : int
    initial : array_like, shape (N, 3), optional
        Starting displacements in voxels of the feature grid (default: zero, or the
        filled-in ``centres`` when given).
    centres : array_like, shape (N, 3), optional
        Displacement from each keypoint to its supervoxel's centre in the moving scan, in
        voxels of the feature grid; NaN rows (supervoxels the moving scan lacks) take no
        part in the centre term and start from their neighbours' mean.
    centre_weight : float
        Weight of the centre term (0: the paper's loss).

    Returns
    -------
    displacements : numpy.ndarray, shape (N, 3)
        In voxels of the feature grid.
    losses : dict
        ``"total"``, ``"data"``, ``"regulariser"`` (and ``"centres"`` with a centre
        term): one value per iteration.

    Notes
    -----
    The displacements are optimised in units of half the grid's extent along each axis
    (the ``[-1, 1]`` coordinates of ``grid_sample``), as in the paper's code, so that the
    learning rate and ``alpha`` do not depend on the grid size.
    """
    if not isinstance(iterations, (int, np.integer)) or iterations <= 0:
        raise ValueError(f"iterations must be a positive integer; got {iterations!r}")
    if moving_features.ndim != 4:
        raise ValueError(f"moving_features must have shape (C, D, H, W); got "
                         f"{tuple(moving_features.shape)}")
    n = len(points)
    if fixed_features.shape != (n, moving_features.shape[0]):
        raise ValueError(f"fixed_features must have shape (N, C) = ({n}, "
                         f"{moving_features.shape[0]}) to match the keypoints and the moving "
                         f"features; got {tuple(fixed_features.shape)}")
    if graph.neighbours.shape[0] != n:
        raise ValueError(f"the graph has {graph.neighbours.shape[0]} points; expected {n}")
    shape = tuple(moving_features.shape[1:])
    table = channels_last(moving_features.float())
    start = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    half_extent = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float32)
    edges = torch.from_numpy(graph.edges)  # (E, 2): every undirected edge once
    target = fixed_features.float()

    u = torch.zeros(n, 3)  # normalised units
    present = torch.zeros(n)
    centre_target = torch.zeros(n, 3)
    if centres is not None:
        centres = np.asarray(centres, dtype=np.float64)
        if centres.shape != (n, 3):
            raise ValueError(f"centres must have shape ({n}, 3); got {centres.shape}")
        present = torch.from_numpy(np.isfinite(centres).all(1).astype(np.float32))
        centre_target = torch.from_numpy(
            fill_from_neighbours(centres, graph)).float() / half_extent
        u = centre_target.clone()
    if initial is not None:
        initial = torch.as_tensor(np.asarray(initial), dtype=torch.float32)
        if initial.shape != (n, 3):
            raise ValueError(f"initial must have shape ({n}, 3); got {tuple(initial.shape)}")
        u = initial / half_extent
    u.requires_grad_(True)
    optimiser = torch.optim.Adam([u], lr=learning_rate)
    losses = {"total": [], "data": [], "regulariser": []}
    if centre_weight:
        losses["centres"] = []
    for _ in range(iterations):
        optimiser.zero_grad()
        sampled = sample_features(table, shape, start + u * half_extent)
        data = ((sampled - target) ** 2).mean()
        differences = u.index_select(0, edges[:, 0]) - u.index_select(0, edges[:, 1])
        # the sum over the symmetric adjacency matrix counts each edge twice
        regulariser = alpha * 2 * (differences ** 2).sum() / n
        centre = centre_weight * (present[:, None] * (u - centre_target) ** 2).sum() / n
        loss = data + centre + regulariser
        loss.backward()
        optimiser.step()
        losses["total"].append(loss.item())
        losses["data"].append(data.item())
        losses["regulariser"].append(regulariser.item())
        if centre_weight:
            losses["centres"].append(centre.item())
    return (u.detach() * half_extent).numpy().astype(np.float64), losses


# ----------------------------------------------------------------------- registration
@dataclass
class AdamResult:
    """The outcome of one Adam registration.

    Attributes
    ----------
    keypoints : numpy.ndarray, shape (N, 3)
        The template's keypoints, voxels of the supervoxel grid.
    keypoint_displacement : numpy.ndarray, shape (N, 3)
        Where each keypoint lies in the moving scan, relative to itself, same units.
    displacement : numpy.ndarray of float32, shape (3, *output_shape)
        The dense field on the template's grid (voxels of that grid).
    losses : dict
        Loss curves of :func:`align_keypoints`.
    timings : dict
        Seconds for ``"graph"``, ``"adam"``, ``"tps"`` and ``"total"``.
    graph : KeypointGraph
    """

    keypoints: np.ndarray
    keypoint_displacement: np.ndarray
    displacement: np.ndarray
    losses: dict
    timings: dict
    graph: KeypointGraph


def register(template: Template, moving, cfg, *, output_shape=None,
             **overrides) -> AdamResult:
    """Register a moving scan to the template from its supervoxel layers.

    Parameters
    ----------
    template : Template
        From :func:`prepare_template`.
    moving : MovingScan or torch.Tensor
        The moving scan's features and supervoxel centres (:func:`moving_scan`), or
        features alone, shape ``(C, *template.feature_shape)`` (no centre term then).
    cfg : Config or AdamConfig
    output_shape : tuple of 3 ints, optional
        Grid of the dense field (e.g. the image grid); default: the supervoxel grid.
    **overrides
        Values that replace ``cfg.adam``'s, e.g. ``alpha=0.1, k=5, iterations=50``
        (what the notebook's sliders change). Settings that decide the template or the
        moving scan's features (:data:`TEMPLATE_FIELDS`, :data:`MOVING_FIELDS`) need
        those computed again: :meth:`slicreg_lite.methods.SlicReg.align` does that.

    Returns
    -------
    AdamResult

    Raises
    ------
    ValueError
        If the template or the moving scan was computed with other settings than
        ``cfg`` and the overrides say.
    """
    adam = with_overrides(cfg, overrides)
    _check_settings("the template", template.settings, adam, TEMPLATE_FIELDS,
                    "prepare_template(layers, cfg)")
    if isinstance(moving, MovingScan):
        _check_settings("the moving scan", moving.settings, adam, MOVING_FIELDS,
                        "moving_scan(layers, template, cfg)")
        features, centres = moving.features, moving.centres
    else:
        features, centres = moving, None
    if not adam.centre_weight:
        centres = None  # the paper's loss, and its start from zero
    if tuple(features.shape) != tuple(template.features.shape):
        raise ValueError(f"features must have the template's shape "
                         f"{tuple(template.features.shape)}; got {tuple(features.shape)}")
    timings = {}
    start = time.perf_counter()
    graph = keypoint_graph(template.keypoints, adam.k)
    timings["graph"] = time.perf_counter() - start

    t = time.perf_counter()
    ratio = _grid_ratio(template.shape, template.feature_shape)
    if centres is not None:  # keypoint -> its supervoxel's centre, in feature-grid voxels
        # (the keypoints are the supervoxels' centres: AdamConfig insists on it)
        centres = (centres - template.keypoints) * ratio
    moved, losses = align_keypoints(template.keypoint_features(), features,
                                    template.keypoints * ratio, graph,
                                    learning_rate=adam.learning_rate, alpha=adam.alpha,
                                    iterations=adam.iterations, centres=centres,
                                    centre_weight=adam.centre_weight)
    timings["adam"] = time.perf_counter() - t

    t = time.perf_counter()
    keypoint_displacement = moved / ratio  # feature grid -> supervoxel grid voxels
    dense = dense_field(template, keypoint_displacement, adam, output_shape)
    timings["tps"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return AdamResult(template.keypoints, keypoint_displacement, dense, losses, timings, graph)


def _check_settings(what: str, used: dict, adam: AdamConfig, fields: tuple, how: str) -> None:
    """Refuse to align with settings that ``what`` was not computed with."""
    differ = sorted(name for name in fields if name in used and used[name] != getattr(adam,
                                                                                     name))
    if differ:
        changes = ", ".join(f"{name} {used[name]!r} -> {getattr(adam, name)!r}"
                            for name in differ)
        raise ValueError(f"{what} was computed with other settings ({changes}): compute it "
                         f"again with {how}, or let SlicReg.align do it")


# ----------------------------------------------------------- where is the result unsure?
def centre_spread(template: Template, moving_layers, displacement) -> np.ndarray:
    """How unsure a Slic-Reg registration is, voxel by voxel of the template.

    At a template voxel ``y`` the field points to ``x = y + u(y)`` in the moving scan.
    There every layer's predicted label names one of the template's supervoxels. Where
    network and registration are right, all of them contain ``y``: their centres lie
    around it, as close together as the supervoxels' size allows. Where the layers
    disagree (the network does not know where ``x`` is, or the field sent ``y`` to a
    place the layers do not fit), the named supervoxels lie in different places and their
    centres scatter. The result is that scatter: the root mean square distance of the
    named centres from their mean.

    Parameters
    ----------
    template : Template
        Its keypoints (the supervoxel centres), voxels of the supervoxel grid.
    moving_layers : array_like of int, shape (L, D, H, W)
        The layers predicted for the moving scan, on the supervoxel grid.
    displacement : array_like, shape (3, d, h, w)
        The registration's field on the template's grid (any size covering the same
        extent), voxels of that grid.

    Returns
    -------
    numpy.ndarray of float32, shape (D, H, W)
        On the supervoxel grid, in its voxels; NaN where fewer than two layers name a
        supervoxel (background, or outside the moving scan).
    """
    layers = np.asarray(moving_layers)
    n_layers = len(layers)
    if layers.ndim != 4 or tuple(layers.shape[1:]) != template.shape:
        raise ValueError(f"moving_layers must have shape (L, *{template.shape}); got "
                         f"{layers.shape}")
    field = np.asarray(displacement, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W); got {field.shape}")
    field = np.asarray(resize_displacement(field, template.shape))
    here = np.indices(template.shape, dtype=np.float32)
    partner = here + field
    centres = template.centres.reshape(n_layers, -1, 3)
    count = np.zeros(template.shape)
    total = np.zeros((3, *template.shape))  # of the centres relative to the voxel itself,
    squares = np.zeros(template.shape)  # small numbers: the variance does not cancel out
    for layer, layer_centres in zip(layers, centres):
        named = np.asarray(sample(layer.astype(np.float32), partner, mode="nearest"))
        named = named.round().astype(np.int64)  # 0: background or outside the scan
        known = (named > 0) & (named <= len(layer_centres))
        centre = layer_centres[np.clip(named - 1, 0, len(layer_centres) - 1)]  # (..., 3)
        centre = (np.moveaxis(centre, -1, 0) - here) * known
        count += known
        total += centre
        squares += (centre ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = squares / count - (mean ** 2).sum(0)
    spread = np.sqrt(np.maximum(variance, 0.0))
    spread[count < 2] = np.nan
    return spread.astype(np.float32)
