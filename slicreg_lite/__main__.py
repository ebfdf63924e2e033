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


def _writable_folder(folder: Path) -> str | None:
    """None if files can be written in ``folder`` (created if needed), else the reason."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        return str(error)
    return None


def _run(args) -> int:
    from . import pipeline
    from .supervoxels import encoding_resolution

    cfg = get_config(args.preset)
    out = Path(args.out) / cfg.name
    problem = _writable_folder(out)
    if problem is not None:  # say so now, not after minutes of computing
        print(f"error: cannot write the results to {out}: {problem}\n"
              f"choose another folder with --out", file=sys.stderr)
        return 2
    progress = not args.quiet
    start = time.perf_counter()
    print(f"slicreg_lite: preset {cfg.name!r}, volumes {cfg.phantom.shape} at "
          f"{cfg.phantom.spacing_mm:g} mm, cache {pipeline.cache_root() / cfg.name}")

    t = time.perf_counter()
    subjects = pipeline.cohort(cfg, progress=progress)
    print(f"[0] phantom cohort: {len(subjects)} subjects ({len(cfg.split.train_ids)} training, "
          f"{len(cfg.split.test_ids)} test, template #{cfg.split.template_id}) "
          f"in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    template = pipeline.template_supervoxels(cfg, progress=progress)
    finest = encoding_resolution(template.layers, (len(template.layers),))[0]
    print(f"[1] template supervoxels: {len(template.layers)} layers x "
          f"{cfg.supervoxels.n_supervoxels - 1} + background on {template.image.shape} in "
          f"{time.perf_counter() - t:.1f} s; a voxel's {finest['layers']}-tuple of labels "
          f"narrows it to a cell {finest['ratio']:.0f}x smaller than one supervoxel")

    t = time.perf_counter()
    supervised = pipeline.supervision(cfg, progress=progress)
    teacher = pipeline.teacher_dice(cfg, supervised)
    seconds = sum(s.timings["total"] for s in supervised.values()) / len(supervised)
    avg4 = teacher.column("deeds-lite: affine + deformable", "avg(4)")[0]
    print(f"[2] deeds-lite teacher: template registered onto {len(supervised)} training "
          f"subjects ({seconds:.1f} s each), supervoxels carried along; avg(4) Dice on them "
          f"{avg4:.1f}% [{time.perf_counter() - t:.1f} s]")

    t = time.perf_counter()
    for backbone, head in [("deeplab", "slic"), ("unet", "slic"), ("deeplab", "regression"),
                           ("unet", "regression")]:
        pipeline.network(cfg, backbone, head, progress=progress)
    print(f"[3] networks: DeepLab and UNet, each with the supervoxel and the regression head "
          f"(shipped weights or trained) [{time.perf_counter() - t:.1f} s]")

    t = time.perf_counter()
    evaluation = pipeline.evaluate(cfg, progress=progress)
    print(f"[4-5] every method on the {len(evaluation.subject_ids)} test subjects "
          f"[{time.perf_counter() - t:.1f} s]\n")
    print(f"Dice (%) of the test subjects registered to template #{cfg.split.template_id}, "
          f"mean +- std (avg(4) and avg(13) over all subject-organ pairs, as in the paper); "
          f"std(log J) and % J<=0 inside the template's body; seconds per registration:\n")
    print(evaluation.to_markdown())
    print()
    for line in pipeline.findings(evaluation):
        print(f"- {line}")

    total = time.perf_counter() - start
    written = pipeline.write_results(cfg, evaluation, out, total_seconds=total)
    print(f"\nwritten: {', '.join(str(p) for p in written)}")
    print(f"total {total:.1f} s")
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
        help="the main job: run the whole pipeline on the phantom cohort, print the table",
        description="Run every step of Slic-Reg on the synthetic cohort and print the "
                    "paper's table: [0] make the phantom scans, [1] cut the template into "
                    "supervoxels, [2] register the template to the training scans with "
                    "deeds-lite (the teacher), [3] load (or train) the networks, [4] register "
                    "the test scans with Adam and with the regression baseline, [5] measure "
                    "Dice, folding and time. Every step is cached under "
                    "data/cache/<preset>, so a second run only repeats [4] and [5].",
        epilog="example: python -m slicreg_lite run --preset smoke --out /tmp/results")
    run.add_argument("--out", default="results", type=Path,
                     help="folder for table.md, results.json and the figures; they go into "
                          "OUT/<preset>/ (default: results/<preset>/)")
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
