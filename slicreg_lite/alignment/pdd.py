"""PDD-Net (Heinrich, MICCAI 2019), the paper's comparator: a discrete registration
written as a network (step 4). Its layers, the network (:class:`PddNet`) and its training
without labels (:func:`train_pdd`).

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
field (:meth:`PddNet.dense_field`). Trained without labels (:func:`train_pdd`), the
network learns features that make the warped scan's MIND descriptors match the fixed
scan's, with a diffusion regulariser on the field.

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
    reach = radius * step
    padded = F.pad(moving, (reach,) * 6)
    at_points = fixed[:, ::grid_step, ::grid_step, ::grid_step]
    size = at_points.shape[1:]
    costs = []
    for offset in displacement_set(radius, step).long().tolist():
        start = [reach + o for o in offset]
        window = padded[:, start[0]::grid_step, start[1]::grid_step, start[2]::grid_step]
        window = window[:, :size[0], :size[1], :size[2]]
        costs.append(((at_points - window) ** 2).mean(0))
    return torch.stack(costs)


def min_convolution(cost: torch.Tensor, weight: float, step: int = 1) -> torch.Tensor:
    """``min_d' cost(d') + weight * |d - d'|^2`` over the candidate displacements of every
    grid point: the teacher's distance transform on a cube of candidates.

    The squared distance adds up over the three axes, so the minimum is taken along one
    axis of the cube at a time: ``n ** 4`` operations per point instead of ``n ** 6``.

    Parameters
    ----------
    cost : torch.Tensor, shape (L, gd, gh, gw)
        ``L = n ** 3`` candidates in the order of :func:`displacement_set`.
    weight : float
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
    penalty = weight * (axis[:, None] - axis[None, :]) ** 2  # (to, from)
    cube = cost.reshape(n, n, n, -1)
    for dim in range(3):
        moved = cube.movedim(dim, 0)  # (from, ., ., points)
        candidates = moved[None] + penalty.view(n, n, 1, 1, 1)  # (to, from, ., ., points)
        cube = candidates.amin(dim=1).movedim(0, dim)
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
    """What one pass of :class:`PddNet` computes (on the grid of points).

    Attributes
    ----------
    field : torch.Tensor, shape (3, gd, gh, gw)
        The expected displacement at every grid point, in voxels of the scans.
    probabilities : torch.Tensor, shape (L, gd, gh, gw)
        Of every candidate displacement, after the regularisation.
    cost : torch.Tensor, shape (L, gd, gh, gw)
        The data cost before it (:func:`correlation`).
    """

    field: torch.Tensor
    probabilities: torch.Tensor
    cost: torch.Tensor


class PddNet(nn.Module):
    """PDD-Net: features, correlation, min-convolutions and mean-field steps, softmax, the
    expected displacement; applied twice ("two warps"), the second time to the moving
    scan warped by the first field.

    Parameters
    ----------
    channels, width : int
        The feature extractor's output channels and width.
    grid_step : int
        Feature voxels between grid points.
    radius, step : int
        Candidate displacements (:func:`displacement_set`), in feature voxels.
    iterations : int
        Mean-field steps.
    intensity_scale : float
        Hounsfield units are divided by it before the extractor.
    """

    def __init__(self, *, channels: int = 16, width: int = 24, grid_step: int = 2,
                 radius: int = 3, step: int = 1, iterations: int = 2,
                 intensity_scale: float = 500.0):
        super().__init__()
        self.extractor = FeatureExtractor(channels, width)
        self.grid_step, self.radius, self.step = grid_step, radius, step
        self.iterations, self.intensity_scale = iterations, intensity_scale
        # the regularisation's three numbers are learnt too, on a log scale (positive)
        self.log_weight = nn.Parameter(torch.tensor(0.0))
        self.log_smoothness = nn.Parameter(torch.tensor(-3.0))
        self.log_temperature = nn.Parameter(torch.tensor(-2.0))
        self.register_buffer("displacements", displacement_set(radius, step),
                             persistent=False)

    #: Scans are read at half resolution: one feature voxel is this many voxels.
    stride = 2

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> PddOutput:
        """One pass: ``fixed`` and ``moving`` are ``(D, H, W)`` scans in HU on one grid."""
        if fixed.shape != moving.shape or fixed.ndim != 3:
            raise ValueError(f"fixed and moving must be (D, H, W) scans of one shape; got "
                             f"{tuple(fixed.shape)} and {tuple(moving.shape)}")
        fixed_features = self.extractor(fixed / self.intensity_scale)
        moving_features = self.extractor(moving / self.intensity_scale)
        cost = correlation(fixed_features, moving_features, grid_step=self.grid_step,
                           radius=self.radius, step=self.step)
        regularised = mean_field(cost, weight=self.log_weight.exp(),
                                 smoothness=self.log_smoothness.exp(),
                                 iterations=self.iterations, step=self.step)
        probabilities = displacement_probabilities(regularised, self.log_temperature.exp())
        field = expected_displacement(probabilities, self.displacements) * self.stride
        return PddOutput(field, probabilities, cost)

    def dense_field(self, fixed: torch.Tensor, moving: torch.Tensor, warps: int = 2):
        """The field on the fixed scan's grid after ``warps`` passes (voxels, (3, D, H, W)),
        and the last pass's output. The second pass sees the moving scan warped by the
        first field; the fields compose."""
        if warps not in (1, 2):
            raise ValueError(f"warps must be 1 or 2; got {warps}")
        total, output = None, None
        for _ in range(warps):
            moved = moving if total is None else warp_image(moving, total, fill=-1000.0)
            output = self(fixed, moved)
            field = grid_to_field(output.field, fixed.shape, self.grid_step * self.stride)
            total = field if total is None else compose(total, field)
        return total, output


# ------------------------------------------------------------------------ its training
def similarity_loss(fixed_mind: torch.Tensor, moving_mind: torch.Tensor,
                    field: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the fixed scan's MIND descriptors and the moving scan's,
    warped by ``field``: the label-free similarity of the unsupervised variant."""
    return ((fixed_mind - warp_image(moving_mind, field)) ** 2).mean()


def diffusion(field: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring displacements (the diffusion regulariser)."""
    return sum(((field.diff(dim=axis)) ** 2).mean() for axis in (1, 2, 3))


def train_pdd(model: PddNet, images: list, *, iterations: int, learning_rate: float,
              regularisation: float, seed: int, progress: bool = False) -> dict:
    """Train PDD-Net without labels on random pairs of scans: MIND similarity after one
    pass + ``regularisation`` x diffusion of the grid field. Deterministic on the CPU.

    Parameters
    ----------
    model : PddNet
    images : list of numpy.ndarray, shape (D, H, W)
        Scans on one grid (HU): the training scans.
    iterations : int
        Adam steps, one pair each.
    learning_rate, regularisation : float
    seed : int
        Decides the pairs and the initial weights' draw order.
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
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    scans = [torch.as_tensor(np.asarray(image, dtype=np.float32)) for image in images]
    descriptors = [mind_ssc(scan) for scan in scans]
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    history = {"loss": []}
    for _ in tqdm(range(iterations), desc="training PDD-Net", disable=not progress):
        fixed, moving = (int(i) for i in rng.choice(len(scans), size=2, replace=False))
        output = model(scans[fixed], scans[moving])
        field = grid_to_field(output.field, scans[fixed].shape,
                              model.grid_step * model.stride)
        loss = (similarity_loss(descriptors[fixed], descriptors[moving], field)
                + regularisation * diffusion(output.field))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history["loss"].append(float(loss.detach()))
    model.eval()
    return history
