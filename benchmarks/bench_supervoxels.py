"""Speed of the SLIC supervoxel layers (step 1).

For the lite template and a paper-sized supervoxel grid (96 x 80 x 128, the paper's
half-resolution template) it prints:

- seconds for all 16 layers and per layer (the whole of :func:`slic_layer`);
- the reference measured in the same run: scikit-image's SLIC alone on the same input,
  and the ratio layer / SLIC (the cost of our affine, warping back and robust merge);
- the time of the merge alone (:func:`merge_to_count` on a raw SLIC result).

Target: 16 layers under lite in at most 30 s on the 2-core machine.

Usage: ``python benchmarks/bench_supervoxels.py``
"""

from __future__ import annotations

import time

from skimage.segmentation import slic

from slicreg_lite.cohort.phantom import generate_subject
from slicreg_lite.core.config import get_config
from slicreg_lite.core.spatial import resize
from slicreg_lite.supervoxels import body_mask, encoding_resolution, merge_to_count, slic_layers


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    cfg = get_config("lite")
    paper = get_config("paper")
    cases = {"lite": generate_subject(38, cfg.phantom, cfg.grid).image,
             "paper-sized": resize(generate_subject(38, paper.phantom, paper.grid).image,
                                   paper.supervoxels.shape)}
    params = cfg.supervoxels
    print(f"{'input':>12s} {'shape':>15s} {'16 layers s':>12s} {'s/layer':>8s} "
          f"{'SLIC alone s':>13s} {'layer/SLIC':>11s} {'merge s':>8s} {'cells 16/1':>11s}")
    for name, image in cases.items():
        mask = body_mask(image)
        layers, total = timed(slic_layers, image, mask, params)
        raw, slic_seconds = timed(slic, image / params.intensity_scale,
                                  n_segments=params.n_segments, compactness=params.compactness,
                                  max_num_iter=params.max_iter,
                                  min_size_factor=params.min_size_factor, mask=mask,
                                  channel_axis=None)
        _, merge_seconds = timed(merge_to_count, raw, params.n_supervoxels - 1)
        per_layer = total / params.n_layers
        ratio = encoding_resolution(layers, (16,))[0]["ratio"]
        print(f"{name:>12s} {str(image.shape):>15s} {total:12.1f} {per_layer:8.2f} "
              f"{slic_seconds:13.2f} {per_layer / slic_seconds:11.2f} {merge_seconds:8.3f} "
              f"{ratio:10.0f}x")
    print("target: 16 lite layers <= 30 s")


if __name__ == "__main__":
    main()
