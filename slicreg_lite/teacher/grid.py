"""The teacher's grids and tree (step 2, notebook 02): the control points, the candidate
displacements, the patch offsets of the data cost, the smoothed features, and the
minimum spanning tree over the control points that belief propagation runs on. Both the
reference kernels and the compiled ones use them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.csgraph import minimum_spanning_tree as _scipy_mst


# ------------------------------------------------------------------------ grids, labels
def control_points(shape, spacing: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Control points in the centres of ``spacing``-sized cells covering the volume.

    The grid is regular: point ``i`` along an axis lies at ``i * spacing + (spacing - 1)
    // 2``; the last one may lie just outside a volume whose size is not a multiple of
    the spacing (reads there see the border).

    Returns
    -------
    points : numpy.ndarray of int64, shape (P, 3)
        Voxel coordinates (d, h, w), in C order of the grid.
    grid_shape : tuple of 3 ints
    """
    grid_shape = tuple(int(np.ceil(n / spacing)) for n in shape)
    axes = [np.arange(g) * spacing + (spacing - 1) // 2 for g in grid_shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return points.astype(np.int64), grid_shape


def displacement_labels(radius: int, quantisation: int) -> np.ndarray:
    """The cube of candidate displacements: shape ``((2 radius + 1)^3, 3)``, in voxels."""
    steps = np.arange(-radius, radius + 1) * quantisation
    return np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)


def patch_offsets(spacing: int, samples: int = 8,
                  smooth: bool = True) -> tuple[np.ndarray, int]:
    """The sample positions of a control point's patch, and the box size to smooth with.

    ``samples=8``: 2 x 2 x 2 sub-blocks at ``+-half`` along each axis (``half = spacing //
    4``); ``samples=27``: 3 x 3 x 3 positions ``-step, 0, +step`` (``step = spacing // 3``).
    With ``smooth`` each sample reads features averaged over a ``(2 half + 1)^3`` box, so
    that the 8 samples together cover about one grid cell; without, each reads its own
    voxel: finer texture, which real CT has and the phantom lacks.
    """
    if samples == 8:
        half = max(1, spacing // 4)
        steps = np.array([-1, 1]) * half
    elif samples == 27:
        half = max(1, spacing // 3)
        steps = np.array([-1, 0, 1]) * half
    else:
        raise ValueError(f"samples must be 8 or 27; got {samples}")
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
    return offsets, (2 * max(1, spacing // 4) + 1) if smooth else 1


# ---------------------------------------------------------------------- spanning tree
def minimum_spanning_tree(image: torch.Tensor, points: np.ndarray, grid_shape,
                          spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """The minimum spanning tree of the control grid, from intensity differences.

    Each grid cell gets the mean intensity of its ``spacing``-sized block; the 6
    neighbours of the grid are linked with weight ``|mean_p - mean_q|``. The tree keeps
    the edges between similar cells, so that it rarely links two different organs.

    Returns
    -------
    order : numpy.ndarray of int, shape (P,)
        The nodes in breadth-first order from the root (the grid's centre).
    parents : numpy.ndarray of int, shape (P,)
        Each node's parent in the tree; -1 for the root.
    """
    box = smooth_features(image[None].float(), spacing if spacing % 2 else spacing + 1)[0]
    inside = np.minimum(points, np.array(image.shape) - 1)  # the last points may lie outside
    means = box[tuple(torch.from_numpy(inside).T)].numpy()
    index = np.arange(len(points)).reshape(grid_shape)
    sources, targets = [], []
    for axis in range(3):
        a = np.moveaxis(index, axis, 0)
        sources.append(a[:-1].ravel())
        targets.append(a[1:].ravel())
    sources, targets = np.concatenate(sources), np.concatenate(targets)
    # +1e-6: scipy treats a zero weight as "no edge"
    weights = np.abs(means[sources] - means[targets]).astype(np.float64) + 1e-6
    graph = coo_matrix((weights, (sources, targets)), shape=(len(points),) * 2).tocsr()
    tree = _scipy_mst(graph)
    root = _tree_centre(tree)
    order, predecessors = breadth_first_order(tree, root, directed=False,
                                              return_predecessors=True)
    parents = np.where(predecessors < 0, -1, predecessors)
    return order, parents


def _depths(order: np.ndarray, predecessors: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(order), dtype=np.int64)
    for node in order[1:]:
        depth[node] = depth[predecessors[node]] + 1
    return depth


def _tree_centre(tree) -> int:
    """The middle node of the tree's longest path: rooting there makes the tree shallowest,
    and belief propagation handles one depth at a time."""
    order, predecessors = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    end = int(np.argmax(_depths(order, predecessors)))  # one end of a longest path
    order, predecessors = breadth_first_order(tree, end, directed=False,
                                              return_predecessors=True)
    depth = _depths(order, predecessors)
    node = int(np.argmax(depth))  # the other end
    for _ in range(depth.max() // 2):  # walk back half of the longest path
        node = int(predecessors[node])
    return node


def smooth_features(features: torch.Tensor, box: int) -> torch.Tensor:
    """Box-filter every channel (odd ``box``), keeping the size.

    Separable: three 1D means along d, h and w cost ``3 * box`` instead of ``box^3``
    operations per voxel.
    """
    if box <= 1:
        return features
    out = features[None]
    for axis in range(3):
        kernel = [1, 1, 1]
        kernel[axis] = box
        padding = [0] * 6
        padding[4 - 2 * axis:6 - 2 * axis] = [box // 2, box // 2]  # F.pad lists w, h, d
        out = F.avg_pool3d(F.pad(out, padding, mode="replicate"), kernel, stride=1)
    return out[0]
