"""Checks for the notebooks' exercises: "correct", "not yet" with a hint, or "not attempted".

Every exercise in a notebook has three cells: a stub the student fills in (it raises
``NotImplementedError`` until then), the solution (left out of the student version that
``tools/student_notebooks.py`` writes) and a check cell that calls one function of this
module with the student's function. A check never raises: it runs the student's code on a
few cases, compares the answers with the package's own implementation of the same step,
and prints its verdict. The cases include the corner cases where a first attempt usually
goes wrong (two empty masks, voxels that are not cubes, a different number of classes),
and those cases come with a hint of their own. NumPy's warnings (such as a division 0 / 0)
are silenced while a check runs: the verdict says what went wrong.

Examples
--------
>>> def dice(a, b):
...     raise NotImplementedError
>>> check_dice(dice)
not attempted: fill in the function above, then run this cell again
'not attempted'
>>> import numpy as np
>>> check_dice(lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum()))
correct
'correct'

An answer that gives 0 for two empty masks is not yet right: their Dice is undefined.

>>> check_dice(lambda a, b: 2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
... # doctest: +ELLIPSIS
not yet: for two empty masks, the answer is off. Hint: ... return NaN ...
'not yet'
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..core.metrics import dice as reference
from ..core.metrics import target_registration_error
from ..supervoxels.layers import label_centres
from ..teacher.reference import distance_transform_1d

CORRECT, NOT_YET, NOT_ATTEMPTED = "correct", "not yet", "not attempted"


@dataclass(frozen=True)
class _Case:
    """One test case of a check.

    Parameters
    ----------
    args : tuple
        The arguments given to the student's function (and to the reference).
    what : str
        A few words that name the case in the verdict, e.g. ``"two empty masks"``.
    hint : str, optional
        A hint for the mistake this case catches; the check's general hint if None.
    """

    args: tuple
    what: str = "one of the test cases"
    hint: str | None = None


class _NotAllowed(Exception):
    """Raised when an answer calls a function the exercise asks the student not to use."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def _verdict(attempt, cases, expected, hint: str, *, atol: float = 1e-6,
             diagnose=None) -> str:
    """Run ``attempt`` on every case, compare with ``expected``, print and return the
    verdict.

    Parameters
    ----------
    attempt : callable
        The student's function.
    cases : list of tuple or _Case
        The arguments of every case; a :class:`_Case` adds a name and a hint of its own.
    expected : callable
        The reference: the right answer for the same arguments.
    hint : str
        What to print after "not yet" when a case has no hint of its own.
    atol : float
        Absolute tolerance of the comparison (NaN equals NaN).
    diagnose : callable, optional
        ``diagnose(answer, want)`` may return a more precise hint for a wrong value (e.g.
        "a percentage instead of a fraction"), or None.

    Returns
    -------
    str
        :data:`CORRECT`, :data:`NOT_YET` or :data:`NOT_ATTEMPTED`.
    """
    case = _Case(())
    try:
        with np.errstate(all="ignore"):  # 0 / 0 and the like: the verdict explains it
            for case in cases:
                if not isinstance(case, _Case):
                    case = _Case(tuple(case))
                answer = attempt(*case.args)
                want = expected(*case.args)
                case_hint = case.hint or hint
                if answer is None:
                    print(f"{NOT_YET}: your function returned None (is `return` missing?). "
                          f"Hint: {case_hint}")
                    return NOT_YET
                if np.shape(answer) != np.shape(want):
                    print(f"{NOT_YET}: for {case.what}, expected an answer of shape "
                          f"{np.shape(want)}, got {np.shape(answer)}. Hint: {case_hint}")
                    return NOT_YET
                answer = np.asarray(answer, dtype=float)
                want = np.asarray(want, dtype=float)
                if not np.allclose(answer, want, atol=atol, equal_nan=True):
                    better = diagnose(answer, want) if diagnose is not None else None
                    print(f"{NOT_YET}: for {case.what}, the answer is off. "
                          f"Hint: {better or case_hint}")
                    return NOT_YET
    except NotImplementedError:
        print(f"{NOT_ATTEMPTED}: fill in the function above, then run this cell again")
        return NOT_ATTEMPTED
    except _NotAllowed as error:
        print(f"{NOT_YET}: {error.message} Hint: {error.hint}")
        return NOT_YET
    except Exception as error:  # a student's bug is feedback, not a crash of the notebook
        print(f"{NOT_YET}: for {case.what}, your function raised {type(error).__name__}: "
              f"{error}. Hint: {case.hint or hint}")
        return NOT_YET
    print(CORRECT)
    return CORRECT


def _masks(seed: int, shape=(12, 10, 14)) -> tuple:
    rng = np.random.default_rng(seed)
    a = rng.random(shape) < 0.3
    return a, np.roll(a, 2, axis=0) | (rng.random(shape) < 0.1)


# ------------------------------------------------------------------------------ 00 data
def _percentage(answer: np.ndarray, want: np.ndarray) -> str | None:
    """The hint for a Dice given in percent (100 times the fraction)."""
    if np.all(np.isfinite(want)) and np.any(want > 0) and np.allclose(answer, 100 * want):
        return ("your answer is 100 times too large: give the Dice as a fraction in 0..1, "
                "not as a percentage")
    return None


def check_dice(dice) -> str:
    """Exercise of notebook 00: ``dice(a, b)`` of two boolean masks.

    The cases: three random pairs, two identical masks (1), two disjoint masks (0), one
    empty mask beside a non-empty one (0) and two empty masks (NaN: undefined).
    """
    empty = np.zeros((3, 4, 5), dtype=bool)
    some = empty.copy()
    some[1, 1:3, 2:4] = True
    cases = [_Case(_masks(seed), "two random masks") for seed in range(3)]
    cases.append(_Case((np.eye(4, dtype=bool), np.eye(4, dtype=bool)),
                       "two identical masks", "two identical masks overlap perfectly: 1"))
    cases.append(_Case((np.eye(4, dtype=bool), ~np.eye(4, dtype=bool)),
                       "two disjoint masks", "two masks without a common voxel give 0"))
    cases.append(_Case((empty, some), "one empty mask and one non-empty mask",
                       "when one mask is empty no voxel is shared, so the Dice is 0"))
    cases.append(_Case((empty, empty), "two empty masks",
                       "the Dice of two empty masks is 0 / 0: undefined (neither a perfect "
                       "1 nor a failed 0), so return NaN (np.nan), which is what the formula "
                       "gives with NumPy's sums"))
    return _verdict(dice, cases, reference,
                    "twice the voxels in both masks, divided by the voxels of A plus those "
                    "of B (np.logical_and, .sum()); a fraction in 0..1",
                    diagnose=_percentage)


# -------------------------------------------------------------------- 01 supervoxels
def check_centre(centre) -> str:
    """Exercise of notebook 01: ``centre(layer, label)``, the centre of mass (voxels)."""
    rng = np.random.default_rng(1)
    layer = rng.integers(0, 6, (9, 8, 10))
    cases = [(layer, label) for label in (1, 3, 5)]
    return _verdict(centre, cases,
                    lambda layer, label: label_centres(layer[None], label)[0, label - 1],
                    "np.argwhere(layer == label) lists the voxel coordinates (d, h, w) of the "
                    "supervoxel; their mean over the rows is the centre")


# ------------------------------------------------------------------------- 02 teacher
def check_message(message) -> str:
    """Exercise of notebook 02: ``message(costs, alpha)``, one min-sum message."""
    rng = np.random.default_rng(2)
    cases = [(rng.uniform(0, 10, 7), alpha) for alpha in (0.5, 1.0, 3.0)]
    cases.append((np.array([5.0, 0.0, 5.0, 5.0, 5.0]), 1.0))
    return _verdict(message, cases,
                    lambda costs, alpha: distance_transform_1d(costs[None], alpha)[0],
                    "for every label q of the parent, take the minimum over the child's "
                    "labels p of costs[p] + alpha * (p - q)**2")


# ------------------------------------------------------------------------- 03 network
_LOSS_HINT = ("log_softmax over the class axis (dim 1), pick the target class of every "
              "voxel (torch.gather or indexing) and average minus that")


@contextmanager
def _forbid_cross_entropy():
    """Make ``F.cross_entropy`` and ``nn.CrossEntropyLoss`` raise :class:`_NotAllowed`
    inside the ``with`` block; both are restored when it ends, whatever happened.

    Yields a list that gets one entry per forbidden call, so that a call is noticed even
    when the student's code catches the exception.
    """
    import torch
    import torch.nn.functional as F

    calls = []
    message = ("your function calls F.cross_entropy (or nn.CrossEntropyLoss), which does "
               "the whole exercise in one call.")
    hint = ("write it yourself: log_p = torch.log_softmax(logits, dim=1), then "
            "log_p.gather(1, target[:, None]) picks the target class of every voxel; the "
            "loss is minus their mean")

    def forbidden(*args, **kwargs):
        calls.append(True)
        raise _NotAllowed(message, hint)

    original_function = F.cross_entropy
    original_forward = torch.nn.CrossEntropyLoss.forward
    F.cross_entropy = forbidden
    torch.nn.CrossEntropyLoss.forward = forbidden
    try:
        yield calls
    finally:
        F.cross_entropy = original_function
        torch.nn.CrossEntropyLoss.forward = original_forward
    if calls:  # the student's code caught the exception: the call still does not count
        raise _NotAllowed(message, hint)


def check_layer_loss(layer_loss) -> str:
    """Exercise of notebook 03: ``layer_loss(logits, target)``, one layer's cross-entropy
    written with ``torch.log_softmax`` (an answer that calls ``F.cross_entropy`` or
    ``nn.CrossEntropyLoss`` is not accepted)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(3)
    cases = [_Case((torch.randn(2, 8, 3, 4, 5, generator=generator) * scale,
                    torch.randint(0, 8, (2, 3, 4, 5), generator=generator)),
                   f"8 classes, a batch of 2 (logits times {scale})") for scale in (1, 5)]
    cases.append(_Case((torch.randn(1, 5, 4, 2, 3, generator=generator) * 3,
                        torch.randint(0, 5, (1, 4, 2, 3), generator=generator)),
                       "5 classes and a batch of 1",
                       "the number of classes is logits.shape[1] and the batch may hold one "
                       "scan: do not write 8 or 2 in the code. " + _LOSS_HINT))

    def attempt(logits, target):
        with _forbid_cross_entropy():
            loss = layer_loss(logits, target)
        return float(loss)

    # the reference runs outside the window in which F.cross_entropy is forbidden
    return _verdict(attempt, cases,
                    lambda logits, target: float(F.cross_entropy(logits, target)),
                    _LOSS_HINT, atol=1e-4)


# ------------------------------------------------------------------------- 04 Adam
def check_fold(fold) -> str:
    """Exercise of notebook 04: ``fold(layer, channel_of, n_channels)``, one-hot channels.

    The cases: a thin layer of shape (1, 5, 7) with 3 channels, a 3D layer with 4, and one
    with 6 channels of which two (among them the last) receive no class and stay 0.
    """
    rng = np.random.default_rng(4)
    thin = rng.integers(0, 10, (1, 5, 7))
    layer = rng.integers(0, 16, (5, 4, 6))
    other = rng.integers(0, 8, (4, 6, 3))
    cases = [
        _Case((layer, rng.permutation(16) % 4, 4), "a layer of shape (5, 4, 6), 4 channels"),
        _Case((thin, rng.permutation(10) % 3, 3), "a layer of shape (1, 5, 7), 3 channels",
              "the channels come first: shape (n_channels, *layer.shape); use n_channels "
              "and layer.shape, do not write 4 or the volume's size in the code"),
        _Case((other, np.array([0, 1, 3, 4, 0, 1, 3, 4])[rng.permutation(8)], 6),
              "6 channels of which channels 2 and 5 receive no class",
              "a channel that no class is sent to stays all 0, and there are n_channels "
              "channels even when channel_of never names the last ones"),
    ]

    def reference(layer, channel_of, n_channels):
        return (channel_of[layer][None] == np.arange(n_channels)[:, None, None, None]
                ).astype(float)

    return _verdict(fold, cases, reference,
                    "channel_of[layer] is the channel of every voxel; channel c of the answer "
                    "is 1 where that equals c (shape (n_channels, *layer.shape))")


def check_edge_penalty(edge_penalty) -> str:
    """Exercise of notebook 04: ``edge_penalty(u, adjacency, alpha)``, the paper's kNN
    penalty with a symmetric 0/1 adjacency matrix."""
    rng = np.random.default_rng(5)
    u = rng.normal(size=(30, 3))
    adjacency = np.triu(rng.random((30, 30)) < 0.2, 1)
    adjacency = (adjacency | adjacency.T).astype(float)

    def reference(u, adjacency, alpha):
        return alpha * (((u[:, None, :] - u[None, :, :]) ** 2).sum(-1) * adjacency).sum() \
            / len(u)

    return _verdict(edge_penalty, [(u, adjacency, 0.1), (u[:10], adjacency[:10, :10], 2.0)],
                    reference,
                    "u[:, None, :] - u[None, :, :] has shape (N, N, 3): square it and sum the "
                    "last axis (the squared distance of every pair), multiply by the "
                    "adjacency, sum everything, times alpha, divided by N")


# ----------------------------------------------------------------------- 05 evaluation
def check_tre(tre) -> str:
    """Exercise of notebook 05: ``tre(displacement, fixed_points, moving_points, spacing)``
    at voxel positions (no interpolation needed).

    ``spacing`` is either one number (cubic voxels) or one voxel size per axis in (d, h, w)
    order, e.g. ``np.array([2.5, 0.8, 1.2])``: the difference is converted to mm axis by
    axis before its length is taken.
    """
    rng = np.random.default_rng(6)

    def landmarks(shape, n):
        fixed = np.stack([rng.integers(0, size, n) for size in shape], 1).astype(float)
        return fixed, fixed + rng.normal(0, 2, fixed.shape)

    field = rng.normal(0, 2, (3, 8, 9, 10)).astype(np.float32)
    fixed, moving = landmarks((8, 9, 10), 12)
    odd = rng.normal(0, 2, (3, 6, 7, 5))  # no two axes of the same length
    odd_fixed, odd_moving = landmarks((6, 7, 5), 3)
    spacing = np.array([2.5, 0.8, 1.2])
    anisotropic = ("spacing holds one voxel size per axis (d, h, w): multiply the "
                   "difference (mapped - moving_points) by spacing first, then take its "
                   "length with np.linalg.norm(..., axis=1)")
    cases = [
        _Case((field, fixed, moving, 2.0), "cubic voxels of 2 mm"),
        _Case((0 * field, fixed, moving, 1.5), "no displacement and cubic voxels of 1.5 mm"),
        _Case((odd, odd_fixed, odd_moving, spacing), "3 landmarks with voxels of "
              "2.5 x 0.8 x 1.2 mm", anisotropic),
        _Case((field, fixed, moving, spacing), "12 landmarks with voxels of "
              "2.5 x 0.8 x 1.2 mm", anisotropic),
        _Case((0 * field, fixed, moving, spacing), "no displacement and voxels of "
              "2.5 x 0.8 x 1.2 mm", anisotropic),
    ]
    return _verdict(tre, cases, target_registration_error,
                    "a landmark at p goes to p + u(p) (read u at the landmark's voxel); the "
                    "TRE is the length, in mm, of the difference from there to the true "
                    "partner (each axis times its voxel size)")
