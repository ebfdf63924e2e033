"""The README's run-dependent numbers are those of the stored lite run, not typed by hand:
the table, its findings, the paper-vs-toolkit table and the shipped networks' training
times (``tools/readme_results.py`` writes them)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("readme_results",
                                                  ROOT / "tools" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stored_run_is_a_lite_run_with_both_slicreg_rows(tool):
    from slicreg_lite import evaluation

    content = json.loads(tool.STORED.read_text())
    assert content["preset"] == "lite" and content["data"] == "phantom"
    assert list(content["methods"]) == [m.label for m in evaluation.METHODS]
    for row in (evaluation.SLIC_REG, evaluation.CENTRE_FIT):
        assert content["methods"][row]["dice"]["avg(4)"][0] > 0


@pytest.mark.parametrize("name", ["results", "alignments", "training", "pairs",
                                  "learn2reg"])
def test_the_readme_says_what_the_stored_run_and_the_code_say(tool, name):
    content = json.loads(tool.STORED.read_text())
    match = tool.marked(name).search(tool.README.read_text())
    assert match, f"README.md lacks the block {name!r}"
    assert match[2] == tool.blocks(content)[name], (
        f"the README's block {name!r} is stale: run python tools/readme_results.py "
        "results/lite/results.json after make demo")
