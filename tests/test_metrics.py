"""Tests of slicreg_lite.core.metrics: Dice, Dice tables and Jacobian statistics."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slicreg_lite.core.dice_table import DiceTable
from slicreg_lite.core.labels import LABEL_NAMES, LARGE_ORGANS, NUM_LABELS, PAPER_COLUMNS
from slicreg_lite.core.metrics import (
    average_dice,
    dice,
    dice_per_label,
    jacobian_determinant,
    jacobian_stats,
)
from slicreg_lite.core.spatial import identity_grid


def two_cubes():
    """Two 4x4x4 cubes in an 8x4x4 volume that overlap in a 2x4x4 slab: Dice 0.5."""
    a = np.zeros((8, 4, 4), dtype=bool)
    b = np.zeros((8, 4, 4), dtype=bool)
    a[0:4] = True
    b[2:6] = True
    return a, b


# ------------------------------------------------------------------------------- dice
def test_dice_known_values():
    a, b = two_cubes()
    assert dice(a, a) == 1.0
    assert dice(a, b) == 0.5  # 2 * 32 / (64 + 64)
    assert dice(a, ~a) == 0.0
    assert dice(np.array([1, 0, 1]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_dice_of_two_empty_masks_is_nan():
    empty = np.zeros((3, 3, 3), dtype=bool)
    assert math.isnan(dice(empty, empty))
    assert dice(empty, ~empty) == 0.0


def test_dice_rejects_bad_input():
    with pytest.raises(ValueError, match=r"a \(2, 3\) and b \(3, 2\)"):
        dice(np.zeros((2, 3), bool), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="b must be a boolean mask"):
        dice(np.zeros(4, bool), np.array([0, 1, 2, 3]))


@settings(max_examples=50, deadline=None)
@given(arrays(bool, (3, 4, 5)), arrays(bool, (3, 4, 5)))
def test_dice_is_symmetric_and_bounded(a, b):
    value = dice(a, b)
    if not a.any() and not b.any():
        assert math.isnan(value)
    else:
        assert 0.0 <= value <= 1.0
        assert value == dice(b, a)
        assert (value == 1.0) == np.array_equal(a, b)


# ----------------------------------------------------------------------- dice_per_label
def test_dice_per_label_identical_maps():
    labels = np.zeros((6, 5, 4), dtype=np.uint8)
    labels[:2] = 1
    labels[3:, :2] = 6
    labels[5, 4, 3] = 13
    scores = dice_per_label(labels, labels)
    assert scores.shape == (NUM_LABELS,) and scores.dtype == np.float64
    present = [1, 6, 13]
    for label in range(1, NUM_LABELS + 1):
        if label in present:
            assert scores[label - 1] == 1.0
        else:
            assert math.isnan(scores[label - 1])


def test_dice_per_label_half_overlap_disjoint_and_one_sided():
    a, b = two_cubes()
    prediction = np.zeros(a.shape, dtype=np.uint8)
    target = np.zeros(a.shape, dtype=np.uint8)
    prediction[a] = 6
    target[b] = 6  # the liver overlaps half: Dice 0.5
    prediction[7, 0, 0] = 1  # the spleen in both, at different places: 0
    target[7, 3, 3] = 1
    prediction[7, 1, 1] = 4  # the gallbladder in the prediction only: 0
    target[7, 2, 2] = 7  # the stomach in the target only: 0
    scores = dice_per_label(prediction, target)
    assert scores[6 - 1] == 0.5
    assert scores[1 - 1] == 0.0
    assert scores[4 - 1] == 0.0
    assert scores[7 - 1] == 0.0
    assert np.isnan(scores[[2 - 1, 3 - 1, 5 - 1, 8 - 1]]).all()  # absent in both


def test_dice_per_label_subset_of_labels_and_float_maps():
    a, b = two_cubes()
    scores = dice_per_label(a.astype(np.float32) * 6, b.astype(np.float64) * 6, labels=(6, 1))
    assert scores.shape == (2,)
    assert scores[0] == 0.5 and math.isnan(scores[1])


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, (4, 3, 5), elements=st.integers(0, NUM_LABELS)),
       arrays(np.uint8, (4, 3, 5), elements=st.integers(0, NUM_LABELS)))
def test_dice_per_label_matches_dice_of_masks(prediction, target):
    scores = dice_per_label(prediction, target)
    for label in range(1, NUM_LABELS + 1):
        expected = dice(prediction == label, target == label)
        np.testing.assert_equal(scores[label - 1], expected)
    same = dice_per_label(prediction, prediction)
    assert np.all((same == 1.0) | np.isnan(same))


def test_dice_per_label_rejects_bad_input():
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"prediction \(4, 4, 4\) and target \(4, 4, 3\)"):
        dice_per_label(labels, labels[..., :3])
    too_high = labels.astype(np.int32)
    too_high[0, 0, 0] = 300
    with pytest.raises(ValueError, match=r"target must have values in 0\.\.255; got .*300"):
        dice_per_label(labels, too_high)
    with pytest.raises(ValueError, match="prediction must be a 3D array"):
        dice_per_label(labels[0], labels[0])
    with pytest.raises(ValueError, match=r"labels must be label numbers in 1\.\.255; got \[0\]"):
        dice_per_label(labels, labels, labels=[0])


def test_dice_per_label_scores_labels_beyond_the_btcv_set():
    prediction = np.zeros((4, 4, 4), dtype=np.uint8)
    target = np.zeros_like(prediction)
    prediction[:2], target[1:3] = 40, 40  # 16 voxels shared of 32 + 32
    target[3] = 200
    scores = dice_per_label(prediction, target, labels=(40, 200, 7))
    assert scores[0] == 0.5 and scores[1] == 0.0 and np.isnan(scores[2])


def test_dice_per_label_is_fast():
    rng = np.random.default_rng(0)
    shape = (96, 80, 112)  # the lite preset's volumes
    prediction = rng.integers(0, NUM_LABELS + 1, shape, dtype=np.uint8)
    target = rng.integers(0, NUM_LABELS + 1, shape, dtype=np.uint8)
    timings = []
    for _ in range(3):  # the best of three ignores a busy moment of the machine
        start = time.perf_counter()
        dice_per_label(prediction, target)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


# ------------------------------------------------------------------------- average_dice
def test_average_dice_ignores_nan():
    scores = np.full(NUM_LABELS, np.nan)
    scores[[0, 1, 5]] = [0.2, 0.4, 0.9]  # spleen, right kidney, liver; left kidney absent
    assert average_dice(scores, LARGE_ORGANS) == pytest.approx(0.5)
    assert average_dice(scores) == pytest.approx(0.5)
    assert average_dice(scores, [1]) == pytest.approx(0.2)


def test_average_dice_all_nan_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(average_dice(np.full(NUM_LABELS, np.nan), LARGE_ORGANS))


def test_average_dice_per_subject_rows():
    scores = np.stack([np.full(NUM_LABELS, 0.1), np.full(NUM_LABELS, np.nan)])
    result = average_dice(scores, LARGE_ORGANS)
    assert result.shape == (2,)
    assert result[0] == pytest.approx(0.1) and math.isnan(result[1])


def test_average_dice_rejects_bad_input():
    with pytest.raises(ValueError, match=r"scores must have shape \(13,\).*got \(4,\)"):
        average_dice(np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be label numbers in 1\.\.13; got \[0\]"):
        average_dice(np.zeros(NUM_LABELS), [0, 1])


# ---------------------------------------------------------------------------- DiceTable
def row(**organs) -> np.ndarray:
    """13 NaN scores with some organs set by their index: row(l1=0.1, l6=0.4)."""
    scores = np.full(NUM_LABELS, np.nan)
    for key, value in organs.items():
        scores[int(key[1:]) - 1] = value
    return scores


@pytest.fixture
def table() -> DiceTable:
    table = DiceTable(ddof=0, average_mode="per_subject")
    table.add("initial", 1, row(l1=0.1, l2=0.2, l3=0.3, l6=0.4))
    table.add("initial", 4, row(l1=0.3, l2=0.4, l3=0.5, l6=0.6))
    table.add("Slic-Reg", 1, row(l1=0.5, l2=0.5, l3=0.5, l6=0.5, l7=0.9))
    return table


def test_table_summary_hand_computed(table):
    summary = table.summary("initial")
    assert list(summary) == list(PAPER_COLUMNS)
    assert summary["spleen"] == pytest.approx((20.0, 10.0))  # 10 and 30 %
    assert summary["liver"] == pytest.approx((50.0, 10.0))  # 40 and 60 %
    # per subject first: avg(4) = 25 % and 45 %, then mean +- population std.
    assert summary["avg(4)"] == pytest.approx((35.0, 10.0))
    assert summary["avg(13)"] == pytest.approx((35.0, 10.0))  # NaN labels left out
    assert table.summary("Slic-Reg")["avg(13)"] == pytest.approx((58.0, 0.0))
    assert table.column("initial", "right kidney") == table.column("initial", "r.kidney")
    assert set(table.summary("initial", LABEL_NAMES)) == set(LABEL_NAMES)


def test_table_pooled_sample_std_like_the_paper():
    table = DiceTable()  # the defaults are the paper's convention
    table.add("initial", 1, row(l1=0.1, l2=0.2, l3=0.3, l6=0.4))
    table.add("initial", 4, row(l1=0.3, l2=0.4, l3=0.5, l6=0.6))
    mean, std = table.column("initial", "avg(4)")
    # the 8 values 10, 20, 30, 40, 30, 40, 50, 60: squared deviations from 35 sum to 1800.
    assert mean == pytest.approx(35.0)
    assert std == pytest.approx(math.sqrt(1800 / 7))
    assert table.column("initial", "spleen") == pytest.approx((20.0, math.sqrt(200)))


def test_table_ignores_nan_per_column():
    table = DiceTable(ddof=0)
    table.add("m", 1, row(l1=0.2, l6=0.5))
    table.add("m", 2, row(l6=0.7))  # no spleen in subject 2
    assert table.column("m", "spleen") == pytest.approx((20.0, 0.0))
    assert table.column("m", "liver") == pytest.approx((60.0, 10.0))
    mean, std = table.column("m", "l.kidney")
    assert math.isnan(mean) and math.isnan(std)


def test_table_markdown(table):
    lines = table.to_markdown().splitlines()
    assert lines[0] == "| method | spleen | r.kidney | l.kidney | liver | avg(4) | avg(13) |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2] == ("| initial | 20.0+-10.0 | 30.0+-10.0 | 40.0+-10.0 | 50.0+-10.0 "
                        "| 35.0+-10.0 | 35.0+-10.0 |")
    assert lines[3].startswith("| Slic-Reg | 50.0+-0.0 |")
    short = table.to_markdown(columns=("stomach",), methods=("Slic-Reg", "initial"))
    assert short.splitlines()[2:] == ["| Slic-Reg | 90.0+-0.0 |", "| initial | n/a |"]
    with pytest.raises(ValueError, match="unknown column 'kidney'"):
        table.to_markdown(columns=("kidney",))


def test_table_per_label_markdown(table):
    lines = table.per_label_markdown("initial").splitlines()
    assert len(lines) == 2 + NUM_LABELS
    assert lines[2] == "| 1 | spleen | 20.0+-10.0 |"
    assert lines[2 + 4] == "| 5 | esophagus | n/a |"
    assert lines[-1] == "| 13 | left adrenal gland | n/a |"


def test_table_to_dict_is_json_and_round_trips(table):
    data = json.loads(json.dumps(table.to_dict(), allow_nan=False))
    assert data["methods"]["initial"]["summary"]["avg(4)"] == pytest.approx([35.0, 10.0])
    assert data["methods"]["initial"]["scores"]["1"][4] is None
    again = DiceTable.from_dict(data)
    assert again.methods == ("initial", "Slic-Reg")
    assert again.subject_ids("initial") == (1, 4)
    np.testing.assert_array_equal(again.scores("initial"), table.scores("initial"))


def test_table_rejects_bad_input(table):
    with pytest.raises(ValueError, match="subject_id 1 was already added"):
        table.add("initial", 1, row(l1=0.5))
    with pytest.raises(ValueError, match=r"scores must have shape \(13,\).*got \(4,\)"):
        table.add("initial", 7, np.zeros(4))
    with pytest.raises(ValueError, match=r"fractions in 0\.\.1.*got values in 55\.\.55"):
        table.add("initial", 7, np.full(NUM_LABELS, 55.0))
    with pytest.raises(ValueError, match="unknown method 'deeds'"):
        table.summary("deeds")
    with pytest.raises(ValueError, match="average_mode must be"):
        DiceTable(average_mode="mean")
    with pytest.raises(ValueError, match=r"label_names must be label numbers in 1\.\.255"):
        DiceTable(label_names={0: "background"})


def test_table_of_another_label_set_uses_its_own_names():
    table = DiceTable(ddof=0, label_names={2: "tumour", 1: "liver"})
    assert table.labels == (1, 2) and not table.is_btcv
    assert table.columns == ("liver", "tumour", "avg(2)")
    table.add("initial", "patient_a", [0.8, 0.2])
    table.add("initial", "patient_b", [0.6, np.nan])
    assert table.column("initial", "liver") == pytest.approx((70.0, 10.0))
    assert table.column("initial", "avg(2)") == pytest.approx((160 / 3, math.sqrt(
        ((80 - 160 / 3) ** 2 + (20 - 160 / 3) ** 2 + (60 - 160 / 3) ** 2) / 3)))
    with pytest.raises(ValueError, match="unknown column 'avg\\(4\\)'"):
        table.column("initial", "avg(4)")
    lines = table.to_markdown().splitlines()
    assert lines[0] == "| method | liver | tumour | avg(2) |"
    again = DiceTable.from_dict(json.loads(json.dumps(table.to_dict(), allow_nan=False)))
    assert again.label_names == {1: "liver", 2: "tumour"}
    assert again.subject_ids("initial") == ("patient_a", "patient_b")


def test_btcv_names_are_recognised_whatever_their_spelling():
    from slicreg_lite.core.labels import BTCV_LABELS, is_btcv

    spelled = {n: name.upper().replace(" ", "_") for n, name in BTCV_LABELS.items()}
    assert is_btcv(spelled) and DiceTable(label_names=spelled).columns == PAPER_COLUMNS
    assert not is_btcv({**BTCV_LABELS, 14: "duodenum"})


# ----------------------------------------------------------------------------- Jacobian
def test_jacobian_of_zero_field_is_one():
    determinant = jacobian_determinant(np.zeros((3, 5, 4, 6), dtype=np.float32))
    assert determinant.shape == (5, 4, 6)
    np.testing.assert_allclose(determinant, 1.0)
    assert jacobian_stats(np.zeros((3, 5, 4, 6))) == {"std_log_jacobian": 0.0,
                                                      "percent_folding": 0.0}


def test_jacobian_of_uniform_scaling_is_s_cubed():
    s = 1.2
    u = (s - 1.0) * identity_grid((6, 5, 7), dtype=np.float64)  # x -> s x
    np.testing.assert_allclose(jacobian_determinant(u), s**3)
    assert jacobian_stats(u)["std_log_jacobian"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(-0.3, 0.3)))
def test_jacobian_of_affine_field_is_its_determinant(perturbation):
    matrix = np.eye(3, 4) + perturbation  # x -> A x + t
    grid = identity_grid((4, 5, 6), dtype=np.float64)
    u = np.einsum("ij,j...->i...", matrix[:, :3], grid) + matrix[:, 3, None, None, None] - grid
    np.testing.assert_allclose(jacobian_determinant(u), np.linalg.det(matrix[:, :3]),
                               atol=1e-9)


def test_jacobian_detects_folding():
    d = np.arange(16, dtype=np.float64)
    u = np.zeros((3, 16, 4, 4))
    # A wave along d whose slope reaches -2.8: J = 1 + du/dd < 0 where it falls steeply.
    u[0] = 4.0 * np.sin(2 * np.pi * d / 8)[:, None, None]
    determinant = jacobian_determinant(u)
    assert (determinant <= 0).any() and (determinant > 0).any()
    stats = jacobian_stats(u)
    assert 0.0 < stats["percent_folding"] < 100.0
    assert stats["percent_folding"] == pytest.approx(100 * np.mean(determinant <= 0))
    assert stats["std_log_jacobian"] > 1.0  # folded voxels count as log(1e-9)
    # the mask restricts the statistics to some voxels (here: unfolded ones only).
    assert jacobian_stats(u, mask=determinant > 0)["percent_folding"] == 0.0


def test_jacobian_rejects_bad_input():
    with pytest.raises(ValueError, match=r"displacement must have shape \(3, D, H, W\).*"
                                         r"got \(2, 4, 4, 4\)"):
        jacobian_determinant(np.zeros((2, 4, 4, 4)))
    field = np.zeros((3, 4, 4, 4))
    field[1, 2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="displacement contains 1 NaN or Inf"):
        jacobian_stats(field)
    with pytest.raises(ValueError, match="displacement must be floating point"):
        jacobian_determinant(np.zeros((3, 4, 4, 4), dtype=int))
    with pytest.raises(ValueError, match=r"mask must have the field's spatial shape"):
        jacobian_stats(np.zeros((3, 4, 4, 4)), mask=np.ones((4, 4, 3), bool))
    with pytest.raises(ValueError, match="mask selects no voxel"):
        jacobian_stats(np.zeros((3, 4, 4, 4)), mask=np.zeros((4, 4, 4), bool))


# -------------------------------------------------------------------------------- HD95
def test_hd95_of_a_shifted_cube_is_the_shift_in_mm():
    from slicreg_lite.core.metrics import hd95_per_label

    target = np.zeros((20, 20, 20), dtype=np.uint8)
    target[5:15, 5:15, 5:15] = 4
    for axis, spacing in ((0, (2.0, 1.0, 1.0)), (2, (1.0, 1.0, 0.8))):
        shifted = np.roll(target, 3, axis=axis)
        hd = hd95_per_label(shifted, target, spacing=spacing, labels=[4])
        assert hd[0] == pytest.approx(3 * spacing[axis])


def test_hd95_of_two_concentric_spheres_is_the_radius_difference():
    from slicreg_lite.core.metrics import hd95_per_label

    grid = np.indices((48, 48, 48))
    radius = np.sqrt(((grid - 24.0) ** 2).sum(0))
    small, large = (radius <= 10).astype(np.uint8), (radius <= 16).astype(np.uint8)
    hd = hd95_per_label(small, large, spacing=(1.5, 1.5, 1.5), labels=[1])[0]
    assert abs(hd - 6 * 1.5) <= 1.5  # within a voxel of the 6-voxel gap


def test_hd95_absent_labels_are_explicit():
    from slicreg_lite.core.metrics import hd95_per_label

    prediction = np.zeros((10, 12, 14), dtype=np.uint8)
    target = prediction.copy()
    prediction[2:5, 2:5, 2:5] = 1  # label 1 only in the prediction
    prediction[6:8, 6:8, 6:8] = target[6:8, 6:8, 6:8] = 2  # identical
    hd = hd95_per_label(prediction, target, spacing=(1.0, 2.0, 3.0), labels=[1, 2, 3])
    diagonal = np.linalg.norm(np.array([9, 11, 13]) * [1.0, 2.0, 3.0])
    assert hd[0] == pytest.approx(diagonal)  # missed entirely: the largest distance
    assert hd[1] == 0.0
    assert np.isnan(hd[2])  # in neither map: nothing to measure
    with pytest.raises(ValueError, match="spacing must be three positive voxel sizes"):
        hd95_per_label(prediction, target, spacing=(1.0, 0.0, 1.0), labels=[2])


@given(arrays(np.uint8, (6, 7, 8), elements=st.integers(0, 2)),
       arrays(np.uint8, (6, 7, 8), elements=st.integers(0, 2)))
def test_hd95_is_symmetric_and_zero_on_itself(a, b):
    from slicreg_lite.core.metrics import hd95_per_label

    np.testing.assert_allclose(hd95_per_label(a, b, labels=[1, 2]),
                               hd95_per_label(b, a, labels=[1, 2]))
    same = hd95_per_label(a, a, labels=[1, 2])
    assert np.all((same == 0) | np.isnan(same))


def test_tre_and_endpoint_error_of_known_fields():
    from slicreg_lite.core.metrics import endpoint_error_map, target_registration_error

    truth = np.zeros((3, 6, 7, 8))
    truth[0], truth[2] = 1.5, -2.0  # a translation, in voxels
    fixed = np.array([[1.0, 2.0, 3.0], [4.2, 5.5, 2.7]])
    spacing = (2.0, 1.0, 3.0)
    np.testing.assert_allclose(target_registration_error(truth, fixed, fixed + [1.5, 0, -2],
                                                         spacing), 0, atol=1e-12)
    # a field that got the translation half right: 0.75 voxels * 2 mm and 1 voxel * 3 mm
    half = truth / 2
    expected = np.hypot(1.5, 3.0)
    np.testing.assert_allclose(target_registration_error(half, fixed, fixed + [1.5, 0, -2],
                                                         spacing), expected)
    np.testing.assert_allclose(endpoint_error_map(half, truth, spacing), expected)
    with pytest.raises(ValueError, match="pair up"):
        target_registration_error(truth, fixed, fixed[:1])
    with pytest.raises(ValueError, match="NaN"):
        target_registration_error(truth, fixed * np.nan, fixed)
    with pytest.raises(ValueError, match="one shape"):
        endpoint_error_map(truth, truth[:, :5])
    with pytest.raises(ValueError, match="spacing"):
        endpoint_error_map(truth, truth, spacing=(1.0, 0.0, 1.0))


def test_per_subject_column(table):
    assert table.per_subject("initial", "avg(4)") == pytest.approx({1: 25.0, 4: 45.0})
    assert table.per_subject("initial", "spleen") == pytest.approx({1: 10.0, 4: 30.0})


def test_findings_say_whether_a_difference_is_outside_the_spread():
    from slicreg_lite.evaluation import SLIC_REG, Evaluation, findings

    def evaluation(offsets):
        table = DiceTable()
        for subject, offset in enumerate(offsets, 1):
            table.add("3D UNet + Slic + Adam", subject, row(l1=0.5, l2=0.5, l3=0.5, l6=0.5))
            value = 0.5 + offset
            table.add(SLIC_REG, subject, row(l1=value, l2=value, l3=value, l6=value))
        return Evaluation(table)

    def line(result):
        return next(text for text in findings(result) if text.startswith("DeepLab vs UNet"))

    steady = line(evaluation([0.09, 0.10, 0.11, 0.10]))  # always 9-11 points ahead
    assert "+10.0 points" in steady and "ahead on 4 of 4" in steady and "outside" in steady
    erratic = line(evaluation([0.3, -0.2, 0.25, -0.25]))  # +2.5 on average, either way
    assert "ahead on 2 of 4" in erratic and "inside the spread" in erratic


# ------------------------------------------------------------------ one scoring function
def _organs(shift: int = 0) -> np.ndarray:
    """Every BTCV organ as a small box, shifted along the first axis by ``shift``."""
    labels = np.zeros((40, 12, 30), dtype=np.uint8)
    for number in range(1, NUM_LABELS + 1):
        start = 2 * number
        labels[4 + shift:20 + shift, 2:10, start:start + 2] = number
    return labels


def test_score_registration_is_the_measures_put_together():
    from slicreg_lite.core.labels import ALL_LABELS, BTCV_LABELS
    from slicreg_lite.core.metrics import hd95_per_label, score_registration

    fixed, warped = _organs(), _organs(shift=2)
    field = np.zeros((3, *fixed.shape), np.float32)
    field[0] = 0.5  # a uniform shift: no folding
    spacing = (2.0, 1.0, 1.5)
    scores = score_registration(warped, fixed, field, label_names=BTCV_LABELS,
                                spacing=spacing)
    expected = dice_per_label(warped, fixed)
    np.testing.assert_array_equal(scores.dice, expected)
    np.testing.assert_array_equal(scores.hd95_mm, hd95_per_label(warped, fixed, spacing))
    assert scores.summary == {"avg(4)": average_dice(expected, LARGE_ORGANS),
                              "avg(13)": average_dice(expected, ALL_LABELS)}
    assert scores.headline == scores.summary["avg(4)"]
    assert scores.jacobian == jacobian_stats(field)
    assert scores.unreliable == [] and scores.tre_mm is None and scores.epe_mm is None


def test_score_registration_of_other_labels_and_of_no_labels():
    from slicreg_lite.core.metrics import score_registration

    fixed = _organs()
    fixed[fixed > 2] = 0
    scores = score_registration(fixed, fixed)  # named by the one rule: "label N"
    assert scores.label_names == {1: "label 1", 2: "label 2"}
    assert scores.summary == {"mean": 1.0} and scores.headline == 1.0
    assert scores.jacobian is None  # no field, no Jacobian
    unscored = score_registration(None, fixed, np.zeros((3, *fixed.shape), np.float32))
    assert unscored.dice is None and unscored.summary == {}
    assert math.isnan(unscored.headline)
    assert unscored.jacobian["percent_folding"] == 0.0


def test_score_registration_measures_tre_and_epe_against_the_truth():
    from types import SimpleNamespace

    from slicreg_lite.core.metrics import score_registration

    shape = (10, 8, 6)
    true_field = np.zeros((3, *shape), np.float32)
    true_field[1] = 2.0  # the truth: 2 voxels along the second axis
    truth = SimpleNamespace(displacement=true_field, visible=np.ones(shape, bool),
                            fixed_points=np.array([[4.0, 3.0, 2.0]]),
                            moving_points=np.array([[4.0, 5.0, 2.0]]))
    spacing = (1.0, 3.0, 1.0)
    identity = score_registration(None, None, truth=truth, spacing=spacing)
    np.testing.assert_allclose(identity.tre_mm, [6.0])  # 2 voxels of 3 mm missed
    assert identity.epe_mm == pytest.approx(6.0)
    exact = score_registration(None, None, true_field, truth=truth, spacing=spacing)
    np.testing.assert_allclose(exact.tre_mm, [0.0], atol=1e-6)
    assert exact.epe_mm == pytest.approx(0.0)


def test_one_naming_rule():
    from slicreg_lite.core.labels import BTCV_LABELS, name_labels

    assert name_labels([0, 6, 1], BTCV_LABELS) == BTCV_LABELS
    assert name_labels([0, 6, 1]) == {1: "label 1", 6: "label 6"}
    assert name_labels([0, 3], {3: "tumour"}) == {3: "tumour"}
