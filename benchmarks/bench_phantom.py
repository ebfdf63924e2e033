"""Speed of the phantom cohort: seconds per subject, on one core.

Prints, for the lite and paper sizes, the seconds to generate one subject and two ratios
measured in the same run (this machine's speed cancels out):

- against a yardstick: one 3D Gaussian filter (sigma 1 voxel) of a volume of the same size;
- against reading the same subject back from the cache (what every notebook does after
  the first run).

Target: one lite subject in about 1 s on one core.

Usage: ``python benchmarks/bench_phantom.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.pipeline import cache, stages


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core, as the target says

    print(f"{'preset':>6s} {'shape':>16s} {'s/subject':>10s} {'yardstick s':>12s} "
          f"{'ratio':>7s} {'cache read s':>13s} {'speed-up':>9s}")
    for preset in ("lite", "paper"):
        cfg = get_config(preset)
        repeats = args.repeats if preset == "lite" else 1
        volume = np.random.default_rng(0).normal(size=cfg.grid.shape).astype(np.float32)
        generate = best_of(repeats, partial(generate_subject, 38, cfg.phantom, cfg.grid))
        yardstick = best_of(repeats, partial(gaussian_filter, volume, 1.0))
        with tempfile.TemporaryDirectory() as folder:
            os.environ[cache.CACHE_ENV] = folder
            read_cohort = partial(stages.cohort, cfg, "phantom", ids=(38,),
                                  run=RunSettings(jobs=1, progress=False))
            read_cohort()  # generate and store once
            read = best_of(repeats, read_cohort)
        print(f"{preset:>6s} {str(cfg.grid.shape):>16s} {generate:10.2f} {yardstick:12.3f} "
              f"{generate / yardstick:7.1f} {read:13.3f} {generate / read:8.1f}x")


if __name__ == "__main__":
    main()
