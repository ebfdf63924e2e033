"""Input checks shared by every step: clear errors instead of silently wrong answers.

Each check names the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Union

import numpy as np

from .labels import NUM_LABELS


def check_volume(array, name: str = "image", *, finite: bool = True) -> np.ndarray:
    """A 3D numeric array, or a ValueError that says what is wrong.

    Parameters
    ----------
    array : array_like, shape (D, H, W)
    name : str
        The argument's name, used in the error message.
    finite : bool
        Also reject NaN and Inf values.

    Returns
    -------
    numpy.ndarray
        ``array`` as a NumPy array (no copy when it already is one).
    """
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D array (D, H, W); got shape {arr.shape}")
    if min(arr.shape) < 1:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or Inf values; expected finite numbers")
    return arr


def check_labels(labels, shape=None, name: str = "labels",
                 max_label: int = NUM_LABELS) -> np.ndarray:
    """A 3D integer label map with values in ``0..max_label`` (and a given shape).

    Float arrays are accepted when they hold whole numbers (as NIfTI files often do).

    Returns
    -------
    numpy.ndarray
        The labels as ``uint8`` (``int32`` when ``max_label > 255``).
    """
    arr = check_volume(labels, name)
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must have the image's shape {tuple(shape)}; got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(arr, np.round(arr)):
        raise ValueError(f"{name} must hold whole numbers; got non-integer values "
                         f"(dtype {arr.dtype})")
    low, high = (arr.min(), arr.max()) if arr.size else (0, 0)
    if low < 0 or high > max_label:
        raise ValueError(f"{name} must have values in 0..{max_label}; got values in "
                         f"{low:g}..{high:g}")
    return arr.astype(np.uint8 if max_label <= 255 else np.int32, copy=False)


def check_affine(affine, name: str = "affine") -> np.ndarray:
    """A finite 4 x 4 voxel-to-world matrix with an invertible 3 x 3 part."""
    A = np.asarray(affine, dtype=np.float64)
    if A.shape != (4, 4):
        raise ValueError(f"{name} must be a 4 x 4 matrix; got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if abs(np.linalg.det(A[:3, :3])) < 1e-12:
        raise ValueError(f"{name} must have an invertible 3 x 3 part; got {A[:3, :3].tolist()}")
    return A


def check_points(points, name: str = "points", *, minimum: int = 0) -> np.ndarray:
    """A float64 ``(N, 3)`` array of finite voxel coordinates, at least ``minimum`` rows.

    Raises
    ------
    ValueError
        Naming ``name``, the expected and the received shape, or the NaN / Inf found.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < minimum:
        at_least = f" with N >= {minimum}" if minimum else ""
        raise ValueError(f"{name} must have shape (N, 3) in voxel coordinates{at_least}; "
                         f"got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or Inf; expected finite voxel coordinates")
    return points


#: Subject ids are integers for numbered scans (BCV, Learn2Reg, the phantom) and file
#: names without their suffix (strings) for a folder of your own scans.
SubjectId = Union[int, str]


def check_subject_id(subject_id) -> SubjectId:
    """A subject id as ``int`` (numbers, also NumPy's) or a non-empty ``str``.

    Raises
    ------
    ValueError
        For anything else (a float, an empty string, None).
    """
    if isinstance(subject_id, (bool, np.bool_)):
        raise ValueError(f"subject_id must be an int or a str; got {subject_id!r}")
    if isinstance(subject_id, (int, np.integer)):
        return int(subject_id)
    if isinstance(subject_id, str) and subject_id and subject_id == subject_id.strip():
        return subject_id
    raise ValueError(f"subject_id must be an int or a non-empty str without surrounding "
                     f"spaces; got {subject_id!r}")
