"""Registering a new scan to a fixed one: Slic-Reg, its regression baseline, the teacher.

Three registrations with one call shape, as scikit-image's ``registration`` functions
share theirs: build the method for a fixed scan, then ``method.register(moving)`` for any
number of moving scans on the same grid::

    slicreg = SlicReg.load(cfg, "phantom")            # the template, its supervoxels, the network
    result = slicreg.register(moving, labels=moving_labels)
    result.displacement, result.warped_labels, result.timings

- :class:`SlicReg`: the network predicts the moving scan's supervoxels, Adam aligns them
  with the template's on the keypoint graph, a thin-plate spline makes the field
  (:mod:`slicreg_lite.adamreg`);
- :class:`RegressionBaseline`: the network regresses displacements, a random walk smooths
  them at the keypoints, the same spline (:mod:`slicreg_lite.regression`);
- :class:`Teacher`: deeds-lite on the two scans (:mod:`slicreg_lite.teacher`), with any
  fixed scan.

Every result is a :class:`Registration`: the field on the fixed grid in the convention of
:mod:`slicreg_lite.spatial` (fixed voxel ``x`` corresponds to moving voxel ``x + u(x)``),
the warped moving image and labels, and seconds per part. The evaluation
(:mod:`slicreg_lite.evaluation`) registers every test scan through these classes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .checks import check_labels, check_volume
from .config import Config, RunSettings
from .subject import MAX_LABEL


@dataclass
class Registration:
    """The outcome of registering one moving scan to the fixed scan.

    Attributes
    ----------
    displacement : numpy.ndarray of float32, shape (3, D, H, W)
        On the fixed grid, in voxels: fixed voxel ``x`` corresponds to moving voxel
        ``x + u(x)``.
    warped_image : numpy.ndarray of float32, shape (D, H, W)
        The moving scan on the fixed grid (trilinear, -1000 HU outside).
    warped_labels : numpy.ndarray of uint8, shape (D, H, W), or None
        The moving labels on the fixed grid (nearest neighbour), when labels were given.
    timings : dict
        Seconds: ``"inference"`` (the network; 0 for the teacher), ``"alignment"``
        (everything after it: features, Adam or the random walk, the spline; the whole
        teacher registration) and ``"total"``.
    keypoint_displacement : numpy.ndarray, shape (N, 3), or None
        The keypoints' displacements (supervoxel grid voxels), for Slic-Reg and the
        regression baseline.
    details : object
        What the method's own step returned (:class:`~slicreg_lite.adamreg.AdamResult`,
        :class:`~slicreg_lite.regression.RegressionResult` or
        :class:`~slicreg_lite.teacher.TeacherResult`), for figures.
    """

    displacement: np.ndarray
    warped_image: np.ndarray
    warped_labels: np.ndarray | None
    timings: dict
    keypoint_displacement: np.ndarray | None = None
    details: object = field(default=None, repr=False)


def _finish(displacement, image, labels, timings, keypoints=None, details=None) -> Registration:
    """Warp the moving image and labels with a field and wrap everything up."""
    from .spatial import warp_image, warp_labels

    warped = warp_image(image, displacement, fill=-1000.0)
    warped_labels = None if labels is None else warp_labels(labels, displacement)
    return Registration(np.asarray(displacement, dtype=np.float32), warped, warped_labels,
                        timings, keypoints, details)


def _moving(moving, labels, shape) -> tuple[np.ndarray, np.ndarray | None]:
    """The moving image (a Subject or an array) and its labels, checked against the grid."""
    if hasattr(moving, "image"):  # a Subject
        labels = moving.labels if labels is None else labels
        moving = moving.image
    image = check_volume(moving, "moving").astype(np.float32, copy=False)
    if image.shape != tuple(shape):
        raise ValueError(f"moving must be on the fixed scan's grid {tuple(shape)}; got shape "
                         f"{image.shape} (bring it onto the preset's grid first: "
                         "slicreg_lite.preprocessing.to_grid)")
    if labels is not None:
        labels = check_labels(labels, image.shape, "labels", max_label=MAX_LABEL)
    return image, labels


class _NetworkMethod:
    """What Slic-Reg and the regression baseline share: a template, its layers, a network."""

    head = ""

    def __init__(self, template_image, layers, model, cfg: Config):
        self.template_image = check_volume(template_image, "template_image").astype(
            np.float32, copy=False)
        self.layers = np.asarray(layers)
        if self.layers.ndim != 4:
            raise ValueError(f"layers must have shape (L, D, H, W); got {self.layers.shape}")
        self.model, self.cfg = model.eval(), cfg
        self.template = self._prepare()

    @classmethod
    def load(cls, cfg: Config, data="phantom", *, backbone: str = "deeplab",
             allow_training: bool = True, run: RunSettings | None = None):
        """The method for a preset and a data source: its template (the data's), the
        template's supervoxels and the trained network (shipped, cached, or trained now
        unless ``allow_training=False``, which raises FileNotFoundError instead)."""
        from . import stages
        from .sources import open_source

        data = open_source(data, cfg)
        template_id = data.split.template_id
        template = stages.cohort(cfg, data, (template_id,), run=run)[template_id]
        layers = stages.template_supervoxels(cfg, data, run=run).layers
        model, _ = stages.network(cfg, data, backbone, cls.head,
                                  allow_training=allow_training, run=run)
        return cls(template.image, layers, model, cfg)

    @property
    def shape(self) -> tuple:
        """The fixed (template) grid."""
        return self.template_image.shape

    def _prepare(self):
        raise NotImplementedError


class SlicReg(_NetworkMethod):
    """Slic-Reg: registration by predicted supervoxels and an Adam fit on keypoints.

    Parameters
    ----------
    template_image : numpy.ndarray, shape (D, H, W)
        The template (fixed scan) in HU, on the preset's grid.
    layers : numpy.ndarray of uint8, shape (L, d, h, w)
        The template's supervoxel layers (step 1): their centres are the keypoints.
    model : SupervoxelNetwork
        With the supervoxel ("slic") head (step 3).
    cfg : Config
        ``cfg.network`` (input grid), ``cfg.training.intensity_scale`` and ``cfg.adam``.

    Notes
    -----
    The template's *features* come from the network's own prediction on the template, not
    from its exact layers: both scans are then seen through the same network, so its
    systematic errors cancel (on the lite phantom this gains about 2 Dice points).

    The centre term (``cfg.adam.centre_weight``) draws each keypoint towards where the
    supervoxels predicted in the moving scan put it: under ``lite`` one smooth motion fitted
    to the centres of all predicted supervoxels at once, read at the keypoint
    (:func:`~slicreg_lite.adamreg.fit_centres`), measured from the template's exact
    keypoint. The template onto itself therefore moves as far as the network errs on the
    template; with ``centre_weight=0`` it stays put.
    """

    head = "slic"

    def _prepare(self):
        from . import adamreg

        template = adamreg.prepare_template(self.layers, self.cfg,
                                            feature_layers=self.predict(self.template_image))
        # torch's first optimiser step pays a one-off start-up: not a registration cost
        adamreg.register(template, template.features, self.cfg, iterations=2)
        return template

    def predict(self, image) -> np.ndarray:
        """The network's supervoxel layers for a scan, on the supervoxel grid."""
        from .networks import predict_supervoxels

        return predict_supervoxels(self.model, image, self.cfg.network.input_shape,
                                   self.layers.shape[1:],
                                   intensity_scale=self.cfg.training.intensity_scale)

    def moving_scan(self, image):
        """A scan seen through the network: its folded, smoothed supervoxel features and
        the centres of its predicted supervoxels (:class:`~slicreg_lite.adamreg.MovingScan`)."""
        from . import adamreg

        return adamreg.moving_scan(self.predict(image), self.template, self.cfg)

    def align(self, moving, **overrides):
        """Adam on the keypoints + the thin-plate spline, from a scan's :meth:`moving_scan`;
        ``overrides`` replace ``cfg.adam``'s values (e.g. ``alpha=0.1, k=5``)."""
        from . import adamreg

        return adamreg.register(self.template, moving, self.cfg, output_shape=self.shape,
                                **overrides)

    def register(self, moving, *, labels=None, **overrides) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid).

        ``overrides`` replace ``cfg.adam``'s values for this registration.
        """
        from . import adamreg

        image, labels = _moving(moving, labels, self.shape)
        start = time.perf_counter()
        predicted = self.predict(image)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        result = self.align(adamreg.moving_scan(predicted, self.template, self.cfg),
                            **overrides)
        alignment = time.perf_counter() - start
        timings = {"inference": inference, "alignment": alignment,
                   "total": inference + alignment}
        return _finish(result.displacement, image, labels, timings,
                       result.keypoint_displacement, result)


class RegressionBaseline(_NetworkMethod):
    """The paper's ablation: regressed displacements, a random walk, the same spline.

    Parameters are those of :class:`SlicReg`, with a network of the "regression" head.
    """

    head = "regression"

    def _prepare(self):
        from . import adamreg

        return adamreg.prepare_template(self.layers, self.cfg)

    def register(self, moving, *, labels=None) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid)."""
        from . import regression
        from .networks import predict_displacement

        image, labels = _moving(moving, labels, self.shape)
        start = time.perf_counter()
        predicted = predict_displacement(self.model, image, self.cfg.network.input_shape,
                                         intensity_scale=self.cfg.training.intensity_scale)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        result = regression.register(self.template, predicted, self.cfg,
                                     output_shape=self.shape)
        alignment = time.perf_counter() - start
        timings = {"inference": inference, "alignment": alignment,
                   "total": inference + alignment}
        return _finish(result.displacement, image, labels, timings,
                       result.keypoint_displacement, result)


class Teacher:
    """deeds-lite, the conventional registration that teaches the network, on any pair.

    Parameters
    ----------
    fixed_image : numpy.ndarray, shape (D, H, W)
        The fixed scan in HU.
    cfg : Config or TeacherConfig
    """

    def __init__(self, fixed_image, cfg):
        self.fixed_image = check_volume(fixed_image, "fixed_image").astype(np.float32,
                                                                          copy=False)
        self.cfg = cfg

    @classmethod
    def load(cls, cfg: Config, data="phantom", *, run: RunSettings | None = None):
        """The teacher with the data's template as the fixed scan."""
        from . import stages
        from .sources import open_source

        data = open_source(data, cfg)
        template_id = data.split.template_id
        return cls(stages.cohort(cfg, data, (template_id,), run=run)[template_id].image, cfg)

    @property
    def shape(self) -> tuple:
        """The fixed grid."""
        return self.fixed_image.shape

    def register(self, moving, *, labels=None) -> Registration:
        """Register a moving scan (a Subject or an image on the fixed scan's grid)."""
        from .teacher import register

        image, labels = _moving(moving, labels, self.shape)
        result = register(self.fixed_image, image, self.cfg)
        total = result.timings["total"]
        return _finish(result.displacement, image, labels,
                       {"inference": 0.0, "alignment": total, "total": total},
                       details=result)
