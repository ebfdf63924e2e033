"""Speed of the Adam alignment of step 4 on the CPU, against a plain reference.

Prints, measured in this run:

- 100 Adam iterations with N = 2048 keypoints, 256 feature channels and k = 8 on a
  48 x 40 x 56 feature grid (the lite supervoxel grid halved; the lite preset itself
  aligns on the network's 24 x 20 x 28 output grid): slicreg_lite's implementation
  (channels-last table, 8 gathered corner rows per keypoint, a k-d-tree kNN graph) and
  the plain reference
  (``grid_sample`` on the channels-first volume, the kNN regulariser through a dense
  N x N matrix), their ratio, and the largest difference of their results;
- the mean time of six moves of notebook 04's sliders on a lite test subject with the
  shipped DeepLab (Adam, thin-plate spline, warping, Dice, folding and the picture).

Targets: at most 1 s for the 100 iterations, at least 5x faster than the
reference; a slider update under 0.5 s.

Usage: ``python benchmarks/bench_adamreg.py``
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from slicreg_lite.alignment import align_keypoints, channels_last, keypoint_graph, sample_features


def reference_align(fixed, features, points, k, *, learning_rate=0.05, alpha=0.15,
                    iterations=100):
    """The straightforward implementation: grid_sample + a dense N x N neighbour matrix."""
    n, shape = len(points), features.shape[1:]
    half_extent = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float32)
    start = torch.as_tensor(points, dtype=torch.float32) / half_extent - 1  # normalised
    distances = torch.cdist(start * half_extent, start * half_extent)  # N x N
    distances.fill_diagonal_(float("inf"))
    nearest = distances.topk(k, largest=False).indices
    adjacency = torch.zeros(n, n).scatter_(1, nearest, 1.0)  # dense N x N
    adjacency = torch.maximum(adjacency, adjacency.T)  # symmetric, as in the paper's code
    volume = features[None]  # (1, C, D, H, W), channels first
    u = torch.zeros(n, 3, requires_grad=True)
    optimiser = torch.optim.Adam([u], lr=learning_rate)
    for _ in range(iterations):
        optimiser.zero_grad()
        grid = (start + u).flip(-1).view(1, 1, 1, n, 3)  # grid_sample wants (x, y, z)
        sampled = F.grid_sample(volume, grid, align_corners=True, padding_mode="border")
        data = ((sampled.view(-1, n).T - fixed) ** 2).mean()
        differences = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)  # N x N
        loss = data + alpha * (adjacency * differences).sum() / n
        loss.backward()
        optimiser.step()
    return (u.detach() * half_extent).numpy()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def adam_benchmark(n=2048, channels=256, k=8, iterations=100, shape=(48, 40, 56)):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    # smooth random features, like pooled one-hot channels
    features = F.avg_pool3d(torch.rand(1, channels, *shape), 5, stride=1, padding=2)[0]
    points = rng.uniform(4, np.array(shape) - 5, size=(n, 3))
    truth = rng.normal(0, 1.5, size=3)  # the moving features are shifted by this
    fixed = sample_features(channels_last(features), shape,
                            torch.as_tensor(points + truth, dtype=torch.float32))
    graph = keypoint_graph(points, k)
    align_keypoints(fixed, features, points, graph, iterations=2)  # warm-up
    fast_s, (fast, _) = timed(align_keypoints, fixed, features, points, graph,
                              iterations=iterations)
    reference_s, reference = timed(reference_align, fixed, features, points, k,
                                   iterations=iterations)
    return fast_s, reference_s, float(np.abs(fast - reference).max()), fast, truth


def slider_update():
    """Moves of notebook 04's sliders (alpha, k, iterations) on a lite test subject with
    the shipped DeepLab: seconds per move, everything the panel does (Adam, spline,
    warping, Dice, folding, picture), and the parts of the last registration."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from slicreg_lite.core.config import RunSettings, get_config
    from slicreg_lite.display import AdamExplorer
    from slicreg_lite.pipeline import load_method, stages

    cfg = get_config("lite")
    warnings.simplefilter("ignore")
    quiet = RunSettings(progress=False)
    template_id, moving_id = cfg.split.template_id, cfg.split.evaluation_ids[0]
    subjects = stages.cohort(cfg, "phantom", (template_id, moving_id), run=quiet)
    slicreg = load_method(cfg, "phantom", "slicreg", run=quiet)
    moving = subjects[moving_id]
    panel = AdamExplorer(slicreg, slicreg.moving_scan(moving.image), subjects[template_id],
                         moving, background=False)
    seconds = []
    for control, value in [(panel.alpha, 0.5), (panel.alpha, 0.05), (panel.k, 6),
                           (panel.k, 12), (panel.iterations, 40), (panel.iterations, 20)]:
        start = time.perf_counter()
        control.value = value
        seconds.append(time.perf_counter() - start)
    return float(np.mean(seconds)), panel.result.timings


def main() -> None:
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    fast_s, reference_s, difference, fast, truth = adam_benchmark()
    recovered = np.median(fast, axis=0)
    print("100 Adam iterations, N=2048 keypoints, 256 channels, k=8, grid 48x40x56:")
    print(f"  slicreg_lite (channels-last gather, kNN index):  {fast_s:6.2f} s  (target <= 1 s)")
    print(f"  reference (grid_sample, dense N x N):            {reference_s:6.2f} s")
    print(f"  ratio {reference_s / fast_s:.1f}x (target >= 5x); largest difference of the two "
          f"results {difference:.4f} voxels")
    print(f"  shift recovered {np.round(recovered, 2).tolist()} of {np.round(truth, 2).tolist()}"
          f" voxels\n")
    seconds, timings = slider_update()
    parts = ", ".join(f"{name} {value:.2f} s" for name, value in timings.items())
    print(f"one slider move on a lite test subject (everything the panel does): "
          f"{seconds:.2f} s "
          f"(target under 0.5 s); {parts}")


if __name__ == "__main__":
    main()
