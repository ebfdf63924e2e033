"""Speed and memory of the step-3 networks on the CPU (lite preset).

Prints, measured in this run:

- forward time per scan of the 3D DeepLab at the lite input grid (8 mm, 48 x 40 x 56),
  and, as the reference, at the scan's own 4 mm grid (96 x 80 x 112): the ratio says what
  the coarser input buys;
- training iterations per second (batch of 2, with augmentation, forward + backward) in
  float32 (the reference, lite's own setting) and with bfloat16 autocast on the CPU
  (faster only where the CPU has bfloat16 instructions), the ratio of the two, and the
  minutes lite's training takes with its setting;
- the process's peak resident memory (training included);
- the same for the UNet variant.

Targets: inference at most 1 s per scan; peak memory under 4 GB; training each lite
network from scratch in at most 20 minutes (lite's iterations / its iterations per second).

Usage: ``python benchmarks/bench_network.py``
"""

from __future__ import annotations

import dataclasses
import resource
import time

import numpy as np
import torch

from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.network.models import build_model
from slicreg_lite.network.training import SupervoxelDataset, train


def forward_seconds(model, shape, repeats: int = 3) -> float:
    x = torch.zeros(1, 1, *shape)
    with torch.no_grad():
        model(x)  # warm-up: allocations, kernel selection
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    cfg = get_config("lite")
    design = tuple(cfg.network.input_shape)
    reference = tuple(cfg.grid.shape)
    rng = np.random.default_rng(0)
    images = [rng.normal(0, 100, reference).astype(np.float32) for _ in range(2)]
    layers = [rng.integers(0, 128, (cfg.network.n_layers, *reference)).astype(np.uint8)
              for _ in range(2)]
    dataset = SupervoxelDataset(images, layers, design, tuple(n // 2 for n in design))
    print(f"{'network':>10s} {'forward s':>10s} {'at 4 mm s':>10s} {'ratio':>6s} "
          f"{'train it/s float32':>19s} {'bfloat16':>13s} {'ratio':>6s} "
          f"{'lite training':>14s}")
    for backbone in ("deeplab", "unet"):
        torch.manual_seed(0)
        model = build_model(backbone, "slic", cfg).eval()
        fast = forward_seconds(model, design)
        slow = forward_seconds(model, reference, repeats=1)
        speeds = []
        for bfloat16 in (False, True):
            run = RunSettings(progress=False, device="cpu")
            # one iteration first: the first pass of each precision chooses its kernels
            warm_up = dataclasses.replace(cfg.training, iterations=1, cpu_bfloat16=bfloat16)
            train(model, dataset, warm_up, run=run)
            steps = 8
            start = time.perf_counter()
            train(model, dataset, dataclasses.replace(warm_up, iterations=steps), run=run)
            speeds.append(steps / (time.perf_counter() - start))
        minutes = cfg.training.iterations / speeds[int(cfg.training.cpu_bfloat16)] / 60
        print(f"{backbone:>10s} {fast:10.2f} {slow:10.2f} {slow / fast:5.1f}x "
              f"{speeds[0]:19.2f} {speeds[1]:13.2f} {speeds[1] / speeds[0]:5.2f}x "
              f"{minutes:10.1f} min")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"peak resident memory of this process: {peak_gb:.2f} GB (target < 4 GB); "
          f"lite trains {cfg.training.iterations} iterations of "
          f"{cfg.training.batch_size} scans (target: at most 20 min each)")


if __name__ == "__main__":
    main()
