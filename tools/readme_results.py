"""Write the README's run-dependent numbers from a run's ``results.json``.

The README quotes the lite table, its findings and the training times of the shipped
networks. None of these numbers is typed by hand: this script stores the run's
``results.json`` as ``data/results/lite.json`` and writes, between the README's markers,

- ``results``: the table and the findings (:mod:`slicreg_lite.evaluation`, read back
  from the stored file);
- ``alignments``: the paper's alignment against this toolkit's
  (:func:`slicreg_lite.methods.compare_alignments`);
- ``training``: the training time of every shipped network (from its checkpoint).

``tests/test_readme.py`` checks that the README says exactly this, so it cannot go stale.

Usage::

    make demo   # writes results/lite/results.json
    python tools/readme_results.py results/lite/results.json
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


def blocks(content: dict) -> dict:
    return {"results": results_block(content), "alignments": alignments_block(),
            "training": training_block()}


def marked(name: str) -> re.Pattern:
    """The README's block ``name``: between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)\n?(<!-- {name}:end -->)", re.DOTALL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a lite run's results.json")
    args = parser.parse_args()
    content = json.loads(args.results.read_text())
    if content.get("preset") != "lite" or content.get("data") != "phantom":
        raise SystemExit(f"{args.results} is not a lite run on the phantom")
    STORED.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.results, STORED)
    text = README.read_text()
    for name, block in blocks(content).items():
        pattern = marked(name)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no block {name!r}")
        text = pattern.sub(lambda match, block=block: f"{match[1]}{block}\n{match[3]}", text)
    README.write_text(text)
    print(f"stored {STORED.relative_to(ROOT)} and wrote the README's blocks")


if __name__ == "__main__":
    main()
