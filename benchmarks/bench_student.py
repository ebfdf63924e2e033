"""How close the student (Slic-Reg) comes to its teacher (deeds-lite), on subjects it has
never seen.

Prints the avg(4) Dice of the teacher and of Slic-Reg (the shipped lite DeepLab) on

- the 9 test subjects of the cohort (registered to template #38, as in ``make demo``), and
- the same subject numbers drawn from *another cohort seed*: new random anatomy, pose and
  deformation, never seen by the network, registered to the same template,

and the ratio student / teacher for each. Target: Slic-Reg's avg(4) at least 0.9 x the
teacher's on both (stretch 0.95); folding below 1%.

Usage: ``python benchmarks/bench_student.py [--seed 7] [--preset lite]``
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from slicreg_lite import stages
from slicreg_lite.config import LARGE_ORGANS, RunSettings, get_config
from slicreg_lite.metrics import average_dice, dice_per_label, jacobian_stats
from slicreg_lite.phantom import generate_subject
from slicreg_lite.registration import SlicReg, Teacher
from slicreg_lite.sources import open_source

TARGET, STRETCH = 0.9, 0.95


def measure(methods: dict, moving_subjects: dict, template) -> dict:
    """avg(4) Dice (%) and folding (%) of every method on every subject."""
    scores = {name: {"dice": [], "folding": []} for name in methods}
    for subject in moving_subjects.values():
        for name, method in methods.items():
            registered = method.register(subject)
            dice = dice_per_label(registered.warped_labels, template.labels)
            scores[name]["dice"].append(100 * average_dice(dice, LARGE_ORGANS))
            scores[name]["folding"].append(
                jacobian_stats(registered.displacement)["percent_folding"])
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
    methods = {"teacher": Teacher(template.image, cfg),
               "Slic-Reg": SlicReg.load(cfg, data, run=run)}
    other = dataclasses.replace(cfg.phantom, seed=args.seed)
    cohorts = {"test subjects": {i: subjects[i] for i in ids},
               f"cohort seed {args.seed}": {i: generate_subject(i, other, cfg.grid)
                                            for i in ids}}
    print(f"| {args.preset}, {len(ids)} subjects -> template #{data.split.template_id} "
          f"| teacher avg(4) | Slic-Reg avg(4) | Slic-Reg folding % | ratio |")
    print("|---|---|---|---|---|")
    ratios = []
    for name, moving in cohorts.items():
        scores = measure(methods, moving, template)
        teacher, student = (np.mean(scores[m]["dice"]) for m in ("teacher", "Slic-Reg"))
        ratios.append(student / teacher)
        print(f"| {name} | {teacher:.1f} | {student:.1f} | "
              f"{np.mean(scores['Slic-Reg']['folding']):.2f} | {ratios[-1]:.2f} |")
    verdict = "met" if min(ratios) >= TARGET else "missed"
    print(f"target: ratio >= {TARGET} on both (stretch {STRETCH}): {verdict}")


if __name__ == "__main__":
    main()
