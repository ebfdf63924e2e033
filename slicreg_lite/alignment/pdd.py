"""PDD-Net (Heinrich, MICCAI 2019), the paper's comparator: a discrete registration
written as a network (step 4). Its layers, the network (:class:`PddNetwork`) and its
training (:func:`train_pdd`), without labels or with them.

A probabilistic dense displacement network compares two scans' features at a grid of
points over a dense set of candidate displacements, makes that comparison smooth and
differentiable, and reads the field off as an expectation:

1. **Correlation** (:func:`correlation`): for every point of a grid on the fixed scan and
   every candidate displacement of a cube (:func:`displacement_set`), the mean squared
   difference of the fixed features at the point and the moving features at the point
   moved: a 6D dissimilarity map (3 dimensions of space x 3 of displacement).
2. **Min-convolution** (:func:`min_convolution`) over the displacement dimensions:
   ``min_d' cost(d') + weight * |d - d'|^2``, the teacher's distance transform
   (:func:`slicreg_lite.teacher.reference.distance_transform`) on the small displacement
   set of every point, computed one axis at a time.
3. **Mean-field steps** (:func:`mean_field`) over the spatial dimensions: each point adds
   the min-convolved costs of its neighbours to its own, a few times, as belief
   propagation would along the teacher's tree, but on the whole grid at once.
4. **Softmax** (:func:`displacement_probabilities`): one probability per displacement.
5. **Expected displacement** (:func:`expected_displacement`): the field.

"Two warps" apply the network a second time, to the moving scan warped by the first
field, with finer candidates (:meth:`PddNetwork.dense_field`). Trained without labels
(:func:`train_pdd`), the network learns features that make the warped scan's MIND
descriptors match the fixed scan's, with a diffusion regulariser on the field; trained
with the training scans' labels, as in the MICCAI paper, a non-local label loss
(:func:`label_loss`) replaces the MIND similarity.

Displacements follow :mod:`slicreg_lite.core.spatial`: ``(3, D, H, W)`` in voxels, on the
fixed grid, pointing into the moving scan. Costs are ``(L, gd, gh, gw)`` tensors: one
channel per candidate displacement, over the grid of points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.spatial import compose, sample, warp_image
from ..teacher.mind import mind_ssc


def displacement_set(radius: int, step: int = 1) -> torch.Tensor:
    """Every candidate displacement of a cube: ``(2 * radius + 1) ** 3`` of them.

    Parameters
    ----------
    radius : int
        Half the cube's width, in candidates (>= 1).
    step : int
        Voxels between neighbouring candidates (>= 1).

    Returns
    -------
    torch.Tensor of float32, shape (L, 3)
        In voxels, in C order of the cube: the last axis varies fastest.

    Examples
    --------
    >>> displacement_set(1, 2).shape, displacement_set(1, 2)[0].tolist()
    (torch.Size([27, 3]), [-2.0, -2.0, -2.0])
    """
    if int(radius) != radius or radius < 1 or int(step) != step or step < 1:
        raise ValueError(f"radius and step must be integers >= 1; got {radius} and {step}")
    axis = torch.arange(-radius, radius + 1, dtype=torch.float32) * step
    cube = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    return cube.reshape(-1, 3)


def _check_features(features: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        raise ValueError(f"{name} must be a torch tensor of shape (C, D, H, W); got "
                         f"{getattr(features, 'shape', type(features).__name__)}")
    return features


def shifted_windows(volume: torch.Tensor, offsets: torch.Tensor, grid_step: int):
    """The volume read at every grid point moved by each offset, one offset at a time.

    Parameters
    ----------
    volume : torch.Tensor, shape (C, D, H, W)
    offsets : torch.Tensor of int, shape (L, 3)
        In voxels of ``volume``.
    grid_step : int
        Voxels between grid points (the points sit at ``0, grid_step, 2 * grid_step, ...``).

    Yields
    ------
    torch.Tensor, shape (C, gd, gh, gw)
        One per offset, in order. Values beyond the volume read as 0. Differentiable in
        ``volume``.
    """
    offsets = offsets.long().tolist()
    reach = max(abs(o) for offset in offsets for o in offset)
    padded = F.pad(volume, (reach,) * 6)
    size = [len(range(0, n, grid_step)) for n in volume.shape[1:]]
    # the padded volume split into its grid_step ** 3 interleaved sub-grids, once: every
    # window is then a plain block of one of them (and its gradient a small one)
    phases = {}
    for offset in offsets:
        start = [reach + o for o in offset]
        phase = tuple(n % grid_step for n in start)
        if phase not in phases:
            phases[phase] = padded[:, phase[0]::grid_step, phase[1]::grid_step,
                                   phase[2]::grid_step]
        corner = [n // grid_step for n in start]
        yield phases[phase][:, corner[0]:corner[0] + size[0], corner[1]:corner[1] + size[1],
                            corner[2]:corner[2] + size[2]]


def correlation(fixed: torch.Tensor, moving: torch.Tensor, *, grid_step: int,
                radius: int, step: int = 1) -> torch.Tensor:
    """The 6D dissimilarity map: fixed features at grid points against moving features at
    every candidate displacement.

    Parameters
    ----------
    fixed, moving : torch.Tensor, shape (C, D, H, W)
        Features of both scans on one grid.
    grid_step : int
        Voxels between grid points (the points sit at ``0, grid_step, 2 * grid_step, ...``).
    radius, step : int
        The candidate displacements (:func:`displacement_set`), in voxels of the features.

    Returns
    -------
    torch.Tensor, shape (L, gd, gh, gw)
        Mean squared difference over the channels; moving features beyond the volume are
        read as 0. Differentiable in both feature maps.
    """
    fixed, moving = _check_features(fixed, "fixed"), _check_features(moving, "moving")
    if fixed.shape != moving.shape:
        raise ValueError(f"fixed and moving must have one shape; got {tuple(fixed.shape)} "
                         f"and {tuple(moving.shape)}")
    at_points = fixed[:, ::grid_step, ::grid_step, ::grid_step]
    return torch.stack([((at_points - window) ** 2).mean(0) for window in
                        shifted_windows(moving, displacement_set(radius, step), grid_step)])


def min_convolution(cost: torch.Tensor, weight, step: int = 1) -> torch.Tensor:
    """``min_d' cost(d') + weight * |d - d'|^2`` over the candidate displacements of every
    grid point: the teacher's distance transform on a cube of candidates.

    The squared distance adds up over the three axes, so the minimum is taken along one
    axis of the cube at a time: ``n ** 4`` operations per point instead of ``n ** 6``.
    Gradients flow to the winning costs (and to ``weight``), as through a max-pooling.

    Parameters
    ----------
    cost : torch.Tensor, shape (L, gd, gh, gw)
        ``L = n ** 3`` candidates in the order of :func:`displacement_set`.
    weight : float or torch.Tensor
        How much a change of displacement between neighbours costs, per squared voxel.
    step : int
        Voxels between neighbouring candidates.

    Returns
    -------
    torch.Tensor, shape (L, gd, gh, gw)
    """
    n = round(cost.shape[0] ** (1 / 3))
    if n ** 3 != cost.shape[0]:
        raise ValueError(f"cost must have n**3 candidates along its first axis; got "
                         f"{cost.shape[0]}")
    grid = cost.shape[1:]
    axis = torch.arange(n, dtype=cost.dtype, device=cost.device) * step
    squared = (axis[:, None] - axis[None, :]) ** 2  # (to, from)
    cube = cost.reshape(n, n, n, -1)
    for dim in range(3):
        moved = cube.movedim(dim, 0)  # (from, ., ., points)
        # which candidate wins is found without gradients, then read from the winners:
        # the backward pass keeps no (to, from) sums
        with torch.no_grad():
            sums = moved[None] + float(weight) * squared.view(n, n, 1, 1, 1)  # (to, from, ...)
            winners = sums.min(dim=1).indices  # (to, ., ., points)
        moves = (axis.view(n, 1, 1, 1) - axis[winners]) ** 2
        cube = (torch.gather(moved, 0, winners) + weight * moves).movedim(0, dim)
    return cube.reshape(n ** 3, *grid)


def mean_field(cost: torch.Tensor, *, weight: float, smoothness: float,
               iterations: int = 2, step: int = 1) -> torch.Tensor:
    """Regularise the costs over the grid: each point adds its neighbours' min-convolved
    costs, ``iterations`` times.

    Parameters
    ----------
    cost : torch.Tensor, shape (L, gd, gh, gw)
        The data cost (:func:`correlation`).
    weight : float
        How strongly the neighbours count against the point's own cost.
    smoothness : float
        The min-convolution's weight (:func:`min_convolution`).
    iterations : int
        Mean-field steps (PDD-Net uses two).

    Returns
    -------
    torch.Tensor, shape (L, gd, gh, gw)
    """
    regularised = cost
    for _ in range(iterations):
        messages = min_convolution(regularised, smoothness, step)
        # the mean over the 6 face neighbours (a 3x3x3 mean less the centre and corners
        # would be costlier): neighbours beyond the grid repeat the border
        padded = F.pad(messages[None], (1, 1, 1, 1, 1, 1), mode="replicate")[0]
        neighbours = (padded[:, :-2, 1:-1, 1:-1] + padded[:, 2:, 1:-1, 1:-1]
                      + padded[:, 1:-1, :-2, 1:-1] + padded[:, 1:-1, 2:, 1:-1]
                      + padded[:, 1:-1, 1:-1, :-2] + padded[:, 1:-1, 1:-1, 2:]) / 6
        regularised = cost + weight * neighbours
    return regularised


def displacement_probabilities(cost: torch.Tensor, temperature: float) -> torch.Tensor:
    """One probability per candidate displacement at every grid point: ``softmax(-cost /
    temperature)`` over the candidates."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    return torch.softmax(-cost / temperature, dim=0)


def expected_displacement(probabilities: torch.Tensor,
                          displacements: torch.Tensor) -> torch.Tensor:
    """The field: the expected displacement under the probabilities, at every grid point.

    Parameters
    ----------
    probabilities : torch.Tensor, shape (L, gd, gh, gw)
    displacements : torch.Tensor, shape (L, 3)
        The candidates (:func:`displacement_set`).

    Returns
    -------
    torch.Tensor, shape (3, gd, gh, gw)
        In the units of ``displacements``.
    """
    if probabilities.shape[0] != displacements.shape[0]:
        raise ValueError(f"probabilities have {probabilities.shape[0]} candidates, "
                         f"displacements {displacements.shape[0]}")
    return torch.einsum("lxyz,lc->cxyz", probabilities, displacements.to(probabilities))


def grid_to_field(grid_field: torch.Tensor, shape, grid_step: int) -> torch.Tensor:
    """A field on the grid of points as a dense field on a volume of ``shape`` whose voxel
    ``grid_step * i`` is grid point ``i``: trilinear in between, the border's value beyond
    the last point. Differentiable (training warps with it).

    Parameters
    ----------
    grid_field : torch.Tensor, shape (3, gd, gh, gw)
    shape : tuple of 3 ints
    grid_step : int

    Returns
    -------
    torch.Tensor, shape (3, *shape)
    """
    coords = torch.stack(torch.meshgrid(
        *[torch.arange(n, dtype=grid_field.dtype, device=grid_field.device) / grid_step
          for n in shape], indexing="ij"))
    return sample(grid_field, coords, padding="border")


# ------------------------------------------------------------------------- the network
class FeatureExtractor(nn.Module):
    """A small 3D CNN: a scan (HU) to ``channels`` features at half its resolution.

    PDD-Net's extractor is deliberately small (the original uses OBELISK-style deformable
    convolutions with few trainable weights): the correlation and the regularisation do
    the registration, the features only have to make the scans comparable.
    """

    def __init__(self, channels: int = 16, width: int = 24):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(1, width, 3, stride=2, padding=1), nn.InstanceNorm3d(width),
            nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.InstanceNorm3d(width), nn.ReLU(),
            nn.Conv3d(width, channels, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(D, H, W)`` scaled intensities -> ``(channels, ceil(D / 2), ...)``."""
        return self.layers(image[None, None])[0]


@dataclass
class PddOutput:
    """What one pass of :class:`PddNetwork` computes (on the grid of points).

    Attributes
    ----------
    field : torch.Tensor, shape (3, gd, gh, gw)
        The expected displacement at every grid point, in voxels of the scans.
    probabilities : torch.Tensor, shape (L, gd, gh, gw)
        Of every candidate displacement, after the regularisation.
    cost : torch.Tensor, shape (L, gd, gh, gw)
        The data cost before it (:func:`correlation`).
    displacements : torch.Tensor, shape (L, 3)
        The candidates, in voxels of the scans.
    """

    field: torch.Tensor
    probabilities: torch.Tensor
    cost: torch.Tensor
    displacements: torch.Tensor


class PddNetwork(nn.Module):
    """PDD-Net: features, correlation, min-convolutions and mean-field steps, softmax, the
    expected displacement; applied twice ("two warps"), the second time to the moving
    scan warped by the first field, with finer candidates.

    Parameters
    ----------
    channels, width : int
        The feature extractor's output channels and width.
    grid_step : int
        Feature voxels between grid points.
    radius : int
        Candidates per axis: ``2 * radius + 1`` (:func:`displacement_set`).
    steps : tuple of int
        Feature voxels between candidates, one per warp (the second warp's are finer).
    iterations : int
        Mean-field steps.
    intensity_scale : float
        Hounsfield units are divided by it before the extractor.
    """

    #: Scans are read at half resolution: one feature voxel is this many voxels.
    stride = 2

    def __init__(self, *, channels: int = 16, width: int = 24, grid_step: int = 2,
                 radius: int = 3, steps=(2, 1), iterations: int = 2,
                 intensity_scale: float = 500.0):
        super().__init__()
        if len(steps) < 1:
            raise ValueError(f"steps must name one step per warp; got {steps}")
        self.extractor = FeatureExtractor(channels, width)
        self.grid_step, self.radius, self.steps = grid_step, radius, tuple(steps)
        self.iterations, self.intensity_scale = iterations, intensity_scale
        # the regularisation's three numbers are learnt too, on a log scale (positive);
        # they start where MIND features would register well (unit-length features cost
        # between 0 and 4 / channels)
        self.log_weight = nn.Parameter(torch.tensor(0.0))
        self.log_smoothness = nn.Parameter(torch.tensor(float(np.log(0.01))))
        self.log_temperature = nn.Parameter(torch.tensor(float(np.log(0.02))))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """A scan's features, ``(channels, ceil(D / 2), ceil(H / 2), ceil(W / 2))``, of
        unit length at every voxel (so that costs, and the temperature, keep one scale)."""
        return F.normalize(self.extractor(image / self.intensity_scale), dim=0)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor, warp: int = 0) -> PddOutput:
        """One pass: ``fixed`` and ``moving`` are ``(D, H, W)`` scans in HU on one grid;
        ``warp`` chooses the candidates (``steps[warp]``)."""
        if fixed.shape != moving.shape or fixed.ndim != 3:
            raise ValueError(f"fixed and moving must be (D, H, W) scans of one shape; got "
                             f"{tuple(fixed.shape)} and {tuple(moving.shape)}")
        step = self.steps[warp]
        cost = correlation(self.features(fixed), self.features(moving),
                           grid_step=self.grid_step, radius=self.radius, step=step)
        regularised = mean_field(cost, weight=self.log_weight.exp(),
                                 smoothness=self.log_smoothness.exp(),
                                 iterations=self.iterations, step=step)
        probabilities = displacement_probabilities(regularised, self.log_temperature.exp())
        displacements = displacement_set(self.radius, step).to(cost) * self.stride
        field = expected_displacement(probabilities, displacements)
        return PddOutput(field, probabilities, cost, displacements)

    def dense_field(self, fixed: torch.Tensor, moving: torch.Tensor, warps: int = 2):
        """The field on the fixed scan's grid after ``warps`` passes (voxels, (3, D, H, W)),
        and the last pass's output.

        The second pass (the second warp) sees the moving scan warped by the first field,
        with finer candidates; its field is composed with the first.
        """
        if warps not in range(1, len(self.steps) + 1):
            raise ValueError(f"warps must be between 1 and {len(self.steps)} (one candidate "
                             f"step per warp: {self.steps}); got {warps}")
        total, output = None, None
        for warp in range(warps):
            moved = moving if total is None else warp_image(moving, total, fill=-1000.0)
            output = self(fixed, moved, warp)
            field = grid_to_field(output.field, fixed.shape, self.grid_step * self.stride)
            total = field if total is None else compose(total, field)
        return total, output


# ------------------------------------------------------------------------ its training
def similarity_loss(fixed_mind: torch.Tensor, moving_mind: torch.Tensor,
                    field: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the fixed scan's MIND descriptors and the moving scan's,
    warped by ``field``: the label-free similarity of the unsupervised variant."""
    return ((fixed_mind - warp_image(moving_mind, field)) ** 2).mean()


def label_loss(fixed_labels: torch.Tensor, moving_labels: torch.Tensor,
               output: PddOutput, grid_step: int, class_weights: torch.Tensor) -> torch.Tensor:
    """The MICCAI paper's non-local label loss: every candidate displacement proposes the
    moving scan's labels there, weighted by its probability; the expected labels at each
    grid point should be the fixed scan's.

    Parameters
    ----------
    fixed_labels, moving_labels : torch.Tensor, shape (K, d, h, w)
        Soft one-hot labels at the features' resolution.
    output : PddOutput
        The pass whose probabilities are trained.
    grid_step : int
        Feature voxels between grid points.
    class_weights : torch.Tensor, shape (K,)

    Returns
    -------
    torch.Tensor
        The class-weighted mean squared difference.
    """
    offsets = (output.displacements / PddNetwork.stride).round()
    target = fixed_labels[:, ::grid_step, ::grid_step, ::grid_step]
    expected = sum(probability * window for probability, window in
                   zip(output.probabilities, shifted_windows(moving_labels, offsets, grid_step)))
    squared = ((expected - target) ** 2).mean((1, 2, 3))
    return (class_weights * squared).sum() / class_weights.sum()


def diffusion(field: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring displacements (the diffusion regulariser)."""
    return sum(((field.diff(dim=axis)) ** 2).mean() for axis in (1, 2, 3))


def _one_hot(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Soft one-hot labels at half resolution (a 2x2x2 average of the one-hot volume)."""
    one_hot = F.one_hot(torch.as_tensor(labels, dtype=torch.long), n_classes)
    one_hot = one_hot.permute(3, 0, 1, 2).float()[None]
    return F.avg_pool3d(one_hot, 2, ceil_mode=True)[0]


def train_pdd(model: PddNetwork, images: list, *, iterations: int, learning_rate: float,
              regularisation: float, seed: int, labels: list | None = None,
              progress: bool = False) -> dict:
    """Train PDD-Net on random pairs of the training scans, one pass (the first warp).

    Without labels (the default): the MIND similarity of the fixed scan and the warped
    moving scan, at half resolution, plus ``regularisation`` x the diffusion of the grid
    field. With ``labels``: the non-local label loss (:func:`label_loss`) instead of the
    similarity, as in the MICCAI paper. The second warp reuses what the first learnt.
    Deterministic on the CPU.

    Parameters
    ----------
    model : PddNetwork
    images : list of numpy.ndarray, shape (D, H, W)
        Scans on one grid (HU): the training scans.
    iterations : int
        Adam steps, one pair each.
    learning_rate, regularisation : float
    seed : int
        Decides the pairs.
    labels : list of numpy.ndarray, optional
        The scans' organ labels (integers), for the weakly supervised variant.
    progress : bool

    Returns
    -------
    dict
        ``"loss"``: the loss of every step.
    """
    from tqdm.auto import tqdm

    if len(images) < 2 or iterations < 1:
        raise ValueError(f"need at least 2 scans and iterations >= 1; got {len(images)} "
                         f"and {iterations}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must give one label map per scan; got {len(labels)} for "
                         f"{len(images)} scans")
    rng = np.random.default_rng(seed)
    scans = [torch.as_tensor(np.asarray(image, dtype=np.float32)) for image in images]
    half = [(n + 1) // 2 for n in scans[0].shape]
    grid_step = model.grid_step
    if labels is None:
        # MIND at half resolution: the loss looks where the features look
        targets = [F.avg_pool3d(mind_ssc(scan)[None], 2, ceil_mode=True)[0] for scan in scans]
    else:
        n_classes = int(max(np.max(label) for label in labels)) + 1
        targets = [_one_hot(label, n_classes) for label in labels]
        # rare organs count more (inverse square root of their volume), the background less
        volume = torch.stack([t.sum((1, 2, 3)) for t in targets]).sum(0)
        class_weights = (volume + 1).rsqrt()
        class_weights = class_weights / class_weights.mean()
        class_weights[0] = 0.15
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    history = {"loss": []}
    for _ in tqdm(range(iterations), desc="training PDD-Net", disable=not progress):
        fixed, moving = (int(i) for i in rng.choice(len(scans), size=2, replace=False))
        output = model(scans[fixed], scans[moving])
        if labels is None:
            field = grid_to_field(output.field / model.stride, half, grid_step)
            match = similarity_loss(targets[fixed], targets[moving], field)
        else:
            match = label_loss(targets[fixed], targets[moving], output, grid_step,
                               class_weights)
        loss = match + regularisation * diffusion(output.field)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history["loss"].append(float(loss.detach()))
    model.eval()
    return history
