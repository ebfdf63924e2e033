"""Steps 4 and 5: every method of the paper's table on the test scans, and the results.

:func:`evaluate` registers each test scan to the template with every method (no
registration, the teacher, Slic-Reg as in the paper and the paper's ablations with DeepLab
and UNet networks, and this toolkit's extension, the centre fit, in a row of its own),
warps the scan's organ labels onto the template and measures Dice, HD95, the smoothness
and folding of the field, and the time. On the phantom, whose true correspondence is
known, it also measures the target registration error at anatomical landmarks and the
endpoint error of the field inside the body. A registration whose field folds or
stretches beyond the limits of :func:`~slicreg_lite.metrics.unreliable_reasons` is
flagged. :func:`findings` turns the table into the paper's comparisons (and says what the
extension adds), :func:`write_results` writes ``table.md``, ``results.json``, the figures
and the displacement fields of Slic-Reg (paper); :func:`from_json` reads ``results.json``
back.

The settings of every method were chosen on the validation subjects
(``benchmarks/bench_settings.py``), never on these test subjects.

Labels are used only here, to measure. Scans without labels are still registered, timed
and their fields written; the table says which rows could not be scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, adamreg
from .config import LARGE_ORGANS, Config, RunSettings
from .files import atomic_write_json, atomic_write_text
from .metrics import DiceTable, dice_per_label
from .sources import DataSource, open_source
from .supervoxels import body_mask

SLIC_REG = "Slic-Reg (paper): 3D DeepLab + Slic + Adam"
CENTRE_FIT = "Slic-Reg + centre fit (this toolkit)"
UNET_SLIC = "3D UNet + Slic + Adam"
TEACHER = "deeds-lite teacher (direct)"
INITIAL = "initial, not registered"
KEYPOINTS = "teacher field at the keypoints + spline"
ORACLE = "oracle: the paper's Adam on the teacher's supervoxels"
ORACLE_FIT = "oracle: the centre fit on the teacher's supervoxels"
#: Every row of the table, and what computes it: ``None`` = no registration,
#: ``"teacher"`` = deeds-lite, ``(backbone, "regression")`` = the regression baseline,
#: ``(backbone, "slic", alignment)`` = Slic-Reg with the paper's alignment (``"paper"``)
#: or this toolkit's extension of it (``"centre-fit"``, a row of its own, not the
#: paper's). The rows named after the paper do what the paper does; the ablations
#: (UNet, regression) use the paper's alignment. Three more rows measure where accuracy
#: goes between the teacher and Slic-Reg: ``"keypoints"`` = the teacher's own field read at
#: the paper alignment's keypoints and rebuilt by the thin-plate spline (what the
#: representation keeps), ``("oracle", alignment)`` = the alignment on the teacher's
#: supervoxels of the scan (what a perfect network would give).
METHODS = {
    INITIAL: None,
    TEACHER: "teacher",
    KEYPOINTS: "keypoints",
    ORACLE: ("oracle", "paper"),
    ORACLE_FIT: ("oracle", "centre-fit"),
    "3D UNet + regression + RW": ("unet", "regression"),
    UNET_SLIC: ("unet", "slic", "paper"),
    "3D DeepLab + regression + RW": ("deeplab", "regression"),
    SLIC_REG: ("deeplab", "slic", "paper"),
    CENTRE_FIT: ("deeplab", "slic", "centre-fit"),
}
#: Columns after the Dice columns. HD95 is averaged over the organs of the summary
#: column (the four large organs for the BTCV labels, else every label).
EXTRA_COLUMNS = ("HD95 mm", "std(log J)", "% J<=0", "inference s", "alignment s")
#: Columns of the ground truth (the phantom only), after HD95: target registration error
#: at the landmarks (mean and 95th percentile over every landmark of every subject) and
#: the mean endpoint error inside the template's body, where the moving scan shows the
#: true partner.
TRUTH_COLUMNS = ("TRE mm", "TRE95 mm", "EPE mm")
#: How ``table.md`` describes those columns.
TRUTH_NOTE = ("TRE (mm, mean and 95th percentile) at the phantom's anatomical landmarks and "
              "EPE (mm, mean endpoint error inside the template's body, where the moving "
              "scan shows the true partner) against its true correspondence; ")
RESULTS_SCHEMA = "slicreg_lite.results/1"
#: What the Dice cells of a row say when there were no labels to score it.
NOT_SCORED = "no labels"


@dataclass
class Evaluation:
    """Every method of the table on the test subjects.

    Attributes
    ----------
    dice : DiceTable
        Dice of each subject's labels warped onto the template, per method (subjects
        without labels, or a template without labels, are left out).
    deformation : dict
        ``method -> {"std_log_jacobian": [...], "percent_folding": [...]}``, one value per
        subject, inside the template's body (empty lists for "initial").
    seconds : dict
        ``method -> {"inference": [...], "alignment": [...]}`` per registration: network
        inference on the moving scan, and everything after it (for the teacher: the whole
        registration, and no inference).
    warped : dict
        ``method -> {subject_id: labels}``: the warped label maps, for figures.
    subject_ids : tuple
    methods : list of str
        Every row, in order, scored or not.
    unscored : dict
        ``method -> [subject ids]`` registered but not scored (no labels).
    fields : dict
        ``subject_id -> (displacement, moving affine)`` of Slic-Reg: the field on the
        template's grid in voxels, and the moving scan's voxel -> world matrix.
    template_affine : numpy.ndarray, shape (4, 4)
        Voxel -> world (mm) of the template's grid, for writing the fields and for the
        voxel size of HD95.
    hd95 : dict
        ``method -> {subject_id: HD95 per label (mm)}``, like the Dice scores.
    correspondence : dict
        ``method -> {subject_id: {"tre": TRE per landmark (mm), "epe": mean endpoint
        error (mm) in the template's body where the moving scan shows the true partner}}``:
        only where the true correspondence is known (the phantom).
    landmarks : dict
        ``subject_id -> [names]`` of the landmarks the TRE was measured at (the phantom's
        landmarks inside both fields of view).
    unreliable : dict
        ``method -> {subject_id: [reasons]}``: registrations whose field folds or
        stretches beyond :data:`~slicreg_lite.metrics.FOLDING_LIMIT` or
        :data:`~slicreg_lite.metrics.JACOBIAN_SPREAD_LIMIT`, which the table flags.
    """

    dice: DiceTable
    deformation: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    warped: dict = field(default_factory=dict)
    subject_ids: tuple = ()
    methods: list = field(default_factory=list)
    unscored: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    template_affine: np.ndarray | None = None
    hd95: dict = field(default_factory=dict)
    correspondence: dict = field(default_factory=dict)
    landmarks: dict = field(default_factory=dict)
    unreliable: dict = field(default_factory=dict)

    def add(self, method: str, subject_id, warped, template_labels, displacement=None,
            body=None, inference: float | None = None,
            alignment: float | None = None, truth=None) -> None:
        """Record one registration (``displacement`` None: no registration).

        ``warped`` (the moving labels on the template's grid) or ``template_labels`` may be
        None when there are no labels: the registration is then timed and its field
        measured, but not scored. ``truth`` (a :class:`~slicreg_lite.phantom.GroundTruth`)
        adds the target registration error and the endpoint error inside ``body``.
        """
        from .metrics import hd95_per_label, jacobian_stats, unreliable_reasons

        if method not in self.methods:
            self.methods.append(method)
        if warped is None or template_labels is None:
            self.unscored.setdefault(method, []).append(subject_id)
        else:
            self.dice.add(method, subject_id,
                          dice_per_label(warped, template_labels, self.dice.labels))
            self.hd95.setdefault(method, {})[subject_id] = hd95_per_label(
                warped, template_labels, self.spacing, self.dice.labels)
            self.warped.setdefault(method, {})[subject_id] = warped
        if truth is not None:
            self._add_correspondence(method, subject_id, displacement, truth, body)
        stats = self.deformation.setdefault(method, {"std_log_jacobian": [],
                                                     "percent_folding": []})
        if displacement is not None:
            jacobian = jacobian_stats(displacement, body)
            stats["std_log_jacobian"].append(jacobian["std_log_jacobian"])
            stats["percent_folding"].append(jacobian["percent_folding"])
            reasons = unreliable_reasons(jacobian)
            if reasons:
                self.unreliable.setdefault(method, {})[subject_id] = reasons
        times = self.seconds.setdefault(method, {"inference": [], "alignment": []})
        if inference is not None:
            times["inference"].append(inference)
        if alignment is not None:
            times["alignment"].append(alignment)

    def _add_correspondence(self, method, subject_id, displacement, truth, body) -> None:
        from .metrics import endpoint_error_map, target_registration_error

        spacing = self.spacing
        if displacement is None:  # no registration: the identity
            displacement = np.zeros_like(truth.displacement)
        error = endpoint_error_map(displacement, truth.displacement, spacing)
        # only where the moving scan shows the true partner: beyond its field of view no
        # registration can know where a point went
        visible = truth.visible if body is None else truth.visible & body
        self.correspondence.setdefault(method, {})[subject_id] = {
            "tre": target_registration_error(displacement, truth.fixed_points,
                                             truth.moving_points, spacing),
            "epe": float(error[visible].mean())}

    @property
    def spacing(self) -> np.ndarray:
        """The template's voxel size in mm, from its affine."""
        return np.linalg.norm(np.asarray(self.template_affine)[:3, :3], axis=0)

    @property
    def has_truth(self) -> bool:
        """Whether the true correspondence was known (the phantom)."""
        return bool(self.correspondence)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """The columns after the Dice: HD95, the ground truth's (when known), the rest."""
        return (EXTRA_COLUMNS[:1] + (TRUTH_COLUMNS if self.has_truth else ())
                + EXTRA_COLUMNS[1:])

    @property
    def summary_column(self) -> str:
        """The column the findings compare: avg(4) for BTCV, else the mean of all labels."""
        return "avg(4)" if self.dice.is_btcv else self.dice.columns[-1]

    def extra(self, method: str) -> dict[str, float]:
        """The table's columns after the Dice: mean over subjects (NaN when not applicable)."""
        def mean(values):
            return float(np.mean(values)) if len(values) else float("nan")

        stats, times = self.deformation[method], self.seconds[method]
        subjects = self.correspondence.get(method, {}).values()
        tre = np.concatenate([s["tre"] for s in subjects]) if subjects else np.array([])
        return {"HD95 mm": self.mean_hd95(method),
                "TRE mm": mean(tre),
                "TRE95 mm": float(np.percentile(tre, 95)) if tre.size else float("nan"),
                "EPE mm": mean([s["epe"] for s in subjects]),
                "std(log J)": mean(stats["std_log_jacobian"]),
                "% J<=0": mean(stats["percent_folding"]),
                "inference s": mean(times["inference"]),
                "alignment s": mean(times["alignment"])}

    def mean_hd95(self, method: str) -> float:
        """Mean HD95 (mm) over every subject and the organs of :attr:`summary_column`
        (NaN when the row was not scored)."""
        rows = self.hd95.get(method, {})
        if not rows:
            return float("nan")
        from .config import LARGE_ORGANS

        labels = LARGE_ORGANS if self.dice.is_btcv else self.dice.labels
        index = [self.dice.labels.index(label) for label in labels]
        values = np.stack(list(rows.values()))[:, index]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")

    def to_markdown(self) -> str:
        """The whole table: the Dice columns, then deformation quality and time.

        A row that could not be scored (no labels) reads ``"no labels"`` in its Dice
        cells; a row scored on only some subjects is followed by a note.
        """
        columns = self.dice.columns
        scored = [m for m in self.methods if m in self.dice.methods]
        dice_rows = dict(zip(scored, self.dice.to_markdown(columns, scored).splitlines()[2:]))
        formats = {"HD95 mm": "{:.1f}", "TRE mm": "{:.1f}", "TRE95 mm": "{:.1f}",
                   "EPE mm": "{:.1f}", "std(log J)": "{:.3f}", "% J<=0": "{:.2f}",
                   "inference s": "{:.2f}", "alignment s": "{:.2f}"}
        extra = self.extra_columns
        lines = ["| method | " + " | ".join((*columns, *extra)) + " |",
                 "|" + "---|" * (1 + len(columns) + len(extra))]
        for method in self.methods:
            row = dice_rows.get(method, f"| {method} | " + " | ".join([NOT_SCORED] * len(columns))
                                + " |")
            values = self.extra(method)
            cells = ["-" if np.isnan(values[c]) else formats[c].format(values[c])
                     for c in extra]
            lines.append(row + " " + " | ".join(cells) + " |")
        notes = self.scoring_notes()
        return "\n".join(lines + ([""] + notes if notes else []))

    def scoring_notes(self) -> list[str]:
        """Sentences that say which rows (or subjects) could not be scored, and why, and
        which registrations cannot be trusted (their field folds or stretches too much)."""
        from .metrics import FOLDING_LIMIT, JACOBIAN_SPREAD_LIMIT

        notes = []
        for method in self.methods:
            flagged = self.unreliable.get(method, {})
            if flagged:
                total = len(self.deformation[method]["percent_folding"])
                notes.append(f"{method}: {len(flagged)} of {total} registrations unreliable "
                             f"(subjects {list(flagged)}: more than {FOLDING_LIMIT:g}% of the "
                             f"body's voxels folded, or std(log J) above "
                             f"{JACOBIAN_SPREAD_LIMIT:g}).")
        for method, ids in self.unscored.items():
            if method not in self.dice.methods:
                notes.append(f"{method}: not scored, no labels (registered and timed "
                             f"{len(ids)} subject(s)).")
            else:
                notes.append(f"{method}: subjects {ids} not scored (no labels).")
        return notes

    def to_json(self, cfg: Config, data: DataSource | None = None, **extra) -> dict:
        """The results as a JSON-ready dict (the schema of ``results.json``).

        ``{"schema": "slicreg_lite.results/1", "preset", "package_version", "data",
        "template_id", "subject_ids", "columns": [...], "dice_statistics": {"ddof",
        "average_mode"} (of :class:`~slicreg_lite.metrics.DiceTable`), "labels": {number: name},
        "methods": {name: {"dice": {column: [mean, std]} or null, "dice_per_subject":
        {id: [one fraction or null per label]}, "hd95_mm": float|null,
        "hd95_per_subject": {id: [mm or null per label]}, "unscored_subjects": [...],
        "unreliable_subjects": {id: [reasons]},
        "std_log_jacobian": float|null, "percent_folding": float|null,
        "max_percent_folding": float|null, "inference_seconds": float|null,
        "alignment_seconds": float|null, "tre_mm": float|null, "tre95_mm": float|null,
        "epe_mm": float|null, "tre_per_subject": {id: [mm per landmark]},
        "epe_per_subject": {id: mm}, "per_registration": {"std_log_jacobian": [...],
        "percent_folding": [...], "inference_seconds": [...], "alignment_seconds": [...]}}},
        "landmarks": {id: [names]}, **extra}``. Dice values are percentages, per-subject
        scores fractions (as :func:`~slicreg_lite.metrics.dice_per_label`); the ground
        truth's values are null where the true correspondence is unknown (any data but the
        phantom). :meth:`from_json` reads it back.
        """
        def number(value):
            return None if value is None or not np.isfinite(value) else float(value)

        content = self.dice.to_dict()["methods"]
        methods = {}
        for method in self.methods:
            values = self.extra(method)
            folding = self.deformation[method]["percent_folding"]
            scores = content.get(method, {})
            methods[method] = {
                "dice": scores.get("summary"),
                "dice_per_subject": scores.get("scores", {}),
                "hd95_mm": number(values["HD95 mm"]),
                "hd95_per_subject": {str(i): [number(v) for v in row] for i, row in
                                     self.hd95.get(method, {}).items()},
                "unscored_subjects": list(self.unscored.get(method, [])),
                "unreliable_subjects": {str(i): reasons for i, reasons in
                                        self.unreliable.get(method, {}).items()},
                "std_log_jacobian": number(values["std(log J)"]),
                "percent_folding": number(values["% J<=0"]),
                "max_percent_folding": number(max(folding)) if folding else None,
                "inference_seconds": number(values["inference s"]),
                "alignment_seconds": number(values["alignment s"]),
                "tre_mm": number(values["TRE mm"]),
                "tre95_mm": number(values["TRE95 mm"]),
                "epe_mm": number(values["EPE mm"]),
                "tre_per_subject": {str(i): [float(v) for v in s["tre"]] for i, s in
                                    self.correspondence.get(method, {}).items()},
                "epe_per_subject": {str(i): s["epe"] for i, s in
                                    self.correspondence.get(method, {}).items()},
                "per_registration": {
                    **{name: [float(v) for v in values] for name, values in
                       self.deformation[method].items()},
                    **{f"{part}_seconds": [float(v) for v in values] for part, values in
                       self.seconds[method].items()}},
            }
        data = open_source(data, cfg)
        return {"schema": RESULTS_SCHEMA, "preset": cfg.name, "package_version": __version__,
                "data": data.spec, "template_id": data.split.template_id,
                "subject_ids": list(self.subject_ids), "columns": list(self.dice.columns),
                "dice_statistics": {"ddof": self.dice.ddof,
                                    "average_mode": self.dice.average_mode},
                "labels": {str(n): name for n, name in self.dice.label_names.items()},
                "methods": methods,
                "landmarks": {str(i): list(names) for i, names in self.landmarks.items()},
                **extra}


def from_json(content: dict) -> Evaluation:
    """An evaluation read back from ``results.json`` (:meth:`Evaluation.to_json`): enough
    for :meth:`Evaluation.to_markdown` and :func:`findings` (not for the figures: the
    warped labels and the fields are not stored).

    Raises
    ------
    ValueError
        If ``content`` is not of the schema :data:`RESULTS_SCHEMA`.
    """
    if content.get("schema") != RESULTS_SCHEMA:
        raise ValueError(f"results must be of the schema {RESULTS_SCHEMA!r}; got "
                         f"{content.get('schema')!r}")

    def subject(text):
        return int(text) if str(text).isdigit() else text

    methods = content["methods"]
    table = DiceTable.from_dict({**content["dice_statistics"], "labels": content["labels"],
                                 "methods": {
        name: {"scores": row["dice_per_subject"]} for name, row in methods.items()
        if row["dice"] is not None}})
    result = Evaluation(table, subject_ids=tuple(content["subject_ids"]),
                        methods=list(methods))
    for name, row in methods.items():
        stored = row["per_registration"]
        result.deformation[name] = {key: list(stored[key]) for key in
                                    ("std_log_jacobian", "percent_folding")}
        result.seconds[name] = {part: list(stored[f"{part}_seconds"])
                                for part in ("inference", "alignment")}
        result.hd95[name] = {subject(i): np.array([np.nan if v is None else v for v in values])
                             for i, values in row["hd95_per_subject"].items()}
        if row["unscored_subjects"]:
            result.unscored[name] = list(row["unscored_subjects"])
        if row["unreliable_subjects"]:
            result.unreliable[name] = {subject(i): reasons for i, reasons in
                                       row["unreliable_subjects"].items()}
        if row["tre_per_subject"]:
            result.correspondence[name] = {
                subject(i): {"tre": np.array(tre), "epe": row["epe_per_subject"][i]}
                for i, tre in row["tre_per_subject"].items()}
    result.landmarks = {subject(i): names for i, names in content["landmarks"].items()}
    return result


def evaluate(cfg: Config, data="phantom", methods=None, *,
             run: RunSettings | None = None) -> Evaluation:
    """Steps 4 and 5: register every test subject to the template with every method.

    Each subject's organ labels are warped onto the template and compared with the
    template's (labels are used only here, to measure). Networks come from
    :func:`~slicreg_lite.stages.network` (shipped weights when they match), the teacher
    from :func:`~slicreg_lite.stages.teacher_direct`.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        The cohort (``"phantom"`` by default).
    methods : sequence of str, optional
        Rows of :data:`METHODS`; all by default.
    run : RunSettings, optional

    Returns
    -------
    Evaluation
    """
    from tqdm.auto import tqdm

    from . import stages
    from .registration import RegressionBaseline, SlicReg
    from .spatial import warp_labels

    methods = tuple(METHODS) if methods is None else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    data = open_source(data, cfg)
    run = RunSettings() if run is None else run
    ids = data.split.evaluation_ids
    subjects = stages.cohort(cfg, data, (*ids, data.split.template_id), run=run)
    template = subjects[data.split.template_id]
    fixed_labels = template.labels
    body = body_mask(template.image)
    result = Evaluation(DiceTable(label_names=stages.label_set(data, template)),
                        subject_ids=ids, template_affine=template.affine)
    truth = _ground_truths(cfg, data, ids)
    result.landmarks = {i: truth[i].landmark_names for i in truth}
    exact = {}  # the template's exact layers prepared for each alignment

    def exact_template(alignment):
        if alignment not in exact:
            layers = stages.template_supervoxels(cfg, data, run=run).layers
            exact[alignment] = adamreg.prepare_template(layers, _adam(cfg, alignment))
        return exact[alignment]

    for method in methods:
        kind = METHODS[method]
        if kind is None:
            for i in ids:
                result.add(method, i, subjects[i].labels, fixed_labels, body=body,
                           truth=truth.get(i))
            continue
        if kind in ("teacher", "keypoints") or kind[0] == "oracle":
            # the same registration as Teacher.register, cached per subject
            direct = stages.teacher_direct(cfg, data, ids, run=run)
            for i in ids:
                start = time.perf_counter()
                if kind == "teacher":
                    field = direct[i].displacement
                    seconds = direct[i].timings["total"]
                elif kind == "keypoints":
                    field = adamreg.through_keypoints(exact_template("paper"),
                                                      direct[i].displacement, cfg.adam,
                                                      output_shape=template.shape)
                    seconds = time.perf_counter() - start
                else:  # a perfect network: the supervoxels the teacher carries onto i
                    alignment = kind[1]
                    field = adamreg.register_layers(exact_template(alignment),
                                                    direct[i].layers, _adam(cfg, alignment),
                                                    output_shape=template.shape).displacement
                    seconds = time.perf_counter() - start
                warped = None if subjects[i].labels is None else \
                    warp_labels(subjects[i].labels, field)
                result.add(method, i, warped, fixed_labels, field, body,
                           alignment=seconds, truth=truth.get(i))
            continue
        backbone, head, *alignment = kind
        if head == "slic":
            registration = SlicReg.load(cfg, data, backbone=backbone, run=run,
                                        alignment=alignment[0])
        else:
            registration = RegressionBaseline.load(cfg, data, backbone=backbone, run=run)
        for i in tqdm(ids, desc=method, disable=not run.progress):
            moving = subjects[i]
            registered = registration.register(moving)
            result.add(method, i, registered.warped_labels, fixed_labels,
                       registered.displacement, body,
                       inference=registered.timings["inference"],
                       alignment=registered.timings["alignment"], truth=truth.get(i))
            if method == SLIC_REG:
                result.fields[i] = (registered.displacement, moving.affine)
    return result


def _adam(cfg: Config, alignment: str):
    """The Adam settings of an alignment: the paper's (``cfg.adam``) or the toolkit's
    centre fit (``cfg.centre_fit``)."""
    from .registration import ALIGNMENTS

    return getattr(cfg, ALIGNMENTS[alignment])


def _ground_truths(cfg: Config, data: DataSource, ids) -> dict:
    """``subject_id -> GroundTruth`` to the template on the phantom; empty for real scans,
    whose true correspondence nobody knows."""
    if data.kind != "phantom":
        return {}
    from .phantom import ground_truth

    return {i: ground_truth(data.split.template_id, i, data.phantom, data.grid) for i in ids}


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
            lines.append(f"{backbone}: supervoxel classification + the paper's Adam vs "
                         f"regression + RW ({average[slic]:.1f} vs {average[regress]:.1f}): "
                         f"{paired(slic, regress)}.")
    if both(SLIC_REG, UNET_SLIC):
        lines.append(f"DeepLab vs UNet (both Slic + the paper's Adam): "
                     f"{paired(SLIC_REG, UNET_SLIC)}.")
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


def write_results(cfg: Config, data, evaluation: Evaluation, folder: Path,
                  **extra) -> list[Path]:
    """Write ``table.md``, ``results.json``, the figures and the fields into ``folder``.

    Figures (when there are labels to show): ``dice_boxplots.png`` (per-organ Dice of
    every method) and ``overlays.png`` (each method's warped labels of a typical subject
    over the template, the template's own labels as outlines). Fields: the Slic-Reg
    displacement of every test subject, ``fields/<subject>.nii.gz`` on the template's grid
    in ITK's convention (:func:`slicreg_lite.nifti.save_displacement_field`). ``extra``
    goes into ``results.json`` (e.g. the run time).

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed
    import matplotlib.pyplot as plt

    from . import stages
    from .files import atomic_write
    from .nifti import save_displacement_field
    from .subject import subject_filename
    from .viz import show_dice_boxplots, show_method_overlays

    data = open_source(data, cfg)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template_id = data.split.template_id
    template = stages.cohort(cfg, data, (template_id,),
                             run=RunSettings(progress=False))[template_id]
    typical = typical_subject(evaluation)
    where = "the phantom cohort" if data.kind == "phantom" else f"`{data.spec}`"
    text = (f"# Slic-Reg on {where}, preset {cfg.name!r}\n\n"
            f"Dice (%) of the {len(evaluation.subject_ids)} test subjects registered to "
            f"template #{template_id}, mean +- std (averages over all subject-organ pairs, "
            "as in the paper); HD95 (mm) averaged over the organs of the summary column; "
            + (TRUTH_NOTE if evaluation.has_truth else "")
            + "std(log J) and % J<=0 inside the template's body; seconds per "
            "registration.\n\n"
            + evaluation.to_markdown() + "\n\n"
            + "\n".join(f"- {line}" for line in findings(evaluation)) + "\n")
    paths = [atomic_write_text(folder / "table.md", text),
             atomic_write_json(folder / "results.json",
                               evaluation.to_json(cfg, data, typical_subject=typical, **extra))]

    def save(figure, name):
        path = folder / name
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
        plt.close(figure)
        paths.append(path)

    if evaluation.dice.methods and template.labels is not None:
        ax = show_dice_boxplots(evaluation.dice, title=f"Dice per organ ({cfg.name})")
        ax.figure.tight_layout()
        save(ax.figure, "dice_boxplots.png")
        warped = {m: evaluation.warped[m][typical] for m in evaluation.dice.methods
                  if typical in evaluation.warped.get(m, {})}
        centre = np.argwhere(template.labels > 0).mean(0).round().astype(int)  # organs
        figure = show_method_overlays(template.image, template.labels, warped, axis=2,
                                      index=int(centre[2]))
        figure.suptitle(f"subject {typical} (median Slic-Reg case) warped to template "
                        f"#{template_id}", fontsize="small")
        save(figure, "overlays.png")
    for subject_id, (displacement, moving_affine) in evaluation.fields.items():
        name = subject_filename(subject_id, ".nii.gz")
        paths.append(save_displacement_field(folder / "fields" / name, displacement,
                                             evaluation.template_affine, moving_affine))
    return paths
