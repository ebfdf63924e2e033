"""Steps 4 and 5: every method of the paper's table on the test scans, and the results.

:func:`evaluate` registers each test scan to the template with every method (no
registration, the teacher, Slic-Reg as in the paper and the paper's ablations with DeepLab
and UNet networks, and this toolkit's extension, the centre fit, in a row of its own),
warps the scan's organ labels onto the template and measures Dice, HD95, the smoothness
and folding of the field, and the time. On the phantom, whose true correspondence is
known, it also measures the target registration error at anatomical landmarks and the
endpoint error of the field inside the body. A registration whose field folds or
stretches beyond the limits of :func:`~slicreg_lite.core.metrics.unreliable_reasons` is
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

import numpy as np

from ..alignment.template import prepare_template
from ..cohort.phantom import ground_truth
from ..cohort.sources import DataSource, open_source
from ..core.config import Config, RunSettings
from ..core.dice_table import DiceTable
from ..core.labels import LARGE_ORGANS
from ..core.metrics import (
    FOLDING_LIMIT,
    JACOBIAN_SPREAD_LIMIT,
    score_registration,
)
from ..core.spatial import warp_labels
from ..core.version import __version__
from ..methods import METHODS, SLIC_REG, Teacher, alignment_settings, method_named
from ..pipeline import stages
from ..pipeline.load import load_method
from ..supervoxels.layers import body_mask
from .oracles import register_layers, through_keypoints

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
        stretches beyond :data:`~slicreg_lite.core.metrics.FOLDING_LIMIT` or
        :data:`~slicreg_lite.core.metrics.JACOBIAN_SPREAD_LIMIT`, which the table flags.
    skipped : dict
        ``method -> reason``: rows that could not be computed at all (a network trained
        with labels, on training scans without labels).
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
    skipped: dict = field(default_factory=dict)

    def add(self, method: str, subject_id, warped, template_labels, displacement=None,
            body=None, inference: float | None = None,
            alignment: float | None = None, truth=None) -> None:
        """Record one registration (``displacement`` None: no registration).

        ``warped`` (the moving labels on the template's grid) or ``template_labels`` may be
        None when there are no labels: the registration is then timed and its field
        measured, but not scored. ``truth`` (a :class:`~slicreg_lite.cohort.phantom.GroundTruth`)
        adds the target registration error and the endpoint error inside ``body``.
        """
        if method not in self.methods:
            self.methods.append(method)
        scores = score_registration(warped, template_labels, displacement,
                                    label_names=self.dice.label_names, spacing=self.spacing,
                                    body=body, truth=truth)
        if scores.dice is None:
            self.unscored.setdefault(method, []).append(subject_id)
        else:
            self.dice.add(method, subject_id, scores.dice)
            self.hd95.setdefault(method, {})[subject_id] = scores.hd95_mm
            self.warped.setdefault(method, {})[subject_id] = warped
        if truth is not None:
            self.correspondence.setdefault(method, {})[subject_id] = {
                "tre": scores.tre_mm, "epe": scores.epe_mm}
        stats = self.deformation.setdefault(method, {"std_log_jacobian": [],
                                                     "percent_folding": []})
        if scores.jacobian is not None:
            stats["std_log_jacobian"].append(scores.jacobian["std_log_jacobian"])
            stats["percent_folding"].append(scores.jacobian["percent_folding"])
            if scores.unreliable:
                self.unreliable.setdefault(method, {})[subject_id] = scores.unreliable
        times = self.seconds.setdefault(method, {"inference": [], "alignment": []})
        if inference is not None:
            times["inference"].append(inference)
        if alignment is not None:
            times["alignment"].append(alignment)

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
        notes = self.training_notes() + self.scoring_notes()
        return "\n".join(lines + ([""] + notes if notes else []))

    def training_notes(self) -> list[str]:
        """A sentence naming the rows whose network learnt from the training scans' organ
        labels (part of the paper's argument: Slic-Reg learns without them)."""
        def with_labels(label):
            try:
                return method_named(label).trained_with_labels
            except ValueError:  # a row of another table (results.json of a newer run)
                return False

        rows = [m for m in self.methods if with_labels(m)]
        if not rows:
            return []
        return [f"Trained with the training scans' organ labels: {', '.join(rows)}. Every "
                "other row learns without labels (Slic-Reg and its ablations from the "
                "teacher's supervoxels)."]

    def scoring_notes(self) -> list[str]:
        """Sentences that say which rows (or subjects) could not be scored, and why, and
        which registrations cannot be trusted (their field folds or stretches too much)."""
        notes = [f"{method}: not computed, {reason}." for method, reason in
                 self.skipped.items()]
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
        "average_mode"} (of :class:`~slicreg_lite.core.dice_table.DiceTable`),
        "labels": {number: name},
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
        scores fractions (as :func:`~slicreg_lite.core.metrics.dice_per_label`); the ground
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
    :func:`~slicreg_lite.pipeline.stages.network` (shipped weights when they match), the teacher
    from :func:`~slicreg_lite.pipeline.stages.teacher_direct`.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        The cohort (``"phantom"`` by default).
    methods : sequence of str, optional
        Names or labels of rows of :data:`~slicreg_lite.methods.METHODS`; all by default.
    run : RunSettings, optional

    Returns
    -------
    Evaluation
    """
    from tqdm.auto import tqdm

    rows = METHODS if methods is None else tuple(method_named(m) for m in methods)
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

    def exact_template(alignment_name):
        if alignment_name not in exact:
            layers = stages.template_supervoxels(cfg, data, run=run).layers
            exact[alignment_name] = prepare_template(
                layers, alignment_settings(cfg, alignment_name))
        return exact[alignment_name]

    def warped(i, field):
        return None if subjects[i].labels is None else warp_labels(subjects[i].labels, field)

    for method in rows:
        label = method.label
        if method.measurement == "initial":  # no registration
            for i in ids:
                result.add(label, i, subjects[i].labels, fixed_labels, body=body,
                           truth=truth.get(i))
        elif method.measurement is not None or method.registration is Teacher:
            # the teacher's registrations of the test subjects, cached per subject (the
            # same registration as Teacher.register), and the measurements made of them
            direct = stages.teacher_direct(cfg, data, ids, run=run)
            for i in ids:
                start = time.perf_counter()
                if method.measurement is None:  # the teacher's row
                    field = direct[i].displacement
                    seconds = direct[i].timings["total"]
                elif method.measurement == "keypoints":
                    field = through_keypoints(exact_template("paper"), direct[i].displacement,
                                              cfg.adam, output_shape=template.shape)
                    seconds = time.perf_counter() - start
                else:  # "oracle": a perfect network, the supervoxels the teacher carries
                    name = method.options["alignment"]
                    field = register_layers(exact_template(name), direct[i].layers,
                                            alignment_settings(cfg, name),
                                            output_shape=template.shape).displacement
                    seconds = time.perf_counter() - start
                result.add(label, i, warped(i, field), fixed_labels, field, body,
                           alignment=seconds, truth=truth.get(i))
        elif method.trained_with_labels and stages.unlabelled_training_ids(cfg, data,
                                                                            run=run):
            result.skipped[label] = "its network learns from labels the training scans lack"
        else:
            registration = load_method(cfg, data, method, run=run)
            for i in tqdm(ids, desc=label, disable=not run.progress):
                moving = subjects[i]
                registered = registration.register(moving)
                result.add(label, i, registered.warped_labels, fixed_labels,
                           registered.displacement, body,
                           inference=registered.timings["inference"],
                           alignment=registered.timings["alignment"], truth=truth.get(i))
                if label == SLIC_REG:
                    result.fields[i] = (registered.displacement, moving.affine)
    return result


def _ground_truths(cfg: Config, data: DataSource, ids) -> dict:
    """``subject_id -> GroundTruth`` to the template on the phantom; empty for real scans,
    whose true correspondence nobody knows."""
    if data.kind != "phantom":
        return {}

    return {i: ground_truth(data.split.template_id, i, data.phantom, data.grid) for i in ids}
