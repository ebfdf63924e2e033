"""Speed and quality of deeds-lite (step 2) under the lite preset.

Prints, measured in this run:

1. seconds per registration (training subject <- template) with the breakdown MIND,
   affine, cost volume, belief propagation, warping (the last three summed over the two
   directions, which run side by side on two threads), and avg(4) Dice before, after the
   affine step and after the deformable step, for several cohort pairs;
2. the ratio of a pair's wall time to a yardstick from the same run (MIND of one scan);
3. the design choices against plain reference implementations: the compiled cost
   volume and the strided-view (torch) cost volume against a gather of index arrays,
   the lower-envelope distance transform against the brute-force (quadratic) message,
   and the compiled belief propagation against its NumPy reference (identical labels).

Target: at most 10 s per pair on the 2-core machine; avg(4) >= 70% after.

Usage: ``python benchmarks/bench_teacher.py [--pairs 4]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.labels import BTCV_LABELS
from slicreg_lite.core.metrics import (
    score_registration,
)
from slicreg_lite.core.spatial import affine_to_displacement, warp_labels
from slicreg_lite.pipeline import stages
from slicreg_lite.teacher import grid, reference, register
from slicreg_lite.teacher.compiled import cost_volume_compiled, tree_belief_propagation_compiled
from slicreg_lite.teacher.mind import mind_ssc


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def gather_cost_volume(fixed, moving, spacing, radius, quantisation, offsets):
    """Reference: the same cost volume by gathering feature rows at index arrays."""
    channels, *shape = fixed.shape
    points, _ = grid.control_points(shape, spacing)
    labels = grid.displacement_labels(radius, quantisation)
    high = torch.tensor(shape) - 1
    strides = torch.tensor([shape[1] * shape[2], shape[2], 1])
    flat = lambda c: (torch.minimum(c.clamp(min=0), high) * strides).sum(-1)  # noqa: E731
    fixed_rows = fixed.reshape(channels, -1).T.contiguous()
    moving_rows = moving.reshape(channels, -1).T.contiguous()
    where = torch.from_numpy(points[:, None] + offsets[None])
    fixed_samples = fixed_rows[flat(where)]
    cost = torch.empty(len(points), len(labels))
    chunk = max(1, 20_000_000 // (len(offsets) * len(labels) * channels))
    for start in range(0, len(points), chunk):
        moved = where[start:start + chunk, :, None] + torch.from_numpy(labels)
        samples = moving_rows[flat(moved)]
        cost[start:start + chunk] = (samples - fixed_samples[start:start + chunk, :, None]
                                     ).square().sum((1, 3))
    return cost


def brute_force_message(costs, weight):
    """Reference: min over all label pairs, quadratic in the number of labels."""
    side = costs.shape[1]
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    penalty = weight * ((grid[:, None] - grid[None]) ** 2).sum(-1)
    flat = costs.reshape(len(costs), -1)
    return np.stack([(row[None] + penalty).min(1) for row in flat])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    cfg = get_config("lite")
    ids = cfg.split.train_ids[:args.pairs]
    subjects = stages.cohort(cfg, "phantom", (*ids, cfg.split.template_id),
                             run=RunSettings(progress=False))
    template = subjects[cfg.split.template_id]

    _, mind_seconds = timed(mind_ssc, template.image)
    parts = ("MIND", "affine", "cost volume", "belief propagation", "warping")
    print(f"{'pair':>8s} {'total s':>8s} " + " ".join(f"{p:>10.10s}" for p in parts)
          + f" {'avg4 before':>11s} {'affine':>7s} {'after':>6s} {'fold %':>7s}")
    totals, afters = [], []
    for i in ids:
        fixed = subjects[i]
        result, seconds = timed(register, fixed.image, template.image, cfg.teacher)
        scores = [score_registration(warp_labels(template.labels, field), fixed.labels, field,
                                     label_names=BTCV_LABELS, body=fixed.body_mask,
                                     hd95=False)
                  for field in (np.zeros_like(result.displacement),
                                affine_to_displacement(result.affine, fixed.shape),
                                result.displacement)]
        dice = [100 * s.summary["avg(4)"] for s in scores]
        folding = scores[2].jacobian["percent_folding"]
        totals.append(seconds)
        afters.append(dice[2])
        print(f"{i:>3d} <- {cfg.split.template_id:<2d} {seconds:8.1f} "
              + " ".join(f"{result.timings.get(p, 0):10.2f}" for p in parts)
              + f" {dice[0]:11.1f} {dice[1]:7.1f} {dice[2]:6.1f} {folding:7.2f}")
    print(f"mean {np.mean(totals):.1f} s per pair (target <= 10 s), "
          f"{np.mean(totals) / mind_seconds:.0f}x the MIND of one scan "
          f"({mind_seconds:.2f} s); mean avg(4) after {np.mean(afters):.1f}% (target >= 70%)")

    # design choices against their plain references, on level 1 of the first pair
    spacing, radius, quantisation = (cfg.teacher.grid_spacings[0], cfg.teacher.search_radii[0],
                                     cfg.teacher.quantisations[0])
    offsets, box = grid.patch_offsets(spacing)
    fixed_features = grid.smooth_features(mind_ssc(subjects[ids[0]].image), box)
    moving_features = grid.smooth_features(mind_ssc(template.image), box)
    strided, strided_seconds = timed(reference.cost_volume, fixed_features, moving_features,
                                     spacing=spacing, radius=radius,
                                     quantisation=quantisation, offsets=offsets)
    gathered, gather_seconds = timed(gather_cost_volume, fixed_features, moving_features,
                                     spacing, radius, quantisation, offsets)
    arguments = dict(spacing=spacing, radius=radius, quantisation=quantisation,
                     offsets=offsets)
    cost_volume_compiled(fixed_features[:, :8, :8, :8], moving_features[:, :8, :8, :8],
                         **arguments)  # compile (cached on disk afterwards)
    compiled_cost, compiled_cost_seconds = timed(cost_volume_compiled, fixed_features,
                                                 moving_features, **arguments)
    assert torch.allclose(strided, gathered, rtol=1e-4, atol=1e-3)
    assert torch.allclose(compiled_cost, strided, rtol=1e-5, atol=1e-5)
    print(f"cost volume, level 1 ({strided.shape[0]} points x {strided.shape[1]} labels): "
          f"compiled {compiled_cost_seconds:.2f} s, strided views {strided_seconds:.2f} s, "
          f"gather reference {gather_seconds:.2f} s; ratio gather / compiled "
          f"{gather_seconds / compiled_cost_seconds:.1f}x, strided / compiled "
          f"{strided_seconds / compiled_cost_seconds:.1f}x")
    side = 2 * radius + 1
    costs = strided[:200].numpy().reshape(-1, side, side, side)
    envelope, envelope_seconds = timed(reference.distance_transform, costs, 0.1)
    brute, brute_seconds = timed(brute_force_message, costs, 0.1)
    assert np.allclose(envelope.reshape(len(costs), -1), brute)
    print(f"messages of 200 nodes with {side ** 3} labels: lower envelope "
          f"{envelope_seconds:.3f} s, brute force {brute_seconds:.3f} s, "
          f"ratio {brute_seconds / envelope_seconds:.1f}x")

    points, grid_shape = grid.control_points(template.shape, spacing)
    order, parents = grid.minimum_spanning_tree(torch.from_numpy(subjects[ids[0]].image),
                                                    points, grid_shape, spacing)
    weight = cfg.teacher.regularisation * quantisation ** 2 / spacing ** 2
    arguments = (strided.numpy(), order, parents, (side,) * 3, weight)
    tree_belief_propagation_compiled(*arguments)  # compile (cached on disk afterwards)
    compiled, compiled_seconds = timed(tree_belief_propagation_compiled, *arguments)
    readable, reference_seconds = timed(reference.tree_belief_propagation, *arguments)
    assert np.array_equal(compiled, readable)
    print(f"belief propagation, level 1 ({len(points)} nodes, {side ** 3} labels): compiled "
          f"{compiled_seconds:.3f} s, NumPy reference {reference_seconds:.3f} s, ratio "
          f"{reference_seconds / compiled_seconds:.1f}x, identical labels")


if __name__ == "__main__":
    main()
