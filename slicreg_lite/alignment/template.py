"""What the alignment prepares once per template (:class:`Template`) and once per moving
scan (:class:`MovingScan`), and the dense field it returns (step 4, notebook 04).

Which :class:`~slicreg_lite.core.config.AdamConfig` fields decide each of them is written
down (:data:`TEMPLATE_FIELDS`, :data:`MOVING_FIELDS`), so that a changed setting computes
them again and nothing stale is reused."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.config import AdamConfig, config_section, replace_fields
from ..core.spatial import resize_displacement
from ..supervoxels.layers import label_centres, label_sizes, supervoxel_centres
from .centre_fit import (
    CentreFit,
    cut_by_the_edge,
    fit_centres,
    prepare_centre_fit,
    stretch_correction,
)
from .features import (
    _grid_ratio,
    channels_last,
    feature_shape,
    sample_features,
    supervoxel_features,
)
from .keypoints import random_keypoints, thin_plate_spline

# ------------------------------------------------------------------------- the template
#: The :class:`~slicreg_lite.core.config.AdamConfig` fields that decide a :class:`Template`
#: (besides the template's layers) and a :class:`MovingScan` (besides its layers). A
#: change of any of them means computing those again; the others (alpha, k, iterations,
#: the learning rate, the centre weight, the spline's) only change the optimisation.
TEMPLATE_FIELDS = ("keypoints", "n_keypoints", "fold", "fold_channels", "pool_kernel",
                   "feature_step", "seed", "template_features", "centre_fit_step",
                   "centre_fit_smoothing")
MOVING_FIELDS = ("fold", "fold_channels", "pool_kernel", "feature_step", "seed",
                 "centre_fit_step", "centre_fit_smoothing", "centre_stretch")


def settings_of(adam: AdamConfig, fields: tuple) -> dict:
    """The values of some :class:`~slicreg_lite.core.config.AdamConfig` fields, by name."""
    return {name: getattr(adam, name) for name in fields}


def with_overrides(cfg, overrides: dict) -> AdamConfig:
    """``cfg``'s Adam settings (Config or AdamConfig) with some values replaced.

    Raises
    ------
    ValueError
        For a name that is not an :class:`~slicreg_lite.core.config.AdamConfig` field, or a
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
    absent : numpy.ndarray of bool, shape (L * K,), or None
        For a scan's *predicted* layers standing in for the template (the fixed scan of
        a pair, :func:`prepare_template` with ``fallback_centres``): the supervoxels
        they lack. Their keypoints sit at the fallback centres, and their centres in the
        moving scan are not used (:func:`moving_scan`): they have no partner.
    """

    keypoints: np.ndarray
    centres: np.ndarray
    features: torch.Tensor
    shape: tuple
    feature_shape: tuple
    settings: dict = field(default_factory=dict)
    centre_fit: "CentreFit | None" = field(default=None, repr=False)
    absent: np.ndarray | None = field(default=None, repr=False)
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


def prepare_template(layers, cfg, *, feature_layers=None, fallback_centres=None) -> Template:
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
        is ``"network"`` (:class:`~slicreg_lite.methods.SlicReg` passes it). Both
        scans are then seen through the same network, so its systematic errors can
        cancel.
    fallback_centres : array_like, shape (L * K, 3), optional
        When ``layers`` are a network's prediction (the fixed scan of a pair, registered
        directly): a label may be missing there. Its keypoint then sits at its fallback
        centre (the template's own, :attr:`Template.centres`) and takes no part in the
        centre fit (:attr:`Template.absent`). Without it, every label must be present.

    Returns
    -------
    Template
    """
    adam = config_section(cfg, AdamConfig)
    layers = np.asarray(layers)
    absent = None
    if fallback_centres is None:
        centres = supervoxel_centres(layers).reshape(-1, 3)
    else:
        fallback = np.asarray(fallback_centres, dtype=np.float64)
        if layers.ndim != 4 or fallback.ndim != 2 or len(fallback) % max(len(layers), 1):
            raise ValueError(f"fallback_centres must have shape (L * K, 3) for layers of "
                             f"shape (L, D, H, W); got {fallback.shape} and {layers.shape}")
        centres = label_centres(layers, len(fallback) // len(layers)).reshape(-1, 3)
        absent = np.isnan(centres[:, 0])
        centres[absent] = fallback[absent]
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
                    settings_of(adam, TEMPLATE_FIELDS), fit, absent)


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
    if template.absent is not None:  # supervoxels the fixed scan lacks have no partner
        centres[template.absent.reshape(centres.shape[:2])] = np.nan
    fit = template.centre_fit
    settings = settings_of(adam, MOVING_FIELDS)
    if fit is None:
        return MovingScan(features, centres.reshape(-1, 3), layers, settings)
    if adam.centre_stretch:
        centres = centres - stretch_correction(fit, label_sizes(layers, per_layer))
    return MovingScan(features, fit_centres(fit, centres), layers, settings)


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
