""":class:`DiceTable`: Dice scores of several methods on several subjects, summarised as the
paper's table (mean +- std per organ, avg(4), avg(13)) in percent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .checks import check_subject_id
from .labels import (
    _SHORT_NAMES,
    BTCV_LABELS,
    LARGE_ORGANS,
    MAX_LABEL,
    PAPER_COLUMNS,
    is_btcv,
)
from .metrics import _check_label_numbers, _row_means, _to_numpy


def _mean_std(values: np.ndarray, ddof: int) -> tuple[float, float]:
    """Mean and standard deviation of the finite values (NaN, NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    std = float(np.std(finite, ddof=ddof)) if finite.size > ddof else math.nan
    return float(np.mean(finite)), std


def _format_percent(mean: float, std: float) -> str:
    """``"18.0+-17.7"`` as in the paper's table; ``"n/a"`` when nothing was measured."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.1f}+-{std:.1f}" if not math.isnan(std) else f"{mean:.1f}"


# ------------------------------------------------------------------------------ the table
@dataclass
class DiceTable:
    """Dice scores of several methods on several subjects, summarised like the paper.

    Add one row of scores (fractions, NaN for absent labels), one per label of the table's
    label set, per method and subject with :meth:`add`; :meth:`summary`,
    :meth:`to_markdown` and :meth:`per_label_markdown` give mean +- standard deviation
    over subjects, in percent.

    Columns are organ names and averages. For the 13 BTCV organs (the default label set)
    the table has the paper's columns: spleen, ``"r.kidney"``, ``"l.kidney"``, liver,
    ``"avg(4)"`` (the four large organs) and ``"avg(13)"``; every organ name works as a
    column too. Any other label set (e.g. from a Learn2Reg ``dataset.json``) gets one
    column per label under its own name and ``"avg(n)"`` over its ``n`` labels.

    Parameters
    ----------
    ddof : int
        Delta degrees of freedom of the standard deviation. The default 1 (sample standard
        deviation) is the paper's; 0 gives the population standard deviation.
    average_mode : {"pooled", "per_subject"}
        How the average columns are computed. ``"pooled"`` (default, the paper's):
        mean +- std of all finite (subject, label) scores together, so the spread between
        organs counts too. ``"per_subject"``: each subject's average over the labels first
        (NaN labels left out), then mean +- std of these averages over subjects.
    label_names : dict of int -> str
        The label set: label number -> name, in the order of the scores. The 13 BTCV
        organs by default.

    Notes
    -----
    NaN scores (absent labels) are ignored column by column. The defaults follow the
    paper's table: recomputed from its per-organ mean +- std (9 subjects), pooled scores
    with ``ddof=1`` give the published avg(4) std of all six rows to 0.1 (e.g. Slic-Reg
    59.1+-14.6). Per-subject averages cannot: their std is at most the mean of the four
    organ stds (10.8 for Slic-Reg).

    Examples
    --------
    >>> import numpy as np
    >>> table = DiceTable(ddof=0, average_mode="per_subject")
    >>> table.add("initial", 1, np.full(13, 0.2))
    >>> table.add("initial", 4, np.full(13, 0.4))
    >>> table.summary("initial")["avg(4)"]
    (30.0, 10.0)
    >>> print(table.to_markdown(columns=("spleen", "avg(13)")))
    | method | spleen | avg(13) |
    |---|---|---|
    | initial | 30.0+-10.0 | 30.0+-10.0 |
    >>> other = DiceTable(label_names={1: "liver", 2: "tumour"})
    >>> other.add("initial", "patient_a", [0.8, 0.1])
    >>> other.columns
    ('liver', 'tumour', 'avg(2)')
    """

    ddof: int = 1
    average_mode: str = "pooled"
    label_names: dict = field(default_factory=lambda: dict(BTCV_LABELS))
    # method -> subject id -> scores; dicts keep the order in which methods were added.
    _rows: dict[str, dict] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1; got {self.ddof!r}")
        if self.average_mode not in ("per_subject", "pooled"):
            raise ValueError(f"average_mode must be 'per_subject' or 'pooled'; "
                             f"got {self.average_mode!r}")
        if not isinstance(self.label_names, dict) or not self.label_names:
            raise ValueError(f"label_names must be a non-empty dict of label number -> name; "
                             f"got {self.label_names!r}")
        numbers = _check_label_numbers(self.label_names, "label_names", highest=MAX_LABEL)
        self.label_names = {n: str(self.label_names[n]) for n in sorted(numbers)}

    # ----------------------------------------------------------------- the label set
    @property
    def labels(self) -> tuple[int, ...]:
        """The label numbers, in the order of the scores."""
        return tuple(self.label_names)

    @property
    def is_btcv(self) -> bool:
        """Whether the label set is the 13 BTCV organs (the paper's columns apply)."""
        return is_btcv(self.label_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The default columns: the paper's six for BTCV, else every label and the mean."""
        if self.is_btcv:
            return PAPER_COLUMNS
        return (*self.label_names.values(), f"avg({len(self.label_names)})")

    def _averages(self) -> dict[str, tuple[int, ...]]:
        """Average columns -> the label numbers they average."""
        averages = {f"avg({len(self.labels)})": self.labels}
        if self.is_btcv:
            averages["avg(4)"] = LARGE_ORGANS
        return averages

    def _column_index(self, column: str) -> int:
        """Position in a row of scores of an organ column (full or short paper name)."""
        names = list(self.label_names.values())
        if self.is_btcv and column in _SHORT_NAMES:
            return self.labels.index(_SHORT_NAMES[column])
        if column in names:
            return names.index(column)
        valid = [*names, *(_SHORT_NAMES if self.is_btcv else ()), *self._averages()]
        raise ValueError(f"unknown column {column!r}; expected one of {valid}")

    # ---------------------------------------------------------------------- filling in
    def add(self, method: str, subject_id, scores) -> None:
        """Store the Dice scores of one subject registered with one method.

        Parameters
        ----------
        method : str
            Name of the method, e.g. ``"initial, not registered"``.
        subject_id : int or str
            The subject's id; each (method, subject) pair may be added once.
        scores : array_like, shape (n_labels,)
            One fraction in ``0..1`` per label of the label set (as returned by
            :func:`dice_per_label` with ``labels=table.labels``), NaN for absent labels.

        Raises
        ------
        ValueError
            If the scores have the wrong shape or values outside ``0..1``, or the subject
            was already added for this method.
        """
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string; got {method!r}")
        row = _to_numpy(scores).astype(np.float64)
        if row.shape != (len(self.labels),):
            raise ValueError(f"scores must have shape ({len(self.labels)},), one Dice per "
                             f"label of {list(self.label_names.values())}; got {row.shape}")
        finite = row[~np.isnan(row)]
        if ((finite < 0) | (finite > 1)).any():
            raise ValueError(f"scores must be fractions in 0..1 (or NaN); got values in "
                             f"{finite.min():g}..{finite.max():g} (percent by mistake?)")
        subjects = self._rows.setdefault(method, {})
        subject_id = check_subject_id(subject_id)
        if subject_id in subjects:
            raise ValueError(f"subject_id {subject_id!r} was already added for method "
                             f"{method!r}")
        subjects[subject_id] = row.copy()

    # ------------------------------------------------------------------------- reading
    @property
    def methods(self) -> tuple[str, ...]:
        """The methods, in the order they were first added."""
        return tuple(self._rows)

    def subject_ids(self, method: str) -> tuple:
        """The subjects of one method, in the order they were added."""
        return tuple(self._subjects(method))

    def scores(self, method: str) -> np.ndarray:
        """All scores of one method: shape ``(n_subjects, n_labels)``, NaN = absent."""
        return np.stack(list(self._subjects(method).values()))

    def _subjects(self, method: str) -> dict:
        if method not in self._rows:
            raise ValueError(f"unknown method {method!r}; the table has {list(self._rows)}")
        return self._rows[method]

    def column(self, method: str, column: str) -> tuple[float, float]:
        """Mean and standard deviation of one column, in percent.

        Parameters
        ----------
        method : str
        column : str
            An organ name (``"spleen"``, ``"r.kidney"``, ``"right kidney"``, ...) or an
            average (``"avg(4)"``, ``"avg(13)"`` for BTCV; ``"avg(n)"`` otherwise).

        Returns
        -------
        (float, float)
            ``(mean, std)`` in percent over subjects; NaN when no subject has the label.
        """
        scores = self.scores(method) * 100.0
        averages = self._averages()
        if column in averages:
            index = [self.labels.index(label) for label in averages[column]]
            if self.average_mode == "pooled":
                return _mean_std(scores[:, index].ravel(), self.ddof)
            return _mean_std(_row_means(scores[:, index]), self.ddof)
        return _mean_std(scores[:, self._column_index(column)], self.ddof)

    def per_subject(self, method: str, column: str) -> dict:
        """One column per subject, in percent: ``{subject_id: value}`` (an average column
        is the mean over that subject's labels; NaN when it has none of them)."""
        scores = self.scores(method) * 100.0
        averages = self._averages()
        if column in averages:
            index = [self.labels.index(label) for label in averages[column]]
            values = _row_means(scores[:, index])
        else:
            values = scores[:, self._column_index(column)]
        return dict(zip(self.subject_ids(method), values.tolist()))

    def summary(self, method: str, columns: Sequence[str] | None = None
                ) -> dict[str, tuple[float, float]]:
        """Mean +- std over subjects, in percent, for some columns of one method.

        Parameters
        ----------
        method : str
        columns : sequence of str, optional
            :attr:`columns` by default (the paper's six for BTCV);
            :data:`slicreg_lite.core.labels.LABEL_NAMES` adds every organ.

        Returns
        -------
        dict
            ``column -> (mean, std)`` in percent, in the order of ``columns``.
        """
        columns = self.columns if columns is None else columns
        return {column: self.column(method, column) for column in columns}

    def per_label_summary(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over subjects of each label, in percent (NaN = absent)."""
        scores = self.scores(method) * 100.0
        pairs = [_mean_std(scores[:, i], self.ddof) for i in range(len(self.labels))]
        means, stds = zip(*pairs)
        return np.array(means), np.array(stds)

    # -------------------------------------------------------------------------- output
    def to_markdown(self, columns: Sequence[str] | None = None,
                    methods: Sequence[str] | None = None) -> str:
        """The table in Markdown, one row per method, like the paper's table.

        Cells read ``mean+-std`` in percent with one decimal (``"n/a"`` when no subject
        has the label).

        Parameters
        ----------
        columns : sequence of str, optional
            :attr:`columns` by default (the paper's six for BTCV).
        methods : sequence of str, optional
            Which methods, in which order; all, in the order added, by default.
        """
        columns = self.columns if columns is None else tuple(columns)
        averages = self._averages()
        for column in columns:  # fail early, before any row is built
            if column not in averages:
                self._column_index(column)
        lines = ["| method | " + " | ".join(columns) + " |",
                 "|" + "---|" * (len(columns) + 1)]
        for method in self.methods if methods is None else methods:
            cells = [_format_percent(*self.column(method, column)) for column in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def per_label_markdown(self, method: str) -> str:
        """A Markdown table of one method: label number, organ, Dice mean+-std (%)."""
        means, stds = self.per_label_summary(method)
        lines = [f"| label | organ | Dice % ({method}) |", "|---|---|---|"]
        for (number, name), mean, std in zip(self.label_names.items(), means, stds):
            lines.append(f"| {number} | {name} | {_format_percent(mean, std)} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Everything as plain JSON-ready types (NaN becomes ``None``).

        ``{"ddof", "average_mode", "labels": {number: name}, "methods": {method:
        {"scores": {subject_id: [one per label]}, "summary": {column: [mean, std]}}}}``;
        label numbers and subject ids become strings, as JSON keys must be.
        :meth:`from_dict` reads it back.
        """
        def clean(values) -> list:
            return [None if math.isnan(v) else float(v) for v in values]

        methods = {}
        for method, subjects in self._rows.items():
            methods[method] = {
                "scores": {str(sid): clean(row) for sid, row in subjects.items()},
                "summary": {col: clean(ms) for col, ms in self.summary(method).items()},
            }
        return {"ddof": self.ddof, "average_mode": self.average_mode,
                "labels": {str(n): name for n, name in self.label_names.items()},
                "methods": methods}

    @classmethod
    def from_dict(cls, data: dict) -> "DiceTable":
        """A table from the output of :meth:`to_dict` (the summaries are recomputed).

        Subject ids that are written as whole numbers come back as ``int``.
        """
        labels = data.get("labels")
        table = cls(ddof=data.get("ddof", 0),
                    average_mode=data.get("average_mode", "per_subject"),
                    label_names=({int(n): name for n, name in labels.items()} if labels
                                 else dict(BTCV_LABELS)))
        for method, content in data["methods"].items():
            for sid, row in content["scores"].items():
                table.add(method, int(sid) if sid.isdigit() else sid,
                          [math.nan if v is None else v for v in row])
        return table


