"""The tutorial's organisation: word counts, the agenda, the grids, the training gate."""

import nbformat
import pytest

from slicreg_lite.core.config import get_config
from slicreg_lite.teaching import tutorial


def _cells(*sources):
    return [nbformat.v4.new_markdown_cell(s) if not s.startswith("code:")
            else nbformat.v4.new_code_cell(s[5:]) for s in sources]


def test_words_outside_going_further_are_counted_exactly():
    cells = _cells(
        "# Title\n\n[![Open In Colab](https://x/badge.svg)](https://x/nb.ipynb)\none two",
        "code:print('not markdown at all')",
        "## Section\nthree [four](https://example.org/a/long/link) five",
        "## Going further (optional)\n### Depth\nsix seven",
        "eight nine ten",
        "## Summary\n- eleven")
    # "# Title" (2) + badge (1) + "one two" (2) | "## Section" (2) + 3 words |
    # "## Summary" (2) + "- eleven" (2)
    assert tutorial.markdown_words(cells) == (2 + 1 + 2 + 2 + 3 + 2 + 2, 8 + 3)
    exercise = nbformat.v4.new_code_cell("raise NotImplementedError")
    exercise.metadata["tags"] = ["exercise"]
    assert tutorial.reading([*cells, exercise]) == {"words": 14, "exercises": 1}


def test_agenda_lists_every_notebook_with_minutes_and_a_total():
    times = {"preset": "lite", "cpu_cores": 2,
             "notebooks": {n.stem: {"cold_s": 120.0, "warm_s": 30.0, "slow_cells": [],
                                    "words": 500, "exercises": 0}
                           for n in tutorial.NOTEBOOKS}}
    table = tutorial.agenda_markdown(times, link_prefix="notebooks/")
    rows = [line for line in table.splitlines() if line.startswith("| 0")]
    assert len(rows) == len(tutorial.NOTEBOOKS)
    # 500 words at 100 a minute, no exercise; 0.5 min warm, 2 min cold
    assert rows[0].endswith("| 5 min | 0.5 min | 2 min | 6 min |")
    assert "| **all six** | | 30 min | 3 min | 12 min | **33 min** |" in table
    assert "(notebooks/00_data.ipynb)" in table
    del times["notebooks"]["05_evaluation"]["words"]
    with pytest.raises(ValueError, match="05_evaluation"):
        tutorial.agenda_markdown(times)


@pytest.mark.parametrize("preset", ["smoke", "lite", "paper"])
def test_grids_of_every_preset_in_mm(preset):
    cfg = get_config(preset)
    table = tutorial.grids_markdown(cfg)
    assert f"{' x '.join(map(str, cfg.grid.shape))} voxels of {cfg.grid.spacing_mm:g} mm" \
        in table
    assert table.count("\n") == 7  # header, rule and six grids


def test_training_is_asked_for_with_its_expected_time(tmp_path, monkeypatch, capsys):
    """Nothing is shipped for smoke: the gate names the networks and the time, and stops
    unless training is allowed."""
    monkeypatch.setenv("SLICREG_CACHE", str(tmp_path))
    cfg = get_config("smoke")
    networks = tutorial.networks_of(["slicreg", "slicreg-fit", "regression"])
    assert networks == [("deeplab", "slic"), ("deeplab", "regression")]
    with pytest.raises(RuntimeError, match=r"about \d+ min.*TRAIN = True"):
        tutorial.check_training(cfg, "phantom", networks, train=False)
    assert tutorial.check_training(cfg, "phantom", networks, train=True) == networks
    assert "training deeplab + slic, deeplab + regression" in capsys.readouterr().out
    # the phantom's lite networks are shipped: nothing to train, nothing to ask
    assert tutorial.check_training(get_config("lite"), "phantom", tutorial.networks_of(),
                                   train=False) == []
