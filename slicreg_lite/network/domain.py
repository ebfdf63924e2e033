"""Is a scan like the scans a network was trained on?

A network knows only the kind of scan it learnt from: the shipped networks learnt from the
synthetic phantom, and on a real CT they predict supervoxels (or displacements) that look
plausible and are wrong. So before its result is handed out, every scan is compared with
the training scans by its *intensity profile*, which needs no labels:

- the share of its body's voxels in six bands of Hounsfield units (:data:`BANDS_HU`: gas,
  lung and boundaries, fat, soft tissue, enhanced tissue, bone and contrast);
- its noise: the median absolute Laplacian of the soft tissue, in HU.

The training scans' profiles span a range. A scan outside that range, widened by
:data:`SHARE_TOLERANCE` for each band's share and by the factor :data:`NOISE_FACTOR` for
the noise, is *unlike the training scans*, and its registration cannot be trusted. The
widening is what the phantom's own subjects need: among its 39 subjects under ``lite`` a
band's share varies by up to 11 points and the noise by a factor 1.4, while a real
abdominal CT brought onto the lite grid has half the phantom's noise. The check looks at
intensities only: a scan inside the range can still be unlike the training scans in its
anatomy.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scans = [np.where(rng.random((20, 20, 20)) < 0.5, 40.0, -100.0) + rng.normal(0, 10,
...          (20, 20, 20)) for _ in range(3)]
>>> profiles = [intensity_profile(scan) for scan in scans]
>>> unlike_training(intensity_profile(scans[0]), profiles)
[]
>>> len(unlike_training(intensity_profile(scans[0] * 0.5 + 300), profiles)) > 0
True
"""

from __future__ import annotations

import numpy as np

from ..core.checks import check_volume
from ..supervoxels.layers import body_mask

#: The inner edges of the six intensity bands (HU).
BANDS_HU = (-500.0, -200.0, -30.0, 100.0, 300.0)
#: The names of the profile's values: the six bands, then the noise.
PROFILE_NAMES = ("gas (< -500 HU)", "-500..-200 HU", "fat (-200..-30 HU)",
                 "soft tissue (-30..100 HU)", "enhanced (100..300 HU)", "bone (>= 300 HU)",
                 "noise (HU)")
#: How far a band's share may lie outside the training scans' range.
SHARE_TOLERANCE = 0.08
#: How many times lower or higher than the training scans' the noise may be.
NOISE_FACTOR = 1.3


def intensity_profile(image, mask=None) -> np.ndarray:
    """The intensity profile of a CT scan (module docstring).

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        In HU, on the preset's grid.
    mask : array_like of bool, optional
        The body; default :func:`~slicreg_lite.supervoxels.layers.body_mask`.

    Returns
    -------
    numpy.ndarray, shape (7,)
        The share of the body's voxels in each band of :data:`BANDS_HU`, then the noise.
    """
    from scipy.ndimage import laplace

    image = check_volume(image, "image").astype(np.float32, copy=False)
    if mask is None:

        mask = body_mask(image)
    mask = np.asarray(mask, dtype=bool)
    values = image[mask] if mask.any() else image.ravel()
    edges = (-np.inf, *BANDS_HU, np.inf)
    shares = np.histogram(values, edges)[0] / max(values.size, 1)
    soft = mask & (image > BANDS_HU[2]) & (image < BANDS_HU[3])
    curvature = np.abs(laplace(image))[soft] if soft.any() else np.zeros(1)
    return np.append(shares, np.median(curvature))


def unlike_training(profile, training_profiles) -> list[str]:
    """How a scan's profile leaves the training scans' envelope (empty: it does not).

    Parameters
    ----------
    profile : array_like, shape (7,)
        :func:`intensity_profile` of the scan.
    training_profiles : array_like, shape (n, 7)
        Those of the training scans.

    Returns
    -------
    list of str
        One sentence per value outside the envelope.
    """
    profile = np.asarray(profile, dtype=np.float64)
    training = np.atleast_2d(np.asarray(training_profiles, dtype=np.float64))
    if training.shape[1:] != profile.shape or profile.shape != (len(PROFILE_NAMES),):
        raise ValueError(f"profiles must have {len(PROFILE_NAMES)} values; got "
                         f"{profile.shape} and {training.shape}")
    low, high = training.min(0), training.max(0)
    reasons = []
    for name, value, lowest, highest in zip(PROFILE_NAMES[:-1], profile, low, high):
        if not lowest - SHARE_TOLERANCE <= value <= highest + SHARE_TOLERANCE:
            reasons.append(f"{name}: {100 * value:.1f}% of the body (training scans: "
                           f"{100 * lowest:.1f}..{100 * highest:.1f}%)")
    if not low[-1] / NOISE_FACTOR <= profile[-1] <= high[-1] * NOISE_FACTOR:
        reasons.append(f"{PROFILE_NAMES[-1]}: {profile[-1]:.0f} (training scans: "
                       f"{low[-1]:.0f}..{high[-1]:.0f})")
    return reasons
