"""deeds-lite: MIND, the distance transform, tree belief propagation, affine and the whole
registration on phantom scans with known answers."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import get_config
from slicreg_lite.core.labels import LARGE_ORGANS
from slicreg_lite.core.metrics import average_dice, dice_per_label, jacobian_stats
from slicreg_lite.core.spatial import affine_to_displacement, invert, warp_image, warp_labels
from slicreg_lite.supervoxels import body_mask
from slicreg_lite.teacher import grid, reference, register
from slicreg_lite.teacher.affine import fit_affine
from slicreg_lite.teacher.mind import mind_ssc

SMOKE = get_config("smoke")
# a little finer than smoke: 8 mm voxels, still about a second per registration
SMALL = get_config("lite", grid={"shape": (48, 40, 56), "spacing_mm": 8.0}, teacher={
    "affine_factors": (2,), "affine_radii": (4,), "affine_iterations": (3,),
    "grid_spacings": (5, 4, 3), "search_radii": (3, 2, 1), "quantisations": (1, 1, 1),
    "regularisation": 8.0})


@pytest.fixture(scope="module")
def scan():
    return generate_subject(2, SMALL.phantom, SMALL.grid)


# ------------------------------------------------------------------------------ MIND
def test_mind_shape_range_and_invariance(scan):
    descriptor = mind_ssc(scan.image)
    assert descriptor.shape == (12, *scan.shape) and descriptor.dtype == torch.float32
    assert float(descriptor.min()) > 0 and float(descriptor.max()) == pytest.approx(1.0)
    # a linear change of intensities (another contrast, another unit) changes nothing
    again = mind_ssc(2.5 * scan.image - 300.0)
    assert float((descriptor - again).abs().max()) < 1e-4


def test_mind_parameters_and_constant_image():
    image = np.random.default_rng(0).normal(size=(10, 11, 12)).astype(np.float32)
    assert mind_ssc(image, radius=2, dilation=3).shape == (12, 10, 11, 12)
    constant = mind_ssc(np.full((8, 8, 8), 40.0))
    assert bool(torch.isfinite(constant).all())
    with pytest.raises(ValueError, match="dilation"):
        mind_ssc(image, dilation=0)


# --------------------------------------------------------------- distance transforms
@given(st.integers(1, 14), st.floats(0.01, 10.0), st.integers(0, 2**31 - 1))
def test_distance_transform_1d_equals_brute_force(n, weight, seed):
    costs = np.random.default_rng(seed).normal(0, 5, (9, n))
    labels = np.arange(n)
    brute = (costs[:, None, :] + weight * (labels[:, None] - labels[None]) ** 2).min(-1)
    np.testing.assert_allclose(reference.distance_transform_1d(costs, weight), brute, atol=1e-9)


@given(st.integers(1, 12), st.floats(0.01, 10.0), st.integers(0, 2**31 - 1),
       st.booleans())
def test_distance_transform_1d_with_offsets_equals_brute_force(n, weight, seed, whole):
    rng = np.random.default_rng(seed)
    costs = rng.normal(0, 5, (9, n))
    # offsets beyond the labels' range included; whole numbers make ties likely
    offsets = rng.uniform(-n - 2, n + 2, 9)
    offsets = np.round(offsets) if whole else offsets
    labels = np.arange(n)
    target = labels[None, :, None] + offsets[:, None, None]  # (line, i, j)
    brute = (costs[:, None, :] + weight * (target - labels[None, None]) ** 2).min(-1)
    np.testing.assert_allclose(reference.distance_transform_1d(costs, weight, offsets), brute,
                               atol=1e-8)


def test_distance_transform_3d_equals_brute_force_message():
    rng = np.random.default_rng(1)
    costs = rng.normal(0, 3, (5, 4, 4, 4))
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    penalty = ((grid[:, None] - grid[None]) ** 2).sum(-1)
    brute = (costs.reshape(5, 1, -1) + 0.6 * penalty[None]).min(-1)
    np.testing.assert_allclose(reference.distance_transform(costs, 0.6).reshape(5, -1), brute,
                               atol=1e-9)


def test_belief_propagation_on_a_small_tree_equals_brute_force():
    rng = np.random.default_rng(2)
    parents = np.array([-1, 0, 0, 1, 1, 2])
    order = np.arange(6)
    label_shape = (2, 2, 1)
    unary = rng.normal(0, 2, (6, 4))
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in label_shape], indexing="ij"),
                    -1).reshape(-1, 3)
    best, best_energy = None, np.inf
    for labels in itertools.product(range(4), repeat=6):
        energy = sum(unary[p, labels[p]] for p in range(6)) + sum(
            0.7 * ((grid[labels[p]] - grid[labels[parents[p]]]) ** 2).sum() for p in range(1, 6))
        if energy < best_energy:
            best, best_energy = labels, energy
    found = reference.tree_belief_propagation(unary, order, parents, label_shape, 0.7)
    assert tuple(found) == best


def test_belief_propagation_with_offsets_equals_brute_force():
    """With offsets the penalty is on the whole displacement: |l_p + o_p - l_parent|^2."""
    from slicreg_lite.teacher.compiled import tree_belief_propagation_compiled

    rng = np.random.default_rng(5)
    parents, order = np.array([-1, 0, 0, 1, 1, 2]), np.arange(6)
    label_shape = (3, 1, 2)
    unary = rng.normal(0, 2, (6, 6))
    offsets = rng.normal(0, 1.2, (6, 3))
    offsets[0] = 0  # the root has no parent
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in label_shape], indexing="ij"),
                    -1).reshape(-1, 3)

    def energy(labels):
        return sum(unary[p, labels[p]] for p in range(6)) + sum(
            0.9 * ((grid[labels[p]] + offsets[p] - grid[labels[parents[p]]]) ** 2).sum()
            for p in range(1, 6))

    best = min(itertools.product(range(6), repeat=6), key=energy)
    assert tuple(reference.tree_belief_propagation(unary, order, parents, label_shape, 0.9,
                                           offsets)) == best
    assert tuple(tree_belief_propagation_compiled(unary, order, parents, label_shape, 0.9,
                                                  offsets)) == best
    # offsets that equal whole label steps shift the optimum of a flat chain exactly
    flat = np.zeros((6, 6))
    flat[0, 2] = -1.0  # the root prefers label 2 = (1, 0, 0)
    whole = np.zeros((6, 3))
    whole[1] = (1, 0, 0)  # node 1 already moves one step more than the root
    found = tree_belief_propagation_compiled(flat, order, parents, label_shape, 0.9, whole)
    assert tuple(grid[found[1]]) == (0, 0, 0) and tuple(grid[found[2]]) == (1, 0, 0)


def test_spanning_tree_spans_the_grid(scan):
    points, grid_shape = grid.control_points(scan.shape, 6)
    order, parents = grid.minimum_spanning_tree(torch.from_numpy(scan.image), points, grid_shape, 6)
    assert sorted(order) == list(range(len(points)))  # every control point is in the tree
    assert (parents == -1).sum() == 1
    # tree edges join 6-neighbours of the grid
    child = np.flatnonzero(parents >= 0)
    steps = np.abs(points[child] - points[parents[child]]).sum(1)
    assert (steps == 6).all()


@pytest.mark.parametrize("spacing", [3, 4, 5, 7, 12])
def test_patch_samples(spacing):
    eight, box = grid.patch_offsets(spacing)
    assert eight.shape == (8, 3) and box == 2 * max(1, spacing // 4) + 1
    assert not eight.sum(0).any()  # symmetric around the control point
    many, single = grid.patch_offsets(spacing, 27, smooth=False)
    assert len({tuple(o) for o in many}) == 27 and single == 1
    assert not many.sum(0).any() and [0, 0, 0] in many.tolist()
    assert grid.patch_offsets(spacing, 27)[1] == box
    with pytest.raises(ValueError, match="samples must be 8 or 27"):
        grid.patch_offsets(spacing, 9)


def test_real_ct_settings_recover_a_known_translation(scan):
    shift = np.array([2.0, -1.0, 1.0])
    moving = warp_image(scan.image, np.broadcast_to(shift[:, None, None, None],
                                                    (3, *scan.shape)).copy())
    real = get_config("lite", real_ct=True).teacher
    cfg = dataclasses.replace(SMALL.teacher, patch_samples=real.patch_samples,
                              smooth_patch=real.smooth_patch,
                              regularisation=real.regularisation)
    result = register(scan.image, moving, cfg)
    body = body_mask(scan.image)
    # moving(x) = scan(x + shift): fixed voxel x lies at moving voxel x - shift
    np.testing.assert_allclose(np.median(result.displacement[:, body], axis=1), -shift,
                               atol=0.3)


def test_cost_volume_is_lowest_at_the_true_shift(scan):
    features = mind_ssc(scan.image)
    shift = (1, -2, 1)
    moved = torch.roll(features, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    offsets, _ = grid.patch_offsets(6)
    cost = reference.cost_volume(features, moved, spacing=6, radius=3, quantisation=1,
                                 offsets=offsets)
    labels = grid.displacement_labels(3, 1)
    points, _ = grid.control_points(scan.shape, 6)
    inside = (points >= 6).all(1) & (points < np.array(scan.shape) - 6).all(1)
    winners = labels[cost[torch.from_numpy(inside)].argmin(1).numpy()]
    # features(x) = moved(x - shift): the best label of an inner point is -shift... or the
    # shift itself, depending on the sign convention; it is cost(p, d) with moved(p + d)
    assert (winners == -np.array(shift)).all(1).mean() > 0.9


# -------------------------------------------------------------------------- affine
def test_least_trimmed_squares_ignores_outliers():
    rng = np.random.default_rng(3)
    true = np.array([[1.1, 0.05, 0, 2.0], [-0.05, 0.9, 0.1, -3.0], [0, 0.02, 1.05, 1.0]])
    points = rng.uniform(0, 50, (200, 3))
    targets = points @ true[:, :3].T + true[:, 3]
    targets[:60] += rng.normal(0, 20, (60, 3))  # 30% of the matches are wrong
    np.testing.assert_allclose(fit_affine(points, targets, trim=0.5), true, atol=1e-6)


def test_known_translation_is_recovered(scan):
    shift = np.array([3.0, -2.0, 4.0])  # voxels, i.e. 24, 16, 32 mm
    moving = warp_image(scan.image, np.broadcast_to(shift[:, None, None, None],
                                                    (3, *scan.shape)).astype(np.float32),
                        fill=-1000.0)
    result = register(scan.image, moving, SMALL)
    # moving(x) = fixed(x + t): the field that maps fixed onto moving is -t
    inner = body_mask(scan.image)
    inner[:6], inner[-6:], inner[:, :6], inner[:, -6:], inner[..., :6], inner[..., -6:] = (
        False,) * 6
    error = np.linalg.norm(result.displacement + shift[:, None, None, None], axis=0)[inner]
    assert np.median(error) < 0.5
    # the affine step alone already gets it to within a voxel
    affine_field = affine_to_displacement(result.affine, scan.shape)
    affine_error = np.linalg.norm(affine_field + shift[:, None, None, None], axis=0)[inner]
    assert np.median(affine_error) < 1.0


# ---------------------------------------------------------------- whole registration
def test_identity_gives_zero_displacement(scan):
    result = register(scan.image, scan.image, SMALL)
    assert np.abs(result.displacement).max() < 0.5
    np.testing.assert_allclose(result.affine, np.eye(3, 4), atol=0.05)


def test_known_smooth_deformation_is_recovered(scan):
    rng = np.random.default_rng(4)
    truth = np.stack([gaussian_filter(rng.normal(size=scan.shape), 5) for _ in range(3)])
    truth = (truth / np.abs(truth).max() * 2.5).astype(np.float32)  # up to 20 mm
    moving = warp_image(scan.image, truth, fill=-1000.0)
    result = register(scan.image, moving, SMALL)
    expected = invert(truth)  # moving(x) = fixed(x + u): registration finds u's inverse
    error = np.linalg.norm(result.displacement - expected, axis=0)[body_mask(scan.image)]
    assert np.median(error) < 1.0


def test_registration_improves_dice_without_folding():
    fixed = generate_subject(3, SMALL.phantom, SMALL.grid)
    template = generate_subject(38, SMALL.phantom, SMALL.grid)
    result = register(fixed.image, template.image, SMALL)
    before = average_dice(dice_per_label(template.labels, fixed.labels), LARGE_ORGANS)
    affine = warp_labels(template.labels, affine_to_displacement(result.affine, fixed.shape))
    after_affine = average_dice(dice_per_label(affine, fixed.labels), LARGE_ORGANS)
    after = average_dice(dice_per_label(warp_labels(template.labels, result.displacement),
                                        fixed.labels), LARGE_ORGANS)
    assert before < after_affine < after
    assert after > 0.5
    assert jacobian_stats(result.displacement, fixed.body_mask)["percent_folding"] < 1.0
    assert set(result.timings) >= {"MIND", "affine", "cost volume", "belief propagation",
                                   "warping", "total"}
    # the backward field is (close to) the inverse of the forward one
    roundtrip = warp_image(result.backward, result.displacement, padding="border") \
        + result.displacement
    assert np.median(np.linalg.norm(roundtrip, axis=0)[fixed.body_mask]) < 0.5


def test_constant_images_do_not_crash():
    constant = np.full((16, 16, 16), 50.0, np.float32)
    result = register(constant, constant, SMOKE)
    assert np.isfinite(result.displacement).all()


@pytest.mark.parametrize("fixed, moving, message", [
    (np.zeros((8, 8, 8)), np.zeros((8, 8, 9)), "moving must have the shape of fixed"),
    (np.full((8, 8, 8), np.nan), np.zeros((8, 8, 8)), "NaN"),
    (np.zeros((8, 8)), np.zeros((8, 8)), "3D array"),
])
def test_bad_input(fixed, moving, message):
    with pytest.raises(ValueError, match=message):
        register(fixed, moving, SMOKE)


def test_a_known_affine_step_is_reused(scan):
    moving = warp_image(scan.image, np.broadcast_to(
        np.array([2.0, 0.0, -1.0])[:, None, None, None], (3, *scan.shape)).copy())
    first = register(scan.image, moving, SMOKE)
    again = register(scan.image, moving, SMOKE, affine=first.affine)
    assert again.timings["affine"] < 0.01  # skipped
    np.testing.assert_array_equal(again.affine, first.affine)
    np.testing.assert_array_equal(again.displacement, first.displacement)
    with pytest.raises(ValueError, match="affine must be a finite 3 x 4"):
        register(scan.image, moving, SMOKE, affine=np.eye(3))


def test_bad_config_type():
    with pytest.raises(TypeError, match="TeacherConfig"):
        register(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), SMOKE.phantom)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), side=st.sampled_from([(1, 2, 3), (3, 3, 3), (5, 5, 5)]),
       weight=st.floats(0.01, 5.0), offsets=st.sampled_from(["none", "whole", "real"]),
       ties=st.booleans())
def test_compiled_belief_propagation_equals_the_numpy_reference(seed, side, weight, offsets,
                                                                ties):
    from slicreg_lite.teacher.compiled import tree_belief_propagation_compiled

    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.normal(size=(20, 18, 22)).astype(np.float32))
    points, grid_shape = grid.control_points(image.shape, 3)
    order, parents = grid.minimum_spanning_tree(image, points, grid_shape, 3)
    unary = rng.normal(0, 3, (len(points), int(np.prod(side)))).astype(np.float32)
    if ties:  # whole-number costs: many labels cost the same
        unary = np.round(unary)
    shifts = None
    if offsets != "none":
        shifts = rng.normal(0, 1.5, (len(points), 3))
        shifts = np.round(shifts) if offsets == "whole" else shifts
    expected = reference.tree_belief_propagation(unary, order, parents, side, weight, shifts)
    found = tree_belief_propagation_compiled(unary, order, parents, side, weight, shifts)
    assert np.array_equal(found, expected)  # the same arithmetic: identical labels


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spacing=st.integers(2, 7), radius=st.integers(0, 3),
       quantisation=st.integers(1, 3), channels=st.integers(1, 4))
def test_compiled_cost_volume_equals_the_torch_reference(seed, spacing, radius,
                                                         quantisation, channels):
    from slicreg_lite.teacher.compiled import cost_volume_compiled

    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(5, 19, 3))  # not multiples of the spacing
    fixed = torch.from_numpy(rng.random((channels, *shape), dtype=np.float32))
    moving = torch.from_numpy(rng.random((channels, *shape), dtype=np.float32))
    offsets, _ = grid.patch_offsets(spacing)
    arguments = dict(spacing=spacing, radius=radius, quantisation=quantisation,
                     offsets=offsets)
    expected = reference.cost_volume(fixed, moving, **arguments)
    found = cost_volume_compiled(fixed, moving, **arguments)
    assert found.shape == expected.shape and found.dtype == torch.float32
    # channels summed in another order than torch's: equal up to float32 rounding
    np.testing.assert_allclose(found.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="moving_features"):
        cost_volume_compiled(fixed, moving[:, :-1], **arguments)


def test_kernels_compile_in_a_fresh_process(tmp_path):
    """The first call in a new process compiles (or loads) the kernels, with numba's cache
    in a folder of the caller's choice (NUMBA_CACHE_DIR)."""
    import os
    import subprocess
    import sys

    script = ("import numpy as np; from slicreg_lite.teacher import register; "
              "from slicreg_lite.core.config import get_config; "
              "r = register(np.random.default_rng(0).normal(size=(20, 18, 22)) * 100, "
              "np.random.default_rng(1).normal(size=(20, 18, 22)) * 100, "
              "get_config('smoke').teacher); print(r.displacement.shape)")
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environment, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "(3, 20, 18, 22)" in done.stdout
    assert any((tmp_path / "numba").rglob("*.nbi"))  # the compiled kernels were cached there


def test_compiled_belief_propagation_on_a_small_tree_equals_brute_force():
    from slicreg_lite.teacher.compiled import tree_belief_propagation_compiled

    rng = np.random.default_rng(3)
    parents, order = np.array([-1, 0, 0, 1, 1, 2, 5]), np.arange(7)
    label_shape = (3, 1, 2)
    unary = rng.normal(0, 2, (7, 6))
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in label_shape], indexing="ij"),
                    -1).reshape(-1, 3)

    def energy(labels):
        return sum(unary[p, labels[p]] for p in range(7)) + sum(
            1.3 * ((grid[labels[p]] - grid[labels[parents[p]]]) ** 2).sum() for p in range(1, 7))

    best = min(itertools.product(range(6), repeat=7), key=energy)
    found = tree_belief_propagation_compiled(unary, order, parents, label_shape, 1.3)
    assert tuple(found) == best
    with pytest.raises(ValueError, match="label_shape"):
        tree_belief_propagation_compiled(unary, order, parents, (2, 2, 2), 1.3)
