"""MIND-SSC: the modality independent neighbourhood descriptor, self-similarity context.

Raw intensities are a poor thing to compare between patients (contrast agent, noise,
different scanners). MIND describes each voxel by how similar small patches *around* it
are to each other, which captures the local structure (edges, corners, texture) and not
the grey values themselves (Heinrich et al., MICCAI 2013).

The self-similarity context (SSC) uses the six neighbours of a voxel at distance
``dilation``; the 12 pairs of these neighbours that lie ``sqrt(2) * dilation`` apart each
give one channel: the sum of squared differences between the two patches, turned into
a similarity ``exp(-D / V)`` with ``V`` the local mean of ``D`` (a noise estimate).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import check_volume

#: The six neighbours of a voxel (unit steps along d, h, w).
_SIX = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
#: The 12 pairs of the six neighbours that are sqrt(2) apart (not opposite each other).
_PAIRS = [(i, j) for i in range(6) for j in range(i + 1, 6)
          if np.sum((_SIX[i] - _SIX[j]) ** 2) == 2]


def mind_ssc(image, *, radius: int = 1, dilation: int = 2) -> torch.Tensor:
    """MIND-SSC descriptors: 12 channels per voxel, values in (0, 1].

    Parameters
    ----------
    image : array_like or torch.Tensor, shape (D, H, W)
        Any intensities (the descriptor is invariant to ``a * image + b``, ``a != 0``).
    radius : int
        Half-size of the cubic patches that are compared (1 -> 3 x 3 x 3).
    dilation : int
        Distance in voxels between a voxel and its six neighbours.

    Returns
    -------
    torch.Tensor of float32, shape (12, D, H, W)

    Raises
    ------
    ValueError
        If the image is not 3D or holds NaN / Inf values.
    """
    if isinstance(image, torch.Tensor):
        check_volume(image.detach().cpu().numpy(), "image")
        volume = image.float()
    else:
        volume = torch.from_numpy(np.array(check_volume(image, "image"), dtype=np.float32))
    if radius < 0 or dilation < 1:
        raise ValueError(f"radius must be >= 0 and dilation >= 1; got {radius}, {dilation}")
    pad = dilation + radius
    padded = F.pad(volume[None, None], (pad,) * 6, mode="replicate")[0, 0]
    size = volume.shape

    def shifted(step):
        # the neighbour at `step`, for every voxel and the `radius` margin of the patches
        d, h, w = (pad - radius + int(s) * dilation for s in step)
        return padded[d:d + size[0] + 2 * radius, h:h + size[1] + 2 * radius,
                      w:w + size[2] + 2 * radius]

    neighbours = [shifted(step) for step in _SIX]
    # squared differences of the 12 neighbour pairs, summed over a patch (box filter)
    squared = torch.stack([(neighbours[i] - neighbours[j]) ** 2 for i, j in _PAIRS])
    distances = F.avg_pool3d(squared[None], 2 * radius + 1, stride=1)[0]
    # V: the local noise level; clamped so that flat regions do not divide by ~0
    variance = distances.mean(0, keepdim=True)
    mean_variance = variance.mean()
    variance = variance.clamp(min=1e-3 * mean_variance.item() + 1e-12,
                              max=1e3 * mean_variance.item() + 1e-12)
    descriptor = torch.exp(-distances / variance)
    return descriptor / descriptor.amax(0, keepdim=True)
