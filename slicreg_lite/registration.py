"""Registering a new scan to a fixed one: Slic-Reg, its regression baseline, the teacher.

Three registrations with one call shape, as scikit-image's ``registration`` functions
share theirs: build the method for a fixed scan, then ``method.register(moving)`` for any
number of moving scans on the same grid::

    slicreg = SlicReg.load(cfg, "phantom")            # the template, its supervoxels, the network
    result = slicreg.register(moving, labels=moving_labels)
    result.displacement, result.warped_labels, result.timings

- :class:`SlicReg`: the network predicts the moving scan's supervoxels, Adam aligns them
  with the template's on the keypoint graph, a thin-plate spline makes the field
  (:mod:`slicreg_lite.adamreg`): with the paper's loss (``alignment="paper"``, the
  default) or with this toolkit's centre fit (``alignment="centre-fit"``, an extension);
- :class:`RegressionBaseline`: the network regresses displacements, a random walk smooths
  them at the keypoints, the same spline (:mod:`slicreg_lite.regression`);
- :class:`Teacher`: deeds-lite on the two scans (:mod:`slicreg_lite.teacher`), with any
  fixed scan.

Every result is a :class:`Registration`: the field on the fixed grid in the convention of
:mod:`slicreg_lite.spatial` (fixed voxel ``x`` corresponds to moving voxel ``x + u(x)``),
the warped moving image and labels, seconds per part, and warnings when a network met a
scan unlike its training scans (:mod:`slicreg_lite.domain`). The evaluation
(:mod:`slicreg_lite.evaluation`) registers every test scan through these classes.
"""

from __future__ import annotations

import time
import warnings
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
    warnings : list of str
        Why the result cannot be trusted, if it cannot: a network applied to a scan
        unlike the scans it was trained on (:mod:`slicreg_lite.domain`). Each is also
        issued as a :class:`UntrustedResultWarning`.
    """

    displacement: np.ndarray
    warped_image: np.ndarray
    warped_labels: np.ndarray | None
    timings: dict
    keypoint_displacement: np.ndarray | None = None
    details: object = field(default=None, repr=False)
    warnings: list = field(default_factory=list)


class UntrustedResultWarning(UserWarning):
    """A registration was computed, but cannot be trusted (the message says why and what
    to do instead)."""


def _finish(displacement, image, labels, timings, keypoints=None, details=None,
            warnings_=()) -> Registration:
    """Warp the moving image and labels with a field and wrap everything up."""
    from .spatial import warp_image, warp_labels

    warped = warp_image(image, displacement, fill=-1000.0)
    warped_labels = None if labels is None else warp_labels(labels, displacement)
    return Registration(np.asarray(displacement, dtype=np.float32), warped, warped_labels,
                        timings, keypoints, details, list(warnings_))


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


#: The two alignments of Slic-Reg and the config section that holds each one's settings.
ALIGNMENTS = {"paper": "adam", "centre-fit": "centre_fit"}


class _NetworkMethod:
    """What Slic-Reg and the regression baseline share: a template, its layers, a network."""

    head = ""

    def __init__(self, template_image, layers, model, cfg: Config, *,
                 training_profiles=None, trained_on: str = "its training scans"):
        self.template_image = check_volume(template_image, "template_image").astype(
            np.float32, copy=False)
        self.layers = np.asarray(layers)
        if self.layers.ndim != 4:
            raise ValueError(f"layers must have shape (L, D, H, W); got {self.layers.shape}")
        self.model, self.cfg = model.eval(), cfg
        self.training_profiles, self.trained_on = training_profiles, trained_on
        self.template = self._prepare()

    def check_scan(self, image) -> list[str]:
        """Why the network's result on ``image`` cannot be trusted: the scan is unlike the
        scans it was trained on (:mod:`slicreg_lite.domain`). Empty when it is like them,
        or when the training scans' profiles are unknown (a method built by hand)."""
        from .domain import intensity_profile, unlike_training

        if self.training_profiles is None:
            return []
        reasons = unlike_training(intensity_profile(image), self.training_profiles)
        if not reasons:
            return []
        message = (f"this scan is unlike the scans the network was trained on "
                   f"({self.trained_on}): {'; '.join(reasons)}. Its registration cannot be "
                   "trusted. Instead, register it to a fixed scan of your own with the "
                   "teacher (python -m slicreg_lite register MOVING --method teacher --fixed "
                   "FIXED), or train the networks on a cohort like it (python -m "
                   "slicreg_lite train --data folder:PATH --all)")
        warnings.warn(message, UntrustedResultWarning, stacklevel=3)
        return [message]

    @classmethod
    def load(cls, cfg: Config, data="phantom", *, backbone: str = "deeplab",
             allow_training: bool = True, run: RunSettings | None = None, **options):
        """The method for a preset and a data source: its template (the data's), the
        template's supervoxels and the trained network (shipped, cached, or trained now
        unless ``allow_training=False``, which raises FileNotFoundError instead).
        ``options`` go to the constructor (e.g. Slic-Reg's ``alignment``)."""
        from . import stages
        from .sources import open_source

        data = open_source(data, cfg)
        template_id = data.split.template_id
        template = stages.cohort(cfg, data, (template_id,), run=run)[template_id]
        layers = stages.template_supervoxels(cfg, data, run=run).layers
        model, _ = stages.network(cfg, data, backbone, cls.head,
                                  allow_training=allow_training, run=run)
        trained_on = "the phantom cohort" if data.kind == "phantom" else f"{data.spec!r}"
        return cls(template.image, layers, model, cfg, trained_on=trained_on,
                   training_profiles=stages.training_profiles(cfg, data, run=run), **options)

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
        ``cfg.network`` (input grid), ``cfg.training.intensity_scale`` and the alignment's
        settings.
    alignment : {"paper", "centre-fit"}
        ``"paper"``: the paper's alignment, the poster's loss (``cfg.adam``).
        ``"centre-fit"``: this toolkit's extension of it (``cfg.centre_fit``): Adam
        starts at, and is drawn to, a smooth motion fitted to the centres of the
        predicted supervoxels (:func:`~slicreg_lite.adamreg.fit_centres`). The centre
        term is measured from the template's exact keypoint, so the template onto itself
        moves as far as the network errs on the template.

    Notes
    -----
    The template's features come from its own supervoxels or from the network's
    prediction on the template (``template_features``); with the network's, both scans
    are seen through the same network, so its systematic errors can cancel.
    """

    head = "slic"

    def __init__(self, template_image, layers, model, cfg: Config, *,
                 alignment: str = "paper", **checks):
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {list(ALIGNMENTS)}; got "
                             f"{alignment!r}")
        self.alignment = alignment
        self._templates = {}  # the template for each set of template settings
        self._template_prediction = None
        super().__init__(template_image, layers, model, cfg, **checks)

    @property
    def adam(self):
        """The alignment's settings (:class:`~slicreg_lite.config.AdamConfig`)."""
        return getattr(self.cfg, ALIGNMENTS[self.alignment])

    def _prepare(self):
        from . import adamreg

        template = self.template_for(self.adam)
        # torch's first optimiser step pays a one-off start-up: not a registration cost
        adamreg.register(template, template.features, self.adam, iterations=2,
                         centre_weight=0.0)
        return template

    def template_for(self, adam):
        """The template prepared for Adam settings ``adam`` (computed once per setting of
        :data:`~slicreg_lite.adamreg.TEMPLATE_FIELDS`)."""
        from . import adamreg

        key = tuple(adamreg.settings_of(adam, adamreg.TEMPLATE_FIELDS).items())
        if key not in self._templates:
            feature_layers = None
            if adam.template_features == "network":
                if self._template_prediction is None:
                    self._template_prediction = self.predict(self.template_image)
                feature_layers = self._template_prediction
            self._templates[key] = adamreg.prepare_template(self.layers, adam,
                                                            feature_layers=feature_layers)
        return self._templates[key]

    def predict(self, image) -> np.ndarray:
        """The network's supervoxel layers for a scan, on the supervoxel grid."""
        from .networks import predict_supervoxels

        return predict_supervoxels(self.model, image, self.cfg.network.input_shape,
                                   self.layers.shape[1:],
                                   intensity_scale=self.cfg.training.intensity_scale)

    def moving_scan(self, image, **overrides):
        """A scan seen through the network: its folded, smoothed supervoxel features and
        the centres of its predicted supervoxels (:class:`~slicreg_lite.adamreg.MovingScan`).
        ``image``: a scan on the template's grid, or supervoxel layers already predicted
        (``(L, D, H, W)``); ``overrides`` replace the alignment's settings."""
        from . import adamreg

        adam = adamreg.with_overrides(self.adam, overrides)
        layers = np.asarray(image)
        if layers.ndim != 4:
            layers = self.predict(image)
        return adamreg.moving_scan(layers, self.template_for(adam), adam)

    def align(self, moving, **overrides):
        """Adam on the keypoints + the thin-plate spline, from a scan's :meth:`moving_scan`.

        ``overrides`` replace the alignment's settings (e.g. ``alpha=0.1, k=5``). Settings
        that decide the features, the keypoints or the centre fit (``pool_kernel``,
        ``fold``, ``keypoints``, ``centre_fit_step``, ...) compute those again from the
        scan's predicted layers, so every setting changes what it says.
        """
        from . import adamreg

        adam = adamreg.with_overrides(self.adam, overrides)
        template = self.template_for(adam)
        if not isinstance(moving, adamreg.MovingScan):
            raise ValueError(f"moving must be a MovingScan (SlicReg.moving_scan); got "
                             f"{type(moving).__name__}")
        if moving.settings != adamreg.settings_of(adam, adamreg.MOVING_FIELDS):
            moving = adamreg.moving_scan(moving.layers, template, adam)
        return adamreg.register(template, moving, adam, output_shape=self.shape)

    def register(self, moving, *, labels=None, **overrides) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid).

        ``overrides`` replace the alignment's settings for this registration.
        """
        image, labels = _moving(moving, labels, self.shape)
        untrusted = self.check_scan(image)
        start = time.perf_counter()
        predicted = self.predict(image)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        result = self.align(self.moving_scan(predicted, **overrides), **overrides)
        alignment = time.perf_counter() - start
        timings = {"inference": inference, "alignment": alignment,
                   "total": inference + alignment}
        return _finish(result.displacement, image, labels, timings,
                       result.keypoint_displacement, result, untrusted)


class RegressionBaseline(_NetworkMethod):
    """The paper's ablation: regressed displacements, a random walk, the same spline.

    Parameters are those of :class:`SlicReg`, with a network of the "regression" head;
    its keypoints, graph and spline are those of the paper's alignment (``cfg.adam``).
    """

    head = "regression"

    def _prepare(self):
        from . import adamreg

        return adamreg.prepare_template(self.layers, self.cfg.adam)

    def register(self, moving, *, labels=None) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid)."""
        from . import regression
        from .networks import predict_displacement
        from .supervoxels import body_mask

        image, labels = _moving(moving, labels, self.shape)
        untrusted = self.check_scan(image)
        start = time.perf_counter()
        predicted = predict_displacement(self.model, image, self.cfg.network.input_shape,
                                         intensity_scale=self.cfg.training.intensity_scale)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        # the network had targets only inside the body: its field is read there alone
        result = regression.register(self.template, predicted, self.cfg,
                                     mask=body_mask(image), output_shape=self.shape)
        alignment = time.perf_counter() - start
        timings = {"inference": inference, "alignment": alignment,
                   "total": inference + alignment}
        return _finish(result.displacement, image, labels, timings,
                       result.keypoint_displacement, result, untrusted)


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


def compare_alignments(cfg: Config) -> str:
    """The paper's alignment as the poster and the authors' code give it, beside this
    preset's two rows: "Slic-Reg (paper)" (``cfg.adam``) and "Slic-Reg + centre fit"
    (``cfg.centre_fit``, this toolkit's extension). A Markdown table."""
    supervoxel_mm = cfg.grid.spacing_mm * cfg.grid.shape[0] / cfg.supervoxels.shape[0]
    n_layers, per_layer = cfg.supervoxels.n_layers, cfg.supervoxels.n_supervoxels - 1

    def ours(adam) -> dict:
        keypoints = (f"{n_layers * per_layer} supervoxel centres ({n_layers} x {per_layer})"
                     if adam.keypoints == "centres" else
                     f"{adam.n_keypoints} random voxels inside the supervoxels, every 2nd")
        fold = ("a random order per block of 16 classes" if adam.fold == "blocks"
                else "one random permutation of the 128 classes")
        centre = "none (the paper's loss)" if adam.is_paper else (
            f"weight {adam.centre_weight:g}, start there; "
            + (f"fitted on nodes every {adam.centre_fit_step} voxels"
               if adam.centre_fit_step else "each supervoxel's own centre")
            + ("; stretch corrected" if adam.centre_stretch else ""))
        return {"keypoints": keypoints, "alpha": f"{adam.alpha:g}", "k": str(adam.k),
                "iterations (learning rate)": f"{adam.iterations} ({adam.learning_rate:g})",
                "channel folding": fold + " (seeded)",
                "template features": ("its own supervoxels" if adam.template_features ==
                                      "supervoxels" else "the network's prediction on it"),
                "body mask": "from the template's intensities (no labels)",
                "feature grid": f"{supervoxel_mm * adam.feature_step:g} mm, box average "
                                f"{adam.pool_kernel}",
                "thin-plate spline": f"every {adam.tps_grid_step} voxels of the "
                                     f"{supervoxel_mm:g} mm grid, smoothing "
                                     f"{adam.tps_smoothing:g}",
                "centre term and fit": centre}

    poster = {"keypoints": "N = 2048 supervoxel centres", "alpha": "0.015", "k": "8",
              "iterations (learning rate)": "100 (0.05)",
              "channel folding": "one-hot features", "template features": "-",
              "body mask": "-", "feature grid": "-", "thin-plate spline": "yes",
              "centre term and fit": "none"}
    code = {"keypoints": "2048 random voxels in the mask, every 2nd",
            "alpha": "0.15 (0.015 in the module, 0.15 passed)", "k": "5",
            "iterations (learning rate)": "100 (0.05)",
            "channel folding": "a random order per block of 16 classes, redrawn per scan",
            "template features": "its own supervoxels",
            "body mask": "the template's organ labels, dilated by 60 mm",
            "feature grid": "8 mm (the network's output), average pools 3 (stride 2) and 5",
            "thin-plate spline": "every 5 voxels of the 2 mm grid, smoothing 0.001",
            "centre term and fit": "none"}
    paper, fit = ours(cfg.adam), ours(cfg.centre_fit)
    lines = [f"| | the poster | the authors' code | Slic-Reg (paper), `{cfg.name}` | "
             f"+ centre fit (this toolkit), `{cfg.name}` |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {poster[name]} | {code[name]} | {paper[name]} | {fit[name]} |"
              for name in poster]
    return "\n".join(lines)
