"""Step 4 of Slic-Reg (notebook 04): align the predicted supervoxels with Adam on a kNN
keypoint graph.

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

Displacements follow :mod:`slicreg_lite.core.spatial`: the field lives on the template (fixed)
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

The modules: :mod:`~slicreg_lite.alignment.keypoints` (graph, spline),
:mod:`~slicreg_lite.alignment.features` (folded one-hot features),
:mod:`~slicreg_lite.alignment.template` (what is prepared once),
:mod:`~slicreg_lite.alignment.adam` (the paper's Adam),
:mod:`~slicreg_lite.alignment.centre_fit` (this toolkit's extension) and
:mod:`~slicreg_lite.alignment.regression` (the paper's regression baseline: a random walk
on the same graph); :mod:`~slicreg_lite.alignment.pdd` holds PDD-Net, the paper's
comparator (a correlation layer, min-convolutions and mean-field steps as a network).
"""

from __future__ import annotations

from .adam import (
    AdamResult,
    align_keypoints,
    centre_spread,
    register,
)
from .centre_fit import (
    CentreFit,
    cut_by_the_edge,
    fit_centres,
    prepare_centre_fit,
    stretch_correction,
)
from .features import (
    channels_last,
    feature_shape,
    fold_permutation,
    sample_features,
    supervoxel_features,
)
from .keypoints import (
    KeypointGraph,
    ThinPlateSpline,
    fill_from_neighbours,
    keypoint_graph,
    random_keypoints,
    thin_plate_spline,
)
from .regression import (
    RegressionResult,
    invert_at_points,
    random_walk,
)
from .template import (
    MOVING_FIELDS,
    TEMPLATE_FIELDS,
    MovingScan,
    Template,
    dense_field,
    moving_features,
    moving_scan,
    prepare_template,
    settings_of,
    with_overrides,
)

__all__ = [
    "AdamResult",
    "CentreFit",
    "KeypointGraph",
    "MOVING_FIELDS",
    "MovingScan",
    "RegressionResult",
    "TEMPLATE_FIELDS",
    "Template",
    "ThinPlateSpline",
    "align_keypoints",
    "centre_spread",
    "channels_last",
    "cut_by_the_edge",
    "dense_field",
    "feature_shape",
    "fill_from_neighbours",
    "fit_centres",
    "fold_permutation",
    "invert_at_points",
    "keypoint_graph",
    "moving_features",
    "moving_scan",
    "prepare_centre_fit",
    "prepare_template",
    "random_keypoints",
    "random_walk",
    "register",
    "sample_features",
    "settings_of",
    "stretch_correction",
    "supervoxel_features",
    "thin_plate_spline",
    "with_overrides",
]
