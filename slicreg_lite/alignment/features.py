"""The poster's features: every layer's supervoxel labels as one-hot channels, folded into
fewer channels and smoothed, and sampled fast at moving keypoints (step 4, notebook 04).

Folding (:func:`fold_permutation`) keeps memory small: a layer's 128 classes share 16
channels. Average pooling (:func:`supervoxel_features`) makes the features change
smoothly with position, so that Adam has useful gradients. The features are stored
*channels last*, so that the 8 corners of a keypoint's cell are 8 contiguous rows
(:func:`sample_features`)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ..core.spatial import resize


# ------------------------------------------------------------------------- the features
def fold_permutation(n_layers: int, n_classes: int, n_channels: int, seed: int,
                     scheme: str = "blocks") -> np.ndarray:
    """Which channel each class of each layer is folded into.

    Parameters
    ----------
    n_layers, n_classes, n_channels : int
    seed : int
    scheme : {"blocks", "permutation"}
        ``"blocks"`` (the authors' code): each block of ``n_channels`` consecutive class
        numbers is sent to the ``n_channels`` channels in its own random order, so two
        neighbouring numbers share a channel only across a block's border.
        ``"permutation"``: one random permutation of a layer's classes, modulo
        ``n_channels``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_layers, n_classes)
        Values in ``0..n_channels-1``; every channel receives ``n_classes / n_channels``
        classes of a layer. Supervoxels with close numbers are often neighbours in space
        (SLIC numbers them in scan order): the blocks never fold two numbers of one block
        onto one channel; a permutation does so for one pair in 16.

    Examples
    --------
    >>> folding = fold_permutation(1, 32, 16, seed=0)
    >>> sorted(folding[0, :16].tolist()) == list(range(16))  # one block: every channel once
    True
    """
    if n_classes % n_channels:
        raise ValueError(f"n_classes ({n_classes}) must be a multiple of n_channels "
                         f"({n_channels})")
    rng = np.random.default_rng(seed)
    if scheme == "blocks":
        blocks = n_classes // n_channels
        return np.stack([np.concatenate([rng.permutation(n_channels) for _ in range(blocks)])
                         for _ in range(n_layers)]).astype(np.int64)
    if scheme == "permutation":
        return np.stack([rng.permutation(n_classes) % n_channels for _ in range(n_layers)])
    raise ValueError(f"scheme must be 'blocks' or 'permutation'; got {scheme!r}")


def _box_filter(volume: torch.Tensor, kernel: int) -> torch.Tensor:
    """Average pooling over a ``kernel``^3 box (stride 1, same size) as three 1D passes."""
    if kernel <= 1:
        return volume
    x = volume[None]
    for axis in range(3):
        size = [1, 1, 1]
        size[axis] = kernel
        pad = [0, 0, 0]
        pad[axis] = kernel // 2
        x = F.avg_pool3d(x, size, stride=1, padding=pad, count_include_pad=False)
    return x[0]


def supervoxel_features(layers, shape, *, n_classes: int = 128, n_channels: int = 16,
                        pool_kernel: int = 5, seed: int = 4,
                        fold: str = "blocks") -> torch.Tensor:
    """Smooth feature channels from supervoxel labels (step 4; notebook 04).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
        Labels ``0..n_classes-1`` of each layer (predicted by the network, or the
        template's own), on any grid covering the scan.
    shape : tuple of 3 ints
        The feature grid. Labels on another grid are resampled (nearest neighbour).
    n_classes, n_channels : int
        Each layer's ``n_classes`` labels are folded into ``n_channels`` one-hot channels
        (:func:`fold_permutation`).
    pool_kernel : int
        Side of the box average that smooths the one-hot channels.
    seed : int
        Seed of the folding permutation; template and moving scan must use the same.
    fold : {"blocks", "permutation"}
        The folding scheme (:func:`fold_permutation`).

    Returns
    -------
    torch.Tensor of float32, shape (L * n_channels, *shape)
    """
    layers = np.asarray(layers)
    if layers.ndim != 4:
        raise ValueError(f"layers must have shape (L, D, H, W); got {layers.shape}")
    if layers.min() < 0 or layers.max() >= n_classes:
        raise ValueError(f"layers must hold labels 0..{n_classes - 1}; got "
                         f"{layers.min()}..{layers.max()}")
    shape = tuple(int(n) for n in shape)
    if tuple(layers.shape[1:]) != shape:
        layers = resize(layers, shape, mode="nearest")
    folding = torch.from_numpy(fold_permutation(len(layers), n_classes, n_channels, seed,
                                                fold))
    channels = []
    for layer, channel_of in zip(torch.from_numpy(np.ascontiguousarray(layers)).long(), folding):
        onehot = torch.zeros(n_channels, layer.numel())
        onehot.scatter_(0, channel_of[layer.reshape(1, -1)], 1.0)
        channels.append(_box_filter(onehot.reshape(n_channels, *shape), pool_kernel))
    return torch.cat(channels)


def channels_last(features: torch.Tensor) -> torch.Tensor:
    """``(C, D, H, W)`` features as a ``(D*H*W, C)`` table: one row per voxel."""
    return features.reshape(features.shape[0], -1).T.contiguous()


# Offsets (d, h, w) of the 8 corners of a voxel cell.
_CORNERS = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])


@functools.lru_cache(maxsize=8)
def _grid_constants(shape: tuple) -> tuple:
    """For :func:`sample_features` on a grid: the last voxel, the highest lower corner,
    the table-row strides of the three axes and the row offsets of the 8 corners of a
    cell (computed once per grid)."""
    size = torch.tensor(shape)
    corners = _CORNERS.clamp(max=size - 1)  # an axis of length 1 has one corner
    strides = torch.tensor([shape[1] * shape[2], shape[2], 1])
    return size - 1, (size - 2).clamp(min=0), strides, (corners * strides).sum(-1)[None]


def sample_features(table: torch.Tensor, shape, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of a channels-last feature table at voxel coordinates.

    Differentiable with respect to ``coords``. Outside the grid the border value is used.

    Parameters
    ----------
    table : torch.Tensor, shape (D*H*W, C)
        From :func:`channels_last`.
    shape : tuple of 3 ints
        ``(D, H, W)``.
    coords : torch.Tensor, shape (N, 3)
        Voxel coordinates (d, h, w).

    Returns
    -------
    torch.Tensor, shape (N, C)

    Examples
    --------
    >>> volume = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> sample_features(channels_last(volume), (2, 2, 2), torch.tensor([[0.5, 0.5, 0.5]]))
    tensor([[3.5000]])
    """
    last, highest_base, strides, corner_rows = _grid_constants(tuple(shape))
    coords = torch.minimum(coords.clamp(min=0), last.to(coords.dtype))
    # the lower corner, kept one below the last voxel so that corner + 1 exists
    base = torch.minimum(coords.detach().floor(), highest_base.to(coords.dtype))
    frac = coords - base  # carries the gradient
    base = base.long()
    index = (base * strides).sum(-1, keepdim=True) + corner_rows  # (N, 8) rows of the table
    # weight of each corner: the product over axes of frac or 1 - frac, as an outer
    # product of the three axes' (1 - frac, frac) pairs, in the order of _CORNERS
    pairs = torch.stack([1 - frac, frac], -1)  # (N, 3, 2)
    weights = (pairs[:, 0, :, None, None] * pairs[:, 1, None, :, None]
               * pairs[:, 2, None, None, :]).reshape(len(coords), 8)
    values = table.index_select(0, index.reshape(-1)).reshape(len(coords), 8, -1)
    # one small matrix product per keypoint: (1 x 8) weights times (8 x C) corner values
    return torch.bmm(weights[:, None].to(values.dtype), values)[:, 0]


def _grid_ratio(source, target) -> np.ndarray:
    return np.array([(t - 1) / (s - 1) if s > 1 else 1.0 for s, t in zip(source, target)])


def feature_shape(shape, step: int) -> tuple:
    """The feature grid: ``shape`` divided by ``step`` (at least 2 voxels per axis)."""
    return tuple(max(2, round(n / step)) for n in shape)
