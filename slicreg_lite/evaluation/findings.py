"""The paper's comparisons, measured on an evaluation, one sentence each (notebook 05), and
what this toolkit's extension adds, said to be ours."""

from __future__ import annotations

import numpy as np

from ..core.labels import LARGE_ORGANS, PAPER_TABLE
from ..methods import (
    CENTRE_FIT,
    INITIAL,
    KEYPOINTS,
    ORACLE,
    ORACLE_FIT,
    PDD_LABELS,
    PDD_NET,
    PDD_ONE_WARP,
    SLIC_REG,
    TEACHER,
    UNET_SLIC,
)
from .evaluate import Evaluation


def findings(evaluation: Evaluation) -> list[str]:
    """The paper's comparisons, measured on this evaluation (one sentence each), and what
    this toolkit's extension adds (said to be ours).

    Each compares the summary Dice (avg(4) for the BTCV organs, else the mean over all
    labels; mean over all subject-organ pairs, in %) or time per registration between two
    rows; rows that were not evaluated or not scored are skipped.
    """
    table, column = evaluation.dice, evaluation.summary_column
    rows = set(table.methods)
    average = {m: table.column(m, column)[0] for m in rows}
    lines = []

    def both(a, b):
        return a in rows and b in rows

    def paired(a, b) -> str:
        """a - b: the difference of the means, and its spread over the shared subjects."""
        first, second = (table.per_subject(m, column) for m in (a, b))
        shared = [i for i in first if i in second]
        differences = np.array([first[i] - second[i] for i in shared])
        differences = differences[np.isfinite(differences)]
        text = f"{average[a] - average[b]:+.1f} points"
        if len(differences) < 2:
            return text
        # a paired comparison: is the mean difference further from 0 than its 95% interval?
        from scipy.stats import t

        mean, std = differences.mean(), differences.std(ddof=1)
        half_width = t.ppf(0.975, len(differences) - 1) * std / np.sqrt(len(differences))
        verdict = "outside" if abs(mean) > half_width else "inside"
        return (f"{text}; per subject {mean:+.1f} +- {std:.1f}, ahead on "
                f"{(differences > 0).sum()} of {len(differences)}: {verdict} the spread (95% "
                f"interval {mean - half_width:+.1f} to {mean + half_width:+.1f})")

    def compared(a, b, what: str, *, b_note: str = "", tail: str = "") -> str:
        """One finding: "what (a vs b): the paired difference", a and b rows' averages."""
        return (f"{what} ({average[a]:.1f} vs {average[b]:.1f}{b_note}): "
                f"{paired(a, b)}{tail}.")

    if both(SLIC_REG, TEACHER):
        lines.append(f"Slic-Reg (paper) reaches "
                     f"{100 * average[SLIC_REG] / average[TEACHER]:.0f}% of the teacher's "
                     f"{column} ({average[SLIC_REG]:.1f} vs {average[TEACHER]:.1f}).")
    if both(CENTRE_FIT, SLIC_REG):
        share = (f", {100 * average[CENTRE_FIT] / average[TEACHER]:.0f}% of the teacher's"
                 if TEACHER in rows else "")
        lines.append(f"This toolkit's centre fit (an extension, not in the paper) takes the "
                     f"same network to {average[CENTRE_FIT]:.1f}{share}: "
                     f"{paired(CENTRE_FIT, SLIC_REG)} against the paper's alignment.")
    if all(m in rows for m in (TEACHER, KEYPOINTS, ORACLE, SLIC_REG)):
        lines.append(f"Where the {average[TEACHER] - average[SLIC_REG]:.1f} points between "
                     f"the teacher and Slic-Reg (paper) go: "
                     f"{average[TEACHER] - average[KEYPOINTS]:.1f} to the keypoint + spline "
                     f"representation (the teacher's own field through it: "
                     f"{average[KEYPOINTS]:.1f}), "
                     f"{average[KEYPOINTS] - average[ORACLE]:.1f} to aligning supervoxels "
                     f"with the paper's Adam instead of knowing the keypoints' motion (Adam on "
                     f"the teacher's supervoxels: {average[ORACLE]:.1f}), "
                     f"{average[ORACLE] - average[SLIC_REG]:.1f} to the network's mistakes.")
    if all(m in rows for m in (ORACLE_FIT, CENTRE_FIT)):
        lines.append(f"With the centre fit, a perfect network (the teacher's supervoxels) "
                     f"reaches {average[ORACLE_FIT]:.1f}, and the network's mistakes cost "
                     f"{average[ORACLE_FIT] - average[CENTRE_FIT]:.1f} points.")
    registered = set(evaluation.methods)
    if SLIC_REG in registered and TEACHER in registered:
        slic, teacher = evaluation.extra(SLIC_REG), evaluation.extra(TEACHER)
        lines.append(f"The paper's alignment step takes {slic['alignment s']:.2f} s per "
                     f"registration (+ {slic['inference s']:.2f} s of network inference), "
                     f"{teacher['alignment s'] / slic['alignment s']:.0f}x faster than the "
                     f"teacher's {teacher['alignment s']:.1f} s.")
    for backbone, slic in (("3D DeepLab", SLIC_REG), ("3D UNet", UNET_SLIC)):
        regress = f"{backbone} + regression + RW"
        if both(slic, regress):
            lines.append(compared(slic, regress, f"{backbone}: supervoxel classification + "
                                  "the paper's Adam vs regression + RW"))
    if both(SLIC_REG, UNET_SLIC):
        lines.append(f"DeepLab vs UNet (both Slic + the paper's Adam): "
                     f"{paired(SLIC_REG, UNET_SLIC)}.")
    if both(SLIC_REG, PDD_NET):
        paper = {m: PAPER_TABLE[m][4][0] for m in (SLIC_REG, PDD_NET)}
        lines.append(compared(
            SLIC_REG, PDD_NET, "Slic-Reg (paper) vs PDD-Net, two warps, the paper's "
            "comparator (trained on the same scans, without labels)",
            tail=f"; the paper measured {paper[SLIC_REG] - paper[PDD_NET]:+.1f} points on "
                 f"BCV ({paper[SLIC_REG]:.1f} vs {paper[PDD_NET]:.1f} avg(4))"))
    if both(PDD_NET, PDD_ONE_WARP):
        lines.append(compared(PDD_NET, PDD_ONE_WARP, "PDD-Net's second warp",
                              b_note=" with one"))
    if both(PDD_LABELS, PDD_NET):
        lines.append(compared(PDD_LABELS, PDD_NET, "What the training scans' labels buy "
                              "PDD-Net (the MICCAI paper trains with them; Slic-Reg never "
                              "sees a label)", b_note=" without"))
    names = {SLIC_REG: "the paper's alignment", CENTRE_FIT: "the centre fit"}
    truth_rows = [m for m in names if m in registered]
    if evaluation.has_truth and truth_rows and all(m in registered
                                                   for m in (INITIAL, TEACHER)):
        extra = {m: evaluation.extra(m) for m in (INITIAL, TEACHER, *truth_rows)}

        def each(column, unit=" mm"):
            return " and ".join(f"{extra[m][column]:.1f}{unit} ({names[m]})"
                                for m in truth_rows)

        lines.append(f"Against the phantom's true correspondence, the landmarks end "
                     f"{each('TRE mm')} from their true positions (teacher "
                     f"{extra[TEACHER]['TRE mm']:.1f} mm, before registration "
                     f"{extra[INITIAL]['TRE mm']:.1f} mm); inside the body the fields are "
                     f"{each('EPE mm')} from the true one on average (teacher "
                     f"{extra[TEACHER]['EPE mm']:.1f} mm).")
    for method, name in ((SLIC_REG, "Slic-Reg (paper)"), (CENTRE_FIT, "With the centre fit, "
                                                          "Slic-Reg")):
        if method in registered:
            folding = evaluation.deformation[method]["percent_folding"]
            lines.append(f"{name} folds {np.mean(folding):.2f}% of the body's voxels on "
                         f"average (at most {np.max(folding):.2f}%).")
    return lines


def typical_subject(evaluation: Evaluation, method: str = SLIC_REG):
    """The subject whose summary Dice under ``method`` is the median one (for figures).

    The first evaluation subject when nothing could be scored.
    """
    table = evaluation.dice
    if not table.methods:
        return evaluation.subject_ids[0]
    if method not in table.methods:
        method = table.methods[-1]
    ids = table.subject_ids(method)
    labels = LARGE_ORGANS if table.is_btcv else table.labels
    scores = table.scores(method)[:, [table.labels.index(label) for label in labels]]
    order = np.argsort(np.nanmean(scores, axis=1))
    return ids[order[len(order) // 2]]
