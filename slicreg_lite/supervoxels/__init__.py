"""Step 1 of Slic-Reg (notebook 01): layers of SLIC supervoxels on the template scan.

:mod:`~slicreg_lite.supervoxels.layers` cuts the template into layers of supervoxels, each
from a slightly different SLIC start, so that a voxel's tuple of labels says where it is;
their centres become the keypoints of step 4."""

from __future__ import annotations

from .layers import (
    adjacent_pairs,
    body_mask,
    encoding_resolution,
    intersection_cells,
    label_centres,
    label_sizes,
    merge_to_count,
    slic_layer,
    slic_layers,
    supervoxel_centres,
)

__all__ = [
    "adjacent_pairs",
    "body_mask",
    "encoding_resolution",
    "intersection_cells",
    "label_centres",
    "label_sizes",
    "merge_to_count",
    "slic_layer",
    "slic_layers",
    "supervoxel_centres",
]
