"""Step 4: keypoint graph, features, Adam alignment and thin-plate-spline extrapolation."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from slicreg_lite import alignment
from slicreg_lite.core.config import get_config
from slicreg_lite.core.spatial import voxel_to_normalised
from slicreg_lite.evaluation import oracles

SHAPE = (32, 28, 36)  # the smoke supervoxel grid
CFG = get_config("smoke")
FIT = CFG.centre_fit  # this toolkit's centre fit (the paper's alignment is CFG.adam)


def edge_differences(displacements, graph) -> float:
    """Mean squared difference of the displacements of neighbouring keypoints: a
    smoothness measure of a keypoint field (0 for a translation)."""
    u = np.asarray(displacements, dtype=np.float64)
    return float(((u[:, None, :] - u[graph.neighbours]) ** 2).sum(-1).mean())


def voronoi_layers(shift=(0.0, 0.0, 0.0), n_layers=2, seed=0):
    """Layers of 127 Voronoi cells inside an ellipsoid; ``shift`` moves the content by
    that many voxels (the moving scan ``m(x) = template(x - shift)``)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE, dtype=np.float64).reshape(3, -1).T - np.asarray(shift)
    centre, radii = (np.array(SHAPE) - 1) / 2, np.array(SHAPE) * 0.42
    inside = (((grid - centre) / radii) ** 2).sum(1) <= 1
    layers = []
    for _ in range(n_layers):
        seeds = centre + rng.uniform(-0.7, 0.7, (127, 3)) * radii
        nearest = ((grid[:, None, :] - seeds[None]) ** 2).sum(-1).argmin(1) + 1
        layers.append(np.where(inside, nearest, 0).reshape(SHAPE))
    return np.stack(layers).astype(np.uint8)


@pytest.fixture(scope="module")
def template_layers():
    return voronoi_layers()


@pytest.fixture(scope="module")
def template(template_layers):
    return alignment.prepare_template(template_layers, CFG)


@pytest.fixture(scope="module")
def fit_template(template_layers):
    return alignment.prepare_template(template_layers, FIT)


def test_template_has_a_keypoint_per_supervoxel(template, template_layers):
    assert template.keypoints.shape == (2 * 127, 3)
    assert template.shape == SHAPE
    assert template.feature_shape == (16, 14, 18)
    n_channels = CFG.adam.fold_channels
    assert template.features.shape == (2 * n_channels, 16, 14, 18)
    # one-hot channels averaged: each layer's channels sum to 1 everywhere
    sums = template.features.reshape(2, n_channels, -1).sum(1)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_folding_spreads_each_layer_over_all_channels():
    folding = alignment.fold_permutation(3, 128, 16, seed=4)
    assert folding.shape == (3, 128)
    for layer in folding:
        assert np.bincount(layer, minlength=16).tolist() == [8] * 16
    assert not np.array_equal(folding[0], folding[1])  # a new permutation per layer
    np.testing.assert_array_equal(folding, alignment.fold_permutation(3, 128, 16, seed=4))


def test_knn_graph_excludes_the_point_itself_even_with_duplicates():
    points = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [5, 5, 5], [5, 5, 6]], float)
    graph = alignment.keypoint_graph(points, 2)
    assert graph.neighbours.shape == (5, 2)
    for i, row in enumerate(graph.neighbours):
        assert i not in row
    assert set(graph.neighbours[0]) == {1, 2}
    assert graph.edges.shape[1] == 2 and (graph.edges[:, 0] < graph.edges[:, 1]).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_channels_last_sampling_equals_grid_sample(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 7, size=3))
    volume = torch.rand(5, *shape, generator=torch.Generator().manual_seed(seed))
    coords = torch.from_numpy(rng.uniform(-1, np.array(shape), (20, 3))).float()
    ours = alignment.sample_features(alignment.channels_last(volume), shape, coords)
    grid = voxel_to_normalised(coords.clamp(min=0), shape)  # border padding below
    grid = torch.maximum(torch.minimum(grid, torch.ones(3)), -torch.ones(3))
    theirs = F.grid_sample(volume[None], grid.view(1, 1, 1, -1, 3), align_corners=True,
                           padding_mode="border")[0, :, 0, 0].T
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_zero_displacement_when_moving_equals_fixed(template):
    result = alignment.register(template, template.features, CFG)
    assert np.abs(result.keypoint_displacement).max() < 0.05
    assert np.abs(result.displacement).max() < 0.05
    assert result.displacement.shape == (3, *SHAPE)
    assert len(result.losses["total"]) == CFG.adam.iterations
    assert set(result.timings) >= {"adam", "tps", "total"}


def test_known_translation_is_recovered(template):
    shift = np.array([2.0, -2.0, 2.0])  # voxels of the supervoxel grid
    moving = voronoi_layers(shift)
    features = alignment.moving_features(moving, template, CFG)
    result = alignment.register(template, features, CFG, iterations=150)
    recovered = np.median(result.keypoint_displacement, axis=0)
    np.testing.assert_allclose(recovered, shift, atol=0.6)
    # and the loss went down on the way
    assert result.losses["data"][-1] < 0.5 * result.losses["data"][0]
    # the dense field is the shift inside the body too
    centre = tuple(n // 2 for n in SHAPE)
    np.testing.assert_allclose(result.displacement[(slice(None), *centre)], shift, atol=0.8)


def test_known_translation_is_recovered_from_given_layers(template):
    """The oracle path: Adam on given layers of the moving scan (no network)."""
    shift = np.array([-2.0, 1.0, 2.0])
    result = oracles.register_layers(template, voronoi_layers(shift), CFG)
    np.testing.assert_allclose(np.median(result.keypoint_displacement, axis=0), shift,
                               atol=0.8)
    with pytest.raises(ValueError, match="moving layers"):
        oracles.register_layers(template, voronoi_layers(shift)[:1], CFG)


@pytest.mark.parametrize("trust_the_edge", [False, True])
def test_supervoxels_cut_by_the_scans_edge_do_not_bend_the_fitted_motion(
        template_layers, monkeypatch, trust_the_edge):
    """Shifted by 5 voxels, the body leaves the scan: the cut supervoxels' visible
    centres lie too far inside. They are left out, and the fit reads the shift at every
    keypoint; taken at face value (as before), they squeeze the motion at the edge."""
    template = alignment.prepare_template(template_layers, FIT)
    shift = np.array([5.0, 0.0, 0.0])
    moving_layers = voronoi_layers(shift)
    assert alignment.cut_by_the_edge(moving_layers, 127).any()
    if trust_the_edge:
        monkeypatch.setattr(alignment.template, "cut_by_the_edge",
                            lambda layers, n: np.zeros((len(layers), n), bool))
    moving = alignment.moving_scan(moving_layers, template, FIT)
    error = np.abs(moving.centres - template.centres - shift).max()
    assert (error > 1.0) if trust_the_edge else (error < 0.5), error


@pytest.mark.parametrize("fit_step", [0, 4])
def test_a_translation_is_read_from_the_supervoxel_centres(template_layers, fit_step):
    """Every keypoint's guess from the moving scan's supervoxel centres (each its own, or
    fitted all at once) is the shift itself, and Adam, starting there and drawn to it,
    stays on it."""
    cfg = dataclasses.replace(FIT, centre_fit_step=fit_step)
    template = alignment.prepare_template(template_layers, cfg)
    assert (template.centre_fit is None) == (fit_step == 0)
    shift = np.array([1.0, -2.0, 2.0])  # whole voxels: the cells move exactly
    moving = alignment.moving_scan(voronoi_layers(shift), template, cfg)
    assert moving.centres.shape == template.keypoints.shape
    # the supervoxels that the shift pushes against the scan's edge have no centre of
    # their own (NaN); the fit gives them one
    known = np.isfinite(moving.centres).all(1)
    assert known.all() if fit_step else 0.8 < known.mean() < 1
    np.testing.assert_allclose(moving.centres[known] - template.keypoints[known],
                               np.broadcast_to(shift, (known.sum(), 3)), atol=1e-3)
    result = alignment.register(template, moving, cfg)
    np.testing.assert_allclose(np.median(result.keypoint_displacement, axis=0), shift,
                               atol=0.2)
    assert np.abs(result.keypoint_displacement - shift).max() < 1.0
    assert set(result.losses) == {"total", "data", "regulariser", "centres"}
    with pytest.raises(ValueError, match="supervoxel grid"):
        alignment.moving_scan(voronoi_layers(shift)[:, ::2], template, cfg)


@pytest.mark.parametrize("smoothing", [0.01, 100.0])
def test_fitted_centres_follow_a_scaling_however_smooth_the_fit(template_layers, smoothing):
    """The fit's smoothness penalty (second differences) leaves an affine motion free: a
    body 10% larger is read at every keypoint even with a very smooth fit."""
    from slicreg_lite.supervoxels import label_centres

    cfg = dataclasses.replace(FIT, centre_fit_smoothing=smoothing)
    template = alignment.prepare_template(template_layers, cfg)
    centre, scale = (np.array(SHAPE) - 1) / 2, 1.1
    grid = np.indices(SHAPE, dtype=np.float64).transpose(1, 2, 3, 0)
    source = np.clip(np.round(centre + (grid - centre) / scale).astype(int), 0,
                     np.array(SHAPE) - 1)
    moved = template_layers[:, source[..., 0], source[..., 1], source[..., 2]]
    truth = centre + scale * (template.keypoints - centre)
    fitted = alignment.fit_centres(template.centre_fit, label_centres(moved, 127))
    assert np.linalg.norm(fitted - truth, axis=1).mean() < 0.3


def test_fit_centres_refuses_centres_of_another_shape(fit_template):
    template = fit_template
    with pytest.raises(ValueError, match="moving_centres must have shape"):
        alignment.fit_centres(template.centre_fit, np.zeros((1, 127, 3)))
    # no supervoxel found at all: nothing to fit, every keypoint unknown
    nothing = np.full((2, 127, 3), np.nan)
    assert np.isnan(alignment.fit_centres(template.centre_fit, nothing)).all()


@given(factor=st.floats(0.25, 4.0))
@settings(max_examples=10, deadline=None)
def test_a_uniform_stretch_needs_no_correction(fit_template, factor):
    """Every supervoxel grown by the same factor: the stretch map is flat inside the body,
    so each supervoxel's stretch-weighted centre is its plain centre."""
    from slicreg_lite.supervoxels import label_sizes

    sizes = label_sizes(voronoi_layers(), 127) * factor
    correction = alignment.stretch_correction(fit_template.centre_fit, sizes)
    assert correction.shape == (2, 127, 3)
    np.testing.assert_allclose(correction, 0, atol=1e-9)


def test_the_stretch_correction_brings_centres_to_the_mean_motion(fit_template,
                                                                  template_layers):
    """A motion along one axis that stretches and squeezes in waves of 12 voxels (the
    Jacobian between 0.4 and 1.6, as in an inter-patient field): a supervoxel's centre in
    the moving scan leans towards its stretched side. Corrected, the centres lie nearer
    the plain mean of the motion over each supervoxel, which is what the fit models, and
    the fitted keypoints nearer their true positions."""
    from slicreg_lite.supervoxels import label_centres, label_sizes

    template = fit_template
    period, amplitude = 12.0, 0.6 * 12.0 / (2 * np.pi)

    def motion(x):
        return x + amplitude * np.sin(2 * np.pi * x / period)

    grid = np.indices(SHAPE, dtype=np.float64)
    table = np.linspace(-period, SHAPE[0] + period, 20001)
    source = np.interp(grid[0], motion(table), table)  # the inverse motion, axis 0
    index = np.clip(np.round(source).astype(int), 0, SHAPE[0] - 1)
    moved = template_layers[:, index, grid[1].astype(int), grid[2].astype(int)]

    centres = label_centres(moved, 127)
    corrected = centres - alignment.stretch_correction(template.centre_fit,
                                                     label_sizes(moved, 127))
    flat = template_layers.reshape(2, -1).astype(np.int64)
    sizes = label_sizes(template_layers, 127)
    mean_motion = np.stack([np.bincount(layer, motion(grid[0]).ravel(), minlength=128)[1:]
                            for layer in flat]) / np.maximum(sizes, 1)
    found = np.isfinite(centres[..., 0]) & (sizes > 0)
    before = np.sqrt(np.mean((centres[..., 0] - mean_motion)[found] ** 2))
    after = np.sqrt(np.mean((corrected[..., 0] - mean_motion)[found] ** 2))
    assert after < 0.85 * before

    truth = template.keypoints.copy()
    truth[:, 0] = motion(truth[:, 0])
    error = [np.linalg.norm(alignment.fit_centres(template.centre_fit, c) - truth, axis=1).mean()
             for c in (centres, corrected)]
    assert error[1] < 0.9 * error[0]
    with pytest.raises(ValueError, match="moving_sizes must have shape"):
        alignment.stretch_correction(template.centre_fit, np.ones((1, 127)))


def test_supervoxels_missing_from_the_moving_scan_follow_their_neighbours(template_layers):
    cfg = dataclasses.replace(FIT, centre_fit_step=0)  # each supervoxel's own centre
    template = alignment.prepare_template(template_layers, cfg)
    shift = np.array([0.0, 2.0, -1.0])
    moving = alignment.moving_scan(voronoi_layers(shift), template, cfg)
    lost = np.arange(0, len(moving.centres), 5)
    moving.centres[lost] = np.nan  # as if the network never predicted these labels
    result = alignment.register(template, moving, cfg)
    assert np.isfinite(result.keypoint_displacement).all()
    np.testing.assert_allclose(np.median(result.keypoint_displacement[lost], axis=0), shift,
                               atol=0.2)


def test_fill_from_neighbours_keeps_known_rows_and_averages_into_gaps():
    points = np.array([[0, 0, i] for i in range(6)], float)
    graph = alignment.keypoint_graph(points, k=2)
    values = np.array([[1.0] * 3, [np.nan] * 3, [np.nan] * 3, [4.0] * 3, [5.0] * 3,
                       [6.0] * 3])
    filled = alignment.fill_from_neighbours(values, graph)
    np.testing.assert_array_equal(filled[[0, 3, 4, 5]], values[[0, 3, 4, 5]])
    assert np.isfinite(filled).all()
    # each gap takes the mean of its neighbours known so far: 1 -> {0: 1}, 2 -> {3: 4}
    np.testing.assert_allclose(filled[1], 1.0)
    np.testing.assert_allclose(filled[2], 4.0)
    nothing = alignment.fill_from_neighbours(np.full((6, 3), np.nan), graph)
    np.testing.assert_array_equal(nothing, 0.0)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(-0.08, 0.08), min_size=9, max_size=9),
       st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_an_affine_field_passes_through_the_keypoints_unchanged(template, linear, offset):
    """The thin-plate spline reproduces affine motion, so an affine field read at the
    keypoints and rebuilt is that field, on any grid covering the same extent."""
    shape = (48, 40, 54)  # the image grid: another size than the keypoints' grid
    coords = np.indices(shape, dtype=np.float32)
    matrix = np.array(linear, np.float32).reshape(3, 3)
    field = (np.einsum("ij,j...->i...", matrix, coords)
             + np.array(offset, np.float32)[:, None, None, None])
    rebuilt = oracles.through_keypoints(template, field, CFG, output_shape=shape)
    assert rebuilt.shape == (3, *shape)
    np.testing.assert_allclose(rebuilt, field, atol=2e-3)
    with pytest.raises(ValueError, match=r"shape \(3, D, H, W\)"):
        oracles.through_keypoints(template, field[:2], CFG)


def test_larger_alpha_gives_a_smoother_keypoint_field(template):
    # a moving scan with unrelated supervoxels: the data term pulls keypoints every way
    moving = voronoi_layers(seed=7)
    features = alignment.moving_features(moving, template, CFG)
    rough = alignment.register(template, features, CFG, alpha=0.001, iterations=40)
    smooth = alignment.register(template, features, CFG, alpha=1.0, iterations=40)
    assert (edge_differences(smooth.keypoint_displacement, smooth.graph)
            < 0.5 * edge_differences(rough.keypoint_displacement, rough.graph))


def test_tps_reproduces_the_keypoints_without_smoothing():
    rng = np.random.default_rng(0)
    points = np.unique(rng.integers(1, 19, (60, 3)), axis=0).astype(float)
    values = rng.normal(0, 2, points.shape)
    field = alignment.thin_plate_spline(points, values, (20, 20, 20), smoothing=0.0,
                                      grid_step=1)
    at_points = field[:, points[:, 0].astype(int), points[:, 1].astype(int),
                      points[:, 2].astype(int)].T
    np.testing.assert_allclose(at_points, values, atol=1e-3)


def test_tps_of_an_affine_motion_is_that_motion_everywhere():
    rng = np.random.default_rng(1)
    points = rng.uniform(2, 17, (40, 3))
    matrix = np.array([[0.1, 0.0, 0.02], [0.0, -0.05, 0.0], [0.03, 0.0, 0.0]])
    field = alignment.thin_plate_spline(points, points @ matrix.T + 1.5, (20, 20, 20),
                                      smoothing=0.0, grid_step=3)
    grid = np.indices((20, 20, 20)).reshape(3, -1).T
    expected = (grid @ matrix.T + 1.5).T.reshape(3, 20, 20, 20)
    np.testing.assert_allclose(field, expected, atol=1e-3)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.001, 0.1]))
def test_factorised_spline_equals_scipys_rbf_interpolator(seed, smoothing):
    """The same spline as SciPy's RBFInterpolator (thin-plate kernel, degree 1), and a
    second evaluation of the same points (the kept kernel values) gives the same field."""
    from scipy.interpolate import RBFInterpolator

    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, (int(rng.integers(8, 60)), 3))
    values = rng.normal(0, 2, (len(points), 3))
    where = rng.uniform(-1.2, 1.2, (50, 3))
    spline = alignment.ThinPlateSpline(points, smoothing)
    ours = spline.evaluate(spline.fit(values), where)
    theirs = RBFInterpolator(points, values, kernel="thin_plate_spline",
                             smoothing=smoothing, degree=1)(where)
    # equal up to the rounding of two different (well-posed but unscaled) solves
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * (1 + np.abs(theirs).max()))
    again = spline.evaluate(spline.fit(2 * values), where)
    np.testing.assert_allclose(again, 2 * theirs, atol=1e-4 * (1 + np.abs(theirs).max()))


def test_duplicate_keypoints_do_not_break_the_tps():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 15, (30, 3))
    points = np.concatenate([points, points[:5]])  # five points twice
    values = rng.normal(size=points.shape)
    values[30:] = values[:5]
    field = alignment.thin_plate_spline(points, values, (16, 16, 16), smoothing=0.0)
    assert np.isfinite(field).all()


def test_bad_input_gives_clear_errors(template, template_layers):
    n = len(template.keypoints)
    with pytest.raises(ValueError, match="k must be an integer with 1 <= k < N"):
        alignment.keypoint_graph(template.keypoints, n)
    with pytest.raises(ValueError, match="k must be an integer"):
        alignment.register(template, template.features, CFG, k=n)
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        alignment.register(template, template.features, CFG, iterations=0)
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        alignment.register(template, template.features, CFG, iterations=-5)
    with pytest.raises(ValueError, match="features must have the template's shape"):
        alignment.register(template, template.features[:-1], CFG)
    graph = alignment.keypoint_graph(template.keypoints, 4)
    with pytest.raises(ValueError, match="fixed_features must have shape"):
        alignment.align_keypoints(torch.zeros(n, 3), template.features, template.keypoints, graph)
    with pytest.raises(ValueError, match="moving layers must have shape"):
        alignment.moving_features(template_layers[:1], template, CFG)
    with pytest.raises(ValueError, match="unknown Adam parameter"):
        alignment.register(template, template.features, CFG, beta=1)
    with pytest.raises(ValueError, match="NaN"):
        alignment.keypoint_graph([[0, 0, np.nan], [1, 1, 1], [2, 2, 2]], 1)
    with pytest.raises(ValueError, match="values must have the points' shape"):
        alignment.thin_plate_spline(np.zeros((10, 3)), np.zeros((9, 3)), (4, 4, 4))


def test_centre_spread_is_zero_where_every_layer_names_the_same_place():
    same = np.repeat(voronoi_layers(n_layers=1), 3, axis=0)  # three identical layers
    template = alignment.prepare_template(same, CFG)
    spread = alignment.centre_spread(template, same, np.zeros((3, *SHAPE), np.float32))
    inside = same[0] > 0
    np.testing.assert_allclose(spread[inside], 0.0, atol=1e-3)
    assert np.isnan(spread[~inside]).all()  # no layer names a supervoxel there


def test_centre_spread_grows_where_the_layers_disagree(template, template_layers):
    zero = np.zeros((3, *SHAPE), np.float32)
    agreeing = alignment.centre_spread(template, template_layers, zero)
    # a following field: the moving scan is the template shifted, the field says so
    shift = np.array([0.0, 2.0, -2.0])
    followed = alignment.centre_spread(template, voronoi_layers(shift),
                                     np.broadcast_to(shift[:, None, None, None],
                                                     (3, *SHAPE)).astype(np.float32))
    inner = (template_layers[0] > 0) & np.isfinite(followed)
    np.testing.assert_allclose(followed[inner], agreeing[inner], atol=1e-3)
    # the second layer's labels scrambled: its centres no longer match the first's
    scrambled = template_layers.copy()
    scrambled[1] = np.where(scrambled[1] > 0,
                            np.random.default_rng(0).permutation(128)[scrambled[1]] % 127 + 1,
                            0)
    confused = alignment.centre_spread(template, scrambled, zero)
    inside = template_layers[0] > 0
    assert np.nanmean(confused[inside]) > 2 * np.nanmean(agreeing[inside])
    with pytest.raises(ValueError, match="moving_layers must have shape"):
        alignment.centre_spread(template, template_layers[:, ::2], zero)


def seed_loop(fixed, features, points, adjacency, *, lr, alpha, iterations):
    """The poster's ``adam_optim``, written as it is there: a flow in grid_sample's
    normalised coordinates, MSE of the sampled features, ``alpha * (pdist(flow) *
    weight).sum() / N`` with ``weight`` the kNN graph's adjacency."""
    n, shape = len(points), features.shape[1:]
    half = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float32)
    kpts_fixed = (torch.as_tensor(points, dtype=torch.float32) / half - 1).flip(-1)
    weight = torch.as_tensor(adjacency, dtype=torch.float32)
    flow = torch.zeros(n, 3, requires_grad=True)
    optimizer = torch.optim.Adam([flow], lr=lr)
    losses = []
    for _ in range(iterations):
        optimizer.zero_grad()
        kpts_moving = kpts_fixed + flow
        feat_kpts_moving = F.grid_sample(features[None], kpts_moving.view(1, 1, 1, -1, 3),
                                         align_corners=True, padding_mode="border")
        feat_kpts_moving = feat_kpts_moving.view(-1, n).T
        data_loss = F.mse_loss(feat_kpts_moving, fixed)
        pdist = ((flow[:, None, :] - flow[None, :, :]) ** 2).sum(-1)  # squared distances
        reg_loss = (pdist * weight).sum() / n
        loss = data_loss + alpha * reg_loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return (flow.detach().flip(-1) * half).numpy(), losses


def test_the_paper_alignment_minimises_the_posters_loss():
    """align_keypoints with the paper's settings is the poster's adam_optim: the same loss
    at every iteration and the same keypoint motion (built here by hand, as there)."""
    rng = np.random.default_rng(3)
    shape = (9, 8, 10)
    features = F.avg_pool3d(torch.rand(1, 6, *shape, generator=torch.Generator().manual_seed(3)),
                            3, stride=1, padding=1)[0]
    points = rng.uniform(1, np.array(shape) - 2, (40, 3))
    fixed = alignment.sample_features(alignment.channels_last(features), shape,
                                    torch.as_tensor(points + [0.7, -0.4, 0.5]).float())
    paper = get_config("lite").adam
    graph = alignment.keypoint_graph(points, paper.k)
    ours, losses = alignment.align_keypoints(fixed, features, points, graph,
                                           learning_rate=paper.learning_rate,
                                           alpha=paper.alpha, iterations=30)
    theirs, their_losses = seed_loop(fixed, features, points, graph.adjacency(),
                                     lr=paper.learning_rate, alpha=paper.alpha,
                                     iterations=30)
    np.testing.assert_allclose(losses["total"], their_losses, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    # every edge of the kNN graph, in both directions: A is symmetric with k..2k per row
    adjacency = graph.adjacency()
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert (adjacency.sum(1) >= paper.k).all() and not adjacency.diagonal().any()


def test_block_folding_keeps_neighbouring_numbers_apart():
    """The authors' folding: inside a block of 16 consecutive class numbers every channel
    is used once, so neighbours share a channel only across a block's border."""
    folding = alignment.fold_permutation(4, 128, 16, seed=1, scheme="blocks")
    for layer in folding:
        for block in layer.reshape(8, 16):
            assert sorted(block.tolist()) == list(range(16))
    inside = [(layer[c] == layer[c + 1]) for layer in folding for c in range(127)
              if (c + 1) % 16]
    assert not any(inside)
    with pytest.raises(ValueError, match="scheme must be"):
        alignment.fold_permutation(1, 128, 16, seed=1, scheme="diagonal")


def test_random_keypoints_lie_inside_the_supervoxels_on_every_second_voxel(template_layers):
    cfg = dataclasses.replace(CFG.adam, keypoints="random", n_keypoints=100)
    template = alignment.prepare_template(template_layers, cfg)
    assert template.keypoints.shape == (100, 3)
    assert template.centres.shape == (2 * 127, 3)  # the supervoxels' centres, still
    index = template.keypoints.astype(int)
    assert (template.keypoints % 2 == 0).all()
    assert (template_layers[0][tuple(index.T)] > 0).all()
    again = alignment.prepare_template(template_layers, cfg)
    np.testing.assert_array_equal(template.keypoints, again.keypoints)  # seeded
