"""Step 1 of Slic-Reg: layers of SLIC supervoxels on the template scan.

One over-segmentation into 128 classes is too coarse to say *where* a voxel is. Slic-Reg
therefore cuts the template into 16 *layers* of 127 supervoxels + background, each from a
slightly different SLIC initialisation. A voxel is then identified by its 16-tuple of
labels: an *integer encoding of canonical coordinates*. The cells in which all 16 labels
agree are far smaller than any one supervoxel (:func:`encoding_resolution`).

Every layer (:func:`slic_layer`):

1. perturbs the template with a small random affine (identity + N(0, 0.05) on the 3 x 4
   matrix), so that SLIC starts from a differently placed grid of seeds;
2. runs scikit-image's 3D SLIC inside a label-free body mask (:func:`body_mask`);
3. warps the segments back with the inverse affine (nearest neighbour);
4. makes every segment one 26-connected piece and merges/splits them until exactly
   127 foreground supervoxels + background 0 remain (:func:`merge_to_count`).

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.core.config import get_config
>>> from slicreg_lite.cohort.phantom import generate_subject
>>> cfg = get_config("smoke")
>>> template = generate_subject(38, cfg.phantom, cfg.grid)
>>> layers = slic_layers(template.image, body_mask(template.image), cfg.supervoxels)
>>> layers.shape, layers.dtype, [len(np.unique(layer)) for layer in layers]
((4, 32, 28, 36), dtype('uint8'), [128, 128, 128, 128])
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import slic

from ..core.checks import check_volume
from ..core.config import SupervoxelConfig, config_section
from ..core.spatial import (
    affine_to_displacement,
    invert_affine,
    random_affine,
    warp_image,
    warp_labels,
)

#: The 13 offsets that, with their opposites, make up a voxel's 26 neighbours.
_HALF_NEIGHBOURHOOD = [(a, b, c) for a in (0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                       if (a, b, c) > (0, 0, 0)]


# ---------------------------------------------------------------------------- body mask
def body_mask(image, *, threshold_hu: float = -400.0) -> np.ndarray:
    """A rough body mask from intensities alone (no organ labels are used).

    Voxels denser than air (``> threshold_hu``), with the holes of every axial slice
    filled (lungs and bowel gas belong to the body), keeping the largest 26-connected
    component (the patient, not the table or noise).

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        CT in Hounsfield units, RAS+ (axis 2 runs along the body).
    threshold_hu : float
        Intensity that separates air from tissue.

    Returns
    -------
    numpy.ndarray of bool, shape (D, H, W)

    Raises
    ------
    ValueError
        If the image is not 3D, holds NaN/Inf, or no voxel is above the threshold.
    """
    image = check_volume(image, "image")
    dense = image > threshold_hu
    if not dense.any():
        raise ValueError(f"image has no voxel above {threshold_hu} HU: expected a CT scan in "
                         f"Hounsfield units; got values in {image.min():g}..{image.max():g}")
    filled = np.stack([ndimage.binary_fill_holes(dense[:, :, k]) for k in range(dense.shape[2])],
                      axis=2)
    components = connected_components(filled, connectivity=3)
    largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
    return components == largest


# ----------------------------------------------------------------------------- layers
def _check_inputs(image, mask, n_supervoxels: int) -> tuple[np.ndarray, np.ndarray]:
    image = check_volume(image, "image")
    mask = check_volume(mask, "mask")
    if mask.shape != image.shape:
        raise ValueError(f"mask must have the image's shape {image.shape}; got {mask.shape}")
    mask = mask.astype(bool)
    if mask.sum() < n_supervoxels:
        raise ValueError(f"mask must hold at least {n_supervoxels} voxels to make "
                         f"{n_supervoxels - 1} supervoxels + background; got {int(mask.sum())}"
                         f"{' (an empty mask)' if not mask.any() else ''}")
    return image, mask


def slic_layer(image, mask, cfg, layer: int) -> np.ndarray:
    """One layer of supervoxels: exactly ``n_supervoxels - 1`` connected segments + 0.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        The template in Hounsfield units (divided by ``cfg.intensity_scale`` for SLIC).
    mask : array_like of bool, shape (D, H, W)
        Where supervoxels go (e.g. :func:`body_mask`); outside is background 0.
    cfg : SupervoxelConfig or Config
        SLIC parameters (``get_config(preset).supervoxels``).
    layer : int
        Which layer: together with ``cfg.seed`` it chooses the random affine.

    Returns
    -------
    numpy.ndarray of uint8, shape (D, H, W)
        Labels ``0..n_supervoxels - 1``, every one present, every foreground label one
        26-connected component, background exactly outside ``mask``.
    """
    cfg = config_section(cfg, SupervoxelConfig)
    image, mask = _check_inputs(image, mask, cfg.n_supervoxels)
    rng = np.random.default_rng([cfg.seed, layer])
    # A random affine moves SLIC's grid of seeds: each layer cuts the body differently.
    matrix = random_affine(image.shape, cfg.affine_std, rng)
    forward = affine_to_displacement(matrix, image.shape)
    moved_image = warp_image((image / cfg.intensity_scale).astype(np.float32), forward,
                             fill=float(image.min() / cfg.intensity_scale))
    moved_mask = warp_labels(mask.astype(np.uint8), forward).astype(bool)
    if moved_mask.sum() < cfg.n_supervoxels:
        moved_mask = mask  # a tiny mask can vanish under the affine: fall back to no affine
        moved_image = (image / cfg.intensity_scale).astype(np.float32)
        forward = np.zeros_like(forward)
    segments = slic(moved_image, n_segments=cfg.n_segments, compactness=cfg.compactness,
                    max_num_iter=cfg.max_iter, min_size_factor=cfg.min_size_factor,
                    enforce_connectivity=True, mask=moved_mask, channel_axis=None,
                    start_label=1)
    if forward.any():
        backward = affine_to_displacement(invert_affine(matrix), image.shape)
        segments = warp_labels(segments.astype(np.int32), backward)
    segments = _fill_mask(segments, mask)
    return merge_to_count(segments, cfg.n_supervoxels - 1).astype(np.uint8)


def slic_layers(image, mask, cfg, *, progress: bool = False) -> np.ndarray:
    """All layers of supervoxels of the template (see :func:`slic_layer`).

    Returns
    -------
    numpy.ndarray of uint8, shape (n_layers, D, H, W)
    """
    from tqdm.auto import tqdm

    cfg = config_section(cfg, SupervoxelConfig)
    _check_inputs(image, mask, cfg.n_supervoxels)
    return np.stack([slic_layer(image, mask, cfg, layer)
                     for layer in tqdm(range(cfg.n_layers), desc="SLIC layers",
                                       disable=not progress)])


def _fill_mask(segments: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Background outside ``mask``; gaps inside it take the label of the nearest segment."""
    segments = np.where(mask, segments, 0)
    gaps = mask & (segments == 0)
    if gaps.any() and (segments > 0).any():
        nearest = ndimage.distance_transform_edt(segments == 0, return_distances=False,
                                                 return_indices=True)
        segments[gaps] = segments[tuple(index[gaps] for index in nearest)]
    elif gaps.any():  # nothing survived the warp: one segment to be split later
        segments[gaps] = 1
    return segments


# ----------------------------------------------------------------------------- merging
def merge_to_count(segments, count: int) -> np.ndarray:
    """Relabel so that exactly ``count`` connected foreground segments remain.

    1. Every 26-connected piece of every label becomes a segment of its own.
    2. While there are too many: merge the smallest segment into its smallest adjacent
       segment (26-neighbourhood), so every segment stays one connected piece. A segment
       with no neighbour at all (an island of the mask) cannot merge; it becomes
       background.
    3. While there are too few: split the largest segment in two halves across its
       longest axis (then step 1 and 2 again).

    Never fails when the foreground holds at least ``count`` voxels.

    Parameters
    ----------
    segments : array_like of int, shape (D, H, W)
        0 = background, any positive labels.
    count : int
        The number of foreground segments wanted (127 in the paper).

    Returns
    -------
    numpy.ndarray of int32
        Labels ``0..count``, each foreground label one 26-connected component.
    """
    segments = np.asarray(segments)
    if (segments > 0).sum() < count:
        raise ValueError(f"segments must have at least count={count} foreground voxels; "
                         f"got {int((segments > 0).sum())}")
    pieces = connected_components(segments, connectivity=3, background=0)
    while pieces.max() < count:
        pieces = connected_components(_split_largest(pieces), connectivity=3, background=0)
    if pieces.max() > count:
        pieces = _merge_smallest(pieces, count)
    return pieces.astype(np.int32)


def adjacent_pairs(segments: np.ndarray) -> np.ndarray:
    """Pairs ``(a, b)`` with ``0 < a < b`` of labels that touch in the 26-neighbourhood."""
    n = int(segments.max()) + 1
    codes = []
    for offset in _HALF_NEIGHBOURHOOD:
        source = tuple(slice(max(0, -o), size - max(0, o))
                       for o, size in zip(offset, segments.shape))
        target = tuple(slice(max(0, o), size - max(0, -o))
                       for o, size in zip(offset, segments.shape))
        a, b = segments[source].ravel(), segments[target].ravel()
        touching = (a != b) & (a > 0) & (b > 0)
        low = np.minimum(a[touching], b[touching]).astype(np.int64)
        high = np.maximum(a[touching], b[touching]).astype(np.int64)
        codes.append(low * n + high)  # one integer per pair
    codes = np.concatenate(codes)
    # a few hundred labels: counting the codes is much faster than sorting them
    present = np.flatnonzero(np.bincount(codes, minlength=n * n)) if n <= 4096 \
        else np.unique(codes)
    return np.stack([present // n, present % n], axis=1)


def _merge_smallest(pieces: np.ndarray, count: int) -> np.ndarray:
    n = int(pieces.max())
    sizes = {label: int(size) for label, size in enumerate(np.bincount(pieces.ravel()))
             if label > 0}
    neighbours = {label: set() for label in sizes}
    for a, b in adjacent_pairs(pieces):
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    target = np.arange(n + 1)  # final label of every piece (0 stays background)
    while len(sizes) > count:
        smallest = min(sizes, key=lambda s: (sizes[s], s))
        partners = neighbours.pop(smallest)
        size = sizes.pop(smallest)
        if partners:
            into = min(partners, key=lambda s: (sizes[s], s))
            sizes[into] += size
            for other in partners:
                neighbours[other].discard(smallest)
                if other != into:
                    neighbours[other].add(into)
                    neighbours[into].add(other)
        else:
            into = 0  # an island with no neighbour: background keeps segments connected
        target[target == smallest] = into
    # consecutive labels 1..count in the order of the surviving pieces
    survivors = np.array(sorted(sizes))
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[survivors] = np.arange(1, len(survivors) + 1)
    return relabel[target][pieces]


def _split_largest(pieces: np.ndarray) -> np.ndarray:
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    where = np.argwhere(pieces == largest)
    # principal axis of the segment's voxels, then cut at the median position along it
    centred = where - where.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    order = np.argsort(centred @ axis, kind="stable")
    second_half = where[order[len(order) // 2:]]
    split = pieces.copy()
    split[tuple(second_half.T)] = pieces.max() + 1
    return split


# ----------------------------------------------------------------------------- centres
def supervoxel_centres(layers) -> np.ndarray:
    """The centre of mass of every foreground supervoxel of every layer.

    These are the keypoints of the Adam alignment (step 4): with 16 layers of 127
    supervoxels, 2032 keypoints (the poster's "N=2048 supervoxel centres" counts 16 x 128,
    background included).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
        Labels 0..K of each layer; every label 1..K present.

    Returns
    -------
    numpy.ndarray of float64, shape (L, K, 3)
        Voxel coordinates (d, h, w) in the convention of :mod:`slicreg_lite.core.spatial`;
        ``centres[l, k - 1]`` is the centre of label ``k`` in layer ``l``.
    """
    layers = np.asarray(layers)
    if layers.ndim != 4:
        raise ValueError(f"layers must have shape (L, D, H, W); got {layers.shape}")
    centres = label_centres(layers, int(layers.max()))
    for index, layer in enumerate(centres):
        missing = np.flatnonzero(np.isnan(layer[:, 0])) + 1
        if len(missing):
            raise ValueError(f"layer {index} lacks labels {missing.tolist()}; expected every "
                             f"label 1..{len(layer)}")
    return centres


def label_sizes(layers, n_labels: int) -> np.ndarray:
    """The number of voxels of labels ``1..n_labels`` in every layer (0 where absent).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
    n_labels : int
        Labels above ``n_labels`` are ignored.

    Returns
    -------
    numpy.ndarray of int64, shape (L, n_labels)

    Examples
    --------
    >>> label_sizes(np.array([[[[0, 1, 1, 3]]]]), 3).tolist()
    [[2, 0, 1]]
    """
    layers = np.asarray(layers)
    if layers.ndim != 4:
        raise ValueError(f"layers must have shape (L, D, H, W); got {layers.shape}")
    return np.stack([np.bincount(layer.ravel().astype(np.int64),
                                 minlength=n_labels + 1)[1:n_labels + 1] for layer in layers])


def label_centres(layers, n_labels: int) -> np.ndarray:
    """The centre of mass of labels ``1..n_labels`` in every layer; NaN where absent.

    Unlike :func:`supervoxel_centres` a label may be missing, as in a network's
    prediction (step 4 uses these centres as a first guess of the displacements).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
    n_labels : int
        Labels above ``n_labels`` are ignored.

    Returns
    -------
    numpy.ndarray of float64, shape (L, n_labels, 3)

    Examples
    --------
    >>> layer = np.array([[[[0, 1, 1, 3]]]])  # one layer, label 2 absent
    >>> label_centres(layer, 3)[0].tolist()
    [[0.0, 0.0, 1.5], [nan, nan, nan], [0.0, 0.0, 3.0]]
    """
    layers = np.asarray(layers)
    sizes = label_sizes(layers, n_labels)  # checks the shape
    grid = np.indices(layers.shape[1:], dtype=np.float64).reshape(3, -1)
    centres = np.full((layers.shape[0], n_labels, 3), np.nan)
    for index, layer in enumerate(layers):
        flat = layer.ravel().astype(np.int64)
        present = sizes[index] > 0
        for axis in range(3):
            sums = np.bincount(flat, grid[axis], minlength=n_labels + 1)[1:n_labels + 1]
            centres[index, present, axis] = sums[present] / sizes[index, present]
    return centres


# ----------------------------------------------------------------- integer encoding
def intersection_cells(layers) -> np.ndarray:
    """Number the cells in which all given layers agree: the integer code of each voxel.

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
        Supervoxel layers on one grid (0 = background, the same foreground in all).

    Returns
    -------
    numpy.ndarray of int64, shape (D, H, W)
        0 outside the body; ``1..n_cells`` for the distinct tuples of labels.
    """
    layers = np.asarray(layers)
    if layers.ndim != 4:
        raise ValueError(f"layers must have shape (L, D, H, W); got {layers.shape}")
    foreground = layers[0] > 0
    code = np.zeros(int(foreground.sum()), dtype=np.int64)
    for layer in layers:
        # re-index after each layer so that the combined code never overflows
        code = np.unique(code * 256 + layer[foreground], return_inverse=True)[1]
    cells = np.zeros(foreground.shape, dtype=np.int64)
    cells[foreground] = code + 1
    return cells


def encoding_resolution(layers, layer_counts=(1, 2, 4, 8, 16)) -> list[dict]:
    """How precisely the tuple of labels of the first n layers localises a voxel.

    A *cell* is a set of foreground voxels that share their labels in all n layers
    (:func:`intersection_cells`). With more layers the cells get smaller: the integer code
    pins a voxel down more precisely.

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
    layer_counts : sequence of int
        Numbers of layers to evaluate (those larger than L are skipped).

    Returns
    -------
    list of dict
        One entry per count with ``layers``, ``cells`` (number of distinct tuples),
        ``supervoxel_volume`` (mean voxels per supervoxel), ``cell_volume`` (mean voxels
        per cell), ``cell_volume_per_voxel`` (the size of the cell a random voxel lies in:
        the fair measure, as many cells are tiny slivers) and ``ratio`` =
        ``supervoxel_volume / cell_volume_per_voxel``.
    """
    layers = np.asarray(layers)
    if layers.ndim != 4:
        raise ValueError(f"layers must have shape (L, D, H, W); got {layers.shape}")
    foreground = layers[0] > 0
    n_voxels = int(foreground.sum())
    supervoxel_volume = n_voxels / len(np.unique(layers[0][foreground]))
    rows = []
    for n in sorted(c for c in layer_counts if 0 < c <= len(layers)):
        cell_sizes = np.bincount(intersection_cells(layers[:n])[foreground])[1:]
        per_voxel = float((cell_sizes.astype(np.float64) ** 2).sum() / n_voxels)
        rows.append({"layers": n, "cells": len(cell_sizes),
                     "supervoxel_volume": supervoxel_volume,
                     "cell_volume": n_voxels / len(cell_sizes),
                     "cell_volume_per_voxel": per_voxel,
                     "ratio": supervoxel_volume / per_voxel})
    return rows
