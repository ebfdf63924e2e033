"""Step 5 (notebook 05): every method of the table on the test scans, and the results.

- :mod:`~slicreg_lite.evaluation.evaluate`: :func:`evaluate` registers every test scan to
  the template with every row of :data:`~slicreg_lite.methods.METHODS` and scores it
  (:func:`~slicreg_lite.core.metrics.score_registration`); :func:`from_json` reads a run
  back;
- :mod:`~slicreg_lite.evaluation.pairs`: :func:`evaluate_pairs`, an optional protocol
  beside the paper's: pairs of scans of which neither is the template;
- :mod:`~slicreg_lite.evaluation.oracles`: the measurement rows that tell where accuracy
  goes between the teacher and Slic-Reg;
- :mod:`~slicreg_lite.evaluation.findings`: the paper's comparisons, in sentences;
- :mod:`~slicreg_lite.evaluation.reports`: ``table.md``, ``results.json``, the figures and
  the fields.
"""

from ..methods import (
    CENTRE_FIT,
    INITIAL,
    KEYPOINTS,
    METHODS,
    ORACLE,
    ORACLE_FIT,
    PDD_LABELS,
    PDD_NET,
    PDD_ONE_WARP,
    SLIC_REG,
    TEACHER,
    UNET_SLIC,
)
from .evaluate import (
    EXTRA_COLUMNS,
    NOT_SCORED,
    RESULTS_SCHEMA,
    TRUTH_COLUMNS,
    TRUTH_NOTE,
    Evaluation,
    evaluate,
    from_json,
)
from .findings import findings, typical_subject
from .pairs import PAIR_METHODS, evaluate_pairs, pair_name, scan_pairs
from .reports import write_results

__all__ = [
    "CENTRE_FIT", "EXTRA_COLUMNS", "Evaluation", "INITIAL", "KEYPOINTS", "METHODS",
    "NOT_SCORED", "ORACLE", "ORACLE_FIT", "PAIR_METHODS", "PDD_LABELS", "PDD_NET",
    "PDD_ONE_WARP", "RESULTS_SCHEMA", "SLIC_REG", "TEACHER", "TRUTH_COLUMNS", "TRUTH_NOTE",
    "UNET_SLIC", "evaluate", "evaluate_pairs", "findings", "from_json", "pair_name",
    "scan_pairs", "typical_subject", "write_results",
]
