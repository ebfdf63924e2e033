"""Command line: ``python -m slicreg_lite --help``.

``run``       the main job: every stage of the pipeline on a cohort (``--data``), then the table.
``register``  register a NIfTI scan: to the template (Slic-Reg) or to any scan (the teacher).
``train``     train a network of step 3 and store it under ``data/weights`` (shipped weights).
``export``    write a cohort as NIfTI files (BCV, Learn2Reg or folder layout).

Every command takes ``--preset`` and ``--data`` (``phantom``, ``bcv:PATH``,
``learn2reg:PATH`` or ``folder:PATH``, see :mod:`slicreg_lite.cohort.sources`); ``--jobs``,
``--device`` and ``--quiet`` change how it runs, never what it computes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import evaluation as evaluation_module
from ..cohort.layouts import LAYOUTS, export_cohort
from ..cohort.sources import open_source
from ..core.config import PRESET_NAMES, RunSettings, get_config, is_real_ct
from ..core.files import atomic_write_json, atomic_write_text, check_writable
from ..methods import (
    METHODS,
    PAIR_NAMES,
    REGISTER_NAMES,
    UntrustedResultWarning,
    method_named,
    networks_needed,
)
from ..pipeline import stages
from ..pipeline.cache import cache_root
from ..supervoxels.layers import encoding_resolution
from .learn2reg import UPLOAD_URL, write_submission
from .register import register_scans


def _real_ct(args, automatic: bool) -> bool:
    """Whether the teacher takes its settings for real CT (``--scans``)."""
    return automatic if args.scans == "auto" else args.scans == "ct"


def _open(args):
    """The preset, the data source and the run settings of a command's arguments."""
    cfg = get_config(args.preset, real_ct=_real_ct(args, is_real_ct(args.data)))
    data = open_source(args.data, cfg, template=args.template, split_file=args.split)
    run = RunSettings(jobs=args.jobs, device=args.device, progress=not args.quiet)
    return cfg, data, run


def _run(args, cfg, data, run) -> int:

    out = Path(args.out) / cfg.name
    try:  # say so now, not after minutes of computing
        check_writable(out, "--out")
    except ValueError as error:
        print(f"error: cannot write the results: {error}\nchoose another folder with --out",
              file=sys.stderr)
        return 2
    split = data.split
    start = time.perf_counter()
    print(f"slicreg_lite: preset {cfg.name!r}, data {data.spec!r}, volumes {cfg.grid.shape} "
          f"at {cfg.grid.spacing_mm:g} mm, cache {cache_root() / cfg.name / data.label}")

    t = time.perf_counter()
    subjects = stages.cohort(cfg, data, run=run)
    what = "phantom cohort" if data.kind == "phantom" else f"{data.kind} scans on the grid"
    held_out = f"{len(split.validation_ids)} validation, " if split.validation_ids else ""
    print(f"[0] {what}: {len(subjects)} subjects ({len(split.train_ids)} training, "
          f"{held_out}{len(split.test_ids)} test, template #{split.template_id}) "
          f"in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    template = stages.template_supervoxels(cfg, data, run=run)
    finest = encoding_resolution(template.layers, (len(template.layers),))[0]
    print(f"[1] template supervoxels: {len(template.layers)} layers x "
          f"{cfg.supervoxels.n_supervoxels - 1} + background on {template.image.shape} in "
          f"{time.perf_counter() - t:.1f} s; a voxel's {finest['layers']}-tuple of labels "
          f"narrows it to a cell {finest['ratio']:.0f}x smaller than one supervoxel")

    t = time.perf_counter()
    supervised = stages.supervision(cfg, data, run=run)
    teacher = stages.teacher_dice(cfg, data, supervised, run=run)
    seconds = sum(s.timings["total"] for s in supervised.values()) / len(supervised)
    deformable = "deeds-lite: affine + deformable"
    column = "avg(4)" if teacher.is_btcv else teacher.columns[-1]
    dice = (f"; {column} Dice on them {teacher.column(deformable, column)[0]:.1f}%"
            if deformable in teacher.methods else "; no labels to score them")
    print(f"[2] deeds-lite teacher: template registered onto {len(supervised)} training "
          f"subjects ({seconds:.1f} s each), supervoxels carried along{dice} "
          f"[{time.perf_counter() - t:.1f} s]")

    t = time.perf_counter()
    for backbone, head in _trainable_networks(cfg, data, run):
        stages.network(cfg, data, backbone, head, run=run)
    print(f"[3] networks: DeepLab and UNet, each with the supervoxel and the regression head, "
          f"and PDD-Net (shipped weights or trained) [{time.perf_counter() - t:.1f} s]")

    if args.pairs is not None:
        return _run_pairs(args, cfg, data, run, out, start)
    t = time.perf_counter()
    evaluation = evaluation_module.evaluate(cfg, data, run=run)
    print(f"[4-5] every method on the {len(evaluation.subject_ids)} test subjects "
          f"[{time.perf_counter() - t:.1f} s]\n")
    print(f"Dice (%) of the test subjects registered to template #{split.template_id}, "
          f"mean +- std (averages over all subject-organ pairs, as in the paper); HD95 (mm) "
          f"over the organs of the summary column (avg(4) for the BTCV organs); std(log J) "
          f"and % J<=0 inside the template's body; seconds per registration:\n")
    print(evaluation.to_markdown())
    print()
    for line in evaluation_module.findings(evaluation):
        print(f"- {line}")

    total = time.perf_counter() - start
    written = evaluation_module.write_results(cfg, data, evaluation, out, total_seconds=total)
    shown = [p for p in written if p.parent == out]
    fields = len(written) - len(shown)
    print(f"\nwritten: {', '.join(str(p) for p in shown)}"
          + (f", and {fields} displacement fields in {out / 'fields'}" if fields else ""))
    print(f"total {total:.1f} s")
    return 0


def _run_pairs(args, cfg, data, run, out: Path, start: float) -> int:
    """Steps 4-5 of ``run --pairs``: pairs among the test scans instead of the template."""
    t = time.perf_counter()
    try:
        evaluation = evaluation_module.evaluate_pairs(cfg, data, args.pairs, run=run)
    except ValueError as error:  # a pair of scans that are not test scans
        print(f"error: --pairs: {error}", file=sys.stderr)
        return 2
    print(f"[4-5] {len(evaluation.subject_ids)} pairs among the test subjects, neither "
          f"scan the template [{time.perf_counter() - t:.1f} s]\n")
    print("Dice (%) of the moving scan's labels warped onto the fixed scan's, mean +- std "
          "over all pair-organ scores; HD95 (mm) over the organs of the summary column; "
          "std(log J) and % J<=0 inside the fixed scan's body; seconds per pair (both "
          "scans' inference, then everything else):\n")
    print(evaluation.to_markdown())
    total = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    table = atomic_write_text(out / "pairs.md", evaluation.to_markdown() + "\n")
    results = atomic_write_json(out / "pairs.json", evaluation.to_json(
        cfg, data, protocol="pairs among the test subjects", total_seconds=total))
    print(f"\nwritten: {table}, {results}\ntotal {total:.1f} s")
    return 0


def _pair_list(text: str):
    """``--pairs``: ``all``, or ``FIXED:MOVING`` pairs separated by commas."""
    if text == "all":
        return text
    pairs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2 or not all(parts):
            raise argparse.ArgumentTypeError(f"expected 'all' or FIXED:MOVING pairs "
                                             f"separated by commas, e.g. 1:4,1:7; got {text!r}")
        pairs.append(tuple(int(p) if p.isdigit() else p for p in parts))
    return pairs


def _learn2reg(args, cfg, data, run) -> int:

    if method_named(args.method).any_fixed_scan:  # the teacher on the task's scans: real CT
        cfg = get_config(args.preset, real_ct=_real_ct(args, True))

    def progress(index, total, name, scores):
        dice = "-" if scores["dice"] is None else f"{100 * scores['dice']:.1f}%"
        hd95 = "-" if scores["hd95_mm"] is None else f"{scores['hd95_mm']:.1f} mm"
        flag = "" if scores["reliable"] else f" UNRELIABLE: {'; '.join(scores['warnings'])}"
        print(f"[{index + 1}/{total}] {name}: Dice {dice}, HD95 {hd95}, std(log J) "
              f"{scores['std_log_jacobian']:.3f}, {scores['seconds']:.1f} s{flag}", flush=True)

    try:
        with warnings.catch_warnings():  # each pair's line says why, and scores.json
            warnings.simplefilter("ignore", UntrustedResultWarning)
            submission = write_submission(args.task, args.out, method=args.method,
                                          pairs=args.pairs, cfg=cfg, data=data, run=run,
                                          zip_file=args.zip, progress=progress)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    means = submission.means()
    scored = sum(s["dice"] is not None for s in submission.scores.values())
    summary = (f"mean Dice {100 * means['dice']:.1f}%, HD95 {means['hd95_mm']:.1f} mm "
               f"({scored} pairs with labels), " if scored else "no labels to score, ")
    print(f"{len(submission.fields)} fields ({submission.fields[0].name}, ...) in "
          f"{submission.folder}: {summary}std(log J) {means['std_log_jacobian']:.3f}, "
          f"{means['seconds']:.1f} s a pair (method {args.method}, preset {cfg.name!r})")
    unreliable = [n for n, s in submission.scores.items() if not s["reliable"]]
    if unreliable:
        print(f"WARNING: {len(unreliable)} field(s) cannot be trusted (the reasons are in "
              f"scores.json): {', '.join(unreliable)}", file=sys.stderr)
    if scored:
        print("The challenge's evaluation computes the same Dice; its HD95 is in voxels, and "
              "its SDlogJ is of J + 3 over the whole grid.")
    upload = submission.zip_file or f"a zip of the disp_*.nii.gz files in {submission.folder}"
    print(f"Upload {upload} on the task's submission page at {UPLOAD_URL}")
    return 0


def _export(args, cfg, data, run) -> int:

    # the cohort of the paper's split; the phantom's validation subjects stay behind
    subjects = stages.cohort(cfg, data, (*data.split.train_ids, *data.split.test_ids),
                             run=run)
    dest = export_cohort(subjects, args.dest, layout=args.layout, split=data.split,
                         label_names=data.label_names)
    print(f"wrote {len(subjects)} subjects to {dest} ({args.layout} layout); read them back "
          f"with --data {args.layout}:{dest}")
    return 0


def _trainable_networks(cfg, data, run) -> tuple:
    """The networks the table needs, less those that learn from labels the training scans
    lack (their rows say so)."""
    labelled = not stages.unlabelled_training_ids(cfg, data, run=run)
    return networks_needed([m for m in METHODS if labelled or not m.trained_with_labels])


def _train(args, cfg, data, run) -> int:
    pairs = (_trainable_networks(cfg, data, run) if args.all
             else [(args.backbone, args.head)])
    for backbone, head in pairs:
        iterations = (f"{cfg.pdd.iterations} pairs of scans" if backbone == "pdd" else
                      f"{cfg.training.iterations} iterations of {cfg.training.batch_size} "
                      "scans")
        print(f"training {backbone} + {head} under {cfg.name!r} on {data.spec!r} "
              f"({iterations})")
        try:
            _, checkpoint = stages.network(cfg, data, backbone, head, retrain=True, run=run)
        except ValueError as error:  # a head of another network; labels the scans lack
            print(f"error: {error}", file=sys.stderr)
            return 2
        history = checkpoint["history"]
        target = stages.publish_network(cfg, data, backbone, head)
        watched = history.get("validation")
        final = f", validation {watched[-1][1]:.3f}" if watched else ""
        print(f"  {history['seconds']:.0f} s, loss {history['loss'][0]:.2f} -> "
              f"{history['loss'][-1]:.2f}{final}; wrote {target}")
    return 0


def _register(args, cfg, data, run) -> int:

    if method_named(args.method).any_fixed_scan:  # the user's own scans: real CT
        cfg = get_config(args.preset, real_ct=_real_ct(args, True))
    try:
        registered = register_scans(args.moving, fixed=args.fixed, labels=args.labels,
                                    fixed_labels=args.fixed_labels, method=args.method,
                                    out=args.out, cfg=cfg, data=data, run=run)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = registered.report
    seconds = ", ".join(f"{name} {value:.2f} s" for name, value in report["seconds"].items())
    print(f"registered {report['moving']} to {report['fixed']} with {args.method} "
          f"(preset {cfg.name!r}): {seconds}")
    if report["dice"] is not None:
        summary = (f"avg(4) Dice {100 * report['avg(4)']:.1f}%" if "avg(4)" in report
                   else f"mean Dice {100 * np.nanmean(list(report['dice'].values())):.1f}%")
        print(f"{summary}, folding {report['percent_folding']:.2f}%, std(log J) "
              f"{report['std_log_jacobian']:.3f}")
    for message in report["warnings"]:
        print(f"WARNING: {message}", file=sys.stderr)
    if not report["reliable"]:
        print("report.json says \"reliable\": false", file=sys.stderr)
    print("written: " + ", ".join(str(p) for p in registered.files.values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (shown by ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m slicreg_lite",
        description="Slic-Reg, learning-based inter-patient registration through deformable "
                    "supervoxels (Heinrich, MIDL 2021), on a synthetic abdominal CT cohort.")
    commands = parser.add_subparsers(dest="command", required=True)
    # options every command has
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--preset", default="lite", choices=PRESET_NAMES,
                        help="smoke: seconds (tests); lite: minutes on a laptop CPU (default); "
                             "paper: the paper's sizes, for a GPU")
    common.add_argument("--data", default="phantom", metavar="SOURCE",
                        help="the cohort: phantom (default), bcv:PATH (AbdomenIsoCrop layout), "
                             "learn2reg:PATH (a folder with dataset.json) or folder:PATH "
                             "(PATH/images/*.nii.gz, optional PATH/labels/ and "
                             "PATH/split.json)")
    common.add_argument("--scans", default="auto", choices=("auto", "phantom", "ct"),
                        help="the teacher's settings: those for the phantom, or those for real "
                             "CT (REAL_CT_TEACHER in config.py); auto (default): the phantom's "
                             "for --data phantom, real CT's for any other data and for "
                             "register --method teacher")
    common.add_argument("--template", default=None, metavar="ID",
                        help="another template than the data's (one of its scans)")
    common.add_argument("--split", default=None, type=Path, metavar="FILE",
                        help="a split file (JSON with 'template', 'test', 'train', 'labels') "
                             "for a Learn2Reg task or a folder")
    common.add_argument("--jobs", default=None, type=_jobs, metavar="N",
                        help="parallel workers for the per-scan steps (default: one per CPU "
                             "core); never changes a result or a cache")
    common.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="where networks are trained (default: CUDA when available)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    run = commands.add_parser(
        "run", parents=[common],
        help="the main job: run the whole pipeline on a cohort, print the table",
        description="Run every step of Slic-Reg on a cohort (the synthetic phantom by "
                    "default, or --data) and print the paper's table: [0] make (or read and "
                    "pre-process) the scans, [1] cut the template into "
                    "supervoxels, [2] register the template to the training scans with "
                    "deeds-lite (the teacher), [3] load (or train) the networks, [4] register "
                    "the test scans with Adam and with the regression baseline, [5] measure "
                    "Dice, folding and time. Every step is cached under "
                    "data/cache/<preset>/<data>, so a second run only repeats [4] and [5].",
        epilog="examples: python -m slicreg_lite run --preset smoke --out /tmp/results; "
               "python -m slicreg_lite run --data bcv:~/data/AbdomenIsoCrop")
    run.add_argument("--out", default="results", type=Path,
                     help="folder for table.md, results.json, the figures and the Slic-Reg "
                          "fields; they go into OUT/<preset>/ (default: results/<preset>/)")
    run.add_argument("--pairs", default=None, type=_pair_list, metavar="all|F:M,...",
                     help="instead of the paper's protocol (every test scan to the "
                          "template): pairs among the test scans, neither the template: "
                          "'all' (each pair once, the earlier scan fixed) or FIXED:MOVING "
                          "pairs such as 1:4,1:7. Writes OUT/<preset>/pairs.md and "
                          "pairs.json")
    run.set_defaults(handler=_run)

    train = commands.add_parser(
        "train", parents=[common],
        help="train a network and store it as shipped weights (data/weights)",
        description="Train a network of step 3 from scratch on the teacher's supervoxels "
                    "(or PDD-Net on the training scans) and write it to "
                    "data/weights/<preset>/ (weights for another --data than the phantom go "
                    "to data/weights/<preset>/<data>/) with its checksum.")
    train.add_argument("--backbone", default="deeplab", choices=("deeplab", "unet", "pdd"),
                       help="pdd: PDD-Net, the paper's comparator (its --head is its training: "
                            "unsupervised or labels)")
    train.add_argument("--head", default="slic",
                       choices=("slic", "regression", *stages.PDD_TRAININGS))
    train.add_argument("--all", action="store_true",
                       help="every network of the evaluation table (Slic-Reg's four "
                            "backbone/head pairs, PDD-Net's two trainings)")
    train.set_defaults(handler=_train)

    register = commands.add_parser(
        "register", parents=[common],
        help="register a NIfTI scan (to the template, or to --fixed)",
        description="Register MOVING with Slic-Reg or the regression baseline (to the "
                    "template of --data with its trained network, or to --fixed), PDD-Net (to "
                    "the template), or the deeds-lite teacher (to --fixed, any pair of CT "
                    "scans). Scans of any orientation, voxel size "
                    "and size are brought onto the preset's grid, registered there, and the "
                    "results brought back onto the fixed scan's own grid: warped.nii.gz, "
                    "warped_labels.nii.gz, displacement_itk.nii.gz (SimpleITK / ANTs / Slicer "
                    "displacement field), displacement_learn2reg.nii.gz, overlay.png and "
                    "report.json (Dice, HD95, folding, seconds).",
        epilog="examples: python -m slicreg_lite register moving.nii.gz --out result; "
               "python -m slicreg_lite register moving.nii.gz --method teacher --fixed "
               "fixed.nii.gz --labels moving_labels.nii.gz --fixed-labels fixed_labels.nii.gz "
               "--out result")
    register.add_argument("moving", type=Path, help="the moving scan (.nii.gz or .nii)")
    register.add_argument("--out", required=True, type=Path, help="folder for the results")
    register.add_argument("--method", default="slicreg", choices=REGISTER_NAMES,
                          help="; ".join(f"{m.name}: {m.summary}" for m in METHODS
                                         if m.on_new_scans))
    register.add_argument("--fixed", type=Path, default=None,
                          help="the fixed scan: needed by --method teacher; Slic-Reg and the "
                               "regression baseline register to it through the template's "
                               "labels (without it: to the template)")
    register.add_argument("--labels", type=Path, default=None,
                          help="the moving scan's label map (warped and scored)")
    register.add_argument("--fixed-labels", type=Path, default=None,
                          help="the fixed scan's label map (for the scores)")
    register.set_defaults(handler=_register)

    export = commands.add_parser(
        "export", parents=[common], help="write a cohort as NIfTI files (BCV layout by default)",
        description="Write every subject of the cohort, on the preset's grid, as NIfTI files "
                    "that ITK-SNAP, 3D Slicer or nibabel open, in the layout that --data "
                    "reads back: bcv (img/imgNNNN.nii.gz, label/labelNNNN.nii.gz), learn2reg "
                    "(imagesTr/, labelsTr/, dataset.json) or folder (images/, labels/, "
                    "split.json).")
    export.add_argument("dest", type=Path, help="destination folder")
    export.add_argument("--layout", default="bcv", choices=LAYOUTS)
    export.set_defaults(handler=_export)

    learn2reg = commands.add_parser(
        "learn2reg", parents=[common],
        help="register every pair of a Learn2Reg task and write a submission",
        description="Register every pair that a Learn2Reg task's dataset.json lists "
                    "(registration_val or registration_test) and write one displacement "
                    "field per pair under the challenge's name, "
                    "disp_<fixed id>_<modality>_<moving id>_<modality>.nii.gz, in its format "
                    "(shape tensorImageShape + (3,), voxels of the stored files, fixed voxel "
                    "+ disp = moving voxel), with scores.json (Dice, HD95 in mm, std(log J) "
                    "where the task has labels).",
        epilog="examples: python -m slicreg_lite export task --layout learn2reg; "
               "python -m slicreg_lite learn2reg task --out submission --zip")
    learn2reg.add_argument("task", type=Path, help="the task folder (with dataset.json)")
    learn2reg.add_argument("--out", required=True, type=Path,
                           help="the submission folder (the fields lie flat in it)")
    learn2reg.add_argument("--method", default="slicreg",
                           choices=PAIR_NAMES,
                           help="a method of any pair (default: Slic-Reg as in the paper, "
                                "by its chosen pair route)")
    learn2reg.add_argument("--pairs", default="val", choices=("val", "test"),
                           help="registration_val (default) or registration_test")
    learn2reg.add_argument("--zip", action="store_true",
                           help="also write OUT.zip with the fields alone, to upload")
    learn2reg.set_defaults(handler=_learn2reg)
    return parser


def _jobs(text: str) -> int:
    value = int(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers or -1; "
                                         f"got {text}")
    return value


def main(argv=None) -> int:
    """Entry point of ``python -m slicreg_lite`` and of the ``slicreg-lite`` script.

    Bad input (an unknown data source, a missing folder, an invalid scan, a split that
    does not fit) is reported in one line on stderr with exit code 2, before any work.
    """
    args = build_parser().parse_args(argv)
    try:
        opened = _open(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return args.handler(args, *opened)


if __name__ == "__main__":
    sys.exit(main())
