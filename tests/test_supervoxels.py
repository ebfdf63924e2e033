"""SLIC layers: exactly 127 + 1 connected supervoxels, always; centres; the encoding."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from skimage.measure import label as connected_components

from slicreg_lite import supervoxels as sv
from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import get_config
from slicreg_lite.core.metrics import dice

SMOKE = get_config("smoke")
LITE = get_config("lite")


def assert_valid_layer(layer, mask, count=127):
    assert layer.dtype == np.uint8
    assert np.array_equal(np.unique(layer), np.arange(count + 1)), "labels must be 0..127"
    assert np.array_equal(layer > 0, mask), "background exactly outside the mask"
    components = connected_components(layer, connectivity=3, background=0)
    assert components.max() == count, "every supervoxel must be one 26-connected piece"


@pytest.fixture(scope="module")
def smoke_template():
    subject = generate_subject(SMOKE.split.template_id, SMOKE.phantom, SMOKE.grid)
    return subject.image, sv.body_mask(subject.image)


@pytest.fixture(scope="module")
def smoke_layers(smoke_template):
    image, mask = smoke_template
    return sv.slic_layers(image, mask, SMOKE.with_updates(supervoxels={"n_layers": 16}))


def test_body_mask_needs_no_labels():
    subject = generate_subject(38, LITE.phantom, LITE.grid)
    mask = sv.body_mask(subject.image)
    assert mask.dtype == bool
    assert dice(mask, subject.body_mask) > 0.99  # the phantom's own body outline
    assert mask[subject.labels > 0].all()  # every organ inside, lungs and gas included
    assert connected_components(mask, connectivity=3).max() == 1


def test_every_layer_of_the_phantom_template(smoke_template, smoke_layers):
    _, mask = smoke_template
    assert smoke_layers.shape == (16, *SMOKE.grid.shape)
    for layer in smoke_layers:
        assert_valid_layer(layer, mask)
    # the layers really differ: each comes from its own random affine
    assert not np.array_equal(smoke_layers[0], smoke_layers[1])


def test_one_lite_layer_with_the_papers_parameters():
    subject = generate_subject(LITE.split.template_id, LITE.phantom, LITE.grid)
    mask = sv.body_mask(subject.image)
    assert_valid_layer(sv.slic_layer(subject.image, mask, LITE, layer=0), mask)


def test_deterministic_for_a_seed(smoke_template):
    image, mask = smoke_template
    cfg = SMOKE.supervoxels
    assert np.array_equal(sv.slic_layer(image, mask, cfg, 2), sv.slic_layer(image, mask, cfg, 2))
    other = dataclasses.replace(cfg, seed=cfg.seed + 1)
    assert not np.array_equal(sv.slic_layer(image, mask, cfg, 2),
                              sv.slic_layer(image, mask, other, 2))


@st.composite
def odd_volumes(draw):
    """Small noisy volumes with masks of odd shapes: blobs, holes, several islands."""
    shape = tuple(draw(st.integers(8, 18)) for _ in range(3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 100, shape).astype(np.float32)
    smooth = gaussian_filter(rng.normal(size=shape), draw(st.floats(0.8, 3.0)))
    mask = smooth > np.quantile(smooth, draw(st.floats(0.0, 0.7)))
    if mask.sum() < 128:  # keep the property about valid inputs; tiny masks are a ValueError
        mask = np.ones(shape, bool)
    return image, mask


@settings(max_examples=25)
@given(odd_volumes(), st.integers(0, 3))
def test_exact_count_and_connectivity_on_odd_masks(volume, layer):
    image, mask = volume
    # islands of the mask without any neighbour may be dropped to background, so the
    # foreground is a subset of the mask here; everything else holds exactly
    segments = sv.slic_layer(image, mask, SMOKE.supervoxels, layer)
    assert np.array_equal(np.unique(segments), np.arange(128))
    assert connected_components(segments, connectivity=3, background=0).max() == 127
    assert not (segments[~mask]).any()


def test_merge_splits_when_slic_returns_too_few():
    one_segment = np.ones((10, 10, 10), int)
    merged = sv.merge_to_count(one_segment, 127)
    assert np.array_equal(np.unique(merged), np.arange(1, 128))  # no background here
    assert connected_components(merged, connectivity=3, background=0).max() == 127


def test_merge_merges_smallest_into_smallest_neighbour():
    segments = np.zeros((1, 1, 6), int)
    segments[0, 0] = [1, 1, 1, 2, 3, 3]  # 2 is the smallest; its neighbours are 1 (3) and 3 (2)
    merged = sv.merge_to_count(segments, 2)
    assert merged[0, 0].tolist() == [1, 1, 1, 2, 2, 2]


def test_isolated_islands_become_background_when_too_many():
    segments = np.zeros((5, 5, 5), int)
    segments[0, 0, 0] = 1  # an island: no neighbour to merge with
    segments[2:, 2:, 2:] = 2
    merged = sv.merge_to_count(segments, 1)
    assert merged[0, 0, 0] == 0 and (merged[2:, 2:, 2:] == 1).all()


def test_centres_lie_in_their_bounding_boxes(smoke_layers):
    centres = sv.supervoxel_centres(smoke_layers)
    assert centres.shape == (16, 127, 3)  # 2032 keypoints
    for layer, layer_centres in zip(smoke_layers[:4], centres[:4]):
        for k, centre in enumerate(layer_centres, start=1):
            where = np.argwhere(layer == k)
            assert (where.min(0) <= centre).all() and (centre <= where.max(0)).all()


def test_centres_of_known_cubes():
    layers = np.zeros((1, 4, 4, 4), np.uint8)
    layers[0, :2] = 1
    layers[0, 2:] = 2
    np.testing.assert_allclose(sv.supervoxel_centres(layers)[0], [[0.5, 1.5, 1.5],
                                                                   [2.5, 1.5, 1.5]])


def test_label_centres_mark_absent_labels_and_ignore_larger_ones():
    layers = np.zeros((2, 4, 4, 4), np.uint8)
    layers[0, :2] = 1
    layers[0, 2:] = 3  # label 2 absent from layer 0
    layers[1, :, :, :1] = 2
    layers[1, :, :, 1:] = 9  # beyond n_labels: ignored
    centres = sv.label_centres(layers, 3)
    assert centres.shape == (2, 3, 3)
    np.testing.assert_allclose(centres[0, [0, 2]], [[0.5, 1.5, 1.5], [2.5, 1.5, 1.5]])
    np.testing.assert_allclose(centres[1, 1], [1.5, 1.5, 0.0])
    assert np.isnan(centres[0, 1]).all() and np.isnan(centres[1, [0, 2]]).all()
    with pytest.raises(ValueError, match="layer 0 lacks labels \\[2\\]"):
        sv.supervoxel_centres(layers[:1])


def test_encoding_localises_at_least_ten_times_better(smoke_layers):
    rows = sv.encoding_resolution(smoke_layers)
    assert [r["layers"] for r in rows] == [1, 2, 4, 8, 16]
    assert rows[0]["cells"] == 127
    volumes = [r["cell_volume_per_voxel"] for r in rows]
    assert all(a > b for a, b in zip(volumes, volumes[1:]))  # more layers, smaller cells
    assert rows[-1]["ratio"] >= 10


@pytest.mark.parametrize("image, mask, message", [
    (np.zeros((8, 8, 8)), np.zeros((8, 8, 8), bool), "an empty mask"),
    (np.zeros((8, 8, 8)), np.pad(np.ones((5, 5, 5), bool), ((0, 3),) * 3), "at least 128"),
    (np.zeros((8, 8, 8)), np.ones((8, 8, 9), bool), "mask must have the image's shape"),
    (np.zeros((8, 8)), np.ones((8, 8), bool), "3D array"),
    (np.full((8, 8, 8), np.nan), np.ones((8, 8, 8), bool), "NaN"),
])
def test_bad_input(image, mask, message):
    with pytest.raises(ValueError, match=message):
        sv.slic_layer(image, mask, SMOKE.supervoxels, 0)


def test_body_mask_of_air_is_an_error():
    with pytest.raises(ValueError, match="Hounsfield"):
        sv.body_mask(np.full((8, 8, 8), -1000.0))


def test_adjacency_agrees_with_scikit_image(smoke_layers):
    from skimage.graph import RAG

    layer = smoke_layers[0].astype(np.int64)
    ours = set(map(tuple, sv.adjacent_pairs(layer).tolist()))
    theirs = {tuple(sorted(edge)) for edge in RAG(layer, connectivity=3).edges() if 0 not in edge}
    assert ours == theirs
