"""THE coordinate convention of slicreg_lite, and every resampling operation.

Read this once; every other module relies on it.

Volumes
    Arrays of shape ``(D, H, W)``, or ``(C, D, H, W)`` with channels first. Index order
    is ``(d, h, w)``. For CT volumes of this project the axes are RAS+: axis 0 runs from the
    patient's left to right, axis 1 from posterior to anterior, axis 2 from inferior to
    superior (the layout of the BCV "AbdomenIsoCrop" scans).
Points and coordinates
    In voxel units, in ``(d, h, w)`` order; voxel ``i`` has its centre at coordinate ``i``.
    A set of coordinates has the 3 components *first*: shape ``(3, ...)``.
Displacement fields
    Shape ``(3, D, H, W)`` in voxels, channel 0 along ``d``, 1 along ``h``, 2 along ``w``.
    A field ``u`` lives on the grid of the *fixed* image and points into the *moving*
    image (backward warping)::

        warped(x) = moving(x + u(x))

    So ``warp_image(moving, u)`` has the shape and the anatomy position of the fixed image.
Affine matrices
    ``3 x 4`` (or ``4 x 4``) in voxel coordinates, mapping a fixed voxel ``x`` to the
    moving voxel ``A[:, :3] @ x + A[:, 3]``.
``torch.nn.functional.grid_sample``
    Wants normalised ``(x, y, z) = (w, h, d)`` coordinates in ``[-1, 1]``. We always use
    ``align_corners=True`` (voxel 0 -> -1, voxel n-1 -> +1). That conversion happens only
    in this module (:func:`voxel_to_normalised`, :func:`normalised_to_voxel`).

Every function accepts NumPy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

Array = Union[np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------- helpers
def _as_tensor(x: Array) -> tuple[torch.Tensor, bool]:
    """A torch view of ``x`` and whether ``x`` was a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
        # torch cannot wrap read-only memory (e.g. joblib's memory-mapped arguments)
        return torch.from_numpy(x if x.flags.writeable else x.copy()), True
    raise TypeError(f"expected a numpy.ndarray or torch.Tensor, got {type(x).__name__}")


def _like(x: torch.Tensor, was_numpy: bool) -> Array:
    return x.numpy() if was_numpy else x


def _check_field(displacement: torch.Tensor, name: str = "displacement") -> None:
    if displacement.ndim != 4 or displacement.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, D, H, W) in voxels; "
                         f"got {tuple(displacement.shape)}")


def _check_volume(volume: torch.Tensor, name: str = "volume") -> None:
    if volume.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (D, H, W) or (C, D, H, W); "
                         f"got {tuple(volume.shape)}")


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers (D, H, W); got {shape}")
    return shape


# ------------------------------------------------------------------- coordinate frames
def voxel_to_normalised(points: Array, shape) -> Array:
    """Voxel coordinates ``(..., 3)`` in (d, h, w) to grid_sample's ``(..., 3)`` (x, y, z).

    Parameters
    ----------
    points : array, shape (..., 3)
        Voxel coordinates in (d, h, w) order (components *last*, as grid_sample wants).
    shape : tuple of 3 ints
        ``(D, H, W)`` of the volume the points refer to.

    Returns
    -------
    array, shape (..., 3)
        Normalised coordinates in (x, y, z) = (w, h, d) order, ``align_corners=True``.
        An axis of length 1 maps to 0.
    """
    pts, was_numpy = _as_tensor(points)
    shape = _check_shape(shape)
    if pts.shape[-1] != 3:
        raise ValueError(f"points must have 3 components in the last axis; got {tuple(pts.shape)}")
    pts = pts if pts.is_floating_point() else pts.float()
    scale = torch.tensor([2.0 / (n - 1) if n > 1 else 0.0 for n in shape],
                         dtype=pts.dtype, device=pts.device)
    normalised = pts * scale - (scale != 0).to(pts.dtype)
    return _like(normalised.flip(-1), was_numpy)


def normalised_to_voxel(points: Array, shape) -> Array:
    """Inverse of :func:`voxel_to_normalised`: (x, y, z) in [-1, 1] to voxel (d, h, w)."""
    pts, was_numpy = _as_tensor(points)
    shape = _check_shape(shape)
    if pts.shape[-1] != 3:
        raise ValueError(f"points must have 3 components in the last axis; got {tuple(pts.shape)}")
    pts = pts if pts.is_floating_point() else pts.float()
    half = torch.tensor([(n - 1) / 2.0 for n in shape], dtype=pts.dtype, device=pts.device)
    voxel = (pts.flip(-1) + 1.0) * half
    return _like(voxel, was_numpy)


def identity_grid(shape, dtype=np.float32) -> np.ndarray:
    """Voxel coordinates of every voxel: an array of shape ``(3, D, H, W)``.

    ``identity_grid(shape)[:, d, h, w] == (d, h, w)``.
    """
    shape = _check_shape(shape)
    return np.stack(np.meshgrid(*[np.arange(n, dtype=dtype) for n in shape], indexing="ij"))


def _identity_like(field: torch.Tensor) -> torch.Tensor:
    grid = identity_grid(field.shape[1:], dtype=np.float64)
    return torch.from_numpy(grid).to(dtype=field.dtype, device=field.device)


# ------------------------------------------------------------------------------ sampling
def sample(volume: Array, coords: Array, *, mode: str = "linear",
           padding: str = "constant", fill: float = 0.0) -> Array:
    """Interpolate a volume at arbitrary voxel coordinates.

    This is the one place that calls ``grid_sample``; warping and resampling build on it.

    Parameters
    ----------
    volume : array, shape (D, H, W) or (C, D, H, W)
        The volume to read from.
    coords : array, shape (3, ...)
        Voxel coordinates (d, h, w), components first; any trailing shape.
    mode : {"linear", "nearest"}
        Trilinear interpolation, or the nearest voxel (for label maps).
    padding : {"constant", "border"}
        Outside the volume: the value ``fill``, or the nearest border value.
    fill : float
        Value outside the volume for ``padding="constant"`` (e.g. -1000 HU for air).

    Returns
    -------
    array, shape (...) or (C, ...)
        Floating point for ``"linear"``; the input dtype for ``"nearest"``.
    """
    vol, was_numpy = _as_tensor(volume)
    crd, _ = _as_tensor(coords)
    _check_volume(vol)
    if crd.ndim < 2 or crd.shape[0] != 3:
        raise ValueError(f"coords must have shape (3, ...) in voxels; got {tuple(crd.shape)}")
    if mode not in ("linear", "nearest"):
        raise ValueError(f"mode must be 'linear' or 'nearest'; got {mode!r}")
    if padding not in ("constant", "border"):
        raise ValueError(f"padding must be 'constant' or 'border'; got {padding!r}")

    spatial = tuple(vol.shape[-3:])
    channels = vol.shape[0] if vol.ndim == 4 else None
    work_dtype = vol.dtype if vol.is_floating_point() else torch.float32
    v = vol.reshape(1, -1, *spatial).to(work_dtype)
    if padding == "constant" and fill != 0:
        # grid_sample pads with zeros; shifting by `fill` makes the padding equal `fill`.
        v = v - fill
    points = crd.reshape(3, -1).to(device=vol.device, dtype=work_dtype).T
    grid = voxel_to_normalised(points, spatial).reshape(1, 1, 1, -1, 3)
    out = F.grid_sample(v, grid, mode="bilinear" if mode == "linear" else "nearest",
                        padding_mode="zeros" if padding == "constant" else "border",
                        align_corners=True)
    if padding == "constant" and fill != 0:
        out = out + fill
    out_shape = tuple(crd.shape[1:]) if channels is None else (channels, *crd.shape[1:])
    out = out.reshape(out_shape)
    if mode == "nearest" and not vol.is_floating_point():
        out = torch.round(out).to(vol.dtype)
    return _like(out, was_numpy)


def warp_image(image: Array, displacement: Array, *, fill: float = 0.0,
               padding: str = "constant") -> Array:
    """Warp an image (trilinear) with a displacement field: ``out(x) = image(x + u(x))``.

    Parameters
    ----------
    image : array, shape (D, H, W) or (C, D, H, W)
        The moving image.
    displacement : array, shape (3, D', H', W')
        Voxel displacements on the grid of the output (the fixed image).
    fill : float
        Value for points that fall outside the image (``padding="constant"``).
    padding : {"constant", "border"}
        Outside the image: ``fill``, or the nearest border value (for feature maps and
        displacement fields, which have no natural background value).

    Returns
    -------
    array, shape (D', H', W') or (C, D', H', W')
    """
    return _warp(image, displacement, mode="linear", fill=fill, padding=padding)


def warp_labels(labels: Array, displacement: Array) -> Array:
    """Warp a label map (nearest neighbour); outside the volume is background 0."""
    return _warp(labels, displacement, mode="nearest", fill=0.0)


def _warp(volume: Array, displacement: Array, *, mode: str, fill: float,
          padding: str = "constant") -> Array:
    vol, _ = _as_tensor(volume)
    disp, _ = _as_tensor(displacement)
    _check_volume(vol, "image")
    _check_field(disp)
    if not disp.is_floating_point():
        raise ValueError(f"displacement must be floating point; got {disp.dtype}")
    if not bool(torch.isfinite(disp).all()):
        raise ValueError("displacement contains NaN or Inf values")
    return sample(volume, _identity_like(disp) + disp, mode=mode, fill=fill, padding=padding)


# ------------------------------------------------------------------ displacement algebra
def compose(first: Array, second: Array) -> Array:
    """Compose two displacement fields into one.

    ``compose(u, v)`` is the field ``w(x) = v(x) + u(x + v(x))``, i.e. the transform
    ``x -> x + w(x)`` equals applying ``x -> x + v(x)`` and then ``x -> x + u(x)``.
    With backward warping this means::

        warp_image(warp_image(moving, u), v) == warp_image(moving, compose(u, v))

    Parameters
    ----------
    first : array, shape (3, D1, H1, W1)
        ``u``, the field applied to the moving image first (defined on the grid in
        between).
    second : array, shape (3, D, H, W)
        ``v``, the field on the fixed grid.

    Returns
    -------
    array, shape (3, D, H, W)
    """
    u, was_numpy = _as_tensor(first)
    v, _ = _as_tensor(second)
    _check_field(u, "first")
    _check_field(v, "second")
    # Outside the grid of u we continue its border values: a field has no "background".
    u_at = sample(u, _identity_like(v) + v, mode="linear", padding="border")
    return _like(v + u_at, was_numpy)


def invert(displacement: Array, *, iterations: int = 30) -> Array:
    """Numerical inverse of a displacement field by fixed-point iteration.

    Solves ``v(x) = -u(x + v(x))`` so that ``compose(u, v)`` is close to zero. Converges
    for smooth fields whose Jacobian determinant stays positive (no folding).

    Parameters
    ----------
    displacement : array, shape (3, D, H, W)
    iterations : int
        Number of fixed-point iterations.
    """
    u, was_numpy = _as_tensor(displacement)
    _check_field(u)
    if iterations < 1:
        raise ValueError(f"iterations must be a positive integer; got {iterations}")
    identity = _identity_like(u)
    v = -u
    for _ in range(iterations):
        v = -sample(u, identity + v, mode="linear", padding="border")
    return _like(v, was_numpy)


def affine_to_displacement(matrix: Array, shape) -> np.ndarray:
    """The dense displacement field of an affine matrix in voxel coordinates.

    Parameters
    ----------
    matrix : array, shape (3, 4) or (4, 4)
        Maps a fixed voxel ``x`` to the moving voxel ``matrix[:, :3] @ x + matrix[:, 3]``.
    shape : tuple of 3 ints
        ``(D, H, W)`` of the fixed grid.

    Returns
    -------
    numpy.ndarray, shape (3, D, H, W), float32
    """
    A = _check_affine(matrix)
    shape = _check_shape(shape)
    # (A - I) x + t, built from the three axes by broadcasting (no full coordinate grid)
    d, h, w = (np.arange(n, dtype=np.float64) for n in shape)
    linear = A[:, :3] - np.eye(3)
    field = np.empty((3, *shape), dtype=np.float32)
    for i in range(3):
        field[i] = (linear[i, 0] * d[:, None, None] + linear[i, 1] * h[None, :, None]
                    + (linear[i, 2] * w + A[i, 3])[None, None, :])
    return field


def _check_affine(matrix: Array) -> np.ndarray:
    A = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix,
                   dtype=np.float64)
    if A.shape == (4, 4):
        if not np.allclose(A[3], [0, 0, 0, 1]):
            raise ValueError(f"a 4 x 4 affine must end with the row [0, 0, 0, 1]; got {A[3]}")
        A = A[:3]
    if A.shape != (3, 4):
        raise ValueError(f"matrix must have shape (3, 4) or (4, 4); got {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("matrix contains NaN or Inf values")
    return A


def centred_affine(linear: Array, translation, shape) -> np.ndarray:
    """A 3 x 4 voxel-space matrix that applies ``linear`` about the volume's centre.

    ``x -> linear @ (x - c) + c + translation`` with ``c`` the centre voxel, so that a
    rotation or scaling does not also shift the volume.
    """
    L = np.asarray(linear, dtype=np.float64)
    if L.shape != (3, 3):
        raise ValueError(f"linear must have shape (3, 3); got {L.shape}")
    centre = (np.asarray(_check_shape(shape), dtype=np.float64) - 1) / 2
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    return np.concatenate([L, (centre - L @ centre + t)[:, None]], axis=1)


def normalised_affine_to_voxel(theta, shape) -> np.ndarray:
    """A 3 x 4 matrix in normalised coordinates (each axis in [-1, 1], the frame of
    ``F.affine_grid``) as a voxel-space matrix for a grid of ``shape``.

    The same ``theta`` applied to two grids that cover the same extent (e.g. an image and
    its labels at half resolution) moves their content identically.
    """
    shape = _check_shape(shape)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (3, 4):
        raise ValueError(f"theta must have shape (3, 4); got {theta.shape}")
    half = np.array([(n - 1) / 2.0 if n > 1 else 1.0 for n in shape])
    # voxel -> normalised: p_n = (p_v - c) / half; apply theta; back: p_v = half * p_n + c.
    linear = (half[:, None] * theta[:, :3]) / half[None, :]
    return centred_affine(linear, half * theta[:, 3], shape)


def random_affine(shape, std: float, rng: np.random.Generator) -> np.ndarray:
    """The paper's random affine: identity + N(0, std) on the 3 x 4 matrix.

    The perturbation is drawn in normalised coordinates (each axis mapped to [-1, 1], as
    ``F.affine_grid`` does in the paper's code) and returned as a voxel-space 3 x 4 matrix
    for :func:`affine_to_displacement`.

    Parameters
    ----------
    shape : tuple of 3 ints
    std : float
        Standard deviation of the perturbation (0.05 for SLIC layers, 0.07 for training
        augmentation in the paper).
    rng : numpy.random.Generator
    """
    return normalised_affine_to_voxel(np.eye(3, 4) + rng.normal(0.0, std, size=(3, 4)), shape)


def invert_affine(matrix: Array) -> np.ndarray:
    """The inverse of a 3 x 4 (or 4 x 4) voxel-space affine, as 3 x 4."""
    A = _check_affine(matrix)
    full = np.vstack([A, [0, 0, 0, 1]])
    return np.linalg.inv(full)[:3]


# ---------------------------------------------------------------------------- resampling
def resize(volume: Array, shape, *, mode: str = "linear") -> Array:
    """Resample a volume to another grid size covering the same extent (corners aligned).

    Voxel ``i`` of the output lies at ``i * (n_in - 1) / (n_out - 1)`` of the input.
    Use :func:`resize_displacement` for displacement fields (their values change too).
    """
    vol, was_numpy = _as_tensor(volume)
    _check_volume(vol)
    shape = _check_shape(shape)
    if mode == "linear":
        # Same corner-aligned sampling as below, but without building a coordinate grid.
        work = vol if vol.is_floating_point() else vol.float()
        out = F.interpolate(work.reshape(1, -1, *work.shape[-3:]), size=shape,
                            mode="trilinear", align_corners=True)
        return _like(out.reshape(*vol.shape[:-3], *shape), was_numpy)
    axes = [torch.linspace(0, n_in - 1, n_out, dtype=torch.float64) if n_out > 1
            else torch.zeros(1, dtype=torch.float64)
            for n_in, n_out in zip(vol.shape[-3:], shape)]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return _like(sample(vol, coords, mode=mode, padding="border"), was_numpy)


def resize_displacement(displacement: Array, shape) -> Array:
    """Resample a displacement field to another grid size and rescale its voxel values.

    A displacement of 1 voxel on a grid of 10 voxels becomes about 2 voxels on a grid of
    19 voxels (same extent, corners aligned).
    """
    u, was_numpy = _as_tensor(displacement)
    _check_field(u)
    shape = _check_shape(shape)
    factors = torch.tensor([(n_out - 1) / (n_in - 1) if n_in > 1 else 1.0
                            for n_in, n_out in zip(u.shape[1:], shape)], dtype=u.dtype)
    resized = resize(u, shape, mode="linear") * factors.view(3, 1, 1, 1)
    return _like(resized, was_numpy)


def resample_to_spacing(volume: np.ndarray, spacing, new_spacing, *,
                        mode: str = "linear", fill: float = 0.0) -> np.ndarray:
    """Resample a volume from one voxel spacing to another (e.g. to 2 mm isotropic).

    The first voxel centre stays where it is; the output covers the input's extent.
    Images are smoothed before downsampling (anti-aliasing); labels (``mode="nearest"``)
    are not.

    Parameters
    ----------
    volume : numpy.ndarray, shape (D, H, W)
    spacing, new_spacing : float or sequence of 3 floats
        Voxel sizes in mm along (d, h, w).
    mode : {"linear", "nearest"}
    fill : float
        Value outside the input (only reached at the far edge).

    Returns
    -------
    numpy.ndarray
        Shape ``floor((n - 1) * spacing / new_spacing) + 1`` per axis.
    """
    from scipy.ndimage import gaussian_filter

    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must have shape (D, H, W); got {vol.shape}")
    old = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    new = np.broadcast_to(np.asarray(new_spacing, dtype=np.float64), (3,))
    if (old <= 0).any() or (new <= 0).any() or not np.isfinite([*old, *new]).all():
        raise ValueError(f"spacings must be positive and finite; got {old} and {new}")
    out_shape = [int(np.floor((n - 1) * o / s + 1e-6)) + 1 for n, o, s in zip(vol.shape, old, new)]
    if mode == "linear":
        # Gaussian anti-aliasing: sigma grows with the downsampling factor.
        sigma = np.clip((new / old - 1.0) * 0.5, 0.0, None)
        if (sigma > 0).any():
            vol = gaussian_filter(vol.astype(np.float32), sigma)
    axes = [torch.arange(n, dtype=torch.float64) * (s / o) for n, o, s in zip(out_shape, old, new)]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij")).float()
    return sample(vol, coords.numpy(), mode=mode, fill=fill)


# ----------------------------------------------------------------------- world coordinates
def world_to_voxel(affine, points) -> np.ndarray:
    """Voxel coordinates (3, N) of world points (3, N) in mm on a grid with ``affine``."""
    A = np.asarray(affine, dtype=np.float64)
    return np.linalg.solve(A[:3, :3], np.asarray(points, dtype=np.float64) - A[:3, 3:])


def voxel_to_world(affine, voxels) -> np.ndarray:
    """World points (3, N) in mm of voxel coordinates (3, N) on a grid with ``affine``."""
    A = np.asarray(affine, dtype=np.float64)
    return A[:3, :3] @ np.asarray(voxels, dtype=np.float64) + A[:3, 3:]


def map_points(displacement, fixed_affine, moving_affine, points) -> np.ndarray:
    """Carry world points of the fixed image into the moving image through a voxel field.

    A point ``p`` (mm) lies at fixed voxel ``x``; the field says fixed voxel ``x``
    corresponds to moving voxel ``x + u(x)`` (``u`` interpolated trilinearly, continued
    at the border outside its grid), which lies at ``A_moving (x + u(x))`` in the world.
    This is how a field computed on one pair of grids (e.g. the preset's) is brought to
    any other grid of the same scans (e.g. the files as stored).

    Parameters
    ----------
    displacement : array, shape (3, D, H, W)
        Voxels, on the fixed grid.
    fixed_affine, moving_affine : array_like, shape (4, 4)
        Voxel -> world (mm) of the field's fixed grid and of the grid its values point into.
    points : array_like, shape (3, N)
        World points in mm.

    Returns
    -------
    numpy.ndarray, shape (3, N), float64
        The corresponding world points in the moving image.
    """
    voxels = world_to_voxel(fixed_affine, points)
    u = sample(np.asarray(displacement, dtype=np.float32), voxels.astype(np.float32),
               padding="border")
    return voxel_to_world(moving_affine, voxels + u)
