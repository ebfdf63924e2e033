"""The regression + random-walk baseline: inversion at keypoints, graph smoothing, field."""

import numpy as np
import pytest

from slicreg_lite import alignment
from slicreg_lite.alignment import regression
from slicreg_lite.core.config import get_config

CFG = get_config("smoke")


def test_inversion_at_points_undoes_a_smooth_field():
    shape = (20, 20, 20)
    grid = np.indices(shape, dtype=np.float32)
    # moving voxel y <-> template voxel y + v(y): a translation plus a gentle wave
    v = np.stack([1.5 + 0.8 * np.sin(grid[2] / 6), -1.0 + 0 * grid[0], 0.5 * np.cos(grid[0] / 5)])
    points = np.random.default_rng(0).uniform(4, 15, (30, 3))
    u = regression.invert_at_points(v, points, iterations=20)
    # p + u is the moving voxel y with y + v(y) = p
    from slicreg_lite.core.spatial import sample
    y = points + u
    back = y + sample(v.astype(np.float32), y.T.astype(np.float32)).T
    np.testing.assert_allclose(back, points, atol=1e-3)


def test_random_walk_keeps_constants_and_removes_noise():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 30, (200, 3))
    graph = alignment.keypoint_graph(points, 6)
    constant = np.tile([1.0, -2.0, 0.5], (200, 1))
    np.testing.assert_allclose(regression.random_walk(constant, graph, 3.0), constant,
                               atol=1e-9)
    noisy = constant + rng.normal(0, 1, constant.shape)
    error_before = np.abs(noisy - constant).mean()
    error_after = np.abs(regression.random_walk(noisy, graph, 3.0) - constant).mean()
    assert error_after < 0.5 * error_before
    np.testing.assert_array_equal(regression.random_walk(noisy, graph, 0.0), noisy)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        regression.random_walk(noisy, graph, -1.0)
    with pytest.raises(ValueError, match=r"values must have shape \(200, 3\)"):
        regression.random_walk(noisy[:10], graph, 1.0)


def test_register_recovers_a_predicted_translation():
    from tests.test_alignment import voronoi_layers

    template = alignment.prepare_template(voronoi_layers(), CFG)
    # the network says: every moving voxel lies 2 voxels further along d in the template
    field = np.zeros((3, 16, 14, 18), np.float32)  # on a coarser (network) grid
    field[0] = 2.0 * (16 - 1) / (32 - 1)  # 2 voxels of the supervoxel grid, in its units
    result = regression.register(template, field, CFG)
    np.testing.assert_allclose(result.keypoint_displacement, -2.0 * np.array([[1, 0, 0]]) +
                               0 * result.keypoint_displacement, atol=1e-3)
    assert result.displacement.shape == (3, *template.shape)
    np.testing.assert_allclose(result.displacement[0], -2.0, atol=1e-3)
    with pytest.raises(ValueError, match=r"field must have shape \(3, D, H, W\)"):
        regression.register(template, field[:2], CFG)


def test_the_field_outside_the_body_is_never_read():
    """The regression network learnt displacements inside the body only; outside, its
    field is meaningless (hundreds of voxels under lite). Inverted with that field read
    everywhere, keypoints whose first guess lands outside the moving scan's body jumped
    to nonsense (landmark errors above 200 mm, twice the initial ones). Read inside the
    body only, every keypoint whose partner lies in the body is found, and the others
    are left without a value for their neighbours to fill."""
    shape = (24, 24, 24)
    grid = np.indices(shape, dtype=np.float32)
    shift = np.array([5.0, -3.0, 2.0], np.float32)  # moving y <-> template y + shift
    body = ((grid - 11.5) ** 2).sum(0) <= 9.0 ** 2  # a ball in the moving scan
    v = np.where(body, shift[:, None, None, None],
                 np.random.default_rng(0).normal(0, 200, (3, *shape))).astype(np.float32)
    # template points whose partner p - shift lies well inside the ball, and some whose
    # partner lies outside it
    rng = np.random.default_rng(1)
    inside = 11.5 + shift + rng.uniform(-4, 4, (40, 3))
    outside = 11.5 + shift + np.array([[0, 0, 14.0], [0, 14.0, 0], [-14.0, 0, 0]])
    points = np.concatenate([inside, outside])
    u = regression.invert_at_points(v, points, mask=body)
    np.testing.assert_allclose(u[:40], np.broadcast_to(-shift, (40, 3)), atol=0.05)
    assert np.isnan(u[40:]).all()
    # the fixed-point steps alone from u = 0, reading v everywhere (as this baseline once
    # did): points whose first read falls outside the ball go astray
    from slicreg_lite.core.spatial import sample

    astray = np.zeros_like(inside)
    for _ in range(10):
        astray = -sample(v, (inside + astray).T.astype(np.float32), padding="border").T
    assert np.abs(astray + shift).max() > 20


def test_keypoints_without_a_value_take_their_neighbours_motion():
    from tests.test_alignment import voronoi_layers

    template = alignment.prepare_template(voronoi_layers(), CFG)
    field = np.full((3, *template.shape), 500.0, np.float32)  # nonsense everywhere ...
    body = np.zeros(template.shape, bool)
    body[4:16, 4:24, 4:32] = True  # half the keypoints' partners lie beyond it
    field[:, body] = np.array([2.0, 0.0, -1.0])[:, None]  # ... but inside the body
    result = regression.register(template, field, CFG, mask=body)
    known = np.isfinite(result.raw_displacement).all(1)
    assert 0 < known.sum() < len(known)
    np.testing.assert_allclose(result.keypoint_displacement, np.broadcast_to(
        [-2.0, 0.0, 1.0], result.keypoint_displacement.shape), atol=1e-3)
