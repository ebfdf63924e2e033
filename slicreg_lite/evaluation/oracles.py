"""The evaluation's measurement rows, which tell where accuracy goes between the teacher and
Slic-Reg (notebook 05): what the keypoint representation keeps of the teacher's own field
(:func:`through_keypoints`), and what an alignment gives on the teacher's supervoxels of a
scan, as a perfect network would predict them (:func:`register_layers`)."""

from __future__ import annotations

import numpy as np

from ..alignment.adam import AdamResult, register
from ..alignment.template import Template, dense_field, moving_scan
from ..core.spatial import resize_displacement, sample


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
    field = np.asarray(displacement, dtype=np.float32)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W); got {field.shape}")
    on_keypoint_grid = resize_displacement(field, template.shape)  # values rescaled too
    at_keypoints = sample(on_keypoint_grid, template.keypoints.T.astype(np.float32),
                          padding="border")  # (3, N)
    return dense_field(template, np.asarray(at_keypoints).T, cfg, output_shape)
