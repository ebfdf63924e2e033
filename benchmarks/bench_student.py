"""How close the student (Slic-Reg) comes to its teacher (deeds-lite), on subjects it has
never seen.

Prints the avg(4) Dice of the teacher and of Slic-Reg (the shipped lite DeepLab; the
paper's alignment, and this toolkit's centre fit) on

- the 9 test subjects of the cohort (registered to template #38, as in ``make demo``), and
- the same subject numbers drawn from *another cohort seed*: new random anatomy, pose and
  deformation, never seen by the network, registered to the same template,

and the ratio student / teacher for each. Target: Slic-Reg's avg(4) at least 0.9 x the
teacher's on both (stretch 0.95); folding below 1%. The second cohort seed is a held-out
check beyond the validation subjects the settings were chosen on.

It also prints the paper's comparison on both: Slic-Reg (paper) minus PDD-Net (two warps,
trained without labels, the shipped lite network), per subject, with its mean, standard
deviation and 95% interval.

Usage: ``python benchmarks/bench_student.py [--seed 7] [--preset lite]``
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from scipy.stats import t as student_t

from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.labels import BTCV_LABELS
from slicreg_lite.core.metrics import (
    score_registration,
)
from slicreg_lite.methods import SlicReg, Teacher
from slicreg_lite.pipeline import load_method, stages

TARGET, STRETCH = 0.9, 0.95


def measure(methods: dict, moving_subjects: dict, template) -> dict:
    """avg(4) Dice (%) and folding (%) of every method on every subject."""
    scores = {name: {"dice": [], "folding": []} for name in methods}
    for subject in moving_subjects.values():
        for name, method in methods.items():
            registered = method.register(subject)
            measured = score_registration(registered.warped_labels, template.labels,
                                          registered.displacement, label_names=BTCV_LABELS,
                                          hd95=False)
            scores[name]["dice"].append(100 * measured.summary["avg(4)"])
            scores[name]["folding"].append(measured.jacobian["percent_folding"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="the other cohort's seed")
    parser.add_argument("--preset", default="lite")
    args = parser.parse_args()
    cfg = get_config(args.preset)
    run = RunSettings(progress=False)
    data = open_source("phantom", cfg)
    ids = data.split.evaluation_ids
    subjects = stages.cohort(cfg, data, (*ids, data.split.template_id), run=run)
    template = subjects[data.split.template_id]
    paper = load_method(cfg, data, "slicreg", run=run)
    methods = {"teacher": Teacher(template.image, cfg), "Slic-Reg (paper)": paper,
               "+ centre fit (this toolkit)": SlicReg(paper.template_image, paper.layers,
                                                      paper.model, cfg,
                                                      alignment="centre-fit"),
               "PDD-Net, two warps": load_method(cfg, data, "pdd", run=run)}
    other = dataclasses.replace(cfg.phantom, seed=args.seed)
    cohorts = {"test subjects": {i: subjects[i] for i in ids},
               f"cohort seed {args.seed}": {i: generate_subject(i, other, cfg.grid)
                                            for i in ids}}
    students = [name for name in methods if name not in ("teacher", "PDD-Net, two warps")]
    print(f"| {args.preset}, {len(ids)} subjects -> template #{data.split.template_id} "
          f"| teacher avg(4) | " + " | ".join(f"{name}: avg(4), folding %, ratio"
                                              for name in students) + " |")
    print("|---|---|" + "---|" * len(students))
    ratios = {name: [] for name in students}
    comparisons = []
    for name, moving in cohorts.items():
        scores = measure(methods, moving, template)
        comparisons.append((name, np.array(scores["Slic-Reg (paper)"]["dice"])
                            - np.array(scores["PDD-Net, two warps"]["dice"]),
                            np.mean(scores["PDD-Net, two warps"]["dice"])))
        teacher = np.mean(scores["teacher"]["dice"])
        cells = []
        for student in students:
            dice = np.mean(scores[student]["dice"])
            ratios[student].append(dice / teacher)
            cells.append(f"{dice:.1f}, {np.mean(scores[student]['folding']):.2f}, "
                         f"{dice / teacher:.2f}")
        print(f"| {name} | {teacher:.1f} | " + " | ".join(cells) + " |")
    for student, values in ratios.items():
        verdict = "met" if min(values) >= TARGET else "missed"
        print(f"{student}: target ratio >= {TARGET} on both (stretch {STRETCH}): {verdict}")
    for name, differences, pdd in comparisons:
        mean, std = differences.mean(), differences.std(ddof=1)
        half = student_t.ppf(0.975, len(differences) - 1) * std / np.sqrt(len(differences))
        print(f"{name}: Slic-Reg (paper) - PDD-Net (two warps, {pdd:.1f}) = {mean:+.1f} +- "
              f"{std:.1f} avg(4) points per subject, 95% interval {mean - half:+.1f} to "
              f"{mean + half:+.1f}; Slic-Reg ahead on {(differences > 0).sum()} of "
              f"{len(differences)}")


if __name__ == "__main__":
    main()
