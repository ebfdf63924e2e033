"""Slic-Reg on pairs of which neither scan is the template: which route, chosen on pairs
of validation subjects.

The paper registers every scan to one template. A pair (F, M) of other scans can go two
ways (:meth:`slicreg_lite.methods.SlicReg.register` with ``fixed=``):

- direct: the fixed scan's predicted supervoxels take the template's place, and the
  alignment matches the moving scan's with them;
- composed: both scans are registered to the template, and F -> template -> M goes
  through the inverse of F's field.

This benchmark registers every pair among the validation subjects
(``cfg.split.validation_ids``: neither trained on nor in the table) both ways, for the
paper's alignment and for the centre fit (ours), and prints Dice, TRE, EPE and seconds.
The rule of ``bench_settings.py``: the route with the higher mean summary Dice (avg(4))
is chosen if its mean folding stays within ``metrics.FOLDING_LIMIT``; the composed route
must beat the direct one (the reference: one alignment instead of two, no inverse) by more
than 0.05 points. It says whether the preset holds each choice (``pair_route``). With
``--table`` it then scores the test pairs once, with the chosen routes, beside the
teacher, the regression baseline and no registration.

Usage: ``python benchmarks/bench_pairs.py [--preset lite] [--table]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.metrics import FOLDING_LIMIT
from slicreg_lite.evaluation.pairs import evaluate_pairs, route_label
from slicreg_lite.methods import PAIR_ROUTES, alignment_settings, method_named

#: The reference route, and how much more (Dice points) the other must score.
REFERENCE, MARGIN = "direct", 0.05


def choose(evaluation, method, cfg) -> str:
    """The route a Slic-Reg alignment takes, by the rule of the module docstring."""
    column = evaluation.summary_column
    scores = {}
    for route in PAIR_ROUTES:
        label = route_label(method, cfg, route)
        folding = evaluation.extra(label)["% J<=0"]
        if np.isnan(folding) or folding <= FOLDING_LIMIT:
            scores[route] = evaluation.dice.column(label, column)[0]
    best = max(scores, key=scores.get)
    if best != REFERENCE and REFERENCE in scores and \
            scores[best] <= scores[REFERENCE] + MARGIN:
        best = REFERENCE
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--table", action="store_true",
                        help="then score the test pairs once, with the chosen routes")
    args = parser.parse_args()
    cfg = get_config(args.preset)
    run = RunSettings(progress=False)
    data = open_source("phantom", cfg)
    ids = data.split.validation_ids
    start = time.perf_counter()
    validation = evaluate_pairs(cfg, data, "all", ("initial", "slicreg", "slicreg-fit"),
                                ids=ids, routes=PAIR_ROUTES, run=run)
    n_pairs = len(validation.subject_ids)
    print(f"Validation: {n_pairs} pairs among subjects {list(ids)} (preset {cfg.name!r}), "
          f"{time.perf_counter() - start:.0f} s\n")
    print(validation.to_markdown())
    held = True
    for name in ("slicreg", "slicreg-fit"):
        method = method_named(name)
        chosen = choose(validation, method, cfg)
        preset = alignment_settings(cfg, method.options["alignment"]).pair_route
        held &= chosen == preset
        print(f"\n{method.label}: chosen route {chosen!r}; the preset has {preset!r} "
              f"({'holds' if chosen == preset else 'DIFFERS'})")
    if args.table:
        if not held:
            raise SystemExit("the preset does not hold the chosen routes: no test table")
        start = time.perf_counter()
        test = evaluate_pairs(cfg, data, "all", run=run)
        print(f"\nTest: {len(test.subject_ids)} pairs among the test subjects "
              f"{list(data.split.evaluation_ids)}, {time.perf_counter() - start:.0f} s\n")
        print(test.to_markdown())


if __name__ == "__main__":
    main()
