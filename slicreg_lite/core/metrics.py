"""How good is a registration? Dice overlap of organ labels, Jacobian statistics, tables.

Dice
    After registration, the moving scan's organ labels are warped onto the template and
    compared with the template's own labels. :func:`dice_per_label` gives one overlap per
    label as a fraction in ``0..1``; :class:`DiceTable` collects them per method and
    subject and prints the paper's table in percent (the 13 BTCV organs by default; any
    other label set is scored under its own names).
Absent labels
    Not every scan shows every organ (a cropped field of view, a removed gallbladder).
    A label absent from *both* maps has no overlap to measure: its Dice is NaN and it is
    left out of every average. A label present in only *one* of the maps gets 0.0: the
    registration put it where there is nothing (or missed it completely).
Jacobian determinant
    ``J(x) = det(I + grad u(x))`` of the transform ``x -> x + u(x)`` tells how a small
    volume around ``x`` is stretched (``J > 1``), squeezed (``0 < J < 1``) or folded
    (``J <= 0``, physically impossible). :func:`jacobian_stats` summarises it as the
    Learn2Reg challenge does: the standard deviation of ``log J`` (smoothness) and the
    percentage of folded voxels.
Correspondence
    Where the true correspondence is known (the phantom, :mod:`slicreg_lite.cohort.phantom`),
    :func:`target_registration_error` measures how far from its true partner a field
    maps each landmark, and :func:`endpoint_error_map` how far the field is from the true
    field at every voxel, in mm. Dice only sees the organs' outlines: a field can overlap
    an organ perfectly and still map its inside to the wrong place.

Examples
--------
>>> import numpy as np
>>> from slicreg_lite.core.metrics import dice_per_label, average_dice
>>> target = np.zeros((4, 4, 4), dtype=np.uint8)
>>> target[:2] = 1                       # spleen in the first half
>>> prediction = np.zeros_like(target)
>>> prediction[1:3] = 1                  # shifted by one voxel
>>> scores = dice_per_label(prediction, target)
>>> float(scores[0])                     # label 1: 16 voxels shared of 32 + 32
0.5
>>> bool(np.isnan(scores[1]))            # label 2 is in neither map
True
>>> float(average_dice(scores, (1, 2)))  # the NaN is left out
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .checks import check_labels, check_points, check_volume
from .labels import ALL_LABELS, LARGE_ORGANS, MAX_LABEL, NUM_LABELS, is_btcv, name_labels


def _to_numpy(array) -> np.ndarray:
    """A NumPy array from an array-like or a (possibly GPU) torch tensor."""
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _check_label_numbers(labels: Iterable[int], name: str = "labels",
                         highest: int = NUM_LABELS) -> tuple[int, ...]:
    """Label numbers as a tuple of ints in ``1..highest``."""
    numbers = tuple(int(label) for label in labels)
    if not numbers:
        raise ValueError(f"{name} must name at least one label; got an empty sequence")
    bad = [label for label in numbers if not 1 <= label <= highest]
    if bad:
        raise ValueError(f"{name} must be label numbers in 1..{highest}; got {bad}")
    return numbers


# ------------------------------------------------------------------------------------ Dice
def dice(a, b) -> float:
    """Dice overlap ``2 |A and B| / (|A| + |B|)`` of two boolean masks.

    Parameters
    ----------
    a, b : array_like of bool
        Masks of the same shape (any number of dimensions). Integer arrays holding only
        0 and 1 are accepted too.

    Returns
    -------
    float
        In ``0..1``; NaN when both masks are empty, because the overlap of two absent
        structures is undefined (it is neither a perfect 1 nor a failed 0).

    Raises
    ------
    ValueError
        If the shapes differ or a mask holds values other than 0/1.

    Examples
    --------
    >>> dice([True, True, False], [True, False, False])  # 2 * 1 / (2 + 1)
    0.6666666666666666
    """
    a = _as_mask(a, "a")
    b = _as_mask(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got a {a.shape} and b {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _as_mask(mask, name: str) -> np.ndarray:
    arr = _to_numpy(mask)
    if arr.dtype == bool:
        return arr
    # Refuse label maps: silently treating "any label" as the mask would be a wrong answer.
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must be a boolean mask (or hold only 0 and 1); got values "
                         f"{np.unique(arr)[:5].tolist()}... of dtype {arr.dtype}")
    return arr.astype(bool)


def dice_per_label(prediction, target, labels: Iterable[int] = ALL_LABELS) -> np.ndarray:
    """Dice overlap of every organ label between two label maps.

    Policy for absent labels: a label absent from both maps gives NaN (left out of
    averages, see :func:`average_dice`); a label present in only one map gives 0.0.

    Parameters
    ----------
    prediction : array_like, shape (D, H, W)
        Label map with values in ``0..255``, e.g. the moving labels warped onto the
        template.
    target : array_like, shape (D, H, W)
        Label map with values in ``0..255``, e.g. the template's labels.
    labels : iterable of int
        Label numbers to score, in ``1..255``; the 13 BTCV labels by default.

    Returns
    -------
    numpy.ndarray, shape (len(labels),), float64
        Dice as a fraction in ``0..1`` (tables convert to percent), or NaN.

    Raises
    ------
    ValueError
        If the shapes differ, a map is not 3D or holds values outside ``0..255``, or a
        requested label number is outside ``1..255``.

    Notes
    -----
    One pass over the voxels: the pair ``(prediction, target)`` of every voxel is coded as
    ``prediction * n + target`` (``n`` = the number of label values) and counted with
    :func:`numpy.bincount`, which gives the whole n x n confusion matrix at once instead
    of one pass per label.
    """
    prediction = _to_numpy(prediction)
    target = _to_numpy(target)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target must have the same shape; got prediction "
                         f"{prediction.shape} and target {target.shape}")
    prediction = check_labels(prediction, name="prediction", max_label=MAX_LABEL)
    target = check_labels(target, name="target", max_label=MAX_LABEL)
    numbers = np.asarray(_check_label_numbers(labels, highest=MAX_LABEL))

    highest = max(int(numbers.max()), int(prediction.max(initial=0)),
                  int(target.max(initial=0)))
    n_classes = highest + 1  # with background 0
    # uint32 is enough: the largest code is 255 * 256 + 255.
    codes = prediction.astype(np.uint32) * n_classes + target
    confusion = np.bincount(codes.ravel(), minlength=n_classes**2).reshape(n_classes, n_classes)
    overlap = np.diag(confusion)[numbers]
    sizes = confusion.sum(axis=1)[numbers] + confusion.sum(axis=0)[numbers]
    scores = np.full(len(numbers), np.nan)
    present = sizes > 0
    scores[present] = 2.0 * overlap[present] / sizes[present]
    return scores


def average_dice(scores, labels: Iterable[int] = ALL_LABELS) -> np.ndarray | float:
    """Mean Dice over some labels, leaving NaN (absent) labels out.

    Parameters
    ----------
    scores : array_like, shape (13,) or (n_subjects, 13)
        Dice per label as returned by :func:`dice_per_label` (entry ``i`` is label
        ``i + 1``).
    labels : iterable of int
        1-based label numbers to average, e.g. :data:`slicreg_lite.core.labels.LARGE_ORGANS`
        ``(1, 2, 3, 6)`` for the paper's avg(4); all 13 labels (avg(13)) by default.

    Returns
    -------
    float or numpy.ndarray of shape (n_subjects,)
        The mean over the finite scores; NaN where every selected score is NaN.

    Raises
    ------
    ValueError
        If ``scores`` does not have 13 entries in its last axis or a label is outside
        ``1..13``.
    """
    values = _to_numpy(scores).astype(np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] != NUM_LABELS:
        raise ValueError(f"scores must have shape ({NUM_LABELS},) or (n_subjects, "
                         f"{NUM_LABELS}); got {values.shape}")
    columns = np.asarray(_check_label_numbers(labels)) - 1
    mean = _row_means(values[..., columns])
    return float(mean) if mean.ndim == 0 else mean


# -------------------------------------------------------------------------------- HD95
def surface_distances(a, b, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Distances (mm) from every surface voxel of mask ``a`` to the surface of mask ``b``.

    The surface of a mask is its voxels with at least one of their six face neighbours
    outside it. Distances are Euclidean between voxel centres, with the voxel size
    ``spacing`` (anisotropic voxels are fine), computed with SciPy's exact distance
    transform on the bounding box of both masks (plus a margin), so large volumes cost
    little.

    Parameters
    ----------
    a, b : array_like of bool, shape (D, H, W)
        Non-empty masks.
    spacing : sequence of 3 floats
        Voxel size in mm along (d, h, w).

    Returns
    -------
    numpy.ndarray, shape (n_surface_voxels_of_a,)
    """
    from scipy.ndimage import binary_erosion, distance_transform_edt

    a, b = _as_mask(a, "a"), _as_mask(b, "b")
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"a and b must be 3D masks of one shape; got {a.shape} and {b.shape}")
    if not a.any() or not b.any():
        raise ValueError("a and b must not be empty; handle absent structures before")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    # the bounding box of both masks with one voxel of margin: the surfaces lie inside it
    both = np.argwhere(a | b)
    low = np.maximum(both.min(0) - 1, 0)
    high = np.minimum(both.max(0) + 2, a.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    a, b = np.pad(a[box], 1), np.pad(b[box], 1)  # voxels outside the volume are outside

    def surface(mask):
        return mask & ~binary_erosion(mask, border_value=0)

    distance_to_b = distance_transform_edt(~surface(b), sampling=spacing)
    return distance_to_b[surface(a)]


def hd95_per_label(prediction, target, spacing=(1.0, 1.0, 1.0),
                   labels: Iterable[int] = ALL_LABELS) -> np.ndarray:
    """95th percentile of the symmetric surface distance (HD95, mm) of every label.

    For each label, the distances from the prediction's surface to the target's and from
    the target's surface to the prediction's are pooled; HD95 is their 95th percentile.
    Unlike Dice it tells how far off the boundary is, in millimetres.

    Policy for absent labels (explicit, like :func:`dice_per_label`): a label absent from
    *both* maps gives NaN (nothing to measure, left out of averages); a label present in
    only *one* map gives the largest distance the volume allows, its diagonal in mm: the
    organ was missed entirely, which must count as a bad result, not as a gap.

    Parameters
    ----------
    prediction, target : array_like, shape (D, H, W)
        Label maps with values in ``0..255``.
    spacing : sequence of 3 floats
        Voxel size in mm along (d, h, w), e.g. ``Subject.spacing``.
    labels : iterable of int
        Label numbers to measure; the 13 BTCV labels by default.

    Returns
    -------
    numpy.ndarray, shape (len(labels),), float64
        HD95 in mm, or NaN.

    Examples
    --------
    >>> import numpy as np
    >>> target = np.zeros((20, 20, 20), dtype=np.uint8)
    >>> target[5:15, 5:15, 5:15] = 1
    >>> shifted = np.roll(target, 3, axis=0)            # the cube moved by 3 voxels
    >>> float(hd95_per_label(shifted, target, spacing=(2.0, 1.0, 1.0), labels=[1])[0])
    6.0
    """
    prediction = check_labels(_to_numpy(prediction), name="prediction", max_label=MAX_LABEL)
    target = check_labels(_to_numpy(target), prediction.shape, name="target",
                          max_label=MAX_LABEL)
    numbers = _check_label_numbers(labels, highest=MAX_LABEL)
    spacing = _spacing(spacing)
    diagonal = float(np.linalg.norm((np.array(prediction.shape) - 1) * spacing))
    result = np.full(len(numbers), np.nan)
    for index, label in enumerate(numbers):
        a, b = prediction == label, target == label
        if not a.any() and not b.any():
            continue
        if not a.any() or not b.any():
            result[index] = diagonal
            continue
        pooled = np.concatenate([surface_distances(a, b, spacing),
                                 surface_distances(b, a, spacing)])
        result[index] = float(np.percentile(pooled, 95))
    return result


# ------------------------------------------------------------------------------ Jacobian
def _check_displacement(displacement, name: str = "displacement") -> np.ndarray:
    u = _to_numpy(displacement)
    if u.ndim != 4 or u.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, D, H, W) in voxels; got {u.shape}")
    if min(u.shape[1:]) < 2:
        raise ValueError(f"{name} needs at least 2 voxels along each spatial axis for "
                         f"finite differences; got shape {u.shape}")
    if not np.issubdtype(u.dtype, np.floating):
        raise ValueError(f"{name} must be floating point; got dtype {u.dtype}")
    if not np.isfinite(u).all():
        bad = int((~np.isfinite(u)).sum())
        raise ValueError(f"{name} contains {bad} NaN or Inf values; expected finite numbers")
    return u.astype(np.float64, copy=False)


def jacobian_determinant(displacement) -> np.ndarray:
    """Jacobian determinant of the transform ``x -> x + u(x)`` at every voxel.

    Parameters
    ----------
    displacement : array_like, shape (3, D, H, W)
        ``u`` in voxels, channel 0 along ``d``, 1 along ``h``, 2 along ``w`` (the
        convention of :mod:`slicreg_lite.core.spatial`); at least 2 voxels per axis.

    Returns
    -------
    numpy.ndarray, shape (D, H, W), float64
        ``det(I + grad u)``: 1 = volume kept, > 1 = expansion, < 1 = compression,
        <= 0 = folding.

    Raises
    ------
    ValueError
        If the shape is not ``(3, D, H, W)`` or the field has NaN / Inf values.

    Notes
    -----
    The derivatives are central differences (:func:`numpy.gradient`, one-sided at the
    border), in voxel units, so the result does not depend on the voxel size.

    Examples
    --------
    >>> import numpy as np
    >>> float(jacobian_determinant(np.zeros((3, 4, 4, 4))).mean())  # no motion: J = 1
    1.0
    """
    u = _check_displacement(displacement)
    # gradient[i][j] = d u_i / d x_j; the matrix of the transform is I + gradient.
    gradient = [np.gradient(u[i]) for i in range(3)]
    m = [[gradient[i][j] + (1.0 if i == j else 0.0) for j in range(3)] for i in range(3)]
    # The 3 x 3 determinant by cofactor expansion along the first row, for all voxels at once.
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def jacobian_stats(displacement, mask=None) -> dict[str, float]:
    """Smoothness and folding of a displacement field (Learn2Reg-style statistics).

    Parameters
    ----------
    displacement : array_like, shape (3, D, H, W)
        Voxel displacements (see :func:`jacobian_determinant`).
    mask : array_like of bool, shape (D, H, W), optional
        Only these voxels are counted (e.g. the body); all voxels by default.

    Returns
    -------
    dict
        ``"std_log_jacobian"``: standard deviation (ddof=0) over voxels of ``log J``, with
        ``J`` clipped to ``[1e-9, 1e9]`` before the logarithm so that folded voxels
        (``J <= 0``) count as very strong compression instead of giving NaN; lower is
        smoother, 0 for any affine transform without folding.
        ``"percent_folding"``: percentage of voxels with ``J <= 0``.

    Raises
    ------
    ValueError
        For a bad field (see :func:`jacobian_determinant`), a mask of another shape, or
        a mask that selects no voxel.
    """
    determinant = jacobian_determinant(displacement)
    if mask is not None:
        mask = check_volume(_to_numpy(mask), "mask")
        if mask.shape != determinant.shape:
            raise ValueError(f"mask must have the field's spatial shape {determinant.shape}; "
                             f"got {mask.shape}")
        mask = mask.astype(bool)
        if not mask.any():
            raise ValueError("mask selects no voxel; expected at least one True value")
        determinant = determinant[mask]
    log_jacobian = np.log(np.clip(determinant, 1e-9, 1e9))
    return {
        "std_log_jacobian": float(np.std(log_jacobian)),
        "percent_folding": float(100.0 * np.mean(determinant <= 0)),
    }


#: Beyond these a registration is flagged as unreliable (in the table, ``results.json``
#: and every ``report.json``): a field that folds more than 1% of the body's voxels, or
#: whose ``log J`` spreads by more than 1 (with folded voxels counted as ``J = 1e-9``,
#: as in :func:`jacobian_stats`, about 0.25% folding reaches it by itself), tears or
#: crushes tissue somewhere, whatever its Dice says.
FOLDING_LIMIT = 1.0
JACOBIAN_SPREAD_LIMIT = 1.0


def unreliable_reasons(stats: dict) -> list[str]:
    """Why a registration cannot be trusted, from its :func:`jacobian_stats` (empty: no
    reason).

    Examples
    --------
    >>> unreliable_reasons({"std_log_jacobian": 0.3, "percent_folding": 0.0})
    []
    >>> unreliable_reasons({"std_log_jacobian": 7.6, "percent_folding": 16.3})
    ['16.3% of the voxels fold (limit 1%)', 'std(log J) 7.60 (limit 1)']
    """
    reasons = []
    if stats["percent_folding"] > FOLDING_LIMIT:
        reasons.append(f"{stats['percent_folding']:.1f}% of the voxels fold "
                       f"(limit {FOLDING_LIMIT:g}%)")
    if stats["std_log_jacobian"] > JACOBIAN_SPREAD_LIMIT:
        reasons.append(f"std(log J) {stats['std_log_jacobian']:.2f} "
                       f"(limit {JACOBIAN_SPREAD_LIMIT:g})")
    return reasons


# ---------------------------------------------------------------------- correspondence
def _spacing(spacing) -> np.ndarray:
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"spacing must be three positive voxel sizes in mm; got {spacing}")
    return spacing


def target_registration_error(displacement, fixed_points, moving_points,
                              spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Target registration error (TRE, mm) of a field at corresponding landmarks.

    Landmark ``i`` is at ``fixed_points[i]`` in the fixed scan and truly at
    ``moving_points[i]`` in the moving scan. The field maps it to
    ``fixed_points[i] + u(fixed_points[i])`` (``u`` interpolated trilinearly); the TRE is
    the distance between that point and the true one. With ``u = 0`` (no registration)
    it is the distance between the landmarks themselves.

    Parameters
    ----------
    displacement : array_like, shape (3, D, H, W)
        On the fixed grid, in voxels (the convention of :mod:`slicreg_lite.core.spatial`).
    fixed_points, moving_points : array_like, shape (N, 3)
        Voxel coordinates (float) in the fixed and the moving scan (same voxel size).
    spacing : sequence of 3 floats
        Voxel size in mm.

    Returns
    -------
    numpy.ndarray, shape (N,)
        One distance in mm per landmark.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((3, 8, 8, 8)); u[0] += 2.0          # everything moves 2 voxels in d
    >>> fixed = np.array([[3.0, 3.0, 3.0]])
    >>> target_registration_error(u, fixed, fixed + [2, 0, 0], spacing=1.5).tolist()
    [0.0]
    >>> target_registration_error(0 * u, fixed, fixed + [2, 0, 0], spacing=1.5).tolist()
    [3.0]
    """
    from scipy.ndimage import map_coordinates

    u = _check_displacement(displacement)
    fixed = check_points(fixed_points, "fixed_points")
    moving = check_points(moving_points, "moving_points")
    if fixed.shape != moving.shape:
        raise ValueError(f"fixed_points and moving_points must pair up; got {fixed.shape[0]} "
                         f"and {moving.shape[0]} points")
    mapped = fixed + np.stack([map_coordinates(u[k], fixed.T, order=1, mode="nearest")
                               for k in range(3)], axis=1)
    return np.linalg.norm((mapped - moving) * _spacing(spacing), axis=1)


def endpoint_error_map(displacement, true_displacement, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Endpoint error (mm) at every voxel: how far the field's target is from the true one.

    Parameters
    ----------
    displacement, true_displacement : array_like, shape (3, D, H, W)
        Voxel displacements on the same fixed grid.
    spacing : sequence of 3 floats
        Voxel size in mm.

    Returns
    -------
    numpy.ndarray, shape (D, H, W)
        ``|(u(x) - u_true(x)) * spacing|``; average it inside the body for one number.
    """
    u = _check_displacement(displacement)
    truth = _check_displacement(true_displacement, "true_displacement")
    if u.shape != truth.shape:
        raise ValueError(f"displacement and true_displacement must have one shape; got "
                         f"{u.shape} and {truth.shape}")
    difference = (u - truth) * _spacing(spacing)[:, None, None, None]
    return np.sqrt((difference ** 2).sum(0))


def supervoxel_agreement(predicted, target) -> np.ndarray:
    """Per layer, the fraction of body voxels whose supervoxel label matches the target.

    Parameters
    ----------
    predicted, target : array_like of int, shape (L, D, H, W)
        Supervoxel layers (0 = background); the body is where ``target`` is not 0.

    Returns
    -------
    numpy.ndarray of float64, shape (L,)
    """
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 4:
        raise ValueError(f"predicted and target must be layers of one shape (L, D, H, W); "
                         f"got {predicted.shape} and {target.shape}")
    body = target > 0
    return ((predicted == target) & body).sum((1, 2, 3)) / np.maximum(body.sum((1, 2, 3)), 1)


def _row_means(scores: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite values (NaN for a row without any).

    Written out (instead of np.nanmean) so that an all-NaN row gives NaN without a warning.
    """
    finite = np.isfinite(scores)
    count = finite.sum(axis=-1)
    total = np.where(finite, scores, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


# ------------------------------------------------------------------- one scoring function
@dataclass
class Scores:
    """Everything measured of one registration (:func:`score_registration`).

    Attributes
    ----------
    label_names : dict
        ``number -> name`` of the labels scored (:func:`~slicreg_lite.core.labels.
        name_labels`).
    dice : numpy.ndarray or None
        Dice per label (fractions, NaN where a label is absent from both), in the order of
        ``label_names``; None without both label maps.
    hd95_mm : numpy.ndarray or None
        HD95 per label in mm, likewise.
    summary : dict
        ``{"avg(4)": ..., "avg(13)": ...}`` (fractions) for the 13 BTCV organs, else
        ``{"mean": ...}``; empty without labels.
    jacobian : dict or None
        :func:`jacobian_stats` of the field (inside ``body``); None without a field.
    unreliable : list of str
        :func:`unreliable_reasons` of the field.
    tre_mm : numpy.ndarray or None
        Target registration error at each landmark (mm), where the truth is known.
    epe_mm : float or None
        Mean endpoint error (mm) where the moving scan shows the true partner (and inside
        ``body``), where the truth is known.
    """

    label_names: dict
    dice: np.ndarray | None = None
    hd95_mm: np.ndarray | None = None
    summary: dict = field(default_factory=dict)
    jacobian: dict | None = None
    unreliable: list = field(default_factory=list)
    tre_mm: np.ndarray | None = None
    epe_mm: float | None = None

    @property
    def headline(self) -> float:
        """The one Dice (a fraction) a figure or a slider shows: avg(4) for the BTCV organs,
        else the mean over the labels; NaN without labels."""
        return self.summary.get("avg(4)", self.summary.get("mean", float("nan")))


def score_registration(warped_labels, fixed_labels, displacement=None, *,
                       label_names: dict | None = None, spacing=(1.0, 1.0, 1.0),
                       body=None, truth=None, hd95: bool = True) -> Scores:
    """Score one registration: every measure of the table, for any caller.

    The evaluation, the ``register`` report, the widgets, the notebooks and the benchmarks
    all score through this function, so that a number means the same everywhere.

    Parameters
    ----------
    warped_labels : array_like of int, shape (D, H, W), or None
        The moving scan's labels on the fixed grid.
    fixed_labels : array_like of int, shape (D, H, W), or None
        The fixed scan's labels (Dice and HD95 need both label maps).
    displacement : array_like, shape (3, D, H, W), optional
        The field (voxels): its Jacobian statistics, and the TRE/EPE against ``truth``.
        None: no registration (the identity for TRE/EPE, no Jacobian statistics).
    label_names : dict, optional
        ``number -> name``; default :func:`~slicreg_lite.core.labels.name_labels` of the
        fixed labels.
    spacing : sequence of 3 floats
        The fixed grid's voxel size (mm), for HD95, TRE and EPE.
    body : array_like of bool, shape (D, H, W), optional
        Where the Jacobian and the endpoint error are measured (the fixed scan's body).
    truth : object, optional
        The true correspondence (:class:`~slicreg_lite.cohort.phantom.GroundTruth`: its
        ``displacement``, ``visible``, ``fixed_points`` and ``moving_points``).
    hd95 : bool
        Measure HD95 (the slowest measure; sliders leave it out).

    Returns
    -------
    Scores
    """
    if label_names is None:
        label_names = name_labels([] if fixed_labels is None else np.unique(fixed_labels))
    scores = Scores(dict(label_names))
    numbers = list(scores.label_names)
    if warped_labels is not None and fixed_labels is not None and numbers:
        scores.dice = dice_per_label(warped_labels, fixed_labels, numbers)
        if hd95:
            scores.hd95_mm = hd95_per_label(warped_labels, fixed_labels, spacing, numbers)
        if is_btcv(scores.label_names):
            by_number = dict(zip(numbers, scores.dice))
            btcv = np.array([by_number[n] for n in ALL_LABELS])
            scores.summary = {"avg(4)": average_dice(btcv, LARGE_ORGANS),
                              "avg(13)": average_dice(btcv, ALL_LABELS)}
        else:
            scores.summary = {"mean": float(_row_means(scores.dice))}
    if displacement is not None:
        scores.jacobian = jacobian_stats(displacement, body)
        scores.unreliable = unreliable_reasons(scores.jacobian)
    if truth is not None:
        field_ = np.zeros_like(truth.displacement) if displacement is None else displacement
        error = endpoint_error_map(field_, truth.displacement, spacing)
        # only where the moving scan shows the true partner: beyond its field of view no
        # registration can know where a point went
        visible = truth.visible if body is None else truth.visible & body
        scores.tre_mm = target_registration_error(field_, truth.fixed_points,
                                                  truth.moving_points, spacing)
        scores.epe_mm = float(error[visible].mean())
    return scores
