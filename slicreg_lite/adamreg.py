"""Step 4 of Slic-Reg: align the predicted supervoxels with Adam on a kNN keypoint graph.

The network of step 3 tells, for every voxel of a new (moving) scan, which supervoxel of
each of the template's 16 layers it belongs to. Registration is then a small problem,
solved as in the paper (the poster's loss; ``Config.adam``):

1. **Keypoints**: the centres of the template's supervoxels (16 x 127 = 2032; the
   poster's "N=2048 supervoxel centres") or, as in the authors' code, 2048 random voxels
   inside them (``cfg.adam.keypoints``), joined into a graph by their ``k`` nearest
   neighbours (:func:`keypoint_graph`).
2. **Features**: the labels become one-hot channels. To save memory each layer's 128
   classes are *folded* into 16 channels (16 layers give 256 channels;
   :func:`fold_permutation`), then smoothed by average pooling
   (:func:`supervoxel_features`), so that the features change smoothly with position
   and have useful gradients.
3. **Adam** moves every keypoint so that the moving scan's features, sampled
   (trilinearly, differentiably) at the displaced keypoint, match the template's features
   at the keypoint (their mean squared difference), while ``alpha`` x the squared
   differences of neighbouring displacements keeps the motion smooth
   (:func:`align_keypoints`).
4. A **thin-plate spline** extrapolates the keypoint displacements to a dense field
   (:func:`thin_plate_spline`), evaluated on a coarse grid and upsampled.

**Beyond the paper** (this toolkit's extension, ``Config.centre_fit``, the row
"Slic-Reg + centre fit"): Adam also starts from, and is drawn towards (``centre_weight``),
where the predicted supervoxels' centres put each keypoint (:func:`moving_scan`): a direct
guess of the displacement that the smoothed features blur. These guesses are fitted all
at once (``centre_fit_step``): one smooth motion whose average over every supervoxel
takes it to its predicted centre (:func:`fit_centres`), since a supervoxel's centre moves
with the average motion over the supervoxel, not with the motion at its keypoint. Where
the motion stretches one side of a supervoxel more than the other, its centre leans to
that side; the supervoxels' sizes tell by how much (:func:`stretch_correction`,
``centre_stretch``).

Displacements follow :mod:`slicreg_lite.spatial`: the field lives on the template (fixed)
grid and points into the moving scan, ``warped(x) = moving(x + u(x))``. Keypoints are
``(N, 3)`` arrays (one row per point, like :func:`~slicreg_lite.supervoxels.
supervoxel_centres` and SciPy) in voxels of the supervoxel grid.

Why it is fast on a CPU
-----------------------
The obvious implementation samples a ``(1, 256, D, H, W)`` volume with ``grid_sample``
and regularises with a dense N x N distance matrix; on a 2-core CPU 100 iterations take
over 10 s. Here the features are stored *channels last*, a ``(D*H*W, 256)`` table, so the
8 corners of a keypoint's cell are 8 contiguous rows (:func:`sample_features`), and the
kNN graph is built once with a k-d tree and used as an ``(E, 2)`` array of its edges.
``benchmarks/bench_adamreg.py`` compares both.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.config import get_config
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

import functools
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_points
from .config import AdamConfig, config_section, replace_fields
from .spatial import resize, resize_displacement


# ---------------------------------------------------------------------------- the graph
@dataclass
class KeypointGraph:
    """Keypoints and their k nearest neighbours.

    Attributes
    ----------
    points : numpy.ndarray, shape (N, 3)
        Voxel coordinates (d, h, w).
    neighbours : numpy.ndarray of int64, shape (N, k)
        ``neighbours[i]`` are the indices of the ``k`` points nearest to point ``i``
        (itself excluded).
    """

    points: np.ndarray
    neighbours: np.ndarray

    @property
    def k(self) -> int:
        """Neighbours per keypoint."""
        return self.neighbours.shape[1]

    @property
    def edges(self) -> np.ndarray:
        """The undirected edges ``(E, 2)``, each once with ``i < j``: ``j`` is among the
        ``k`` nearest of ``i``, or ``i`` among those of ``j``."""
        rows = np.repeat(np.arange(len(self.points)), self.k)
        pairs = np.sort(np.stack([rows, self.neighbours.ravel()], 1), axis=1)
        return np.unique(pairs, axis=0)

    def adjacency(self) -> np.ndarray:
        """The symmetric 0/1 adjacency matrix ``(N, N)`` of :attr:`edges`, as the paper's
        code builds it (dense: for teaching and small graphs)."""
        matrix = np.zeros((len(self.points),) * 2)
        i, j = self.edges.T
        matrix[i, j] = matrix[j, i] = 1.0
        return matrix


def keypoint_graph(points, k: int) -> KeypointGraph:
    """Join every keypoint to its ``k`` nearest neighbours (a k-d tree, no N x N matrix).

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Voxel coordinates; duplicates are allowed.
    k : int
        Neighbours per point, ``1 <= k < N``.

    Returns
    -------
    KeypointGraph

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 3)`` and finite, or ``k`` is not in ``1..N-1``.

    Examples
    --------
    >>> graph = keypoint_graph([[0, 0, 0], [0, 0, 1], [0, 0, 3], [5, 5, 5]], k=1)
    >>> graph.neighbours.ravel().tolist()
    [1, 0, 1, 2]
    """
    from scipy.spatial import cKDTree

    points = check_points(points, minimum=2)
    n = len(points)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < n:
        raise ValueError(f"k must be an integer with 1 <= k < N = {n} keypoints; got {k!r}")
    # query one extra neighbour, then drop each point itself (it need not come first
    # when points coincide)
    _, index = cKDTree(points).query(points, k=k + 1)
    own = index == np.arange(n)[:, None]
    own[~own.any(1), -1] = True  # a duplicate pushed the point itself out: drop the last
    neighbours = index[~own].reshape(n, k)
    return KeypointGraph(points, neighbours.astype(np.int64))


def edge_differences(displacements, graph: KeypointGraph) -> float:
    """Mean squared difference of the displacements of neighbouring keypoints.

    A smoothness measure of a keypoint field (0 for a translation), in squared units of
    ``displacements``.
    """
    u = np.asarray(displacements, dtype=np.float64)
    return float(((u[:, None, :] - u[graph.neighbours]) ** 2).sum(-1).mean())


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


# ------------------------------------------------------------------------- the template
#: The :class:`~slicreg_lite.config.AdamConfig` fields that decide a :class:`Template`
#: (besides the template's layers) and a :class:`MovingScan` (besides its layers). A
#: change of any of them means computing those again; the others (alpha, k, iterations,
#: the learning rate, the centre weight, the spline's) only change the optimisation.
TEMPLATE_FIELDS = ("keypoints", "n_keypoints", "fold", "fold_channels", "pool_kernel",
                   "feature_step", "seed", "template_features", "centre_fit_step",
                   "centre_fit_smoothing")
MOVING_FIELDS = ("fold", "fold_channels", "pool_kernel", "feature_step", "seed",
                 "centre_fit_step", "centre_fit_smoothing", "centre_stretch")


def settings_of(adam: AdamConfig, fields: tuple) -> dict:
    """The values of some :class:`~slicreg_lite.config.AdamConfig` fields, by name."""
    return {name: getattr(adam, name) for name in fields}


def with_overrides(cfg, overrides: dict) -> AdamConfig:
    """``cfg``'s Adam settings (Config or AdamConfig) with some values replaced.

    Raises
    ------
    ValueError
        For a name that is not an :class:`~slicreg_lite.config.AdamConfig` field, or a
        value it refuses.
    """
    return replace_fields(config_section(cfg, AdamConfig), overrides, "Adam parameter(s)")


@dataclass
class Template:
    """What the alignment needs from the template; computed once, reused for every scan.

    Attributes
    ----------
    keypoints : numpy.ndarray, shape (N, 3)
        The points whose motion Adam optimises, voxels of the supervoxel grid: the
        centres of the template's supervoxels, or random voxels inside them
        (``cfg.adam.keypoints``).
    centres : numpy.ndarray, shape (L * K, 3)
        The centres of the template's supervoxels, layer after layer (the keypoints when
        ``keypoints == "centres"``).
    features : torch.Tensor, shape (C, *feature_shape)
        The template's own features (:func:`supervoxel_features`).
    shape : tuple of 3 ints
        The supervoxel grid.
    feature_shape : tuple of 3 ints
        The feature grid (the supervoxel grid divided by ``cfg.adam.feature_step``).
    settings : dict
        The :data:`TEMPLATE_FIELDS` it was computed with.
    centre_fit : CentreFit or None
        The template's side of :func:`fit_centres` (when ``cfg.adam.centre_fit_step`` > 0).
    """

    keypoints: np.ndarray
    centres: np.ndarray
    features: torch.Tensor
    shape: tuple
    feature_shape: tuple
    settings: dict = field(default_factory=dict)
    centre_fit: "CentreFit | None" = field(default=None, repr=False)
    _table: torch.Tensor | None = field(default=None, repr=False)

    def keypoint_features(self) -> torch.Tensor:
        """The template's features at its own keypoints, ``(N, C)``."""
        if self._table is None:
            self._table = channels_last(self.features)
        return sample_features(self._table, self.feature_shape,
                               torch.from_numpy(self.to_feature_grid(self.keypoints)).float())

    def to_feature_grid(self, points: np.ndarray) -> np.ndarray:
        """Voxel coordinates of the supervoxel grid -> the feature grid (corners aligned)."""
        return np.asarray(points) * _grid_ratio(self.shape, self.feature_shape)


def _grid_ratio(source, target) -> np.ndarray:
    return np.array([(t - 1) / (s - 1) if s > 1 else 1.0 for s, t in zip(source, target)])


def feature_shape(shape, step: int) -> tuple:
    """The feature grid: ``shape`` divided by ``step`` (at least 2 voxels per axis)."""
    return tuple(max(2, round(n / step)) for n in shape)


def random_keypoints(mask, n: int, *, seed: int, step: int = 2) -> np.ndarray:
    """``n`` keypoints drawn at random among the voxels of ``mask`` on every ``step``-th
    voxel (all of them when there are fewer), as the authors' code draws its 2048.

    Returns
    -------
    numpy.ndarray of float64, shape (n, 3)
        Voxel coordinates, in scan order.

    Examples
    --------
    >>> mask = np.zeros((8, 8, 8), bool); mask[2:6, 2:6, 2:6] = True
    >>> points = random_keypoints(mask, 5, seed=0)
    >>> points.shape, bool((points % 2 == 0).all() and mask[tuple(points.astype(int).T)].all())
    ((5, 3), True)
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D; got shape {mask.shape}")
    candidates = np.argwhere(mask[::step, ::step, ::step]) * step
    if len(candidates) < 5:
        raise ValueError(f"the mask holds {len(candidates)} voxels on every {step}th voxel; "
                         "at least 5 keypoints are needed")
    chosen = np.random.default_rng(seed).choice(len(candidates), min(n, len(candidates)),
                                                replace=False)
    return candidates[np.sort(chosen)].astype(np.float64)  # in scan order


def prepare_template(layers, cfg, *, feature_layers=None) -> Template:
    """Keypoints and features of the template's supervoxel layers.

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
        The template's layers (``stages.template_supervoxels(cfg, data).layers``): their
        centres (or random voxels inside them, ``cfg.adam.keypoints``) are the keypoints.
    cfg : Config or AdamConfig
    feature_layers : array_like of int, shape (L, d, h, w), optional
        Layers to take the template's *features* from instead of ``layers``: the
        network's own prediction on the template, when ``cfg.adam.template_features``
        is ``"network"`` (:class:`~slicreg_lite.registration.SlicReg` passes it). Both
        scans are then seen through the same network, so its systematic errors can
        cancel.

    Returns
    -------
    Template
    """
    from .supervoxels import supervoxel_centres

    adam = config_section(cfg, AdamConfig)
    layers = np.asarray(layers)
    centres = supervoxel_centres(layers).reshape(-1, 3)
    if adam.keypoints == "centres":
        keypoints = centres
    else:
        keypoints = random_keypoints(layers[0] > 0, adam.n_keypoints, seed=adam.seed)
    grid = feature_shape(layers.shape[1:], adam.feature_step)
    source = layers if feature_layers is None else np.asarray(feature_layers)
    if source.ndim != 4 or len(source) != len(layers):
        raise ValueError(f"feature_layers must have shape ({len(layers)}, D, H, W) like "
                         f"layers; got {source.shape}")
    features = supervoxel_features(source, grid, n_channels=adam.fold_channels,
                                   pool_kernel=adam.pool_kernel, seed=adam.seed,
                                   fold=adam.fold)
    fit = None
    if adam.centre_fit_step:
        fit = prepare_centre_fit(layers, centres, adam.centre_fit_step,
                                 adam.centre_fit_smoothing)
    return Template(keypoints, centres, features, tuple(layers.shape[1:]), grid,
                    settings_of(adam, TEMPLATE_FIELDS), fit)


def moving_features(layers, template: Template, cfg) -> torch.Tensor:
    """Features of a moving scan's (predicted) layers on the template's feature grid."""
    adam = config_section(cfg, AdamConfig)
    layers = np.asarray(layers)
    n_layers = template.features.shape[0] // adam.fold_channels
    if layers.ndim != 4 or len(layers) != n_layers:
        raise ValueError(f"moving layers must have shape ({n_layers}, D, H, W) like the "
                         f"template's; got {layers.shape}")
    return supervoxel_features(layers, template.feature_shape, n_channels=adam.fold_channels,
                               pool_kernel=adam.pool_kernel, seed=adam.seed, fold=adam.fold)


@dataclass
class MovingScan:
    """What the alignment needs from a moving scan's (predicted) supervoxel layers.

    Attributes
    ----------
    features : torch.Tensor, shape (C, *template.feature_shape)
        Folded, smoothed one-hot features (:func:`moving_features`).
    centres : numpy.ndarray, shape (L * K, 3)
        Where each template supervoxel's centre lies in the moving scan, voxels of the
        supervoxel grid: the centre of mass of its label there (NaN where the label is
        absent or touches the scan's edge, :func:`cut_by_the_edge`), or, when the
        template has a :class:`CentreFit`, the smooth field fitted to all those centres
        (:func:`fit_centres`, after :func:`stretch_correction` when
        ``cfg.adam.centre_stretch``) read at the template's centres.
    layers : numpy.ndarray, shape (L, D, H, W)
        The layers they were computed from (to compute them again for other settings).
    settings : dict
        The :data:`MOVING_FIELDS` they were computed with.
    """

    features: torch.Tensor
    centres: np.ndarray
    layers: np.ndarray = field(default=None, repr=False)
    settings: dict = field(default_factory=dict)


def moving_scan(layers, template: Template, cfg) -> MovingScan:
    """Features and supervoxel centres of a moving scan's (predicted) layers.

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
        The template's layers as predicted on (or carried onto) the moving scan, on the
        supervoxel grid.
    template : Template
    cfg : Config or AdamConfig

    Returns
    -------
    MovingScan
    """
    from .supervoxels import label_centres, label_sizes

    adam = config_section(cfg, AdamConfig)
    layers = np.asarray(layers)
    if layers.ndim == 4 and tuple(layers.shape[1:]) != template.shape:
        raise ValueError(f"layers must lie on the supervoxel grid {template.shape}; got "
                         f"{tuple(layers.shape[1:])}")
    features = moving_features(layers, template, cfg)  # checks the number of layers
    per_layer = len(template.centres) // len(layers)
    centres = label_centres(layers, per_layer)
    # a supervoxel cut by the scan's edge shows only its inner part: that centre lies too
    # far inside, and the fit would squeeze the motion there (and fold it)
    centres[cut_by_the_edge(layers, per_layer)] = np.nan
    fit = template.centre_fit
    settings = settings_of(adam, MOVING_FIELDS)
    if fit is None:
        return MovingScan(features, centres.reshape(-1, 3), layers, settings)
    if adam.centre_stretch:
        centres = centres - stretch_correction(fit, label_sizes(layers, per_layer))
    return MovingScan(features, fit_centres(fit, centres), layers, settings)


def cut_by_the_edge(layers, n_labels: int) -> np.ndarray:
    """Which supervoxels touch the edge of the scan (its six outer faces).

    Parameters
    ----------
    layers : array_like of int, shape (L, D, H, W)
    n_labels : int
        Labels ``1..n_labels`` of each layer (0 is the background).

    Returns
    -------
    numpy.ndarray of bool, shape (L, n_labels)

    Examples
    --------
    >>> layer = np.zeros((1, 5, 5, 5), int); layer[0, 0, 2, 2] = 1; layer[0, 2, 2, 2] = 2
    >>> cut_by_the_edge(layer, 2).tolist()
    [[True, False]]
    """
    layers = np.asarray(layers)
    cut = np.zeros((len(layers), n_labels + 1), bool)
    for axis in range(1, 4):
        for index in (0, -1):
            face = np.take(layers, index, axis=axis).reshape(len(layers), -1)
            for layer, labels in enumerate(face):
                cut[layer, labels[labels <= n_labels]] = True
    return cut[:, 1:]


# ------------------------------------------- keypoint motion fitted to supervoxel centres
def _interpolation_matrix(points: np.ndarray, shape: tuple, node_shape: tuple):
    """Trilinear weights of ``points`` (voxels of ``shape``) on a coarse node grid
    covering the same extent (corners aligned): a sparse ``(len(points), n_nodes)``
    matrix whose rows sum to 1."""
    import scipy.sparse

    scale = _grid_ratio(shape, node_shape)
    position = np.clip(np.asarray(points, dtype=np.float64) * scale, 0,
                       np.array(node_shape) - 1)
    low = np.minimum(np.floor(position).astype(np.int64), np.array(node_shape) - 2)
    low = np.maximum(low, 0)
    fraction = position - low
    rows, columns, weights = [], [], []
    for corner in np.ndindex(2, 2, 2):
        corner = np.array(corner)
        weight = np.prod(np.where(corner, fraction, 1 - fraction), axis=1)
        index = low + corner
        rows.append(np.arange(len(position)))
        columns.append(np.ravel_multi_index(tuple(index.T), node_shape))
        weights.append(weight)
    return scipy.sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
        shape=(len(position), int(np.prod(node_shape))))


def _bending_matrix(node_shape: tuple):
    """``B`` with ``u^T B u`` the sum of squared second differences of a node field along
    each axis: zero for every affine field, so the fit prefers no scale or shear."""
    import scipy.sparse

    index = np.arange(int(np.prod(node_shape))).reshape(node_shape)
    blocks = []
    for axis in range(3):
        if node_shape[axis] < 3:
            continue
        parts = [np.take(index, range(start, node_shape[axis] - 2 + start), axis=axis).ravel()
                 for start in range(3)]
        rows = np.arange(len(parts[0]))
        blocks.append(scipy.sparse.csr_matrix(
            (np.concatenate([np.ones(len(rows)), -2 * np.ones(len(rows)), np.ones(len(rows))]),
             (np.tile(rows, 3), np.concatenate(parts))),
            shape=(len(rows), index.size)))
    if not blocks:
        return scipy.sparse.csr_matrix((index.size, index.size))
    second = scipy.sparse.vstack(blocks)
    return (second.T @ second).tocsr()


@dataclass
class CentreFit:
    """The template's side of :func:`fit_centres`, computed once per template.

    Attributes
    ----------
    averages : list of scipy.sparse.csr_matrix, one per layer, shape (K, n_nodes)
        Row ``k``: the average over supervoxel ``k + 1`` of the trilinear weights of the
        node grid, so that ``averages[l] @ u`` is the mean of a node field over every
        supervoxel of layer ``l``.
    members : list of scipy.sparse.csr_matrix, one per layer, shape (K, n_samples)
        Row ``k``: which of the sample voxels (a grid of half the size) lie in supervoxel
        ``k + 1``.
    samples : numpy.ndarray, shape (n_samples, 3)
        Those voxels' positions on the supervoxel grid.
    sizes : numpy.ndarray, shape (L, K)
        The supervoxels' sizes in voxels of the supervoxel grid.
    points : numpy.ndarray, shape (N, 3)
        The keypoints: the supervoxels' centres of mass, layer after layer.
    keypoints : scipy.sparse.csr_matrix, shape (N, n_nodes)
        Their trilinear weights on the node grid.
    bending : scipy.sparse.csr_matrix, shape (n_nodes, n_nodes)
    node_shape : tuple of 3 ints
    smoothing : float
    """

    averages: list
    members: list
    samples: np.ndarray
    sizes: np.ndarray
    points: np.ndarray
    keypoints: object
    bending: object
    node_shape: tuple
    smoothing: float


def prepare_centre_fit(layers, keypoints, step: int, smoothing: float) -> CentreFit:
    """The template's supervoxels as averaging operators on a node grid every ``step``
    voxels (see :func:`fit_centres`); ``keypoints`` are their centres, ``(L * K, 3)``.
    The averages are taken on a grid of half the size (nearest neighbour), which keeps
    this to a second."""
    import scipy.sparse

    from .spatial import resize
    from .supervoxels import label_sizes

    layers = np.asarray(layers)
    shape = tuple(layers.shape[1:])
    n_labels = len(keypoints) // len(layers)
    node_shape = feature_shape(shape, step)
    work = tuple(max(2, n // 2) for n in shape)
    small = np.asarray(resize(layers, work, mode="nearest")) if work != shape else layers
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, work)]
    voxels = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    weights = _interpolation_matrix(voxels, shape, node_shape)
    averages, members = [], []
    for layer in small:
        label = layer.ravel().astype(np.int64)
        inside = (label > 0) & (label <= n_labels)
        member = scipy.sparse.csr_matrix(
            (np.ones(int(inside.sum())), (label[inside] - 1, np.nonzero(inside)[0])),
            shape=(n_labels, len(label)))
        size = np.asarray(member.sum(1)).ravel()
        averages.append((scipy.sparse.diags(1.0 / np.maximum(size, 1)) @ member
                         @ weights).tocsr())
        members.append(member)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return CentreFit(averages, members, voxels, label_sizes(layers, n_labels), keypoints,
                     _interpolation_matrix(keypoints, shape, node_shape),
                     _bending_matrix(node_shape), node_shape, float(smoothing))


def fit_centres(fit: CentreFit, moving_centres) -> np.ndarray:
    """Where the keypoints lie in the moving scan, fitted to its supervoxels' centres.

    The centre of mass of a supervoxel in the moving scan is where the *average* of the
    motion over the whole supervoxel takes its centre, not where its keypoint goes: the two
    differ wherever the motion bends inside the supervoxel (about 1.2 voxels under
    ``lite`` for the teacher's own supervoxels). So a smooth field ``u`` on a coarse node
    grid is fitted to all supervoxels of all layers at once, by linear least squares:

    ``mean over S of u  =  (centre of S in the moving scan) - (centre of S)``

    for every supervoxel ``S`` found in the moving scan, plus ``smoothing`` x the squared
    second differences of ``u`` (which leave an affine motion free). The result is the
    field read at the keypoints.

    Strictly, the centre in the moving scan is the mean of ``x + u`` weighted by the
    Jacobian determinant of the motion (a stretched part of a supervoxel takes more room),
    which this linear fit cannot model; :func:`stretch_correction` takes that part out of
    the centres before the fit (``cfg.adam.centre_stretch``).

    Parameters
    ----------
    fit : CentreFit
        From :func:`prepare_centre_fit` (``Template.centre_fit``).
    moving_centres : array_like, shape (L, K, 3)
        The centre of mass of every label in the moving scan, NaN where absent
        (:func:`~slicreg_lite.supervoxels.label_centres`).

    Returns
    -------
    numpy.ndarray, shape (L * K, 3)
        The keypoints' positions in the moving scan (voxels of the supervoxel grid); all
        NaN if fewer than 4 supervoxels were found.
    """
    import scipy.linalg
    import scipy.sparse

    # the keypoints are the template supervoxels' centres of mass, layer after layer
    centres = fit.points.reshape(len(fit.averages), -1, 3)
    moving_centres = np.asarray(moving_centres, dtype=np.float64)
    if moving_centres.shape != centres.shape:
        raise ValueError(f"moving_centres must have shape {centres.shape}; got "
                         f"{moving_centres.shape}")
    rows, targets = [], []
    for averages, layer_centres, moved in zip(fit.averages, centres, moving_centres):
        known = np.isfinite(moved).all(1)
        rows.append(averages[np.nonzero(known)[0]])
        targets.append(moved[known] - layer_centres[known])
    system = scipy.sparse.vstack(rows).tocsr()
    offsets = np.concatenate(targets)
    if len(offsets) < 4:
        return np.full(fit.points.shape, np.nan)
    normal = (system.T @ system + fit.smoothing * fit.bending).toarray()
    # a tiny ridge: nodes no supervoxel reaches (outside the body) stay determined
    normal[np.diag_indices_from(normal)] += 1e-6
    motion = scipy.linalg.solve(normal, system.T @ offsets, assume_a="pos")  # (n_nodes, 3)
    return fit.points + fit.keypoints @ motion


def stretch_correction(fit: CentreFit, moving_sizes) -> np.ndarray:
    """How far uneven stretch moves each supervoxel's centre in the moving scan away from
    the plain mean of the motion, which :func:`fit_centres` models.

    The centre of mass of a supervoxel ``S`` in the moving scan is the mean of ``x + u``
    over ``S`` weighted by the Jacobian determinant ``J`` of the motion: where the motion
    stretches, that part of ``S`` takes more room. Weighted or not, the means of ``u``
    differ little; the means of ``x`` differ by the *J-weighted centre of S minus its
    plain centre*, which is what this function returns, to subtract from the centres.

    ``J`` needs no field: a supervoxel twice as large in the moving scan as in the
    template has been stretched twice. Each supervoxel's size ratio (moving / template)
    is painted onto the template's grid and averaged over the layers; as the layers'
    supervoxels lie at different offsets, that stretch map is finer than any one layer.
    Whether it helps is a setting of the centre fit (``centre_stretch``), chosen on the
    validation subjects (``benchmarks/bench_settings.py`` prints what it adds there).
    Weighting instead by the Jacobian of the fitted motion itself, over a few rounds,
    gave nothing: that smooth field misses where the stretch varies.

    Parameters
    ----------
    fit : CentreFit
        From :func:`prepare_centre_fit` (``Template.centre_fit``).
    moving_sizes : array_like, shape (L, K)
        The supervoxels' sizes in the moving scan, voxels of the supervoxel grid, 0 where
        absent (:func:`~slicreg_lite.supervoxels.label_sizes`).

    Returns
    -------
    numpy.ndarray, shape (L, K, 3)
        Voxels of the supervoxel grid; zero everywhere for a uniform stretch.
    """
    moving_sizes = np.asarray(moving_sizes, dtype=np.float64)
    if moving_sizes.shape != fit.sizes.shape:
        raise ValueError(f"moving_sizes must have shape {fit.sizes.shape}; got "
                         f"{moving_sizes.shape}")
    if not np.isfinite(moving_sizes).all() or (moving_sizes < 0).any():
        raise ValueError("moving_sizes must be finite counts >= 0")
    known = (moving_sizes > 0) & (fit.sizes > 0)
    ratio = np.where(known, moving_sizes / np.maximum(fit.sizes, 1), 0.0)
    total, count = np.zeros(len(fit.samples)), np.zeros(len(fit.samples))
    for member, layer_ratio, layer_known in zip(fit.members, ratio, known):
        total += member.T @ layer_ratio
        count += member.T @ layer_known.astype(np.float64)
    stretch = np.where(count > 0, total / np.maximum(count, 1), 1.0)  # 1: no information

    corrections = np.zeros(fit.sizes.shape + (3,))
    for index, member in enumerate(fit.members):
        size = np.asarray(member.sum(1)).ravel()
        weight = member @ stretch
        inside = (size > 0) & (weight > 0)
        weighted = (member @ (stretch[:, None] * fit.samples))[inside] / weight[inside, None]
        plain = (member @ fit.samples)[inside] / size[inside, None]
        corrections[index, inside] = weighted - plain
    return corrections


# ------------------------------------------------------------------------ the alignment
def fill_from_neighbours(values, graph: KeypointGraph, rounds: int = 20) -> np.ndarray:
    """Replace NaN rows by the mean of their graph neighbours' finite rows, repeatedly
    (so that gaps fill from their rim inwards); rows still empty after ``rounds`` become 0.

    Examples
    --------
    >>> graph = keypoint_graph([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3]], k=1)
    >>> fill_from_neighbours([[1, 1, 1], [np.nan] * 3, [3, 3, 3], [5, 5, 5]], graph)[1]
    array([1., 1., 1.])
    """
    values = np.array(values, dtype=np.float64)
    for _ in range(rounds):
        missing = ~np.isfinite(values).all(1)
        if not missing.any():
            break
        around = values[graph.neighbours[missing]]  # (M, k, 3)
        known = np.isfinite(around).all(-1)
        count = known.sum(1)
        filled = np.where(known[..., None], around, 0.0).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[missing] = np.where(count[:, None] > 0, filled / count[:, None], np.nan)
    values[~np.isfinite(values).all(1)] = 0.0
    return values


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


# ------------------------------------------------------------------ thin-plate spline
def _tps_kernel(r: np.ndarray) -> np.ndarray:
    """The 3D thin-plate kernel ``r^2 log r`` (0 at r = 0), computed in place."""
    squared = r * r
    np.log(np.maximum(r, 1e-300), out=r)
    r *= squared  # r^2 log r; at r = 0: 0 * log(tiny) = 0
    return r


class ThinPlateSpline:
    """A thin-plate spline through fixed keypoints, its linear system factorised once.

    The spline ``f(x) = sum_i w_i phi(|x - p_i|) + a + B x`` with ``phi(r) = r^2 log r``
    passes (up to ``smoothing``) through given values at the keypoints ``p_i`` and bends
    as little as possible in between. Its weights solve a linear system that depends only
    on the keypoints, so it is LU-factorised once; new values (another alpha, another
    scan) then cost one triangular solve. The same spline as SciPy's ``RBFInterpolator``
    with ``kernel="thin_plate_spline", degree=1``.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        The keypoints (any unit; repeated points are merged and their values averaged,
        so the system never becomes singular).
    smoothing : float
        0 interpolates exactly; larger values trade fidelity for smoothness.
    """

    def __init__(self, points, smoothing: float = 0.0):
        from scipy.linalg import lu_factor
        from scipy.spatial.distance import cdist

        points = check_points(points, minimum=2)
        unique, inverse = np.unique(np.round(points, 6), axis=0, return_inverse=True)
        if len(unique) < 5:
            raise ValueError(f"a thin-plate spline in 3D needs at least 5 distinct keypoints; "
                             f"got {len(unique)}")
        if not np.isfinite(smoothing) or smoothing < 0:
            raise ValueError(f"smoothing must be >= 0; got {smoothing!r}")
        self.points, self._inverse = unique, inverse.ravel()
        self._counts = np.bincount(self._inverse, minlength=len(unique))
        n = len(unique)
        system = np.zeros((n + 4, n + 4))
        system[:n, :n] = _tps_kernel(cdist(unique, unique))
        system[:n, :n] += smoothing * np.eye(n)
        system[:n, n] = system[n, :n] = 1.0
        system[:n, n + 1:] = unique
        system[n + 1:, :n] = unique.T
        self._factors = lu_factor(system)
        self._kept = None  # (key of the evaluation points, their kernel values)

    def fit(self, values) -> np.ndarray:
        """The spline's coefficients for values at the keypoints, shape (N + 4, k)."""
        from scipy.linalg import lu_solve

        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) != len(self._inverse):
            raise ValueError(f"values must have shape ({len(self._inverse)}, k), one row per "
                             f"keypoint; got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values contain NaN or Inf")
        merged = np.zeros((len(self.points), values.shape[1]))
        np.add.at(merged, self._inverse, values)
        merged /= self._counts[:, None]
        right = np.vstack([merged, np.zeros((4, values.shape[1]))])
        return lu_solve(self._factors, right)

    def evaluate(self, coefficients: np.ndarray, where, chunk: int = 4096) -> np.ndarray:
        """The spline at points ``where`` (M, 3): shape (M, k).

        The kernel values of the last set of points are kept (in float32, when they fit in
        64 MB), so evaluating the same grid again costs one matrix product; the first
        evaluation uses the same kept values, so every call gives the same result.
        """
        from scipy.spatial.distance import cdist

        where = np.asarray(where, dtype=np.float64)
        n = len(self.points)
        affine = coefficients[n] + where @ coefficients[n + 1:]
        key = (where.shape, where.tobytes())
        if (self._kept is None or self._kept[0] != key) and len(where) * n <= 2 ** 24:
            self._kept = (key, np.concatenate([
                _tps_kernel(cdist(where[first:first + chunk], self.points)).astype(np.float32)
                for first in range(0, len(where), chunk)]))
        if self._kept is not None and self._kept[0] == key:
            return self._kept[1] @ coefficients[:n].astype(np.float32) + affine
        out = np.empty((len(where), coefficients.shape[1]))  # too large to keep: in chunks
        for first in range(0, len(where), chunk):
            out[first:first + chunk] = (_tps_kernel(cdist(where[first:first + chunk],
                                                          self.points)) @ coefficients[:n])
        return out + affine


_SPLINES: dict = {}  # (keypoints, smoothing) -> ThinPlateSpline: the last few, for reuse


def _spline_for(points: np.ndarray, smoothing: float) -> ThinPlateSpline:
    """The factorised spline of these keypoints (kept, so that the sliders and every scan
    registered to one template pay the factorisation once)."""
    key = (points.shape, points.tobytes(), float(smoothing))
    if key not in _SPLINES:
        if len(_SPLINES) >= 4:
            _SPLINES.pop(next(iter(_SPLINES)))
        _SPLINES[key] = ThinPlateSpline(points, smoothing)
    return _SPLINES[key]


def thin_plate_spline(points, values, shape, *, smoothing: float = 0.001,
                      grid_step: int = 4) -> np.ndarray:
    """Extrapolate keypoint displacements to a dense field with a thin-plate spline.

    The spline (:class:`ThinPlateSpline`, kernel ``r^2 log r`` plus an affine part) is
    fitted in isotropic units of half the largest grid side, evaluated every
    ``grid_step`` voxels and upsampled trilinearly.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Keypoints in voxels of the output grid. Repeated points are merged (their values
        averaged), so the solve never becomes singular.
    values : array_like, shape (N, 3)
        Their displacements, in voxels.
    shape : tuple of 3 ints
        The output grid.
    smoothing : float
        0 interpolates exactly; larger values trade fidelity for smoothness.
    grid_step : int
        Spacing of the coarse evaluation grid, in voxels.

    Returns
    -------
    numpy.ndarray of float32, shape (3, *shape)
    """
    points = check_points(points, minimum=2)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != points.shape:
        raise ValueError(f"values must have the points' shape {points.shape}; got "
                         f"{values.shape}")
    if grid_step < 1:
        raise ValueError(f"grid_step must be >= 1; got {grid_step}")
    shape = tuple(int(n) for n in shape)
    scale = (max(shape) - 1) / 2 or 1.0
    spline = _spline_for(points / scale, smoothing)
    coefficients = spline.fit(values)
    coarse = tuple(max(2, int(np.ceil((n - 1) / grid_step)) + 1) for n in shape)
    axes = [np.linspace(0, n - 1, m) for n, m in zip(shape, coarse)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    field_coarse = spline.evaluate(coefficients, grid / scale).T.reshape(3, *coarse)
    field_coarse = field_coarse.astype(np.float32)
    # the values are voxels of the output grid already: resize, do not rescale
    return resize(field_coarse, shape) if coarse != shape else field_coarse


def dense_field(template: Template, keypoint_displacement, cfg, output_shape=None):
    """The thin-plate spline of keypoint displacements on the supervoxel grid, resampled
    to ``output_shape`` (e.g. the image grid) if given; ``cfg`` gives the spline's
    smoothing and grid step (Config or AdamConfig)."""
    adam = config_section(cfg, AdamConfig)
    dense = thin_plate_spline(template.keypoints, keypoint_displacement, template.shape,
                              smoothing=adam.tps_smoothing, grid_step=adam.tps_grid_step)
    if output_shape is not None and tuple(output_shape) != template.shape:
        dense = resize_displacement(dense, output_shape)
    return dense


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
        those computed again: :meth:`slicreg_lite.registration.SlicReg.align` does that.

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
    from .spatial import resize_displacement, sample

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


# ------------------------------------------------------- where accuracy goes: two oracles
def register_layers(template: Template, moving_layers, cfg, *,
                    output_shape=None) -> AdamResult:
    """Adam on given supervoxel layers of the moving scan, without a network.

    With the template's exact layers (``prepare_template(layers, cfg)``) and the
    teacher's layers of the moving scan (the template's layers carried onto it by
    deeds-lite, what the network is trained to predict) this is the registration a
    *perfect* network would give: the gap to Slic-Reg is what the network's mistakes
    cost.

    Parameters
    ----------
    template : Template
        From :func:`prepare_template`.
    moving_layers : array_like of int, shape (L, d, h, w)
        The template's layers on the moving scan.
    cfg : Config or AdamConfig
    output_shape : tuple of 3 ints, optional
        Grid of the dense field (default: the supervoxel grid).

    Returns
    -------
    AdamResult
    """
    return register(template, moving_scan(moving_layers, template, cfg), cfg,
                    output_shape=output_shape)


def through_keypoints(template: Template, displacement, cfg, *,
                      output_shape=None) -> np.ndarray:
    """A dense field seen through Slic-Reg's representation: read at the keypoints,
    rebuilt by the thin-plate spline.

    With the teacher's own field this is the best the keypoint + spline representation
    can do with perfect keypoint displacements: the gap to the teacher is what the
    representation costs.

    Parameters
    ----------
    template : Template
        Its keypoints (voxels of the supervoxel grid).
    displacement : array_like, shape (3, D, H, W)
        A field on the template's grid (any size covering the same extent, e.g. the image
        grid), in voxels of that grid.
    cfg : Config or AdamConfig
    output_shape : tuple of 3 ints, optional
        Grid of the returned field (default: the supervoxel grid).

    Returns
    -------
    numpy.ndarray of float32, shape (3, *output_shape)
    """
    from .spatial import sample

    field = np.asarray(displacement, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W); got {field.shape}")
    on_keypoint_grid = resize_displacement(field, template.shape)  # values rescaled too
    at_keypoints = sample(on_keypoint_grid, template.keypoints.T.astype(np.float32),
                          padding="border")  # (3, N)
    return dense_field(template, np.asarray(at_keypoints).T, cfg, output_shape)
