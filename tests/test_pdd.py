"""The layers of PDD-Net: correlation, min-convolution, mean field, softmax, expectation."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slicreg_lite.alignment import pdd
from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import get_config
from slicreg_lite.teacher.mind import mind_ssc


@settings(max_examples=40, deadline=None)
@given(costs=arrays(np.float32, (27, 2, 1, 2), elements=st.floats(0, 10, width=32)),
       weight=st.floats(0.0, 5.0), step=st.integers(1, 3))
def test_min_convolution_equals_the_brute_force_minimum(costs, weight, step):
    displacements = pdd.displacement_set(1, step).numpy()
    expected = np.empty_like(costs)
    for to, d in enumerate(displacements):
        distance = ((displacements - d) ** 2).sum(1)
        expected[to] = (costs + weight * distance[:, None, None, None]).min(0)
    result = pdd.min_convolution(torch.from_numpy(costs), weight, step).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)


def test_the_expected_displacement_of_a_certain_candidate_is_that_candidate():
    displacements = pdd.displacement_set(2, 3)
    for index in (0, 17, 62, len(displacements) - 1):
        probabilities = torch.zeros(len(displacements), 2, 3, 1)
        probabilities[index] = 1.0
        field = pdd.expected_displacement(probabilities, displacements)
        expected = displacements[index].view(3, 1, 1, 1).expand(3, 2, 3, 1)
        torch.testing.assert_close(field, expected)


def test_the_softmax_sums_to_one_and_prefers_the_cheapest_candidate():
    cost = torch.rand(27, 3, 2, 2)
    probabilities = pdd.displacement_probabilities(cost, 0.05)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(3, 2, 2))
    assert torch.equal(probabilities.argmax(0), cost.argmin(0))


def test_the_correlation_is_zero_at_the_true_displacement():
    torch.manual_seed(0)
    fixed = torch.rand(4, 12, 10, 14)
    shift = (1, -2, 2)
    moving = torch.roll(fixed, shifts=shift, dims=(1, 2, 3))  # moving(x + shift) = fixed(x)
    cost = pdd.correlation(fixed, moving, grid_step=2, radius=2)
    index = [tuple(d) for d in pdd.displacement_set(2).long().tolist()].index(shift)
    inside = cost[:, 1:-1, 1:-1, 1:-1]  # away from the wrapped border
    assert torch.all(inside[index] < 1e-12)
    assert torch.all(inside.argmin(0) == index)


def test_a_known_translation_of_a_phantom_scan_is_recovered():
    """Correlation + regularisation with fixed features (MIND, no training) find a known
    translation of a phantom scan, in whole voxels and between them."""
    cfg = get_config("smoke")
    image = torch.from_numpy(generate_subject(38, cfg.phantom, cfg.grid).image)
    shift = (2, -1, 3)
    moving = torch.roll(image, shifts=shift, dims=(0, 1, 2))
    cost = pdd.correlation(mind_ssc(image), mind_ssc(moving), grid_step=2, radius=3)
    regularised = pdd.mean_field(cost, weight=1.0, smoothness=0.05, iterations=2)
    probabilities = pdd.displacement_probabilities(regularised, 0.01)
    field = pdd.expected_displacement(probabilities, pdd.displacement_set(3))
    inside = field[:, 4:-4, 4:-4, 4:-4].reshape(3, -1)  # the roll wraps the border
    np.testing.assert_allclose(inside.mean(1).numpy(), shift, atol=0.05)
    dense = pdd.grid_to_field(field, image.shape, 2)
    assert dense.shape == (3, *image.shape)
    np.testing.assert_allclose(dense[:, 8:-8, 8:-8, 8:-8].mean((1, 2, 3)).numpy(), shift,
                               atol=0.05)


def test_the_mean_field_makes_a_noisy_field_smoother():
    """An outlier point's own cost favours a wrong candidate; its neighbours pull it back."""
    cost = torch.ones(27, 3, 3, 3)
    cost[13] = 0.0  # everywhere: no motion
    cost[13, 1, 1, 1], cost[0, 1, 1, 1] = 0.3, 0.0  # the centre prefers another candidate
    alone = pdd.displacement_probabilities(cost, 0.1).argmax(0)[1, 1, 1]
    together = pdd.displacement_probabilities(
        pdd.mean_field(cost, weight=1.0, smoothness=0.5), 0.1).argmax(0)[1, 1, 1]
    assert alone == 0 and together == 13


def test_the_grid_field_is_interpolated_between_its_points():
    grid_field = torch.zeros(3, 2, 2, 2)
    grid_field[0, 1] = 4.0  # the second plane of points moves 4 voxels
    dense = pdd.grid_to_field(grid_field, (5, 4, 4), grid_step=2)
    np.testing.assert_allclose(dense[0, :, 0, 0].numpy(), [0, 2, 4, 4, 4])
    assert torch.all(dense[1:] == 0)


@pytest.mark.parametrize("call, message", [
    (lambda: pdd.displacement_set(0), "radius and step must be integers >= 1"),
    (lambda: pdd.correlation(torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 5), grid_step=2,
                             radius=1), "one shape"),
    (lambda: pdd.correlation(np.zeros((2, 4, 4, 4)), torch.zeros(2, 4, 4, 4), grid_step=2,
                             radius=1), "fixed must be a torch tensor of shape"),
    (lambda: pdd.min_convolution(torch.zeros(26, 2, 2, 2), 1.0), "n\\*\\*3 candidates"),
    (lambda: pdd.displacement_probabilities(torch.zeros(27, 1, 1, 1), 0.0), "temperature"),
    (lambda: pdd.expected_displacement(torch.zeros(27, 1, 1, 1), pdd.displacement_set(2)),
     "candidates"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_candidates_are_a_cube_in_c_order():
    cube = pdd.displacement_set(1, 2).long().tolist()
    assert cube == [list(d) for d in itertools.product((-2, 0, 2), repeat=3)]


# ------------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def scans():
    cfg = get_config("smoke")
    return [generate_subject(i, cfg.phantom, cfg.grid).image for i in (2, 3, 5, 38)]


def _trained(scans, iterations):
    torch.manual_seed(0)
    model = pdd.PddNetwork(channels=4, width=8, radius=1)
    history = pdd.train_pdd(model, scans, iterations=iterations, learning_rate=0.01,
                            regularisation=1.0, seed=3)
    return model, history


def test_training_is_deterministic_and_lowers_the_loss(scans):
    first, history = _trained(scans, 12)
    second, again = _trained(scans, 12)
    assert history["loss"] == again["loss"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert np.mean(history["loss"][-3:]) < history["loss"][0]


def test_one_and_two_warps_give_a_field_on_the_fixed_grid(scans):
    model, _ = _trained(scans, 2)
    fixed, moving = torch.from_numpy(scans[3]), torch.from_numpy(scans[0])
    with torch.no_grad():
        one, output = model.dense_field(fixed, moving, warps=1)
        two, _ = model.dense_field(fixed, moving, warps=2)
    assert one.shape == two.shape == (3, *fixed.shape)
    assert output.probabilities.shape[0] == 27 and torch.isfinite(two).all()
    with pytest.raises(ValueError, match="warps must be between 1 and 2"):
        model.dense_field(fixed, moving, warps=3)
    with pytest.raises(ValueError, match="one shape"):
        model(fixed, moving[:-1])


def test_the_label_loss_is_zero_when_the_certain_candidate_is_the_true_shift():
    """The non-local label loss: each candidate proposes the moving labels at its
    displacement; all probability on the true shift reproduces the fixed labels."""
    labels = torch.zeros(2, 12, 10, 14)
    labels[1, 3:8, 2:7, 4:10] = 1.0
    labels[0] = 1.0 - labels[1]
    labels[:, :2], labels[:, -2:], labels[:, :, :2], labels[:, :, -2:] = 0, 0, 0, 0
    labels[:, :, :, :2], labels[:, :, :, -2:] = 0, 0  # the border: nothing to compare
    shift = (1, -1, 2)  # in feature voxels
    moving = torch.roll(labels, shifts=shift, dims=(1, 2, 3))
    displacements = pdd.displacement_set(2) * pdd.PddNetwork.stride  # in scan voxels
    index = [tuple(d) for d in pdd.displacement_set(2).long().tolist()].index(shift)
    probabilities = torch.zeros(len(displacements), 6, 5, 7)
    probabilities[index] = 1.0
    output = pdd.PddOutput(torch.zeros(3, 6, 5, 7), probabilities, torch.zeros_like(probabilities),
                           displacements)
    weights = torch.ones(2)
    assert pdd.label_loss(labels, moving, output, 2, weights) == 0.0
    probabilities = torch.zeros_like(probabilities)
    probabilities[[index + 1 if index + 1 < len(displacements) else 0]] = 1.0
    wrong = pdd.PddOutput(output.field, probabilities, output.cost, displacements)
    assert pdd.label_loss(labels, moving, wrong, 2, weights) > 0.0


def test_training_with_labels_is_deterministic(scans):
    cfg = get_config("smoke")
    labels = [generate_subject(i, cfg.phantom, cfg.grid).labels for i in (2, 3, 5, 38)]

    def trained():
        torch.manual_seed(0)
        model = pdd.PddNetwork(channels=4, width=8, radius=1)
        return model, pdd.train_pdd(model, scans, labels=labels, iterations=4,
                                    learning_rate=0.01, regularisation=0.003, seed=3)

    (first, history), (second, again) = trained(), trained()
    assert history["loss"] == again["loss"] and all(np.isfinite(history["loss"]))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="one label map per scan"):
        pdd.train_pdd(first, scans, labels=labels[:2], iterations=1, learning_rate=0.01,
                      regularisation=0.0, seed=0)


def test_the_registration_method_names_bad_input(scans):
    from slicreg_lite.methods import PddNet

    cfg = get_config("smoke")
    model = pdd.PddNetwork(channels=4, width=8, radius=1)
    method = PddNet(scans[3], model, cfg, warps=2)
    result = method.register(scans[0])
    assert result.displacement.shape == (3, *scans[3].shape)
    assert result.timings["inference"] > 0 and result.warped_labels is None
    with pytest.raises(ValueError, match="moving must be on the fixed scan's grid"):
        method.register(scans[0][:-1])
    broken = scans[0].copy()
    broken[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="moving"):
        method.register(broken)
    with pytest.raises(ValueError, match="warps must be between 1 and 2"):
        PddNet(scans[3], model, cfg, warps=3)
