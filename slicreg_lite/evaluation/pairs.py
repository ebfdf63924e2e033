"""An optional protocol beside the paper's: pairs of scans of which neither is the template.

The paper registers every test scan to one template (:func:`~slicreg_lite.evaluation.
evaluate.evaluate`). Learn2Reg, and most users, register arbitrary pairs of patients.
:func:`evaluate_pairs` registers every pair among some scans (``pairs="all"``: each
unordered pair once, the earlier scan fixed, as Learn2Reg's AbdomenCTCT validation pairs)
or a list of ``(fixed, moving)`` pairs, and scores each on the *fixed* scan's labels: Dice,
HD95, the field's smoothness and folding, the time, and on the phantom the true
correspondence (TRE and EPE) of that pair.

Slic-Reg takes a pair by one of two routes (:data:`~slicreg_lite.methods.PAIR_ROUTES`):
``"direct"``, the fixed scan's predicted supervoxels aligned with the moving scan's, or
``"composed"``, fixed -> template -> moving through the inverse of one field. The paper
does not register pairs; each alignment's route was chosen on pairs of validation
subjects (``benchmarks/bench_pairs.py``), and its row names it.
"""

from __future__ import annotations

from itertools import combinations

from ..cohort.phantom import ground_truth
from ..cohort.sources import open_source
from ..core.config import Config, RunSettings
from ..core.dice_table import DiceTable
from ..methods import SlicReg, Teacher, alignment_settings, method_named
from ..pipeline import stages
from ..pipeline.load import load_method
from ..supervoxels.layers import body_mask
from .evaluate import Evaluation

#: The rows of the pairwise protocol: no registration, the teacher on each pair, the
#: regression baseline and Slic-Reg's two alignments (each by its chosen route).
PAIR_METHODS = ("initial", "teacher", "regression", "slicreg", "slicreg-fit")


def scan_pairs(ids, pairs="all") -> list[tuple]:
    """The ``(fixed, moving)`` pairs of a protocol.

    Parameters
    ----------
    ids : sequence
        The scans (e.g. the test subjects), in order.
    pairs : "all" or iterable of (fixed, moving)
        ``"all"``: every unordered pair once, the earlier scan of ``ids`` fixed
        (``n (n - 1) / 2`` pairs).

    Raises
    ------
    ValueError
        For a pair that is not two different scans of ``ids``.

    Examples
    --------
    >>> scan_pairs([1, 4, 7])
    [(1, 4), (1, 7), (4, 7)]
    """
    ids = list(ids)
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs must be 'all' or a list of (fixed, moving) pairs; got "
                             f"{pairs!r}")
        return list(combinations(ids, 2))
    chosen = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(ids):
            raise ValueError(f"each pair must be (fixed, moving), two different scans of "
                             f"{ids}; got {tuple(pair)!r}")
        chosen.append(tuple(pair))
    if not chosen:
        raise ValueError("pairs: expected at least one (fixed, moving) pair; got none")
    return chosen


def pair_name(fixed, moving) -> str:
    """How a pair is named in the table and in ``results.json``: ``"moving->fixed"``."""
    return f"{moving}->{fixed}"


def route_label(method, cfg: Config, route: str | None = None) -> str:
    """A row of the pairwise table: the method's label, and Slic-Reg's route."""
    if method.registration is not SlicReg:
        return method.label
    route = route or alignment_settings(cfg, method.options["alignment"]).pair_route
    return f"{method.label}, {route} route"


def evaluate_pairs(cfg: Config, data="phantom", pairs="all", methods=PAIR_METHODS, *,
                   ids=None, routes=None, run: RunSettings | None = None) -> Evaluation:
    """Register pairs of scans with each method and score them on the fixed scans.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        The cohort whose template and networks the methods use.
    pairs : "all" or iterable of (fixed, moving)
        See :func:`scan_pairs`.
    methods : sequence of str
        Names of :data:`~slicreg_lite.methods.METHODS` that register any pair
        (:attr:`~slicreg_lite.methods.Method.any_pair`), and ``"initial"``.
    ids : sequence, optional
        The scans the pairs are drawn from; default: the test subjects
        (``data.split.evaluation_ids``). ``benchmarks/bench_pairs.py`` passes the
        validation subjects.
    routes : sequence of str, optional
        Slic-Reg's routes to measure, a row each (default: each alignment's chosen one).
    run : RunSettings, optional

    Returns
    -------
    Evaluation
        Its ``subject_ids`` are the pairs' names (:func:`pair_name`); each score is on the
        fixed scan's grid and labels.
    """
    from tqdm.auto import tqdm

    data = open_source(data, cfg)
    run = RunSettings() if run is None else run
    ids = tuple(data.split.evaluation_ids if ids is None else ids)
    chosen = scan_pairs(ids, pairs)
    rows = [method_named(m) for m in methods]
    for method in rows:
        if method.measurement != "initial" and not method.any_pair:
            raise ValueError(f"methods: {method.name!r} registers to the template only; "
                             f"expected methods of any pair ({', '.join(PAIR_METHODS)})")
    scans = stages.cohort(cfg, data, sorted({i for pair in chosen for i in pair}, key=ids.index),
                          run=run)
    first = scans[chosen[0][0]]
    result = Evaluation(DiceTable(label_names=stages.label_set(data, first)),
                        subject_ids=tuple(pair_name(f, m) for f, m in chosen),
                        template_affine=first.affine)
    truth = {}
    if data.kind == "phantom":  # the phantom's exact correspondence of every pair
        truth = {(f, m): ground_truth(f, m, data.phantom, data.grid) for f, m in chosen}
    result.landmarks = {pair_name(*p): t.landmark_names for p, t in truth.items()}
    bodies = {f: body_mask(scans[f].image) for f, _ in chosen}

    for method in rows:
        if method.measurement == "initial":
            for fixed, moving in chosen:
                result.add(method.label, pair_name(fixed, moving), scans[moving].labels,
                           scans[fixed].labels, body=bodies[fixed],
                           truth=truth.get((fixed, moving)))
            continue
        registration = None if method.registration is Teacher else \
            load_method(cfg, data, method, run=run)
        variants = [None] if method.registration is not SlicReg else (routes or [None])
        for route in variants:
            label = route_label(method, cfg, route)
            options = {} if route is None else {"route": route}
            for fixed, moving in tqdm(chosen, desc=label, disable=not run.progress):
                if method.registration is Teacher:  # deeds-lite takes any fixed scan
                    registered = Teacher(scans[fixed].image, cfg).register(scans[moving])
                else:
                    registered = registration.register(scans[moving], fixed=scans[fixed],
                                                       **options)
                result.add(label, pair_name(fixed, moving), registered.warped_labels,
                           scans[fixed].labels, registered.displacement, bodies[fixed],
                           inference=registered.timings["inference"],
                           alignment=registered.timings["alignment"],
                           truth=truth.get((fixed, moving)))
    return result
