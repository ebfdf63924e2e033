"""What a run of the evaluation writes (notebook 05): ``table.md``, ``results.json``, the
figures and the displacement fields of Slic-Reg (paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cohort.nifti import save_displacement_field
from ..cohort.sources import open_source
from ..cohort.subject import subject_filename
from ..core.config import Config, RunSettings
from ..core.files import atomic_write, atomic_write_json, atomic_write_text
from ..display.figures import show_dice_boxplots, show_method_overlays
from ..pipeline import stages
from .evaluate import TRUTH_NOTE, Evaluation
from .findings import findings, typical_subject


def write_results(cfg: Config, data, evaluation: Evaluation, folder: Path,
                  **extra) -> list[Path]:
    """Write ``table.md``, ``results.json``, the figures and the fields into ``folder``.

    Figures (when there are labels to show): ``dice_boxplots.png`` (per-organ Dice of
    every method) and ``overlays.png`` (each method's warped labels of a typical subject
    over the template, the template's own labels as outlines). Fields: the Slic-Reg
    displacement of every test subject, ``fields/<subject>.nii.gz`` on the template's grid
    in ITK's convention (:func:`slicreg_lite.cohort.nifti.save_displacement_field`). ``extra``
    goes into ``results.json`` (e.g. the run time).

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed
    import matplotlib.pyplot as plt

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
        save(show_dice_boxplots(evaluation.dice, title=f"Dice per organ ({cfg.name})"),
             "dice_boxplots.png")
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
