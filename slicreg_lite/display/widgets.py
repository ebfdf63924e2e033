"""Interactive ipywidgets panels for the notebooks.

Each panel is a small class: its controls are attributes (so a test, or a curious
student, can drive them from Python), :meth:`update` redraws, and ``.widget`` is what a
notebook displays.

Panels that compute (a SLIC layer, a registration) do it in a background thread through
:class:`LatestOnly`: the slider answers at once, the panel says that it is busy, and moves
made meanwhile are not queued: only the latest value is computed next.
"""

from __future__ import annotations

import threading

import numpy as np

from ..core.labels import BTCV_LABELS
from ..core.metrics import score_registration
from ..core.spatial import affine_to_displacement, warp_labels
from ..supervoxels.layers import slic_layer
from ..teacher import register
from .figures import show_supervoxels
from .slices import (
    SOFT_TISSUE_WINDOW,
    VIEW_NAMES,
    label_colormap,
    overlay_contours,
    show_slice,
    view_slice,
)


def _check_axis(axis) -> int:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2; got {axis!r}")
    return axis


def _slice_slider(n: int):
    """A slider over ``n`` slices, starting in the middle."""
    import ipywidgets as w

    return w.IntSlider(value=n // 2, min=0, max=n - 1, description="slice",
                       continuous_update=False)


def _step_slider(description: str, values, start):
    """A slider over fixed ``values`` that has ``start`` among its steps (so that any move
    can be undone)."""
    import ipywidgets as w

    steps = sorted({float(v) for v in values} | {float(start)})
    return w.SelectionSlider(options=[(f"{v:g}", v) for v in steps], value=float(start),
                             description=description, continuous_update=False)


class LatestOnly:
    """Run a slow update in the background; requests made while it runs collapse into one.

    :meth:`request` (a slider's observer) returns at once. If nothing runs, ``work``
    starts in a thread; if it is running, the request is only remembered, and when it
    ends ``work`` runs once more, reading the sliders as they are *then*: intermediate
    values are skipped, never queued.

    Parameters
    ----------
    work : callable
        Reads the controls, computes and redraws.
    background : bool
        False runs ``work`` in the caller's thread (no coalescing possible then).
    on_error : callable, optional
        Called with the exception if ``work`` fails (e.g. to show it in the panel);
        by default it is raised.

    Attributes
    ----------
    runs : int
        How many times ``work`` ran.
    """

    def __init__(self, work, *, background: bool = True, on_error=None):
        self.work, self.background, self.on_error = work, background, on_error
        self.runs = 0
        self._lock = threading.Lock()
        self._pending = False
        self._idle = threading.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        """Whether an update is running or about to."""
        return not self._idle.is_set()

    def request(self, change=None) -> None:
        """Ask for an update with the controls' current values."""
        with self._lock:
            self._pending = True
            if self.busy:
                return  # the running loop will pick it up
            self._idle.clear()
        if self.background:
            threading.Thread(target=self._drain, daemon=True).start()
        else:
            self._drain()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no update is running; False if ``timeout`` passed first."""
        return self._idle.wait(timeout)

    def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        # idle in the same step as the last look: a request arriving now
                        # starts a new loop instead of being left behind
                        self._idle.set()
                        return
                    self._pending = False
                self.runs += 1
                try:
                    self.work()
                except Exception as error:
                    if self.on_error is None:
                        raise
                    self.on_error(error)
        except BaseException:
            with self._lock:
                self._pending = False
                self._idle.set()
            raise


def _busy_text(message: str) -> str:
    """What an info line shows while a panel computes."""
    return f"<i>&#8987; {message}&hellip;</i>"


def _live(panel, background: bool) -> LatestOnly:
    """The panel's :class:`LatestOnly` around its ``update``; errors go to its info line."""
    import html

    def show(error):
        panel.info.value = (f"<span style='color: #b00'>{type(error).__name__}: "
                            f"{html.escape(str(error))}</span>")

    return LatestOnly(panel.update, background=background, on_error=show)


def _new_figure():
    """A figure that appears only where a panel shows it (not when it is made)."""
    import matplotlib.pyplot as plt

    with plt.ioff():
        return plt.subplots(figsize=(5, 5))


def _show(image, figure) -> None:
    """Show ``figure`` in an Image widget (as PNG: safe from a background thread)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    image.value = buffer.getvalue()


def _image_widget():
    import ipywidgets as w

    return w.Image(format="png", layout=w.Layout(max_width="420px"))


class SliceViewer:
    """Browse the slices of several subjects, with or without their organ labels.

    Parameters
    ----------
    subjects : dict of int -> Subject
        The scans to browse (e.g. ``stages.cohort(cfg, data)``).
    axis : int
        Initial view: 2 axial, 1 coronal, 0 sagittal.
    window : (float, float)
        Grey-value window in HU.

    Examples
    --------
    In a notebook::

        viewer = SliceViewer(stages.cohort(cfg, "phantom"))
        viewer.widget              # shows the controls and the slice
        viewer.slice.value = 40    # controls can be set from Python too
    """

    def __init__(self, subjects: dict, *, axis: int = 2, window=SOFT_TISSUE_WINDOW):
        import ipywidgets as w

        if not subjects:
            raise ValueError("subjects must hold at least one Subject; got an empty dict")
        _check_axis(axis)
        self.subjects = subjects
        self.window = window
        ids = sorted(subjects)
        self.subject = w.Dropdown(options=ids, value=ids[0], description="subject")
        self.view = w.ToggleButtons(options=[(VIEW_NAMES[a], a) for a in (2, 1, 0)],
                                    value=axis, description="view")
        self.slice = w.IntSlider(description="slice", continuous_update=False)
        self.show_labels = w.Checkbox(value=True, description="organ labels")
        self.output = _image_widget()
        self._set_slice_range()

        # One figure, updated in place; plt.ioff() keeps it from being shown twice.
        self.figure, self.ax = _new_figure()
        self.ax.set_axis_off()
        self.image_artist = None
        self.label_artist = None

        self.subject.observe(self._on_subject_or_view, names="value")
        self.view.observe(self._on_subject_or_view, names="value")
        self.slice.observe(self.update, names="value")
        self.show_labels.observe(self.update, names="value")
        self.widget = w.VBox([w.HBox([self.subject, self.show_labels]), self.view, self.slice,
                              self.output])
        self.update()

    def _set_slice_range(self):
        n = self.subjects[self.subject.value].shape[self.view.value]
        self.slice.max = n - 1
        self.slice.value = n // 2

    def _on_subject_or_view(self, change=None):
        # Changing the slice value triggers update(); make sure one redraw happens anyway.
        with self.slice.hold_trait_notifications():
            self._set_slice_range()
        self.update()

    def update(self, change=None) -> None:
        """Redraw the current subject, view and slice."""
        subject = self.subjects[self.subject.value]
        image = view_slice(subject.image, self.view.value, self.slice.value)
        self.ax.clear()
        self.ax.set_axis_off()
        self.image_artist = self.ax.imshow(image, cmap="gray", vmin=self.window[0],
                                           vmax=self.window[1], interpolation="nearest")
        self.label_artist = None
        if self.show_labels.value and subject.labels is not None:
            labels = view_slice(subject.labels, self.view.value, self.slice.value)
            self.label_artist = self.ax.imshow(np.ma.masked_equal(labels, 0),
                                               cmap=label_colormap(), vmin=0, vmax=13,
                                               alpha=0.45, interpolation="nearest")
        self.ax.set_title(f"subject {subject.subject_id}, {VIEW_NAMES[self.view.value]} "
                          f"slice {self.slice.value}")
        _show(self.output, self.figure)


class SupervoxelExplorer:
    """Recompute one SLIC layer with other parameters and look at it slice by slice.

    Sliders: ``n_segments`` and ``compactness`` (SLIC's two main knobs), ``layer`` (which
    random affine initialises SLIC) and ``slice``. A layer is computed once per parameter
    combination and kept, so moving the slice slider is instant.

    Parameters
    ----------
    image : numpy.ndarray, shape (D, H, W)
        The template in HU on the supervoxel grid.
    mask : numpy.ndarray of bool, shape (D, H, W)
        Where the supervoxels go.
    cfg : SupervoxelConfig
        Starting parameters (``get_config(preset).supervoxels``).
    axis : int
        The view: 2 axial, 1 coronal, 0 sagittal.
    background : bool
        Compute in a background thread (:class:`LatestOnly`); the first picture is always
        drawn before the panel is returned.
    """

    def __init__(self, image, mask, cfg, *, axis: int = 1, background: bool = True):
        import ipywidgets as w

        _check_axis(axis)
        self.image, self.mask, self.cfg, self.axis = image, mask, cfg, axis
        self.n_segments = w.IntSlider(value=cfg.n_segments, min=32, max=512, step=16,
                                      description="n_segments", continuous_update=False)
        self.compactness = _step_slider("compactness", (0.1, 0.3, 1, 3, 10, 30),
                                        cfg.compactness)
        self.layer = w.IntSlider(value=0, min=0, max=max(cfg.n_layers - 1, 0),
                                 description="layer", continuous_update=False)
        self.slice = _slice_slider(image.shape[axis])
        self.info = w.HTML()
        self.output = _image_widget()
        self._layers = {}  # (n_segments, compactness, layer) -> computed layer
        self.figure, self.ax = _new_figure()
        self.live = _live(self, background)
        for control in (self.n_segments, self.compactness, self.layer, self.slice):
            control.observe(self.live.request, names="value")
        self.widget = w.VBox([w.HBox([self.n_segments, self.compactness]),
                              w.HBox([self.layer, self.slice]), self.info, self.output])
        self.update()

    def current_layer(self):
        """The layer for the current slider values (computed on first use)."""
        import dataclasses
        import time

        key = (self.n_segments.value, round(self.compactness.value, 4), self.layer.value)
        if key not in self._layers:
            cfg = dataclasses.replace(self.cfg, n_segments=key[0], compactness=key[1])
            self.info.value = _busy_text(f"computing layer {key[2]} with n_segments {key[0]}, "
                                         f"compactness {key[1]:g}")
            start = time.perf_counter()
            self._layers[key] = slic_layer(self.image, self.mask, cfg, key[2])
            self.info.value = (f"layer computed in {time.perf_counter() - start:.1f} s: "
                               f"{len(np.unique(self._layers[key])) - 1} supervoxels + "
                               "background")
        return self._layers[key]

    def update(self, change=None) -> None:
        """Redraw (and recompute the layer if a SLIC parameter changed)."""
        layer = self.current_layer()
        self.ax.clear()
        show_supervoxels(self.image, layer, axis=self.axis, index=self.slice.value, ax=self.ax,
                         seed=self.layer.value,
                         title=f"n_segments {self.n_segments.value}, compactness "
                               f"{self.compactness.value:.2g}, layer {self.layer.value}")
        _show(self.output, self.figure)


class TeacherExplorer:
    """Re-run deeds-lite with another regularisation weight and step through its levels.

    Sliders: ``alpha`` (regularisation weight; each new value runs the deformable step
    once, a few seconds under ``lite``: the affine step does not depend on alpha and is
    computed only for the first), ``level`` (0 = affine only, then each deformable level)
    and ``slice``. The picture shows the fixed scan with the organ outlines of both scans
    (fixed solid, warped moving dashed); the text gives avg(4) Dice and folding.

    Parameters
    ----------
    fixed, moving : Subject
        The training scan (fixed) and the template (moving), with labels for the Dice.
    cfg : TeacherConfig
        Starting parameters (``get_config(preset).teacher``).
    axis : int
        The view: 2 axial, 1 coronal, 0 sagittal.
    background : bool
        Register in a background thread (:class:`LatestOnly`); the first picture is
        always drawn before the panel is returned.
    """

    def __init__(self, fixed, moving, cfg, *, axis: int = 1, background: bool = True):
        import ipywidgets as w

        _check_axis(axis)
        self.fixed, self.moving, self.cfg, self.axis = fixed, moving, cfg, axis
        self.alpha = _step_slider("alpha", (0.5, 1, 2, 4, 8, 16, 32, 64), cfg.regularisation)
        self.level = w.IntSlider(value=len(cfg.grid_spacings), min=0,
                                 max=len(cfg.grid_spacings), description="level",
                                 continuous_update=False)
        self.slice = _slice_slider(fixed.shape[axis])
        self.info = w.HTML()
        self.output = _image_widget()
        self._fields = {}  # alpha -> [affine field, field after level 1, ...]
        self._affine = None  # the affine step's matrix, once computed
        self.figure, self.ax = _new_figure()
        self.live = _live(self, background)
        for control in (self.alpha, self.level, self.slice):
            control.observe(self.live.request, names="value")
        self.widget = w.VBox([w.HBox([self.alpha, self.level, self.slice]), self.info,
                              self.output])
        self.update()

    def fields(self) -> list:
        """The fields of every level for the current alpha (registering on first use)."""
        import dataclasses

        alpha = round(self.alpha.value, 4)
        if alpha not in self._fields:
            self.info.value = _busy_text(f"registering with alpha {alpha:g}")
            # the affine step of the first registration serves every alpha
            result = register(self.fixed.image, self.moving.image,
                              dataclasses.replace(self.cfg, regularisation=alpha),
                              affine=self._affine, keep_levels=True)
            self._affine = result.affine
            affine = affine_to_displacement(result.affine, self.fixed.shape)
            self._fields[alpha] = [affine, *result.levels]
        return self._fields[alpha]

    def update(self, change=None) -> None:
        """Redraw (and register again if alpha changed)."""
        field = self.fields()[self.level.value]
        warped = warp_labels(self.moving.labels, field)
        scores = score_registration(warped, self.fixed.labels, field,
                                    label_names=BTCV_LABELS, hd95=False)
        dice, folding = scores.summary["avg(4)"], scores.jacobian["percent_folding"]
        name = "affine" if self.level.value == 0 else f"after level {self.level.value}"
        self.info.value = (f"alpha {self.alpha.value:.3g}, {name}: avg(4) Dice "
                           f"{100 * dice:.1f}%, folding {folding:.2f}% of voxels")
        self.ax.clear()
        show_slice(self.fixed.image, axis=self.axis, index=self.slice.value, ax=self.ax,
                   title=f"{name}: fixed (solid) / warped moving (dashed)")
        overlay_contours(self.ax, view_slice(self.fixed.labels, self.axis, self.slice.value))
        overlay_contours(self.ax, view_slice(warped, self.axis, self.slice.value),
                         linestyle="dashed")
        _show(self.output, self.figure)


class AdamExplorer:
    """Re-run the Adam alignment of step 4 live: sliders for alpha, k, iterations and the
    centre term.

    The sliders start at the alignment's settings (``slicreg.adam``: the paper's loss for
    ``SlicReg.load(cfg, data)``). ``centre weight`` above 0 adds this toolkit's centre term
    (not in the paper): each keypoint is also drawn to its supervoxel's centre in the
    moving scan, taken one by one or, with ``centre fit`` ticked, from one smooth motion
    fitted to all centres (:func:`~slicreg_lite.alignment.centre_fit.fit_centres`). Each change
    registers again (the network's prediction is computed once; Adam, thin-plate spline
    and warping take well under a second under ``lite``) and updates the overlay, the
    avg(4) Dice and the folding. The picture shows the template with its organ outlines
    (solid) and the moving scan's warped outlines (dashed).

    Parameters
    ----------
    slicreg : SlicReg
        The registration (:class:`slicreg_lite.methods.SlicReg`): its template and
        its Adam settings (``slicreg.adam``) are the starting point.
    moving_scan : alignment.MovingScan
        The moving scan seen through the network (``slicreg.moving_scan(moving.image)``).
    fixed, moving : Subject
        The template scan and the moving scan, with labels for the Dice.
    axis : int
        The view: 2 axial, 1 coronal, 0 sagittal.
    background : bool
        Register in a background thread (:class:`LatestOnly`); the first picture is
        always drawn before the panel is returned.

    Attributes
    ----------
    result : alignment.AdamResult
        The latest registration.
    dice, folding : float
        Its avg(4) Dice (fraction) and % of voxels with J <= 0.
    """

    def __init__(self, slicreg, moving_scan, fixed, moving, *, axis: int = 1,
                 background: bool = True):
        import ipywidgets as w

        _check_axis(axis)
        if fixed.shape != moving.shape:
            raise ValueError(f"fixed and moving must share a grid; got {fixed.shape} and "
                             f"{moving.shape}")
        self.slicreg, self.moving_scan, self.axis = slicreg, moving_scan, axis
        adam = slicreg.adam
        self.fixed, self.moving = fixed, moving
        n_points = len(slicreg.template.keypoints)
        self.alpha = _step_slider("alpha", (0.001, 0.003, 0.015, 0.05, 0.15, 0.5, 1.5, 5),
                                  adam.alpha)
        self.k = w.IntSlider(value=adam.k, min=1, max=min(24, n_points - 1),
                             description="k", continuous_update=False)
        self.iterations = w.IntSlider(value=adam.iterations, min=5, max=300, step=5,
                                      description="iterations", continuous_update=False)
        self.centre_weight = _step_slider("centre weight", (0, 1, 3, 10, 30),
                                          adam.centre_weight)
        # the centre term needs the keypoints at the supervoxels' centres
        self.centre_weight.disabled = adam.keypoints != "centres"
        self.centre_fit = w.Checkbox(value=bool(adam.centre_fit_step), description="centre fit",
                                     disabled=self.centre_weight.disabled)
        self.slice = _slice_slider(fixed.shape[axis])
        self.info = w.HTML()
        self.output = _image_widget()
        self.figure, self.ax = _new_figure()
        self._registered_with = None  # the slider values of self.result
        self.live = _live(self, background)
        for control in (self.alpha, self.k, self.iterations, self.centre_weight,
                        self.centre_fit, self.slice):
            control.observe(self.live.request, names="value")
        self.widget = w.VBox([w.HBox([self.alpha, self.k]), w.HBox([self.iterations,
                                                                      self.slice]),
                              w.HBox([self.centre_weight, self.centre_fit]),
                              self.info, self.output])
        self.update()

    def settings(self) -> dict:
        """The Adam settings the controls say (overrides of ``slicreg.adam``)."""
        fit_step = self.slicreg.adam.centre_fit_step or self.slicreg.cfg.centre_fit.centre_fit_step
        centre_fit = bool(self.centre_fit.value) and self.centre_weight.value > 0
        return {"alpha": float(self.alpha.value), "k": int(self.k.value),
                "iterations": int(self.iterations.value),
                "centre_weight": float(self.centre_weight.value),
                "centre_fit_step": fit_step if centre_fit else 0,
                "centre_stretch": centre_fit and self.slicreg.cfg.centre_fit.centre_stretch}

    def update(self, change=None) -> None:
        """Register again if a setting changed, then redraw."""
        settings = self.settings()
        if settings != self._registered_with:
            self.register(**settings)
        self.draw()

    def register(self, **settings) -> None:
        """Align with these settings (overrides of ``slicreg.adam``); the Dice and folding
        of the result."""
        described = (f"alpha {settings.get('alpha', self.slicreg.adam.alpha):g}, k "
                     f"{settings.get('k', self.slicreg.adam.k)}, "
                     f"{settings.get('iterations', self.slicreg.adam.iterations)} iterations")
        if settings.get("centre_weight"):
            described += (f", centre weight {settings['centre_weight']:g}"
                          + (" (fitted)" if settings.get("centre_fit_step") else ""))
        self.info.value = _busy_text(f"registering with {described}")
        self.result = self.slicreg.align(self.moving_scan, **settings)
        self._registered_with = settings
        self.warped = warp_labels(self.moving.labels, self.result.displacement)
        scores = score_registration(self.warped, self.fixed.labels,
                                    self.result.displacement, label_names=BTCV_LABELS,
                                    hd95=False)
        self.dice, self.folding = scores.summary["avg(4)"], scores.jacobian["percent_folding"]
        self.info.value = (f"{described}: avg(4) Dice {100 * self.dice:.1f}%, folding "
                           f"{self.folding:.2f}% of voxels "
                           f"({self.result.timings['total']:.2f} s)")

    def draw(self, change=None) -> None:
        """Redraw the overlay of the current slice."""
        self.ax.clear()
        show_slice(self.fixed.image, axis=self.axis, index=self.slice.value, ax=self.ax,
                   title="template (solid) / warped moving scan (dashed)")
        overlay_contours(self.ax, view_slice(self.fixed.labels, self.axis, self.slice.value))
        overlay_contours(self.ax, view_slice(self.warped, self.axis, self.slice.value),
                         linestyle="dashed")
        _show(self.output, self.figure)
