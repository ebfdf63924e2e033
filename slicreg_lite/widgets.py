"""Interactive ipywidgets panels for the notebooks.

Each panel is a small class: its controls are attributes (so a test, or a curious
student, can drive them from Python), :meth:`update` redraws, and ``.widget`` is what a
notebook displays.
"""

from __future__ import annotations

import numpy as np

from .viz import SOFT_TISSUE_WINDOW, VIEW_NAMES, label_colormap, view_slice


class SliceViewer:
    """Browse the slices of several subjects, with or without their organ labels.

    Parameters
    ----------
    subjects : dict of int -> Subject
        The scans to browse (e.g. ``pipeline.cohort(cfg)``).
    axis : int
        Initial view: 2 axial, 1 coronal, 0 sagittal.
    window : (float, float)
        Grey-value window in HU.

    Examples
    --------
    In a notebook::

        viewer = SliceViewer(pipeline.cohort(cfg))
        viewer.widget              # shows the controls and the slice
        viewer.slice.value = 40    # controls can be set from Python too
    """

    def __init__(self, subjects: dict, *, axis: int = 2, window=SOFT_TISSUE_WINDOW):
        import ipywidgets as w
        import matplotlib.pyplot as plt

        if not subjects:
            raise ValueError("subjects must hold at least one Subject; got an empty dict")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2; got {axis!r}")
        self.subjects = subjects
        self.window = window
        ids = sorted(subjects)
        self.subject = w.Dropdown(options=ids, value=ids[0], description="subject")
        self.view = w.ToggleButtons(options=[(VIEW_NAMES[a], a) for a in (2, 1, 0)],
                                    value=axis, description="view")
        self.slice = w.IntSlider(description="slice", continuous_update=False)
        self.show_labels = w.Checkbox(value=True, description="organ labels")
        self.output = w.Output()
        self._set_slice_range()

        # One figure, updated in place; plt.ioff() keeps it from being shown twice.
        with plt.ioff():
            self.figure, self.ax = plt.subplots(figsize=(5, 5))
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
        from IPython.display import display

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
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
