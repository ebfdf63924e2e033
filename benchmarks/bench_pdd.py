"""Speed of PDD-Net, the paper's comparator, on the CPU (lite preset).

Prints, measured in this run:

- the seconds of training PDD-Net from scratch under the preset (without labels, the
  table's row, and with the training scans' labels), and their ratio to the training of
  Slic-Reg's DeepLab, the reference: its seconds per iteration measured here on a few
  iterations, times the preset's iterations;
- the seconds per registration of PDD-Net (one and two warps) on the test subjects, and
  their ratio to Slic-Reg's (network inference + Adam + spline), measured here too;
- the process's peak resident memory.

Target: each PDD-Net training at most 10 minutes on a 2-core CPU (``lite``). Training
here writes the stage cache, as ``run`` would (the result is deterministic: the same
weights every time).

Usage: ``python benchmarks/bench_pdd.py [--preset lite]``
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time

import torch

from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.network.models import build_model
from slicreg_lite.network.training import train
from slicreg_lite.pipeline import load_method, stages

TRAINING_TARGET_S = 600.0
#: Iterations of the DeepLab training timed for the reference.
REFERENCE_ITERATIONS = 10


def deeplab_training_seconds(cfg, data, run) -> float:
    """The reference: Slic-Reg's DeepLab training under the preset, extrapolated from
    :data:`REFERENCE_ITERATIONS` iterations measured now."""
    dataset = stages.training_data(cfg, data, run=run)
    torch.manual_seed(cfg.training.seed)
    model = build_model("deeplab", "slic", cfg)
    short = dataclasses.replace(cfg.training, iterations=REFERENCE_ITERATIONS)
    start = time.perf_counter()
    train(model, dataset, short, run=run)
    per_iteration = (time.perf_counter() - start) / REFERENCE_ITERATIONS
    return per_iteration * cfg.training.iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lite")
    args = parser.parse_args()
    cfg = get_config(args.preset)
    run = RunSettings(progress=False, device="cpu")
    data = open_source("phantom", cfg)
    print(f"preset {cfg.name!r}, {torch.get_num_threads()} threads, PDD-Net: "
          f"{cfg.pdd.iterations} training pairs, {(2 * cfg.pdd.radius + 1) ** 3} candidates")
    reference = deeplab_training_seconds(cfg, data, run)
    print(f"reference: Slic-Reg's DeepLab, {cfg.training.iterations} iterations: "
          f"{reference:.0f} s (from {REFERENCE_ITERATIONS} measured)")
    for training in stages.PDD_TRAININGS:
        start = time.perf_counter()
        _, checkpoint = stages.network(cfg, data, "pdd", training, retrain=True, run=run)
        seconds = time.perf_counter() - start
        loss = checkpoint["history"]["loss"]
        verdict = "met" if seconds <= TRAINING_TARGET_S else "MISSED"
        print(f"PDD-Net trained {'with' if training == 'labels' else 'without'} labels: "
              f"{seconds:.0f} s ({seconds / reference:.2f} x the reference; loss "
              f"{loss[0]:.3f} -> {loss[-1]:.3f}); target <= {TRAINING_TARGET_S:.0f} s: "
              f"{verdict}")
    ids = data.split.evaluation_ids
    subjects = stages.cohort(cfg, data, ids, run=run)
    slicreg = load_method(cfg, data, "slicreg", run=run)
    seconds = {"Slic-Reg (paper)": [slicreg.register(subjects[i]).timings["total"]
                                    for i in ids]}
    for name in ("pdd-1", "pdd"):
        method = load_method(cfg, data, name, run=run)
        seconds[name] = [method.register(subjects[i]).timings["total"] for i in ids]
    reference = sum(seconds["Slic-Reg (paper)"]) / len(ids)
    for name, values in seconds.items():
        mean = sum(values) / len(values)
        print(f"{name}: {mean:.2f} s per registration ({mean / reference:.2f} x Slic-Reg)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"peak resident memory: {peak:.2f} GB")


if __name__ == "__main__":
    main()
