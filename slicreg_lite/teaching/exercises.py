"""Checks for the notebooks' exercises: "correct", "not yet" with a hint, or "not attempted".

Every exercise in a notebook has three cells: a stub the student fills in (it raises
``NotImplementedError`` until then), the solution (left out of the student version that
``tools/student_notebooks.py`` writes) and a check cell that calls one function of this
module with the student's function. A check never raises: it runs the student's code on a
few cases, compares the answers with the package's own implementation of the same step,
and prints its verdict.

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
"""

from __future__ import annotations

import numpy as np

from ..core.metrics import dice as reference
from ..core.metrics import target_registration_error
from ..supervoxels.layers import label_centres
from ..teacher.reference import distance_transform_1d

CORRECT, NOT_YET, NOT_ATTEMPTED = "correct", "not yet", "not attempted"


def _verdict(attempt, cases, expected, hint: str, *, atol: float = 1e-6) -> str:
    """Run ``attempt`` on every case, compare with ``expected``, print and return the
    verdict."""
    try:
        for case in cases:
            answer = attempt(*case)
            want = expected(*case)
            if np.shape(answer) != np.shape(want):
                print(f"{NOT_YET}: expected an answer of shape {np.shape(want)}, got "
                      f"{np.shape(answer)}. Hint: {hint}")
                return NOT_YET
            if not np.allclose(np.asarray(answer, dtype=float), np.asarray(want, dtype=float),
                               atol=atol, equal_nan=True):
                print(f"{NOT_YET}: for one of the test cases the answer is off. Hint: {hint}")
                return NOT_YET
    except NotImplementedError:
        print(f"{NOT_ATTEMPTED}: fill in the function above, then run this cell again")
        return NOT_ATTEMPTED
    except Exception as error:  # a student's bug is feedback, not a crash of the notebook
        print(f"{NOT_YET}: your function raised {type(error).__name__}: {error}. Hint: {hint}")
        return NOT_YET
    print(CORRECT)
    return CORRECT


def _masks(seed: int, shape=(12, 10, 14)) -> tuple:
    rng = np.random.default_rng(seed)
    a = rng.random(shape) < 0.3
    return a, np.roll(a, 2, axis=0) | (rng.random(shape) < 0.1)


# ------------------------------------------------------------------------------ 00 data
def check_dice(dice) -> str:
    """Exercise of notebook 00: ``dice(a, b)`` of two boolean masks."""
    cases = [_masks(seed) for seed in range(3)]
    cases.append((np.eye(4, dtype=bool), np.eye(4, dtype=bool)))  # identical: 1
    cases.append((np.eye(4, dtype=bool), ~np.eye(4, dtype=bool)))  # disjoint: 0
    return _verdict(dice, cases, reference,
                    "twice the voxels in both masks, divided by the voxels of A plus those "
                    "of B (np.logical_and, .sum())")


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
def check_layer_loss(layer_loss) -> str:
    """Exercise of notebook 03: ``layer_loss(logits, target)``, one layer's cross-entropy."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(3)
    cases = [(torch.randn(2, 8, 3, 4, 5, generator=generator) * scale,
              torch.randint(0, 8, (2, 3, 4, 5), generator=generator)) for scale in (1, 5)]
    return _verdict(lambda logits, target: float(layer_loss(logits, target)), cases,
                    lambda logits, target: float(F.cross_entropy(logits, target)),
                    "log_softmax over the class axis (dim 1), pick the target class of every "
                    "voxel (torch.gather or indexing) and average minus that", atol=1e-4)


# ------------------------------------------------------------------------- 04 Adam
def check_fold(fold) -> str:
    """Exercise of notebook 04: ``fold(layer, channel_of, n_channels)``, one-hot channels."""
    rng = np.random.default_rng(4)
    layer = rng.integers(0, 16, (5, 4, 6))
    channel_of = rng.permutation(16) % 4

    def reference(layer, channel_of, n_channels):
        return (channel_of[layer][None] == np.arange(n_channels)[:, None, None, None]
                ).astype(float)

    return _verdict(fold, [(layer, channel_of, 4)], reference,
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
    at voxel positions (no interpolation needed)."""
    rng = np.random.default_rng(6)
    field = rng.normal(0, 2, (3, 8, 9, 10)).astype(np.float32)
    fixed = np.stack([rng.integers(0, n, 12) for n in (8, 9, 10)], 1).astype(float)
    moving = fixed + rng.normal(0, 2, fixed.shape)
    return _verdict(tre, [(field, fixed, moving, 2.0), (0 * field, fixed, moving, 1.5)],
                    target_registration_error,
                    "a landmark at p goes to p + u(p) (read u at the landmark's voxel); the "
                    "TRE is the distance from there to the true partner, times the voxel "
                    "size in mm")
