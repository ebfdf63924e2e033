"""Write the README's run-dependent numbers from a run's ``results.json``.

The README quotes the lite table, its findings and the training times of the shipped
networks. None of these numbers is typed by hand: this script stores the run's
``results.json`` as ``data/results/lite.json`` and writes, between the README's markers,

- ``results``: the table and the findings (:mod:`slicreg_lite.evaluation`, read back
  from the stored file);
- ``alignments``: the paper's alignment against this toolkit's
  (:func:`slicreg_lite.methods.compare_alignments`);
- ``training``: the training time of every shipped network (from its checkpoint);
- ``pairs``: the pairwise protocol (``run --pairs all``: pairs among the test subjects,
  neither the template), from its ``pairs.json``, stored as ``data/results/lite_pairs.json``;
- ``learn2reg``: the submission of the exported phantom task (``learn2reg``), from its
  ``scores.json``, stored as ``data/results/lite_learn2reg.json``.

``tests/test_readme.py`` checks that the README says exactly this, so it cannot go stale.

Usage::

    make demo   # writes results/lite/results.json
    python -m slicreg_lite run --pairs all     # writes results/lite/pairs.json
    python -m slicreg_lite export /tmp/task --layout learn2reg
    python -m slicreg_lite learn2reg /tmp/task --out /tmp/submission
    python tools/readme_results.py results/lite/results.json \
        --pairs results/lite/pairs.json --learn2reg /tmp/submission/scores.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
STORED = ROOT / "data" / "results" / "lite.json"
STORED_PAIRS = ROOT / "data" / "results" / "lite_pairs.json"
STORED_LEARN2REG = ROOT / "data" / "results" / "lite_learn2reg.json"
#: The shipped networks, as the README names them: (backbone, head, name).
NETWORKS = (("deeplab", "slic", "DeepLab, supervoxel head"),
            ("unet", "slic", "UNet, supervoxel head"),
            ("deeplab", "regression", "DeepLab, regression head"),
            ("unet", "regression", "UNet, regression head"),
            ("pdd", "unsupervised", "PDD-Net, without labels (one pair per iteration)"),
            ("pdd", "labels", "PDD-Net, with labels (one pair per iteration)"))


def results_block(content: dict) -> str:
    """The table and the findings of a stored results.json."""
    from slicreg_lite.evaluation import findings, from_json

    evaluation = from_json(content)
    lines = [evaluation.to_markdown(), ""]
    lines += [f"- {line}" for line in findings(evaluation)]
    if "total_seconds" in content:
        lines += ["", f"(`make demo` with a warm cache took {content['total_seconds']:.0f} s "
                      "for this run on 2 CPU cores.)"]
    return "\n".join(lines)


def alignments_block() -> str:
    from slicreg_lite.core.config import get_config
    from slicreg_lite.methods import compare_alignments

    return compare_alignments(get_config("lite"))


def training_block() -> str:
    """The training time of every shipped lite network, from its checkpoint."""
    import torch

    rows = ["| network | iterations | training time (2-core CPU) |", "|---|---|---|"]
    for backbone, head, name in NETWORKS:
        path = ROOT / "data" / "weights" / "lite" / f"{backbone}_{head}.pt"
        history = torch.load(path, map_location="cpu", weights_only=False)["history"]
        rows.append(f"| {name} | {len(history['loss'])} | "
                    f"{history['seconds'] / 60:.1f} min |")
    return "\n".join(rows)


def pairs_block(content: dict) -> str:
    """The pairwise table of a stored ``pairs.json``."""
    from slicreg_lite.evaluation import from_json

    evaluation = from_json(content)
    lines = [evaluation.to_markdown()]
    if "total_seconds" in content:
        lines += ["", f"(`run --pairs all` with a warm cache took "
                      f"{content['total_seconds']:.0f} s for these "
                      f"{len(evaluation.subject_ids)} pairs on 2 CPU cores.)"]
    return "\n".join(lines)


def learn2reg_block(content: dict) -> str:
    """The submission's mean scores and its lowest and highest pair, from ``scores.json``."""
    pairs = content["per_pair"]
    ranked = sorted(pairs, key=lambda name: pairs[name]["dice"])
    rows = ["| fields | Dice % (mean over the labels) | HD95 mm | std(log J) | seconds |",
            "|---|---|---|---|---|"]

    def cells(scores):
        return (f"{100 * scores['dice']:.1f} | {scores['hd95_mm']:.1f} | "
                f"{scores['std_log_jacobian']:.3f} | {scores['seconds']:.1f}")

    rows.append(f"| mean of {len(pairs)} pairs | {cells(content['mean'])} |")
    rows += [f"| {what}: `{name}` | {cells(pairs[name])} |"
             for what, name in (("lowest Dice", ranked[0]), ("highest Dice", ranked[-1]))]
    flagged = [name for name, scores in pairs.items() if not scores["reliable"]]
    return (f"`learn2reg --method {content['method']}`, preset `{content['preset']}`, "
            f"{content['pairs']}:\n\n" + "\n".join(rows)
            + f"\n\n{len(flagged)} of {len(pairs)} fields are flagged unreliable (their "
              f"field folds or stretches too much): {', '.join(flagged) or 'none'}.")


def blocks(content: dict) -> dict:
    """Every block, from a lite run's results and the stored pairwise and Learn2Reg runs."""
    return {"results": results_block(content), "alignments": alignments_block(),
            "training": training_block(),
            "pairs": pairs_block(json.loads(STORED_PAIRS.read_text())),
            "learn2reg": learn2reg_block(json.loads(STORED_LEARN2REG.read_text()))}


def marked(name: str) -> re.Pattern:
    """The README's block ``name``: between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)\n?(<!-- {name}:end -->)", re.DOTALL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a lite run's results.json")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="a lite run's pairs.json (run --pairs all); default: the stored")
    parser.add_argument("--learn2reg", type=Path, default=None,
                        help="the scores.json of the learn2reg command on the exported lite "
                             "phantom task; default: the stored")
    args = parser.parse_args()
    content = json.loads(args.results.read_text())
    # (path, what it must be): every run a lite run; the two tables on the phantom
    for path, phantom in ((args.results, True), (args.pairs, True), (args.learn2reg, False)):
        run = {} if path is None else json.loads(path.read_text())
        if path is not None and (run.get("preset") != "lite" or
                                 (phantom and run.get("data") != "phantom")):
            raise SystemExit(f"{path} is not a lite run" + (" on the phantom" if phantom else ""))
    STORED.parent.mkdir(parents=True, exist_ok=True)
    for source, target in ((args.results, STORED), (args.pairs, STORED_PAIRS),
                           (args.learn2reg, STORED_LEARN2REG)):
        if source is not None:
            shutil.copyfile(source, target)
    text = README.read_text()
    for name, block in blocks(content).items():
        pattern = marked(name)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no block {name!r}")
        text = pattern.sub(lambda match, block=block: f"{match[1]}{block}\n{match[3]}", text)
    README.write_text(text)
    print("stored the runs under data/results/ and wrote the README's blocks")


if __name__ == "__main__":
    main()
