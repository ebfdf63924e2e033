"""The coordinate convention: round trips, identity, translations, composition, inverses."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from slicreg_lite.core import spatial

shapes = st.tuples(*[st.integers(2, 12)] * 3)


@given(shapes, st.integers(0, 2**31 - 1))
def test_voxel_normalised_round_trip(shape, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-3, np.array(shape) + 3, size=(17, 3))
    normalised = spatial.voxel_to_normalised(points, shape)
    np.testing.assert_allclose(spatial.normalised_to_voxel(normalised, shape), points,
                               atol=1e-9)


def test_normalised_corners_and_axis_order():
    shape = (5, 7, 9)
    corners = np.array([[0, 0, 0], [4, 6, 8], [4, 0, 0]], dtype=float)
    # (d, h, w) = (4, 0, 0) is the last voxel along d, which grid_sample calls z: (x, y, z)
    expected = np.array([[-1, -1, -1], [1, 1, 1], [-1, -1, 1]], dtype=float)
    np.testing.assert_allclose(spatial.voxel_to_normalised(corners, shape), expected)


def test_sample_agrees_with_grid_sample_orientation():
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    coords = np.array([[3, 1, 2], [0, 4, 5]], dtype=np.float32).T  # two points, (3, 2)
    np.testing.assert_allclose(spatial.sample(volume, coords), [volume[3, 1, 2],
                                                                 volume[0, 4, 5]])


@given(shapes, st.integers(0, 2**31 - 1))
def test_identity_warp_leaves_image_unchanged(shape, seed):
    image = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    zero = np.zeros((3, *shape), np.float32)
    np.testing.assert_allclose(spatial.warp_image(image, zero), image, atol=1e-5)
    labels = (np.abs(image) * 5).astype(np.uint8)
    assert np.array_equal(spatial.warp_labels(labels, zero), labels)


@given(shapes, st.tuples(*[st.integers(-3, 3)] * 3), st.integers(0, 2**31 - 1))
def test_integer_translation_moves_content_by_exactly_that(shape, shift, seed):
    image = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    u = np.zeros((3, *shape), np.float32)
    for axis in range(3):
        u[axis] = shift[axis]
    warped = spatial.warp_image(image, u, fill=-7.0)
    # out(x) = image(x + t): compare where x + t is inside the volume, -7 elsewhere
    for index in np.ndindex(*shape):
        source = tuple(i + t for i, t in zip(index, shift))
        inside = all(0 <= s < n for s, n in zip(source, shape))
        expected = image[source] if inside else -7.0
        assert warped[index] == pytest.approx(expected, abs=1e-5)


def test_translation_of_labels_keeps_dtype_and_values():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:3, 2:4, 2:4] = 13
    u = np.zeros((3, 6, 6, 6), np.float32)
    u[0] = -2  # out(x) = labels(x - 2 along d): content moves +2 along d
    warped = spatial.warp_labels(labels, u)
    assert warped.dtype == np.uint8
    assert np.array_equal(np.argwhere(warped == 13), np.argwhere(labels == 13) + [2, 0, 0])


def _smooth_field(shape, amplitude, seed):
    rng = np.random.default_rng(seed)
    field = np.stack([gaussian_filter(rng.normal(size=shape), 3.0, mode="nearest")
                      for _ in range(3)])
    return (field / np.abs(field).max() * amplitude).astype(np.float32)


@given(st.integers(0, 2**31 - 1), st.floats(0.2, 2.0))
def test_compose_with_numerical_inverse_is_identity(seed, amplitude):
    shape = (16, 14, 12)
    u = _smooth_field(shape, amplitude, seed)
    v = spatial.invert(u)
    interior = (slice(None), slice(3, -3), slice(3, -3), slice(3, -3))
    assert np.abs(spatial.compose(u, v)[interior]).max() < 0.05
    assert np.abs(spatial.compose(v, u)[interior]).max() < 0.05


def test_compose_matches_warping_twice():
    shape = (20, 18, 16)
    image = gaussian_filter(np.random.default_rng(0).normal(size=shape), 2).astype(np.float32)
    u = _smooth_field(shape, 1.5, 1)
    v = _smooth_field(shape, 1.5, 2)
    twice = spatial.warp_image(spatial.warp_image(image, u), v)
    once = spatial.warp_image(image, spatial.compose(u, v))
    interior = (slice(4, -4),) * 3
    assert np.abs(twice - once)[interior].max() < 0.02 * np.abs(image).max()


def test_affine_translation_and_round_trip():
    shape = (5, 6, 7)
    A = np.eye(3, 4)
    A[:, 3] = [1.0, -2.0, 0.5]
    u = spatial.affine_to_displacement(A, shape)
    assert u.shape == (3, *shape) and u.dtype == np.float32
    np.testing.assert_allclose(u.reshape(3, -1).T, np.tile([1.0, -2.0, 0.5], (210, 1)))
    shape = (12, 13, 14)
    M = spatial.random_affine(shape, 0.03, np.random.default_rng(3))
    composed = spatial.compose(spatial.affine_to_displacement(M, shape),
                               spatial.affine_to_displacement(spatial.invert_affine(M), shape))
    # trilinear interpolation of an affine field is exact wherever it stays inside the grid
    assert np.abs(composed[:, 2:-2, 2:-2, 2:-2]).max() < 1e-4


def test_centred_affine_keeps_the_centre():
    shape = (9, 11, 13)
    rotation = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    A = spatial.centred_affine(rotation, [0, 0, 0], shape)
    centre = (np.array(shape) - 1) / 2
    np.testing.assert_allclose(A[:, :3] @ centre + A[:, 3], centre)


def test_random_affine_identity_when_std_is_zero():
    A = spatial.random_affine((8, 9, 10), 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(A, np.eye(3, 4), atol=1e-12)


def test_resize_and_resize_displacement():
    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    assert spatial.resize(volume, (5, 6, 7)).shape == (5, 6, 7)
    np.testing.assert_allclose(spatial.resize(volume, (5, 6, 7)), volume, atol=1e-5)
    up = spatial.resize(volume, (9, 11, 13))
    np.testing.assert_allclose(up[::2, ::2, ::2], volume, atol=1e-5)  # corners aligned
    u = np.ones((3, 5, 6, 7), np.float32)
    resized = spatial.resize_displacement(u, (9, 11, 13))
    np.testing.assert_allclose(resized[:, 0, 0, 0], [2.0, 2.0, 2.0], atol=1e-5)


def test_resample_to_spacing_keeps_positions():
    volume = np.zeros((21, 21, 21), np.float32)
    volume[10, 4, 16] = 1.0
    labels = (volume > 0).astype(np.uint8)
    out = spatial.resample_to_spacing(labels, 1.0, 2.0, mode="nearest")
    assert out.shape == (11, 11, 11)
    assert out.dtype == np.uint8 and out[5, 2, 8] == 1 and out.sum() == 1


def test_numpy_in_numpy_out_torch_in_torch_out():
    image = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    u = np.zeros((3, 4, 5, 6), np.float32)
    assert isinstance(spatial.warp_image(image, u), np.ndarray)
    assert isinstance(spatial.warp_image(torch.from_numpy(image), torch.from_numpy(u)),
                      torch.Tensor)


def test_multichannel_warp():
    image = np.random.default_rng(0).normal(size=(2, 4, 5, 6)).astype(np.float32)
    out = spatial.warp_image(image, np.zeros((3, 4, 5, 6), np.float32))
    assert out.shape == (2, 4, 5, 6)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 4, 4, 4), np.float32), r"shape \(3, D, H, W\)"),
    (np.full((3, 4, 4, 4), np.nan, np.float32), "NaN or Inf"),
    (np.zeros((3, 4, 4, 4), np.int64), "floating point"),
])
def test_bad_displacement(bad, message):
    with pytest.raises(ValueError, match=message):
        spatial.warp_image(np.zeros((4, 4, 4), np.float32), bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(D, H, W\) or \(C, D, H, W\)"):
        spatial.warp_image(np.zeros((4, 4), np.float32), np.zeros((3, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="mode must be"):
        spatial.sample(np.zeros((4, 4, 4)), np.zeros((3, 2)), mode="cubic")
    with pytest.raises(ValueError, match=r"shape \(3, 4\) or \(4, 4\)"):
        spatial.affine_to_displacement(np.eye(3), (4, 4, 4))
    with pytest.raises(ValueError, match="three positive integers"):
        spatial.identity_grid((4, 4))
    with pytest.raises(TypeError, match="numpy.ndarray or torch.Tensor"):
        spatial.warp_image([[1.0]], np.zeros((3, 1, 1, 1), np.float32))
