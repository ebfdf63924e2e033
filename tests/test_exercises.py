"""The exercises' checks: the package's own answers pass, stubs are "not attempted",
wrong answers and crashing attempts are "not yet" (with a hint), never an exception."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slicreg_lite.core.metrics import dice, target_registration_error
from slicreg_lite.supervoxels import label_centres
from slicreg_lite.teacher.reference import distance_transform_1d
from slicreg_lite.teaching import exercises


def stub(*args):
    raise NotImplementedError


# The solutions the notebooks carry (written as a student would).
def naive_dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def tre_solution(displacement, fixed_points, moving_points, spacing):
    d, h, w = np.round(fixed_points).astype(int).T
    mapped = fixed_points + displacement[:, d, h, w].T
    return np.linalg.norm((mapped - moving_points) * spacing, axis=1)


def tre_isotropic_only(displacement, fixed_points, moving_points, spacing):
    d, h, w = np.round(fixed_points).astype(int).T
    mapped = fixed_points + displacement[:, d, h, w].T
    return np.linalg.norm(mapped - moving_points, axis=1) * spacing


def layer_loss_solution(logits, target):
    log_p = torch.log_softmax(logits, dim=1)
    return -log_p.gather(1, target[:, None]).mean()


def fold_solution(layer, channel_of, n_channels):
    channels = channel_of[layer]
    return np.stack([channels == c for c in range(n_channels)]).astype(float)


CASES = {
    "check_dice": (dice, lambda a, b: (a & b).sum() / (a.sum() + b.sum())),  # forgot the 2
    "check_centre": (lambda layer, label: label_centres(layer[None], label)[0, label - 1],
                     lambda layer, label: np.argwhere(layer == label).sum(0)),  # no mean
    "check_message": (lambda costs, alpha: distance_transform_1d(costs[None], alpha)[0],
                      lambda costs, alpha: costs),  # no minimisation
    "check_layer_loss": (layer_loss_solution, lambda logits, target: -logits.mean()),
    "check_fold": (fold_solution,
                   lambda layer, channel_of, n: np.stack([layer == c for c in range(n)])),
    "check_edge_penalty": (lambda u, a, alpha: alpha * (((u[:, None] - u[None]) ** 2).sum(-1)
                                                        * a).sum() / len(u),
                           lambda u, a, alpha: alpha * (((u[:, None] - u[None]) ** 2).sum(-1)
                                                        * a).sum()),  # forgot the / N
    "check_tre": (target_registration_error,
                  lambda u, fixed, moving, spacing: np.linalg.norm(moving - fixed, axis=1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_check_tells_right_wrong_and_missing_apart(name, capsys):
    check = getattr(exercises, name)
    right, wrong = CASES[name]
    assert check(right) == exercises.CORRECT
    assert check(wrong) == exercises.NOT_YET
    assert "Hint:" in capsys.readouterr().out.splitlines()[-1]
    assert check(stub) == exercises.NOT_ATTEMPTED

    def crashes(*args):
        raise IndexError("index 99 is out of bounds")

    assert check(crashes) == exercises.NOT_YET
    assert "IndexError" in capsys.readouterr().out


def test_every_check_is_covered():
    names = {name for name in dir(exercises) if name.startswith("check_")}
    assert names == set(CASES)


@pytest.mark.parametrize("attempt", [layer_loss_solution,
                                     lambda logits, target: F.cross_entropy(logits, target)])
def test_checks_do_not_change_the_random_state(attempt):
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    exercises.check_layer_loss(attempt)
    assert torch.rand(1) == before
    np.random.seed(0)
    before = np.random.rand()
    np.random.seed(0)
    exercises.check_dice(naive_dice)
    exercises.check_fold(fold_solution)
    exercises.check_tre(tre_solution)
    assert np.random.rand() == before


def last_line(capsys) -> str:
    return capsys.readouterr().out.splitlines()[-1]


# ------------------------------------------------------------------------------- dice
@pytest.mark.parametrize("attempt", [naive_dice,
                                     lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())])
def test_dice_accepts_the_naive_formula_without_a_warning(attempt, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 on two empty masks must not warn
        assert exercises.check_dice(attempt) == exercises.CORRECT
    assert capsys.readouterr().out == "correct\n"


@pytest.mark.parametrize("value", [1.0, 0.0])
def test_dice_of_two_empty_masks_must_be_nan(value, capsys):
    def attempt(a, b):
        if not a.any() and not b.any():
            return value
        return naive_dice(a, b)

    assert exercises.check_dice(attempt) == exercises.NOT_YET
    line = last_line(capsys)
    assert "two empty masks" in line and "NaN" in line and "undefined" in line


def test_dice_with_python_ints_explains_the_empty_masks(capsys):
    attempt = lambda a, b: 2 * int((a & b).sum()) / (int(a.sum()) + int(b.sum()))
    assert exercises.check_dice(attempt) == exercises.NOT_YET
    line = last_line(capsys)
    assert "ZeroDivisionError" in line and "NaN" in line


def test_dice_of_one_empty_mask_must_be_zero(capsys):
    def attempt(a, b):
        if not a.any() or not b.any():
            return np.nan
        return naive_dice(a, b)

    assert exercises.check_dice(attempt) == exercises.NOT_YET
    assert "one empty mask" in last_line(capsys)


def test_dice_in_percent_is_not_yet(capsys):
    assert exercises.check_dice(lambda a, b: 100 * naive_dice(a, b)) == exercises.NOT_YET
    assert "percentage" in last_line(capsys)


def test_an_answer_of_none_is_not_yet(capsys):
    assert exercises.check_dice(lambda a, b: None) == exercises.NOT_YET
    assert "return" in last_line(capsys)


# -------------------------------------------------------------------------------- TRE
def test_tre_accepts_the_notebook_solution():
    assert exercises.check_tre(tre_solution) == exercises.CORRECT


def test_tre_rejects_the_isotropic_only_solution(capsys):
    assert exercises.check_tre(tre_isotropic_only) == exercises.NOT_YET
    line = last_line(capsys)
    assert "2.5 x 0.8 x 1.2" in line and "spacing holds one voxel size per axis" in line


def test_tre_rejects_the_spacing_in_the_wrong_order():
    def attempt(displacement, fixed_points, moving_points, spacing):
        return tre_solution(displacement, fixed_points, moving_points,
                            np.broadcast_to(spacing, (3,))[::-1])

    assert exercises.check_tre(attempt) == exercises.NOT_YET


def test_target_registration_error_handles_a_spacing_per_axis():
    u = np.zeros((3, 4, 4, 4))
    fixed = np.array([[1.0, 1.0, 1.0]])
    moving = fixed + [1.0, 1.0, 1.0]
    error = target_registration_error(u, fixed, moving, np.array([2.5, 0.8, 1.2]))
    np.testing.assert_allclose(error, [np.sqrt(2.5**2 + 0.8**2 + 1.2**2)])


# ------------------------------------------------------------------------------- fold
def test_fold_rejects_four_hard_coded_channels(capsys):
    attempt = lambda layer, channel_of, n: fold_solution(layer, channel_of, 4)
    assert exercises.check_fold(attempt) == exercises.NOT_YET
    assert "n_channels" in last_line(capsys)


@pytest.mark.parametrize("attempt", [
    lambda layer, channel_of, n: np.stack([channel_of[layer] == c for c in range(n)], -1),
    lambda layer, channel_of, n: fold_solution(layer, channel_of, channel_of.max() + 1),
    lambda layer, channel_of, n: fold_solution(layer, channel_of, n)[:, ::-1],
])
def test_fold_rejects_the_wrong_axes_or_channel_count(attempt):
    assert exercises.check_fold(attempt) == exercises.NOT_YET


def test_fold_accepts_other_right_answers():
    attempt = lambda layer, channel_of, n: np.moveaxis(np.eye(n)[channel_of[layer]], -1, 0)
    assert exercises.check_fold(attempt) == exercises.CORRECT


# ------------------------------------------------------------------------- layer loss
@pytest.mark.parametrize("attempt", [
    lambda logits, target: F.cross_entropy(logits, target),
    lambda logits, target: torch.nn.functional.cross_entropy(logits, target, reduction="mean"),
    lambda logits, target: torch.nn.CrossEntropyLoss()(logits, target),
])
def test_layer_loss_rejects_cross_entropy_and_restores_it(attempt, capsys):
    function, forward = F.cross_entropy, torch.nn.CrossEntropyLoss.forward
    assert exercises.check_layer_loss(attempt) == exercises.NOT_YET
    line = last_line(capsys)
    assert "cross_entropy" in line and "torch.log_softmax" in line and "gather" in line
    assert F.cross_entropy is function
    assert torch.nn.CrossEntropyLoss.forward is forward


def test_layer_loss_notices_a_caught_cross_entropy_call(capsys):
    def attempt(logits, target):
        try:
            return F.cross_entropy(logits, target)
        except Exception:
            return layer_loss_solution(logits, target)

    assert exercises.check_layer_loss(attempt) == exercises.NOT_YET
    assert "cross_entropy" in last_line(capsys)


def test_cross_entropy_is_restored_after_the_student_raised():
    function, forward = F.cross_entropy, torch.nn.CrossEntropyLoss.forward

    def crashes(logits, target):
        raise RuntimeError("shape mismatch")

    assert exercises.check_layer_loss(crashes) == exercises.NOT_YET
    assert exercises.check_layer_loss(stub) == exercises.NOT_ATTEMPTED
    assert F.cross_entropy is function
    assert torch.nn.CrossEntropyLoss.forward is forward
    logits, target = torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.long)
    assert torch.isclose(F.cross_entropy(logits, target), torch.log(torch.tensor(3.0)))


def test_layer_loss_accepts_nll_loss_on_log_softmax():
    attempt = lambda logits, target: F.nll_loss(torch.log_softmax(logits, dim=1), target)
    assert exercises.check_layer_loss(attempt) == exercises.CORRECT


def test_layer_loss_rejects_a_hard_coded_number_of_classes(capsys):
    def attempt(logits, target):
        one_hot = F.one_hot(target, 8).movedim(-1, 1)
        return -(torch.log_softmax(logits, dim=1) * one_hot).sum(1).mean()

    assert exercises.check_layer_loss(attempt) == exercises.NOT_YET
    assert "5 classes" in last_line(capsys)
