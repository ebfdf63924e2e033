"""The registration methods, and the table that names them (:data:`METHODS`).

Four registrations with one call shape, as scikit-image's ``registration`` functions
share theirs: build the method for a fixed scan, then ``method.register(moving)`` for any
number of moving scans on the same grid::

    from slicreg_lite.pipeline import load_method
    slicreg = load_method(cfg, "phantom", "slicreg")  # the template, its supervoxels, the network
    result = slicreg.register(moving, labels=moving_labels)
    result.displacement, result.warped_labels, result.timings

The classes are an array core: arrays in, a :class:`Registration` out, no cache and no
files. :func:`~slicreg_lite.pipeline.load.load_method` builds one from the pipeline's
cached stages; the ``register`` command, the command line and the evaluation all read
the table :data:`METHODS`, so that a new method is one entry there.

- :class:`SlicReg`: the network predicts the moving scan's supervoxels, Adam aligns them
  with the template's on the keypoint graph, a thin-plate spline makes the field
  (:mod:`slicreg_lite.alignment`): with the paper's loss (``alignment="paper"``, the
  default) or with this toolkit's centre fit (``alignment="centre-fit"``, an extension);
- :class:`RegressionBaseline`: the network regresses displacements, a random walk smooths
  them at the keypoints, the same spline (:mod:`slicreg_lite.alignment.regression`);
- :class:`PddNet`: PDD-Net, the paper's comparator: a network that compares both scans'
  features over a cube of displacements and reads the field off as an expectation
  (:mod:`slicreg_lite.alignment.pdd`), once or twice ("two warps");
- :class:`Teacher`: deeds-lite on the two scans (:mod:`slicreg_lite.teacher`), with any
  fixed scan.

Slic-Reg and the regression baseline also register a pair of which neither scan is the
template, ``method.register(moving, fixed=other)``: their networks see one scan at a
time and answer in the template's terms, so both scans can be related through it.
Slic-Reg goes ``"direct"`` (the fixed scan's predicted supervoxels take the template's
place in the alignment) or ``"composed"`` (fixed -> template -> moving, through the
inverse of one field); the regression baseline composes. The paper registers to the
template only: this is the toolkit's, and each alignment's route was chosen on pairs of
validation subjects (``AdamConfig.pair_route``, ``benchmarks/bench_pairs.py``).

Every result is a :class:`Registration`: the field on the fixed grid in the convention of
:mod:`slicreg_lite.core.spatial` (fixed voxel ``x`` corresponds to moving voxel ``x + u(x)``),
the warped moving image and labels, seconds per part, and warnings when a network met a
scan unlike its training scans (:mod:`slicreg_lite.network.domain`). The evaluation
(:mod:`slicreg_lite.evaluation`) registers every test scan through these classes.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from . import alignment
from .alignment import regression
from .core.checks import check_labels, check_volume
from .core.config import PAIR_ROUTE_CHOICES, Config
from .core.labels import MAX_LABEL
from .core.spatial import compose, invert, warp_image, warp_labels
from .network.domain import intensity_profile, unlike_training
from .network.models import predict_displacement, predict_supervoxels
from .supervoxels.layers import body_mask
from .teacher import register


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
        regression baseline (None for a pair composed through the template).
    details : object
        What the method's own step returned (:class:`~slicreg_lite.alignment.adam.AdamResult`,
        :class:`~slicreg_lite.alignment.regression.RegressionResult` or
        :class:`~slicreg_lite.teacher.TeacherResult`), for figures; for a pair composed
        through the template, ``{"route": "composed", "fixed to template": ...,
        "moving to template": ...}``.
    warnings : list of str
        Why the result cannot be trusted, if it cannot: a network applied to a scan
        unlike the scans it was trained on (:mod:`slicreg_lite.network.domain`). Each is also
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
                         "slicreg_lite.cohort.preprocessing.to_grid)")
    if labels is not None:
        labels = check_labels(labels, image.shape, "labels", max_label=MAX_LABEL)
    return image, labels


def _fixed(fixed, shape) -> np.ndarray:
    """The fixed image of a pair (a Subject or an array), checked against the grid."""
    image = check_volume(getattr(fixed, "image", fixed), "fixed").astype(np.float32,
                                                                        copy=False)
    if image.shape != tuple(shape):
        raise ValueError(f"fixed must be on the preset's grid {tuple(shape)} like the "
                         f"template; got shape {image.shape} (bring it onto the grid first: "
                         "slicreg_lite.cohort.preprocessing.to_grid)")
    return image


@dataclass
class _Field:
    """One field a network method computed, before the moving scan is warped with it."""

    displacement: np.ndarray
    inference: float
    alignment: float
    keypoint_displacement: np.ndarray | None = None
    details: object = None


def untrusted(image, training_profiles, trained_on: str) -> list[str]:
    """Why a network's result on ``image`` cannot be trusted: the scan is unlike the scans
    it was trained on (:mod:`slicreg_lite.network.domain`). Empty when it is like them, or
    when the training scans' profiles are unknown (a method built by hand). Each reason is
    also issued as an :class:`UntrustedResultWarning`."""
    if training_profiles is None:
        return []
    reasons = unlike_training(intensity_profile(image), training_profiles)
    if not reasons:
        return []
    message = (f"this scan is unlike the scans the network was trained on "
               f"({trained_on}): {'; '.join(reasons)}. Its registration cannot be "
               "trusted. Instead, register it to a fixed scan of your own with the "
               "teacher (python -m slicreg_lite register MOVING --method teacher --fixed "
               "FIXED), or train the networks on a cohort like it (python -m "
               "slicreg_lite train --data folder:PATH --all)")
    warnings.warn(message, UntrustedResultWarning, stacklevel=4)
    return [message]


#: How Slic-Reg registers a pair of which neither scan is the template
#: (:attr:`~slicreg_lite.core.config.AdamConfig.pair_route`).
PAIR_ROUTES = PAIR_ROUTE_CHOICES
#: The two alignments of Slic-Reg and the config section that holds each one's settings.
ALIGNMENTS = {"paper": "adam", "centre-fit": "centre_fit"}


def alignment_settings(cfg: Config, alignment: str):
    """The Adam settings of an alignment: the paper's (``cfg.adam``) or this toolkit's
    centre fit (``cfg.centre_fit``)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {list(ALIGNMENTS)}; got {alignment!r}")
    return getattr(cfg, ALIGNMENTS[alignment])


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
        """Why the network's result on ``image`` cannot be trusted (:func:`untrusted`)."""
        return untrusted(image, self.training_profiles, self.trained_on)

    @classmethod
    def from_parts(cls, cfg: Config, parts, *, backbone: str = "deeplab", **options):
        """The method from what the pipeline provides (``parts``, see :class:`Parts`):
        the template, its supervoxels, the trained network. ``options`` go to the
        constructor (e.g. Slic-Reg's ``alignment``)."""
        return cls(parts.template.image, parts.template_layers(),
                   parts.network(backbone, cls.head), cfg, trained_on=parts.trained_on,
                   training_profiles=parts.training_profiles(), **options)

    @classmethod
    def network_of(cls, options: dict) -> tuple[str, str]:
        """The ``(backbone, head)`` of the network it is built with these options."""
        return options.get("backbone", "deeplab"), cls.head

    @property
    def shape(self) -> tuple:
        """The fixed (template) grid."""
        return self.template_image.shape

    def _prepare(self):
        raise NotImplementedError

    def _to_template(self, image, **options) -> _Field:
        """The field from the template to ``image`` (on the template's grid)."""
        raise NotImplementedError

    def _pair(self, fixed_image, image, **options) -> _Field:
        """The field from ``fixed_image`` to ``image``, neither of them the template."""
        return self._composed(fixed_image, image, **options)

    def _composed(self, fixed_image, image, **options) -> _Field:
        """A pair through the template: fixed -> template -> moving.

        Both scans are registered to the template (fields ``u_F`` and ``u_M`` on its
        grid). A fixed voxel ``y`` lies at template voxel ``y + w(y)``, with ``w`` the
        inverse of ``u_F`` (:func:`~slicreg_lite.core.spatial.invert`), and that voxel at
        moving voxel ``y + w(y) + u_M(y + w(y))``:
        :func:`~slicreg_lite.core.spatial.compose` of ``u_M`` after ``w``.
        """
        to_fixed = self._to_template(fixed_image, **options)
        to_moving = self._to_template(image, **options)
        start = time.perf_counter()
        field = compose(to_moving.displacement, invert(to_fixed.displacement))
        seconds = time.perf_counter() - start
        return _Field(np.asarray(field, dtype=np.float32),
                      to_fixed.inference + to_moving.inference,
                      to_fixed.alignment + to_moving.alignment + seconds,
                      details={"route": "composed", "fixed to template": to_fixed.details,
                               "moving to template": to_moving.details})

    def register(self, moving, *, labels=None, fixed=None, **options) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid) to the
        template, or to ``fixed`` (any other scan on that grid).

        With ``fixed``, the result is the pair's field on the fixed scan's grid; both
        scans go through the network, and either one unlike the training scans gets a
        warning. ``options`` are the method's own (Slic-Reg: ``route`` and Adam
        settings).
        """
        image, labels = _moving(moving, labels, self.shape)
        reasons = self.check_scan(image)
        if fixed is None:
            result = self._to_template(image, **options)
        else:
            fixed_image = _fixed(fixed, self.shape)
            reasons += [f"the fixed scan: {r}" for r in self.check_scan(fixed_image)]
            result = self._pair(fixed_image, image, **options)
        timings = {"inference": result.inference, "alignment": result.alignment,
                   "total": result.inference + result.alignment}
        return _finish(result.displacement, image, labels, timings,
                       result.keypoint_displacement, result.details, reasons)


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
        predicted supervoxels (:func:`~slicreg_lite.alignment.centre_fit.fit_centres`). The centre
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
        """The alignment's settings (:class:`~slicreg_lite.core.config.AdamConfig`)."""
        return alignment_settings(self.cfg, self.alignment)

    def _prepare(self):

        template = self.template_for(self.adam)
        # torch's first optimiser step pays a one-off start-up: not a registration cost
        alignment.register(template, template.features, self.adam, iterations=2,
                         centre_weight=0.0)
        return template

    def template_for(self, adam):
        """The template prepared for Adam settings ``adam`` (computed once per setting of
        :data:`~slicreg_lite.alignment.template.TEMPLATE_FIELDS`)."""
        key = tuple(alignment.settings_of(adam, alignment.TEMPLATE_FIELDS).items())
        if key not in self._templates:
            feature_layers = None
            if adam.template_features == "network":
                if self._template_prediction is None:
                    self._template_prediction = self.predict(self.template_image)
                feature_layers = self._template_prediction
            self._templates[key] = alignment.prepare_template(self.layers, adam,
                                                            feature_layers=feature_layers)
        return self._templates[key]

    def predict(self, image) -> np.ndarray:
        """The network's supervoxel layers for a scan, on the supervoxel grid."""
        return predict_supervoxels(self.model, image, self.cfg.network.input_shape,
                                   self.layers.shape[1:],
                                   intensity_scale=self.cfg.training.intensity_scale)

    def moving_scan(self, image, **overrides):
        """A scan seen through the network: its folded, smoothed supervoxel features and
        the centres of its predicted supervoxels
        (:class:`~slicreg_lite.alignment.template.MovingScan`).
        ``image``: a scan on the template's grid, or supervoxel layers already predicted
        (``(L, D, H, W)``); ``overrides`` replace the alignment's settings."""
        adam = alignment.with_overrides(self.adam, overrides)
        layers = np.asarray(image)
        if layers.ndim != 4:
            layers = self.predict(image)
        return alignment.moving_scan(layers, self.template_for(adam), adam)

    def align(self, moving, **overrides):
        """Adam on the keypoints + the thin-plate spline, from a scan's :meth:`moving_scan`.

        ``overrides`` replace the alignment's settings (e.g. ``alpha=0.1, k=5``). Settings
        that decide the features, the keypoints or the centre fit (``pool_kernel``,
        ``fold``, ``keypoints``, ``centre_fit_step``, ...) compute those again from the
        scan's predicted layers, so every setting changes what it says.
        """
        adam = alignment.with_overrides(self.adam, overrides)
        template = self.template_for(adam)
        if not isinstance(moving, alignment.MovingScan):
            raise ValueError(f"moving must be a MovingScan (SlicReg.moving_scan); got "
                             f"{type(moving).__name__}")
        if moving.settings != alignment.settings_of(adam, alignment.MOVING_FIELDS):
            moving = alignment.moving_scan(moving.layers, template, adam)
        return alignment.register(template, moving, adam, output_shape=self.shape)

    def _to_template(self, image, **overrides) -> _Field:
        """The paper's registration: ``image``'s predicted supervoxels aligned with the
        template's. ``overrides`` replace the alignment's settings."""
        start = time.perf_counter()
        predicted = self.predict(image)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        result = self.align(self.moving_scan(predicted, **overrides), **overrides)
        return _Field(result.displacement, inference, time.perf_counter() - start,
                      result.keypoint_displacement, result)

    def _pair(self, fixed_image, image, *, route: str | None = None, **overrides) -> _Field:
        """A pair by ``route`` (default: the alignment's ``pair_route``, chosen on pairs
        of validation subjects): ``"direct"`` (:meth:`_direct`) or ``"composed"``
        (through the template)."""
        route = alignment.with_overrides(self.adam, overrides).pair_route if route is None \
            else route
        if route not in PAIR_ROUTES:
            raise ValueError(f"route must be one of {list(PAIR_ROUTES)}; got {route!r}")
        if route == "composed":
            return self._composed(fixed_image, image, **overrides)
        return self._direct(fixed_image, image, **overrides)

    def _direct(self, fixed_image, image, **overrides) -> _Field:
        """A pair registered directly: the fixed scan's *predicted* supervoxels take the
        template's place. Their centres are the keypoints (a label the prediction lacks
        keeps the template's centre, and no partner), their features are matched with
        the moving scan's by the same alignment: both carry the template's labels, so
        label ``k`` of layer ``l`` marks the same anatomy in both."""
        adam = alignment.with_overrides(self.adam, overrides)
        start = time.perf_counter()
        fixed_layers, moving_layers = self.predict(fixed_image), self.predict(image)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        fixed = alignment.prepare_template(fixed_layers, adam,
                                           fallback_centres=self.template_for(adam).centres)
        moving = alignment.moving_scan(moving_layers, fixed, adam)
        result = alignment.register(fixed, moving, adam, output_shape=self.shape)
        return _Field(result.displacement, inference, time.perf_counter() - start,
                      result.keypoint_displacement, result)


class RegressionBaseline(_NetworkMethod):
    """The paper's ablation: regressed displacements, a random walk, the same spline.

    Parameters are those of :class:`SlicReg`, with a network of the "regression" head;
    its keypoints, graph and spline are those of the paper's alignment (``cfg.adam``).
    """

    head = "regression"

    def _prepare(self):

        return alignment.prepare_template(self.layers, self.cfg.adam)

    def _to_template(self, image) -> _Field:
        """The regressed field of ``image``, smoothed on the keypoint graph. A pair goes
        through the template (:meth:`_composed`): the network answers for one scan."""
        start = time.perf_counter()
        predicted = predict_displacement(self.model, image, self.cfg.network.input_shape,
                                         intensity_scale=self.cfg.training.intensity_scale)
        inference = time.perf_counter() - start
        start = time.perf_counter()
        # the network had targets only inside the body: its field is read there alone
        result = regression.register(self.template, predicted, self.cfg,
                                     mask=body_mask(image), output_shape=self.shape)
        return _Field(result.displacement, inference, time.perf_counter() - start,
                      result.keypoint_displacement, result)


class PddNet:
    """PDD-Net (Heinrich, MICCAI 2019), the paper's comparator: a discrete registration
    written as a network (:mod:`slicreg_lite.alignment.pdd`), to the template.

    Parameters
    ----------
    template_image : numpy.ndarray, shape (D, H, W)
        The template (fixed scan) in HU, on the preset's grid.
    model : PddNetwork
        Trained without labels (``"unsupervised"``) or with the training scans' labels.
    cfg : Config
    warps : int
        Passes of the network: 1, or 2 ("two warps": the second on the once-warped scan).
    training_profiles, trained_on
        As for :class:`SlicReg`: a scan unlike the training scans gets a warning.
    """

    def __init__(self, template_image, model, cfg: Config, *, warps: int = 2,
                 training_profiles=None, trained_on: str = "its training scans"):
        if warps not in range(1, len(model.steps) + 1):
            raise ValueError(f"warps must be between 1 and {len(model.steps)}; got {warps!r}")
        self.template_image = check_volume(template_image, "template_image").astype(
            np.float32, copy=False)
        self.model, self.cfg, self.warps = model.eval(), cfg, warps
        self.training_profiles, self.trained_on = training_profiles, trained_on

    @classmethod
    def network_of(cls, options: dict) -> tuple[str, str]:
        """``("pdd", training)``: the PDD-Net trained as ``options["training"]`` says."""
        return "pdd", options.get("training", "unsupervised")

    @classmethod
    def from_parts(cls, cfg: Config, parts, *, training: str = "unsupervised",
                   warps: int = 2):
        """The method from the pipeline's ``parts``: the template and the PDD-Net trained
        ``"unsupervised"`` (without labels) or with ``"labels"``."""
        return cls(parts.template.image, parts.network("pdd", training), cfg, warps=warps,
                   trained_on=parts.trained_on,
                   training_profiles=parts.training_profiles())

    @property
    def shape(self) -> tuple:
        """The fixed (template) grid."""
        return self.template_image.shape

    def check_scan(self, image) -> list[str]:
        """Why the network's result on ``image`` cannot be trusted (:func:`untrusted`)."""
        return untrusted(image, self.training_profiles, self.trained_on)

    def register(self, moving, *, labels=None) -> Registration:
        """Register a moving scan (a Subject or an image on the template's grid)."""
        image, labels = _moving(moving, labels, self.shape)
        reasons = self.check_scan(image)
        start = time.perf_counter()
        with torch.no_grad():
            field, output = self.model.dense_field(torch.from_numpy(self.template_image),
                                                   torch.from_numpy(image), self.warps)
        seconds = time.perf_counter() - start
        # the whole registration is the network: nothing runs after it
        timings = {"inference": seconds, "alignment": 0.0, "total": seconds}
        return _finish(field.numpy(), image, labels, timings, details=output,
                       warnings_=reasons)


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
    def network_of(cls, options: dict) -> None:
        """No network."""
        return None

    @classmethod
    def from_parts(cls, cfg: Config, parts):
        """The teacher with the template of the pipeline's ``parts`` as the fixed scan."""
        return cls(parts.template.image, cfg)

    @property
    def shape(self) -> tuple:
        """The fixed grid."""
        return self.fixed_image.shape

    def register(self, moving, *, labels=None) -> Registration:
        """Register a moving scan (a Subject or an image on the fixed scan's grid)."""
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


# ------------------------------------------------------------------ the table of methods
class Parts(Protocol):
    """What a method is built from; the pipeline (:mod:`slicreg_lite.pipeline.load`)
    provides it from its cache, so that the method classes hold no cache of their own."""

    #: The template (fixed scan) on the preset's grid, a :class:`~slicreg_lite.cohort.
    #: subject.Subject`.
    template: object
    #: Which scans the networks were trained on, in words (for the warnings).
    trained_on: str

    def template_layers(self) -> np.ndarray:
        """The template's supervoxel layers (step 1)."""

    def network(self, backbone: str, head: str):
        """A trained network of step 3, or PDD-Net (``backbone="pdd"``): shipped, cached
        or trained now."""

    def training_profiles(self) -> np.ndarray:
        """The intensity profiles of the training scans (:mod:`slicreg_lite.network.domain`)."""


@dataclass(frozen=True, eq=False)
class Method:
    """One row of the table: a registration method, or a measurement of the evaluation.

    Attributes
    ----------
    name : str
        Its short name: ``register --method NAME`` and ``evaluate(methods=[NAME])``.
    label : str
        Its row in the table.
    registration : type or None
        The class that registers a scan (:class:`SlicReg`, :class:`RegressionBaseline`,
        :class:`PddNet`, :class:`Teacher`); ``None`` for a measurement row of the
        evaluation.
    options : dict
        Keyword arguments of the class's ``from_parts`` (the backbone, the alignment;
        PDD-Net's training and warps).
    measurement : str or None
        For a measurement row: ``"initial"`` (no registration), ``"keypoints"`` (the
        teacher's field read at the keypoints) or ``"oracle"`` (the alignment on the
        teacher's supervoxels, with ``options["alignment"]``).
    on_new_scans : bool
        Offered by the ``register`` command (a method for your own scans).
    summary : str
        One line for ``--help``.
    trained_with_labels : bool
        Its network learnt from the training scans' organ labels (every other row learns
        without them: Slic-Reg from the teacher's supervoxels).
    """

    name: str
    label: str
    registration: type | None = None
    options: dict = field(default_factory=dict)
    measurement: str | None = None
    on_new_scans: bool = False
    summary: str = ""
    trained_with_labels: bool = False

    @property
    def any_fixed_scan(self) -> bool:
        """Whether it needs a fixed scan of the caller's (the teacher: no template)."""
        return self.registration is Teacher

    @property
    def any_pair(self) -> bool:
        """Whether it registers any pair of scans: the teacher, and the networks that see
        one scan at a time (Slic-Reg, the regression baseline), through their
        template's labels. PDD-Net compares two scans and was trained with the template
        as the fixed one: it registers to the template only."""
        return self.registration is Teacher or (self.registration is not None and issubclass(
            self.registration, _NetworkMethod))

    @property
    def network(self) -> tuple[str, str] | None:
        """The ``(backbone, head)`` of the network it needs, if any (PDD-Net's:
        ``("pdd", training)``)."""
        return None if self.registration is None else self.registration.network_of(
            self.options)


SLIC_REG = "Slic-Reg (paper): 3D DeepLab + Slic + Adam"
CENTRE_FIT = "Slic-Reg + centre fit (this toolkit)"
UNET_SLIC = "3D UNet + Slic + Adam"
PDD_ONE_WARP = "PDD-Net, one warp"
PDD_NET = "PDD-Net, two warps"
PDD_LABELS = "PDD-Net, two warps, trained with labels"
TEACHER = "deeds-lite teacher (direct)"
INITIAL = "initial, not registered"
KEYPOINTS = "teacher field at the keypoints + spline"
ORACLE = "oracle: the paper's Adam on the teacher's supervoxels"
ORACLE_FIT = "oracle: the centre fit on the teacher's supervoxels"

#: Every row of the table, in its order. The rows named after the paper do what the paper
#: does; the ablations (UNet, regression) use the paper's alignment; the centre fit is
#: this toolkit's extension, in a row of its own. PDD-Net, the paper's comparator, is
#: trained on the same training scans without labels, like Slic-Reg (the paper's row);
#: its row "trained with labels" shows what the MICCAI paper's labels buy it. Three
#: measurement rows tell where accuracy goes between the teacher and Slic-Reg: the
#: teacher's own field read at the keypoints and rebuilt by the spline (what the
#: representation keeps), and each alignment on the teacher's supervoxels of the scan
#: (what a perfect network would give).
METHODS = (
    Method("initial", INITIAL, measurement="initial"),
    Method("teacher", TEACHER, Teacher, on_new_scans=True,
           summary="deeds-lite, the teacher: any pair of scans (--fixed)"),
    Method("keypoints", KEYPOINTS, measurement="keypoints"),
    Method("oracle", ORACLE, measurement="oracle", options={"alignment": "paper"}),
    Method("oracle-fit", ORACLE_FIT, measurement="oracle",
           options={"alignment": "centre-fit"}),
    Method("pdd-1", PDD_ONE_WARP, PddNet, {"training": "unsupervised", "warps": 1}),
    Method("pdd", PDD_NET, PddNet, {"training": "unsupervised", "warps": 2},
           on_new_scans=True,
           summary="PDD-Net, the paper's comparator (two warps, trained without labels)"),
    Method("pdd-labels", PDD_LABELS, PddNet, {"training": "labels", "warps": 2},
           trained_with_labels=True),
    Method("unet-regression", "3D UNet + regression + RW", RegressionBaseline,
           {"backbone": "unet"}),
    Method("unet-slicreg", UNET_SLIC, SlicReg, {"backbone": "unet", "alignment": "paper"}),
    Method("regression", "3D DeepLab + regression + RW", RegressionBaseline,
           {"backbone": "deeplab"}, on_new_scans=True,
           summary="the regression baseline (DeepLab)"),
    Method("slicreg", SLIC_REG, SlicReg, {"backbone": "deeplab", "alignment": "paper"},
           on_new_scans=True, summary="Slic-Reg as in the paper (default)"),
    Method("slicreg-fit", CENTRE_FIT, SlicReg,
           {"backbone": "deeplab", "alignment": "centre-fit"}, on_new_scans=True,
           summary="Slic-Reg with this toolkit's centre fit, an extension"),
)
#: The methods of the ``register`` command, by name.
REGISTER_NAMES = tuple(m.name for m in METHODS if m.on_new_scans)
#: Those of them that register any pair of scans (``register --fixed``, ``learn2reg``).
PAIR_NAMES = tuple(m.name for m in METHODS if m.on_new_scans and m.any_pair)


def method_named(name: str) -> Method:
    """The method of a name (``"slicreg"``) or of a table label.

    Raises
    ------
    ValueError
        For a name that is no method's, listing the names.
    """
    for method in METHODS:
        if name in (method.name, method.label):
            return method
    raise ValueError(f"unknown method {name!r}; expected one of "
                     f"{[m.name for m in METHODS]}")


def networks_needed(methods=METHODS) -> tuple[tuple[str, str], ...]:
    """The ``(backbone, head)`` pairs of the networks the methods need, in table order."""
    return tuple(dict.fromkeys(m.network for m in methods if m.network))
