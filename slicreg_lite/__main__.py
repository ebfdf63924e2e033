"""Command line: ``python -m slicreg_lite --help``.

``run``     the main job: every stage of the pipeline on the phantom cohort, then the table.
``train``   train a network of step 3 and store it under ``data/weights`` (shipped weights).
``export``  write the phantom cohort as NIfTI files in the BCV "AbdomenIsoCrop" layout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import PRESET_NAMES, get_config


def _run(args) -> int:
    from . import pipeline
    from .files import atomic_write_text
    from .supervoxels import encoding_resolution

    cfg = get_config(args.preset)
    start = time.perf_counter()
    print(f"slicreg_lite: preset {cfg.name!r}, volumes {cfg.phantom.shape} at "
          f"{cfg.phantom.spacing_mm:g} mm, cache {pipeline.cache_root() / cfg.name}")

    t = time.perf_counter()
    subjects = pipeline.cohort(cfg, progress=not args.quiet)
    cohort_seconds = time.perf_counter() - t
    print(f"phantom cohort: {len(subjects)} subjects ({len(cfg.split.train_ids)} training, "
          f"{len(cfg.split.test_ids)} test, template #{cfg.split.template_id}) "
          f"in {cohort_seconds:.1f} s")

    t = time.perf_counter()
    template = pipeline.template_supervoxels(cfg, progress=not args.quiet)
    finest = encoding_resolution(template.layers, (len(template.layers),))[0]
    print(f"template supervoxels: {len(template.layers)} layers x "
          f"{cfg.supervoxels.n_supervoxels - 1} + background on {template.image.shape} in "
          f"{time.perf_counter() - t:.1f} s; a voxel's {finest['layers']}-tuple of labels "
          f"narrows it to a cell {finest['ratio']:.0f}x smaller than one supervoxel")

    t = time.perf_counter()
    supervised = pipeline.supervision(cfg, progress=not args.quiet)
    teacher = pipeline.teacher_dice(cfg, supervised)
    seconds = sum(s.timings["total"] for s in supervised.values()) / len(supervised)
    print(f"deeds-lite teacher: template registered onto {len(supervised)} training subjects, "
          f"supervoxels carried along ({time.perf_counter() - t:.1f} s now; each registration "
          f"took {seconds:.1f} s when computed). Dice (%) on those subjects:\n")
    print(teacher.to_markdown())

    t = time.perf_counter()
    model, checkpoint = pipeline.network(cfg, "deeplab", "slic", progress=not args.quiet)
    agreement = pipeline.network_agreement(cfg, model, progress=not args.quiet)
    network_line = (
        f"3D DeepLab ({checkpoint['history']['seconds']:.0f} s of training): its supervoxels "
        f"agree with the teacher's on {100 * agreement['network'].mean():.1f}% of the body "
        f"voxels of the {len(agreement['network'])} test subjects (the template's own "
        f"supervoxels: {100 * agreement['template'].mean():.1f}%)")
    print(f"{network_line} [{time.perf_counter() - t:.1f} s]")

    table = pipeline.initial_alignment(cfg, subjects)
    method = "initial, not registered"
    print(f"\nDice (%) of the {len(cfg.split.evaluation_ids)} test subjects against template "
          f"#{cfg.split.template_id}, mean +- std (for avg(4) and avg(13) over all "
          f"subject-organ pairs, as in the paper):\n")
    print(table.to_markdown())
    print(f"\nPer organ ({method}):\n")
    print(table.per_label_markdown(method))

    if args.out is not None:
        out = Path(args.out) / cfg.name
        try:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "table.md", table.to_markdown() + "\n\n"
                              + table.per_label_markdown(method) + "\n\n"
                              + "deeds-lite teacher on the training subjects:\n\n"
                              + teacher.to_markdown() + "\n\n" + network_line + "\n")
        except OSError as error:
            print(f"error: cannot write results to {out}: {error}", file=sys.stderr)
            return 2
        print(f"\nwritten: {out / 'table.md'}")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


def _export(args) -> int:
    from . import pipeline
    from .phantom import export_nifti

    cfg = get_config(args.preset)
    subjects = pipeline.cohort(cfg, progress=not args.quiet)
    dest = export_nifti(subjects, args.dest)
    print(f"wrote {len(subjects)} subjects to {dest}/img and {dest}/label")
    return 0


def _train(args) -> int:
    from . import pipeline

    cfg = get_config(args.preset)
    pairs = [("deeplab", "slic"), ("unet", "slic"), ("deeplab", "regression"),
             ("unet", "regression")] if args.all else [(args.backbone, args.head)]
    for backbone, head in pairs:
        print(f"training {backbone} + {head} under {cfg.name!r} "
              f"({cfg.training.iterations} iterations of {cfg.training.batch_size} scans)")
        _, checkpoint = pipeline.network(cfg, backbone, head, retrain=True,
                                         progress=not args.quiet)
        history = checkpoint["history"]
        target = pipeline.publish_weights(cfg, backbone, head)
        final = history["validation"][-1][1] if history["validation"] else float("nan")
        print(f"  {history['seconds']:.0f} s, loss {history['loss'][0]:.2f} -> "
              f"{history['loss'][-1]:.2f}, validation {final:.3f}; wrote {target}")
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
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    run = commands.add_parser(
        "run", parents=[common],
        help="the main job: run the pipeline on the phantom cohort, print the table",
        description="Run every stage (cached under data/cache/<preset>) and print the Dice "
                    "table. Stages computed earlier are read from the cache.")
    run.add_argument("--out", default="results", type=Path,
                     help="folder for the result files (default: results/<preset>/)")
    run.set_defaults(handler=_run)

    train = commands.add_parser(
        "train", parents=[common],
        help="train a network and store it as shipped weights (data/weights)",
        description="Train a network of step 3 from scratch on the teacher's supervoxels "
                    "and write it to data/weights/<preset>/ with its checksum.")
    train.add_argument("--backbone", default="deeplab", choices=("deeplab", "unet"))
    train.add_argument("--head", default="slic", choices=("slic", "regression"))
    train.add_argument("--all", action="store_true",
                       help="all four backbone/head pairs of the evaluation table")
    train.set_defaults(handler=_train)

    export = commands.add_parser(
        "export", parents=[common], help="write the phantom cohort as NIfTI files (BCV layout)",
        description="Write img/imgNNNN.nii.gz and label/labelNNNN.nii.gz for every subject, "
                    "so that ITK-SNAP, 3D Slicer or nibabel can open them.")
    export.add_argument("dest", type=Path, help="destination folder")
    export.set_defaults(handler=_export)
    return parser


def main(argv=None) -> int:
    """Entry point of ``python -m slicreg_lite`` and of the ``slicreg-lite`` script."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
