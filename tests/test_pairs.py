"""The pairwise protocol beside the paper's: pairs of scans, neither the template."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicreg_lite.apps.cli import main
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.evaluation import evaluate_pairs, pair_name, scan_pairs
from slicreg_lite.methods import method_named

SMOKE = get_config("smoke")
QUIET = RunSettings(jobs=1, progress=False)


@given(st.lists(st.integers(0, 999), min_size=2, max_size=12, unique=True))
def test_all_pairs_are_each_unordered_pair_once_the_earlier_scan_fixed(ids):
    pairs = scan_pairs(ids)
    assert len(pairs) == len(ids) * (len(ids) - 1) // 2
    assert len({frozenset(p) for p in pairs}) == len(pairs)
    assert all(ids.index(fixed) < ids.index(moving) for fixed, moving in pairs)


def test_a_pair_list_is_checked():
    assert scan_pairs([1, 4, 7], [(7, 1)]) == [(7, 1)]
    for bad in ([(1, 1)], [(1, 99)], [(1, 4, 7)]):
        with pytest.raises(ValueError, match="two different scans"):
            scan_pairs([1, 4, 7], bad)
    with pytest.raises(ValueError, match="'all' or a list"):
        scan_pairs([1, 4, 7], "some")


def test_which_methods_register_any_pair():
    assert [m for m in ("teacher", "regression", "slicreg", "slicreg-fit", "pdd",
                        "unet-slicreg") if method_named(m).any_pair] == \
        ["teacher", "regression", "slicreg", "slicreg-fit", "unet-slicreg"]
    with pytest.raises(ValueError, match="registers to the template only"):
        evaluate_pairs(SMOKE, "phantom", [(1, 4)], ("initial", "pdd"), run=QUIET)


def test_pairs_are_scored_on_their_fixed_scans_with_the_true_correspondence():
    result = evaluate_pairs(SMOKE, "phantom", [(1, 4), (7, 1)],
                            ("initial", "slicreg"), routes=("direct", "composed"), run=QUIET)
    assert result.subject_ids == (pair_name(1, 4), pair_name(7, 1)) == ("4->1", "1->7")
    assert result.methods == ["initial, not registered",
                              f"{method_named('slicreg').label}, direct route",
                              f"{method_named('slicreg').label}, composed route"]
    assert result.has_truth and set(result.landmarks) == {"4->1", "1->7"}
    for method in result.methods:
        assert result.dice.subject_ids(method) == result.subject_ids
        assert len(result.correspondence[method]) == 2
    assert "TRE mm" in result.to_markdown()


def test_run_with_pairs_writes_the_pairwise_table(tmp_path, capsys):
    code = main(["run", "--preset", "smoke", "--pairs", "1:4,4:7", "--out", str(tmp_path),
                 "--quiet", "--jobs", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "2 pairs among the test subjects" in printed
    content = json.loads((tmp_path / "smoke" / "pairs.json").read_text())
    assert content["subject_ids"] == ["4->1", "7->4"]
    assert "deeds-lite teacher (direct)" in content["methods"]
    assert (tmp_path / "smoke" / "pairs.md").read_text().startswith("| method |")
    code = main(["run", "--preset", "smoke", "--pairs", "1:99", "--out", str(tmp_path),
                 "--quiet"])
    assert code == 2 and "--pairs" in capsys.readouterr().err
