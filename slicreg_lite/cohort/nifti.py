"""NIfTI files: reading and writing volumes, and their orientation.

This is the thin file layer between the array code and the disk:

- :func:`load_nifti` reads a volume and its voxel -> world matrix (the *affine*, mm),
  reoriented to RAS+ so that the array axes run left -> right, posterior -> anterior and
  inferior -> superior (the convention of :mod:`slicreg_lite.core.spatial`);
- :func:`to_ras` does the same reorientation for an array and an affine already in memory;
- :func:`save_nifti` writes a volume atomically (a reader never sees half a file).

Reorientation only flips and transposes axes (no interpolation): every voxel keeps its
world position because the affine changes with the array.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from ..core.checks import check_affine
from ..core.files import atomic_write

PathLike = Union[str, os.PathLike]


def load_nifti(path: PathLike, *, canonical: bool = True, dtype=np.float32,
               ndim: int | None = 3) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file: its voxel array and its voxel -> world (mm) matrix.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii`` or ``.nii.gz`` file.
    canonical : bool
        Reorient to RAS+ (see :func:`to_ras`), so that the array axes run left -> right,
        posterior -> anterior, inferior -> superior.
    dtype : numpy dtype or None
        Data type of the returned array (float32 by default, exact for integer labels
        up to 2**24). ``None`` keeps what nibabel returns (after the header's scaling).
    ndim : int or None
        The number of dimensions the volume must have (3 by default; trailing axes of
        length 1, as some tools write them, are dropped first). None accepts any.

    Returns
    -------
    data : numpy.ndarray
        The voxel values, e.g. shape ``(D, H, W)``.
    affine : numpy.ndarray, shape (4, 4), float64
        Voxel index -> world position in mm.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        If the file is not a readable NIfTI image (wrong format, truncated, corrupt) or
        does not have ``ndim`` dimensions (e.g. a 4D time series or a 2D slice).
    """
    path = Path(path)
    image = _open(path)
    shape = tuple(image.shape)
    while ndim is not None and len(shape) > ndim and shape[-1] == 1:
        shape = shape[:-1]
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{str(path)!r} must hold a {ndim}D volume; got shape "
                         f"{tuple(image.shape)} ({len(shape)}D)")
    try:
        data = np.asanyarray(image.dataobj).reshape(shape)
    except Exception as error:  # a truncated .nii.gz fails only when the data is read
        raise ValueError(f"{str(path)!r} could not be read completely (truncated or "
                         f"corrupt?): {error}") from error
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    affine = np.asarray(image.affine, dtype=np.float64)
    if canonical:
        data, affine = to_ras(data, affine)
    return data, affine


def read_header(path: PathLike) -> tuple[tuple[int, ...], np.ndarray]:
    """The shape and the affine of a NIfTI file, without reading its voxels.

    Cheap enough to check a whole folder of scans before any work starts.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_nifti`.
    """
    image = _open(Path(path))
    return tuple(image.shape), np.asarray(image.affine, dtype=np.float64)


def _open(path: Path):
    """The nibabel image of a NIfTI file (its header; voxels are read on demand)."""
    if not path.is_file():
        raise FileNotFoundError(f"path: expected an existing NIfTI file; got {str(path)!r}, "
                                "which does not exist")
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises several kinds for a damaged file
        raise ValueError(f"{str(path)!r} is not a readable NIfTI file (.nii or .nii.gz): "
                         f"{error}") from error
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(f"{str(path)!r} must be a NIfTI file (.nii or .nii.gz); nibabel "
                         f"read it as {type(image).__name__}")
    return image


def to_ras(data: np.ndarray, affine) -> tuple[np.ndarray, np.ndarray]:
    """Flip and transpose a volume so that its axes are RAS+, and adapt its affine.

    Parameters
    ----------
    data : numpy.ndarray, shape (X, Y, Z) or (X, Y, Z, ...)
        The voxels; extra trailing axes (e.g. vector components) are kept as they are.
    affine : array_like, shape (4, 4)
        Voxel index -> world position in mm.

    Returns
    -------
    data : numpy.ndarray
        The same voxels with axis 0 running towards the patient's right (R), axis 1
        towards anterior (A), axis 2 towards superior (S), as closely as the scan's
        direction cosines allow (an oblique scan keeps its small rotation in the affine).
    affine : numpy.ndarray, shape (4, 4)
        The matrix of the new array: every voxel keeps its world position.

    Examples
    --------
    >>> import numpy as np
    >>> lps = np.diag([-2.0, -2.0, 3.0, 1.0])           # x towards left, y posterior
    >>> data, affine = to_ras(np.arange(8.0).reshape(2, 2, 2), lps)
    >>> np.diag(affine).tolist(), float(data[0, 0, 0])    # voxel (1, 1, 0) came first
    ([2.0, 2.0, 3.0, 1.0], 6.0)
    """
    affine = check_affine(affine)
    current = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(current, target)
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return data, affine  # already RAS+
    shape = data.shape[:3]
    reoriented = nib.orientations.apply_orientation(data, transform)
    return np.ascontiguousarray(reoriented), \
        affine @ nib.orientations.inv_ornt_aff(transform, shape)


def save_nifti(path: PathLike, data, affine) -> Path:
    """Write a volume to a NIfTI file, atomically.

    The file is first written under a temporary name in the same folder and then renamed
    with :func:`os.replace`, so that a reader never sees a half-written file and an
    interrupted write leaves the old file (or nothing) behind.

    Parameters
    ----------
    path : str or os.PathLike
        Target file ending in ``.nii.gz`` (compressed) or ``.nii``. Missing parent
        folders are created.
    data : array_like, shape (D, H, W), (D, H, W, C) or (D, H, W, 1, 3)
        A volume, a multi-channel volume, or a vector field in NIfTI's layout (time axis
        of length 1, then the vector components). Floating-point data is stored as
        float32; integer data keeps its type (uint8 labels stay uint8) except 64-bit
        integers, stored as int32; bool is stored as uint8.
    affine : array_like, shape (4, 4)
        Voxel index -> world position in mm. Written as both qform and sform with code 1
        ("scanner"), so every NIfTI reader agrees on it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix, the shape, the data type or the affine is not valid.
    """
    path = Path(path)
    _nifti_suffix(path)  # checks the suffix
    array = _as_nifti_array(data)
    affine = check_affine(affine)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    # nibabel chooses gzip from the suffix, which atomic_write keeps on its temporary name.
    return atomic_write(path, lambda temporary: nib.save(image, str(temporary)))


def _nifti_suffix(path: Path) -> str:
    for suffix in (".nii.gz", ".nii"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return suffix
    raise ValueError(f"path must end in '.nii.gz' or '.nii'; got {str(path)!r}")


def nifti_stem(path: PathLike) -> str:
    """The file name without ``.nii.gz`` / ``.nii``: ``"scans/a.nii.gz"`` -> ``"a"``."""
    path = Path(path)
    return path.name[:-len(_nifti_suffix(path))]


def is_nifti(path: PathLike) -> bool:
    """Whether a path names a NIfTI file by its suffix (``.nii.gz`` or ``.nii``)."""
    try:
        _nifti_suffix(Path(path))
    except ValueError:
        return False
    return True


def _as_nifti_array(data) -> np.ndarray:
    array = np.asarray(data)
    if array.ndim not in (3, 4, 5):
        raise ValueError(f"data must be a 3D (D, H, W), 4D (D, H, W, C) or 5D "
                         f"(D, H, W, 1, 3) array; got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype.itemsize <= 4:
            return array
        # Many NIfTI readers reject 64-bit integers (nibabel does by default): use int32.
        limits = np.iinfo(np.int32)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise ValueError(f"data of dtype {array.dtype} must fit into int32 "
                             f"({limits.min}..{limits.max}); got values in "
                             f"{array.min()}..{array.max()}")
        return array.astype(np.int32)
    raise ValueError(f"data must be numeric (bool, integer or floating point); "
                     f"got dtype {array.dtype}")


def save_displacement_field(path: PathLike, displacement, fixed_affine,
                            moving_affine=None) -> Path:
    """Write a displacement field as a NIfTI file in ITK's physical-space convention.

    ITK (SimpleITK, ANTs, 3D Slicer's transforms) reads the file as a
    ``DisplacementFieldTransform``: at every fixed-image point ``p`` (world coordinates in
    mm) it stores the vector ``v(p)`` such that ``p + v(p)`` is the corresponding point in
    the moving image, in ITK's LPS world coordinates (x towards the patient's left, y
    towards posterior, z towards superior). Resampling the moving image with that
    transform (e.g. ``SimpleITK.Resample(moving, fixed, transform)``) gives the warped
    image on the fixed grid.

    The file holds a ``(D, H, W, 1, 3)`` float32 array (NIfTI's layout of a vector field,
    intent "vector") on the fixed image's grid and affine.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii.gz`` or ``.nii``.
    displacement : array_like, shape (3, D, H, W)
        The field of :mod:`slicreg_lite.core.spatial`: fixed voxel ``x`` corresponds to moving
        voxel ``x + u(x)``, in voxels.
    fixed_affine : array_like, shape (4, 4)
        Voxel -> world (mm, RAS+) of the fixed grid (the field's grid).
    moving_affine : array_like, shape (4, 4), optional
        Voxel -> world of the moving image's grid; default: the fixed one (both images on
        one grid, as in the evaluation of the phantom).

    Returns
    -------
    pathlib.Path
    """
    u = np.asarray(displacement, dtype=np.float64)
    if u.ndim != 4 or u.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W) in voxels; got {u.shape}")
    if not np.isfinite(u).all():
        raise ValueError("displacement contains NaN or Inf values")
    fixed = check_affine(fixed_affine, "fixed_affine")
    moving = fixed if moving_affine is None else check_affine(moving_affine, "moving_affine")
    vectors = physical_displacement(u, fixed, moving)
    vectors[..., :2] *= -1.0  # RAS -> LPS: ITK's world axes
    image = nib.Nifti1Image(vectors[:, :, :, None, :].astype(np.float32), fixed)
    image.set_qform(fixed, code=1)
    image.set_sform(fixed, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("vector")
    path = Path(path)
    _nifti_suffix(path)
    return atomic_write(path, lambda temporary: nib.save(image, str(temporary)))


def physical_displacement(displacement, fixed_affine, moving_affine) -> np.ndarray:
    """World displacements (mm, RAS+) of a voxel field between two grids.

    ``A_m (x + u(x)) - A_f x`` at every fixed voxel ``x``: where the moving point lies,
    relative to the fixed point, in the world.

    Returns
    -------
    numpy.ndarray, shape (D, H, W, 3), float64
    """
    u = np.asarray(displacement, dtype=np.float64)
    fixed, moving = np.asarray(fixed_affine), np.asarray(moving_affine)
    shape = u.shape[1:]
    out = np.einsum("ij,j...->...i", moving[:3, :3], u)
    out += moving[:3, 3] - fixed[:3, 3]
    difference = moving[:3, :3] - fixed[:3, :3]
    if np.any(difference):  # grids of another voxel size or orientation
        for axis, n in enumerate(shape):
            index = np.arange(n, dtype=np.float64).reshape([-1 if a == axis else 1
                                                            for a in range(3)] + [1])
            out += index * difference[:, axis]
    return out
