"""Figures and sliders (every notebook): arrays in, figures out.

- :mod:`~slicreg_lite.display.slices`: slices, organ outlines and their key, checkerboards;
- :mod:`~slicreg_lite.display.figures`: the overview of the pipeline and the figures of
  each step (supervoxels, keypoints, the tree, the keypoint graph, deformation grids, error
  maps, the table's box plots by organ group);
- :mod:`~slicreg_lite.display.widgets`: the notebooks' sliders."""

from __future__ import annotations

from .figures import (
    show_deformation_grid,
    show_dice_boxplots,
    show_error_map,
    show_keypoint_graph,
    show_keypoints,
    show_method_overlays,
    show_pipeline,
    show_supervoxels,
    show_tree,
)
from .slices import (
    LABEL_COLORS,
    SOFT_TISSUE_WINDOW,
    VIEW_NAMES,
    add_organ_key,
    checkerboard,
    label_colormap,
    overlay_contours,
    show_checkerboard,
    show_orthogonal,
    show_slice,
    show_subjects,
    view_slice,
)
from .widgets import (
    AdamExplorer,
    LatestOnly,
    SliceViewer,
    SupervoxelExplorer,
    TeacherExplorer,
)

__all__ = [
    "AdamExplorer",
    "LABEL_COLORS",
    "LatestOnly",
    "SOFT_TISSUE_WINDOW",
    "SliceViewer",
    "SupervoxelExplorer",
    "TeacherExplorer",
    "VIEW_NAMES",
    "add_organ_key",
    "checkerboard",
    "label_colormap",
    "overlay_contours",
    "show_checkerboard",
    "show_deformation_grid",
    "show_dice_boxplots",
    "show_error_map",
    "show_keypoint_graph",
    "show_keypoints",
    "show_method_overlays",
    "show_orthogonal",
    "show_pipeline",
    "show_slice",
    "show_subjects",
    "show_supervoxels",
    "show_tree",
    "view_slice",
]
