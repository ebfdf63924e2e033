"""Training the networks of step 3: data, augmentation, losses, the loop, checkpoints.

- :class:`SupervoxelDataset`: training scans with the teacher's supervoxel layers (and
  displacements), resampled to the network's input and output grids.
- :func:`augment`: one random affine (identity + N(0, 0.07) on the 3 x 4 matrix) applied
  to the image (linear) and the targets (nearest) alike, so they stay aligned.
- :func:`supervoxel_loss` (cross-entropy averaged over the layers) and
  :func:`regression_loss` (L1 at supervoxel centres).
- :func:`train`: Adam, a progress bar, loss and validation curves; mixed precision and
  activation checkpointing on CUDA, a plain fast path on the CPU; deterministic for a
  seed on the CPU.
- :func:`save_checkpoint` / :func:`load_checkpoint`: weights with the preset, the
  architecture and the package version; a model of another shape or a corrupt file is
  refused with a clear error.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.config import RunSettings, TrainingConfig
from ..core.files import atomic_write
from ..core.spatial import (
    affine_to_displacement,
    normalised_affine_to_voxel,
    resize,
    resize_displacement,
    warp_image,
    warp_labels,
)
from ..core.version import __version__
from ..supervoxels.layers import supervoxel_centres
from .models import build_model, count_parameters


@dataclass
class TrainingSample:
    """One training scan on the network's grids.

    Attributes
    ----------
    image : torch.Tensor, shape (1, D, H, W)
        Intensities / ``intensity_scale``, on the input grid.
    layers : torch.Tensor of int64, shape (L, d, h, w)
        The teacher's supervoxel labels, on the output grid.
    displacement : torch.Tensor, shape (3, d, h, w) or None
        The teacher's displacement in voxels of the output grid (regression targets).
    """

    image: torch.Tensor
    layers: torch.Tensor
    displacement: torch.Tensor | None = None


class SupervoxelDataset(torch.utils.data.Dataset):
    """Training scans with their teacher-warped supervoxel layers.

    Parameters
    ----------
    images : sequence of numpy.ndarray, shape (D, H, W)
        CT scans in HU.
    layers : sequence of numpy.ndarray of uint8, shape (L, D', H', W')
        The teacher's supervoxel layers of each scan (any grid covering the same extent).
    input_shape, output_shape : tuple of 3 ints
        The network's input grid and output grid (the output is half the input).
    displacements : sequence of numpy.ndarray, shape (3, D, H, W), optional
        The teacher's fields in voxels of the image grid (for the regression head).
    intensity_scale : float
        Images are divided by this (500 in the paper).
    """

    def __init__(self, images, layers, input_shape, output_shape, *, displacements=None,
                 intensity_scale: float = 500.0):
        if len(images) != len(layers):
            raise ValueError(f"images and layers must pair up; got {len(images)} images and "
                             f"{len(layers)} layer stacks")
        if displacements is not None and len(displacements) != len(images):
            raise ValueError(f"displacements must pair up with images; got "
                             f"{len(displacements)} for {len(images)} images")
        self.samples = []
        for index, (image, stack) in enumerate(zip(images, layers)):
            image = np.asarray(image, dtype=np.float32)
            stack = np.asarray(stack)
            if image.ndim != 3 or stack.ndim != 4:
                raise ValueError(f"sample {index}: expected an image (D, H, W) and layers "
                                 f"(L, D, H, W); got {image.shape} and {stack.shape}")
            scaled = resize(image / intensity_scale, input_shape)
            targets = resize(stack, output_shape, mode="nearest") \
                if stack.shape[1:] != tuple(output_shape) else stack
            field = None
            if displacements is not None:
                field = torch.from_numpy(resize_displacement(
                    np.asarray(displacements[index], dtype=np.float32), output_shape))
            self.samples.append(TrainingSample(torch.from_numpy(scaled)[None],
                                               torch.from_numpy(targets.astype(np.int64)),
                                               field))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.samples[index]


def augment(sample: TrainingSample, std: float, rng: np.random.Generator) -> TrainingSample:
    """The same random affine for the image (linear) and its targets (nearest neighbour).

    The perturbation is drawn once in normalised coordinates and converted to each grid,
    so image and labels move together although their grids differ in size.
    """
    theta = np.eye(3, 4) + rng.normal(0.0, std, size=(3, 4))
    image_field = torch.from_numpy(affine_to_displacement(
        normalised_affine_to_voxel(theta, sample.image.shape[1:]), sample.image.shape[1:]))
    label_field = torch.from_numpy(affine_to_displacement(
        normalised_affine_to_voxel(theta, sample.layers.shape[1:]), sample.layers.shape[1:]))
    # outside the scan: air in the image, background in the labels
    image = warp_image(sample.image, image_field, fill=float(sample.image.min()))
    layers = warp_labels(sample.layers, label_field)
    displacement = None
    if sample.displacement is not None:
        # a target moves with the anatomy: sample the field at the moved positions
        displacement = warp_image(sample.displacement, label_field, padding="border") \
            + label_field
    return TrainingSample(image, layers, displacement)


def supervoxel_loss(logits: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every layer's 128-way classification, averaged over the layers.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, L, K, d, h, w)
    layers : torch.Tensor of int64, shape (B, L, d, h, w)
    """
    if logits.shape[:2] != layers.shape[:2] or logits.shape[3:] != layers.shape[2:]:
        raise ValueError(f"logits (B, L, K, d, h, w) and layers (B, L, d, h, w) must match; "
                         f"got {tuple(logits.shape)} and {tuple(layers.shape)}")
    return F.cross_entropy(logits.flatten(0, 1), layers.flatten(0, 1))


def regression_loss(prediction: torch.Tensor, target: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of displacements where ``mask`` is set (supervoxel centres)."""
    error = (prediction - target).abs().sum(1)  # (B, d, h, w)
    return (error * mask).sum() / mask.sum().clamp(min=1)


def centre_mask(layers: torch.Tensor, n_layers: int = 8) -> torch.Tensor:
    """True at the voxel nearest to each supervoxel's centre in the first ``n_layers``:
    the ~1,000 places where the regression head is taught (as in the paper)."""
    batch = []
    for stack in layers:
        mask = torch.zeros(stack.shape[1:], dtype=torch.bool)
        for layer in stack[:n_layers].numpy():
            present = np.unique(layer)
            if len(present) < 2:
                continue
            # labels may be missing on a resampled grid: number the present ones 1..k
            relabelled = np.searchsorted(present, layer)[None]
            centres = np.round(supervoxel_centres(relabelled)[0]).astype(int)
            mask[tuple(torch.from_numpy(centres).T)] = True
        batch.append(mask)
    return torch.stack(batch)


def layer_accuracy(logits: torch.Tensor, layers: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of voxels whose predicted label equals the target, per layer: shape (L,)."""
    agree = (logits.argmax(2) == layers).float()  # (B, L, d, h, w)
    if mask is None:
        return agree.mean((0, 2, 3, 4))
    weights = mask[:, None].float()
    return (agree * weights).sum((0, 2, 3, 4)) / weights.sum((0, 2, 3, 4)).clamp(min=1)


def _batch(samples: list[TrainingSample], device) -> tuple:
    images = torch.stack([s.image for s in samples]).to(device)
    layers = torch.stack([s.layers for s in samples]).to(device)
    fields = None
    if samples[0].displacement is not None:
        fields = torch.stack([s.displacement for s in samples]).to(device)
    return images, layers, fields


def train(model: torch.nn.Module, dataset: SupervoxelDataset, cfg: TrainingConfig, *,
          iterations: int | None = None, validation: SupervoxelDataset | None = None,
          run: RunSettings | None = None) -> dict:
    """Train a network on a dataset with Adam.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`slicreg_lite.network.models.build_model`; its ``head_name`` ("slic" or
        "regression") chooses the loss.
    dataset : SupervoxelDataset
    cfg : TrainingConfig
        Learning rate, batch size, augmentation, seed (``get_config(preset).training``).
    iterations : int, optional
        Default ``cfg.iterations``.
    validation : SupervoxelDataset, optional
        Evaluated every ``run.validate_every`` iterations and after the last one (mean
        layer accuracy, or L1 error).
    run : RunSettings, optional
        How to run: ``device`` (default: CUDA when available, else the CPU),
        ``mixed_precision`` and ``checkpointing`` (used on CUDA only),
        ``validate_every``, ``progress`` (a progress bar with the running loss). None of
        them changes what is learnt on the CPU (``cfg.cpu_bfloat16`` does).

    Returns
    -------
    dict
        ``"loss"``: one value per iteration; ``"validation"``: (iteration, value) pairs.

    Notes
    -----
    After the last iteration BatchNorm's statistics are measured anew on the training
    scans (:func:`recalibrate_batchnorm`).
    """
    from tqdm.auto import tqdm

    iterations = cfg.iterations if iterations is None else int(iterations)
    if iterations < 1 or len(dataset) == 0:
        raise ValueError(f"need iterations >= 1 and a non-empty dataset; got {iterations} "
                         f"and {len(dataset)} samples")
    run = RunSettings() if run is None else run
    device = torch.device(run.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and run.mixed_precision)
    bfloat16 = device.type == "cpu" and cfg.cpu_bfloat16
    regression = getattr(model, "predicts_displacements", False)
    history = {"loss": [], "validation": []}
    bar = tqdm(range(iterations), desc="training", disable=not run.progress)
    for step in bar:
        picked = rng.choice(len(dataset), size=min(cfg.batch_size, len(dataset)),
                            replace=False)
        samples = [augment(dataset[int(i)], cfg.augment_std, rng) for i in picked]
        images, layers, fields = _batch(samples, device)
        with torch.autocast(device.type, dtype=torch.bfloat16 if bfloat16 else None,
                            enabled=(cuda and run.mixed_precision) or bfloat16):
            if cuda and run.checkpointing:
                # recompute activations in the backward pass: less memory on small GPUs
                output = torch.utils.checkpoint.checkpoint(model, images, use_reentrant=False)
            else:
                output = model(images)
            if regression:
                loss = regression_loss(output.float(), fields,
                                       centre_mask(layers.cpu()).to(device))
            else:
                loss = supervoxel_loss(output.float(), layers)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        value = float(loss.detach())
        history["loss"].append(value)
        bar.set_postfix(loss=f"{value:.3f}")
        last = step + 1 == iterations
        if last:
            recalibrate_batchnorm(model, dataset, device=device)
        if validation is not None and ((step + 1) % run.validate_every == 0 or last):
            history["validation"].append((step + 1, evaluate(model, validation, device=device)))
            model.train()
    return history


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, dataset: SupervoxelDataset, *,
                          device=None) -> None:
    """Measure the mean and variance that every BatchNorm layer uses at inference anew, as
    averages over the (unaugmented) training scans seen one at a time.

    During training BatchNorm keeps an exponential moving average of its batches'
    statistics, dominated by the last few (augmented) batches of two scans: noisy, and
    taken with weights that changed meanwhile. Measuring them anew, with the final
    weights, removes both.
    """
    batchnorm = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    norms = [m for m in model.modules() if isinstance(m, batchnorm)]
    if not norms:
        return
    device = torch.device(device or next(model.parameters()).device)
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # None: a cumulative average over all batches seen
        norm.train()
    for sample in dataset:
        model(sample.image[None].to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SupervoxelDataset, *, device=None) -> float:
    """Mean layer accuracy (classification) or mean L1 error at centres (regression)."""
    device = torch.device(device or next(model.parameters()).device)
    model.eval()
    values = []
    for sample in dataset:
        images, layers, fields = _batch([sample], device)
        output = model(images)
        if getattr(model, "predicts_displacements", False):
            values.append(float(regression_loss(output, fields,
                                                centre_mask(layers.cpu()).to(device))))
        else:
            values.append(float(layer_accuracy(output, layers).mean()))
    return float(np.mean(values))


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, model: torch.nn.Module, *, preset: str, history=None) -> Path:
    """Store the weights with what is needed to rebuild and check the model (atomic)."""
    content = {"state_dict": model.state_dict(), "preset": preset,
               "backbone": getattr(model, "backbone_name", None),
               "head": getattr(model, "head_name", None),
               "parameters": count_parameters(model), "package_version": __version__,
               "history": history}
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return atomic_write(path, lambda temporary: temporary.write_bytes(buffer.getvalue()))


def load_checkpoint(path, model: torch.nn.Module | None = None, cfg=None
                    ) -> tuple[torch.nn.Module, dict]:
    """Load weights into ``model`` (or into a new model of the stored architecture).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a checkpoint of this package (corrupt, truncated, another
        format) or its weights do not fit the model (another architecture or size).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise ValueError(f"{str(path)!r} is not a readable checkpoint (corrupt or "
                         f"truncated?): {error}") from error
    if not isinstance(content, dict) or "state_dict" not in content:
        raise ValueError(f"{str(path)!r} is not a slicreg_lite checkpoint: expected a dict "
                         f"with 'state_dict'; got {type(content).__name__}")
    if model is None:
        model = build_model(content["backbone"], content["head"], cfg)
    try:
        model.load_state_dict(content["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {str(path)!r} ({content.get('backbone')} + {content.get('head')}, "
            f"{content.get('parameters')} parameters, preset {content.get('preset')!r}) does "
            f"not fit this model ({getattr(model, 'backbone_name', '?')} + "
            f"{getattr(model, 'head_name', '?')}): {str(error).splitlines()[0]}") from error
    return model, content
