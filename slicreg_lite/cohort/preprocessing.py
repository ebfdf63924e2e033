"""Pre-processing: every scan onto the preset's grid, as the paper prepares BCV.

Real CT scans come in any orientation, voxel size and field of view. Before any step of
the method sees them, :func:`to_grid` brings each onto the grid of the preset
(:class:`~slicreg_lite.core.config.GridConfig`):

1. **Reorientation** to RAS+ (:func:`slicreg_lite.cohort.nifti.to_ras`): flips and axis swaps
   only, no interpolation.
2. **Resampling** to the preset's voxel size (2 mm in the paper, 4 mm under ``lite``):
   trilinear with Gaussian anti-aliasing for the image (-1000 HU outside), nearest
   neighbour for labels (:func:`slicreg_lite.core.spatial.resample_to_spacing`).
3. **Crop or pad** to the preset's shape around the centre of mass of the soft tissue
   (:func:`soft_tissue_centre`), as the paper does ("centre-mass alignment"; -1000 HU and
   label 0 where the box leaves the scan, which is this toolkit's choice: the paper does
   not say what it pads with).

No affine pre-alignment is done: that is what makes the paper's task hard. A scan that is
already on the grid (the preset's shape and voxel size, RAS+), such as the paper's
pre-processed "AbdomenIsoCrop" scans under ``paper`` or an exported phantom, is taken as
it is: pre-processing it again would move it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter
from scipy.special import expit

from ..core.checks import check_volume
from ..core.spatial import resample_to_spacing
from .nifti import to_ras
from .subject import Subject

#: Hounsfield units of air: the value outside a scan's field of view.
AIR_HU = -1000.0
#: The paper's pre-processing: 2 mm isotropic voxels, a 192 x 160 x 256 crop.
PAPER_SPACING_MM = 2.0
PAPER_SHAPE = (192, 160, 256)


# ------------------------------------------------------------------------ pre-processing
def soft_tissue_centre(image) -> np.ndarray:
    """Centre of mass of the soft tissue of a CT volume, in voxels.

    Each voxel is weighted by a smooth window that is high for 0..250 HU::

        w = sigmoid(10 - 10 * |HU / 250 * 2 - 1|)

    (1 at 125 HU, 0.5 at 0 and 250 HU, about 0 for air, fat and bone), then the weight is
    eroded by a 3 x 3 x 3 minimum filter so that thin structures and isolated noisy
    voxels count for nothing: only the interior of organs pulls the centre.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        Intensities in Hounsfield units.

    Returns
    -------
    numpy.ndarray, shape (3,), float64
        ``sum(xyz * w) / sum(w)`` in (d, h, w) voxel coordinates.

    Raises
    ------
    ValueError
        If the image is not a finite 3D volume or holds no soft tissue at all.
    """
    hu = check_volume(image, "image").astype(np.float32, copy=False)
    weight = minimum_filter(expit(10.0 - 10.0 * np.abs(hu / 250.0 * 2.0 - 1.0)), size=3)
    total = float(weight.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError(f"image must contain soft tissue (about 0..250 HU) to find its "
                         f"centre; got intensities in {hu.min():g}..{hu.max():g} HU")
    centre = []
    for axis, length in enumerate(hu.shape):
        # The weight summed over the two other axes: a 1D profile along this axis.
        other_axes = tuple(a for a in range(3) if a != axis)
        profile = weight.sum(axis=other_axes, dtype=np.float64)
        centre.append(float(profile @ np.arange(length)) / total)
    return np.array(centre)


def crop_origin(centre, shape) -> np.ndarray:
    """Where a crop of ``shape`` centred at ``centre`` starts in the input.

    Parameters
    ----------
    centre : sequence of 3 floats
        Voxel coordinates (d, h, w) that should land in the middle of the crop.
    shape : sequence of 3 ints
        ``(D, H, W)`` of the crop.

    Returns
    -------
    numpy.ndarray, shape (3,), int64
        Input index of the crop's first voxel (negative when the crop starts before the
        volume). Voxel ``j`` of the crop is voxel ``origin + j`` of the input, and the
        crop's middle ``(shape - 1) / 2`` lies within half a voxel of ``centre``.
    """
    shape = np.asarray(_as_shape(shape))
    centre = np.asarray(centre, dtype=np.float64).reshape(-1)
    if centre.shape != (3,) or not np.isfinite(centre).all():
        raise ValueError(f"centre must be 3 finite voxel coordinates (d, h, w); got {centre}")
    return np.floor(centre - (shape - 1) / 2.0 + 0.5).astype(np.int64)


def crop_or_pad(volume, centre, shape, fill: float = 0.0) -> np.ndarray:
    """Cut a box of ``shape`` voxels centred at ``centre`` out of a volume.

    Parts of the box outside the volume are filled with ``fill`` (-1000 HU for images,
    0 for labels). No interpolation: voxels are copied.

    Parameters
    ----------
    volume : array_like, shape (D, H, W)
    centre : sequence of 3 floats
        Voxel coordinates (d, h, w) of the box's middle (see :func:`crop_origin`).
    shape : sequence of 3 ints
        ``(D', H', W')`` of the result.
    fill : float
        Value of the voxels outside ``volume``.

    Returns
    -------
    numpy.ndarray, shape (D', H', W')
        Same dtype as ``volume``; ``out[j] == volume[crop_origin(centre, shape) + j]``.
    """
    volume = check_volume(volume, "volume", finite=False)
    shape = _as_shape(shape)
    origin = crop_origin(centre, shape)
    out = np.full(shape, fill, dtype=volume.dtype)
    source, target = [], []
    for start, size, length in zip(origin, shape, volume.shape):
        low, high = max(start, 0), min(start + size, length)  # the overlap, input indices
        if high <= low:
            return out  # the box misses the volume entirely
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    out[tuple(target)] = volume[tuple(source)]
    return out


def preprocess(subject: Subject, *, spacing_mm=PAPER_SPACING_MM,
               shape=PAPER_SHAPE) -> Subject:
    """The paper's pre-processing: isotropic voxels, then a crop around the soft tissue.

    1. Resample to ``spacing_mm`` with :func:`slicreg_lite.core.spatial.resample_to_spacing`:
       trilinear for the image (-1000 HU outside), nearest neighbour for labels.
    2. Crop or pad to ``shape`` around :func:`soft_tissue_centre` (-1000 HU and label 0
       where the box leaves the scan).

    No affine pre-alignment is done (that is what makes the paper's task hard).
    Intensities stay in HU.

    Parameters
    ----------
    subject : Subject
    spacing_mm : float or sequence of 3 floats
        Voxel size of the result in mm (2 mm in the paper).
    shape : sequence of 3 ints
        ``(D, H, W)`` of the result (192 x 160 x 256 in the paper).

    Returns
    -------
    Subject
        A new subject whose affine maps the new voxels to the same world positions:
        every voxel lies where its content was in the input (up to the resampling).

    Raises
    ------
    ValueError
        If ``spacing_mm`` or ``shape`` is not valid, or the image has no soft tissue.
    """
    shape = _as_shape(shape)
    old_spacing = np.asarray(subject.spacing)
    new_spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    image = resample_to_spacing(subject.image, old_spacing, new_spacing, mode="linear",
                                fill=AIR_HU)
    # resample_to_spacing keeps the first voxel centre: new voxel i lies at old voxel
    # i * new / old, so each column of the affine is scaled by new / old.
    affine = subject.affine @ np.diag([*(new_spacing / old_spacing), 1.0])
    centre = soft_tissue_centre(image)
    # Crop voxel j is resampled voxel origin + j: shift the affine's origin by that much.
    affine = affine @ _translation(crop_origin(centre, shape))

    def resample_and_crop_mask(mask):
        if mask is None:
            return None
        resampled = resample_to_spacing(mask.astype(np.uint8), old_spacing, new_spacing,
                                        mode="nearest")
        return crop_or_pad(resampled, centre, shape, fill=0)

    return Subject(subject_id=subject.subject_id,
                   image=crop_or_pad(image, centre, shape, fill=AIR_HU),
                   labels=resample_and_crop_mask(subject.labels),
                   affine=affine,
                   body_mask=resample_and_crop_mask(subject.body_mask))


def _as_shape(shape) -> tuple[int, int, int]:
    values = tuple(np.asarray(shape).reshape(-1).tolist())
    if len(values) != 3 or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"shape must be three positive integers (D, H, W); got {shape!r}")
    return tuple(int(v) for v in values)


def _translation(offset) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix



def on_grid(subject: Subject, grid) -> bool:
    """Whether a scan is already on a preset's grid: its shape, its voxel size, RAS+ axes.

    Parameters
    ----------
    subject : Subject
    grid : GridConfig
        ``get_config(preset).grid``.
    """
    affine = subject.affine[:3, :3]
    spacing = np.linalg.norm(affine, axis=0)
    # RAS+: each array axis runs (mainly) along the positive world axis of the same index
    ras = all(np.argmax(np.abs(affine[:, i])) == i and affine[i, i] > 0 for i in range(3))
    return (subject.shape == tuple(grid.shape) and ras
            and np.allclose(spacing, grid.spacing_mm, rtol=1e-3))


def to_grid(subject: Subject, grid) -> Subject:
    """Bring a scan onto a preset's grid: reorient, resample, crop or pad (module docstring).

    Parameters
    ----------
    subject : Subject
        Any orientation, voxel size and size; labels and body mask come along.
    grid : GridConfig
        ``get_config(preset).grid``.

    Returns
    -------
    Subject
        On ``grid.shape`` voxels of ``grid.spacing_mm`` mm with RAS+ axes; its affine keeps
        every voxel at its world position. ``subject`` itself when it is on the grid
        already (:func:`on_grid`).

    Examples
    --------
    >>> import numpy as np
    >>> from slicreg_lite.core.config import get_config
    >>> grid = get_config("smoke").grid                    # 32 x 28 x 36 at 12 mm
    >>> image = np.full((40, 40, 30), 50.0)                 # soft tissue, 8 x 8 x 10 mm
    >>> scan = Subject(1, image, None, np.diag([8.0, 8.0, 10.0, 1.0]))
    >>> prepared = to_grid(scan, grid)
    >>> prepared.shape, prepared.spacing
    ((32, 28, 36), (12.0, 12.0, 12.0))
    >>> to_grid(prepared, grid) is prepared
    True
    """
    image, affine = to_ras(subject.image, subject.affine)
    if image is not subject.image:
        def reorient(volume):
            return None if volume is None else to_ras(volume, subject.affine)[0]

        subject = Subject(subject.subject_id, image, reorient(subject.labels), affine,
                          body_mask=reorient(subject.body_mask))
    if on_grid(subject, grid):
        return subject
    return preprocess(subject, spacing_mm=grid.spacing_mm, shape=grid.shape)
