"""The exercises' checks: the package's own answers pass, stubs are "not attempted",
wrong answers and crashing attempts are "not yet" (with a hint), never an exception."""

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


CASES = {
    "check_dice": (dice, lambda a, b: (a & b).sum() / (a.sum() + b.sum())),  # forgot the 2
    "check_centre": (lambda layer, label: label_centres(layer[None], label)[0, label - 1],
                     lambda layer, label: np.argwhere(layer == label).sum(0)),  # no mean
    "check_message": (lambda costs, alpha: distance_transform_1d(costs[None], alpha)[0],
                      lambda costs, alpha: costs),  # no minimisation
    "check_layer_loss": (lambda logits, target: F.cross_entropy(logits, target),
                         lambda logits, target: -logits.mean()),
    "check_fold": (lambda layer, channel_of, n: np.stack([channel_of[layer] == c
                                                          for c in range(n)]).astype(float),
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


def test_checks_do_not_change_the_random_state():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    exercises.check_layer_loss(lambda logits, target: F.cross_entropy(logits, target))
    assert torch.rand(1) == before
