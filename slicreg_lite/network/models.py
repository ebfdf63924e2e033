"""Step 3: the networks that predict supervoxels (or displacements) for a new scan.

Small composable modules, assembled by :func:`build_model`:

- :class:`MobileNetV2Backbone3d`: eight inverted-residual blocks (as in the paper), 216,768
  parameters; returns the early 24-channel features (half resolution, for the skip
  connection) and the final 64-channel features (quarter resolution).
- :class:`ASPP3d`: atrous spatial pyramid pooling: a 1x1x1 branch, dilated 3x3x3 branches
  at rates 2, 4, 8, 16 and an image-pooling branch, 128 channels each, projected to 128
  (1,001,088 parameters: the pooling branch has a bias instead of BatchNorm).
- :class:`DeepLabDecoder`: ASPP, upsampled and concatenated with the skip features:
  152 channels at half resolution.
- :class:`UNetBackbone3d`: a compact 3D UNet of similar size for the ablation; also
  returns 152 channels at half resolution, so both feed the same heads.
- :class:`SupervoxelHead`: 16 groups (one per supervoxel layer) giving 16 x 128 logits per
  voxel (the authors' code has 16 groups too, but reads each layer's 128 classes across
  all of them; one group per layer is this toolkit's reading); :class:`RegressionHead`: a
  3D displacement per voxel.

Input: ``(B, 1, D, H, W)`` CT intensities divided by 500, every size divisible by 4.
Output: at half the input resolution, ``(B, 16, 128, D/2, H/2, W/2)`` logits or
``(B, 3, D/2, H/2, W/2)`` displacements.

Example
-------
>>> import torch
>>> model = build_model("deeplab", "slic")
>>> model(torch.zeros(1, 1, 32, 32, 32)).shape
torch.Size([1, 16, 128, 16, 16, 16])
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.config import Config, NetworkConfig, config_section
from ..core.spatial import resize, resize_displacement

#: The paper's backbone: channels and depthwise strides of the eight blocks.
BACKBONE_IN = (1, 24, 24, 32, 48, 48, 48, 64)
BACKBONE_MID = (64, 128, 192, 192, 256, 256, 256, 384)
BACKBONE_OUT = (24, 24, 32, 48, 48, 48, 64, 64)
BACKBONE_STRIDE = (1, 1, 1, 2, 1, 1, 1, 1)
#: Blocks whose output is the skip connection (the 24 channels at half resolution).
SKIP_AFTER_BLOCK = 2


def conv_bn(in_channels: int, out_channels: int, kernel: int = 1, *, stride: int = 1,
            dilation: int = 1, groups: int = 1, activation: type | None = nn.ReLU6
            ) -> nn.Sequential:
    """Convolution (no bias: BatchNorm has one), BatchNorm and an optional activation."""
    layers = [nn.Conv3d(in_channels, out_channels, kernel, stride=stride,
                        padding=dilation * (kernel // 2), dilation=dilation, groups=groups,
                        bias=False),
              nn.BatchNorm3d(out_channels)]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual3d(nn.Module):
    """MobileNetV2's block: expand (1x1x1), filter each channel (3x3x3 depthwise), project.

    The expansion works in a wide space where ReLU6 loses little; the projection back to
    few channels is linear (no activation), and a residual connection is added wherever
    the input and output have the same shape.

    Parameters
    ----------
    in_channels, mid_channels, out_channels : int
    stride : int
        Stride of the depthwise convolution.
    first : bool
        The network's first block: its expansion is a 3x3x3 convolution with stride 2.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, *,
                 stride: int = 1, first: bool = False):
        super().__init__()
        self.expand = conv_bn(in_channels, mid_channels, 3 if first else 1,
                              stride=2 if first else 1)
        self.depthwise = conv_bn(mid_channels, mid_channels, 3, stride=stride,
                                 groups=mid_channels)
        self.project = conv_bn(mid_channels, out_channels, 1, activation=None)
        self.residual = in_channels == out_channels and stride == 1 and not first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class MobileNetV2Backbone3d(nn.Module):
    """The paper's 3D MobileNetV2 backbone (216,768 parameters; the poster's "220k").

    Returns ``(skip, features)``: 24 channels at 1/2 and 64 channels at 1/4 resolution.
    """

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            InvertedResidual3d(i, m, o, stride=s, first=index == 0)
            for index, (i, m, o, s) in enumerate(zip(BACKBONE_IN, BACKBONE_MID, BACKBONE_OUT,
                                                     BACKBONE_STRIDE)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = None
        for index, block in enumerate(self.blocks, start=1):
            x = block(x)
            if index == SKIP_AFTER_BLOCK:
                skip = x
        return skip, x


class ASPP3d(nn.Module):
    """Atrous spatial pyramid pooling: context at several scales without losing resolution.

    Dilated ("atrous") 3x3x3 convolutions look ``rate`` voxels apart, so a few of them
    see the whole abdomen at quarter resolution; the image-pooling branch adds the
    average of everything.
    """

    def __init__(self, in_channels: int = 64, channels: int = 128, rates=(2, 4, 8, 16),
                 dropout: float = 0.5):
        super().__init__()
        relu = nn.ReLU
        self.branches = nn.ModuleList(
            [conv_bn(in_channels, channels, 1, activation=relu)]
            + [conv_bn(in_channels, channels, 3, dilation=rate, activation=relu)
               for rate in rates])
        # No BatchNorm after global pooling: with a mini-batch of 1 (laptop training) it
        # would normalise a single value per channel, which is undefined.
        self.pooling = nn.Sequential(nn.Conv3d(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            conv_bn(channels * (len(rates) + 2), channels, 1, activation=relu),
            nn.Dropout3d(dropout) if dropout > 0 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(F.adaptive_avg_pool3d(x, 1)).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], 1))


class DeepLabDecoder(nn.Module):
    """MobileNetV2 + ASPP + one skip connection: 152 channels at half resolution."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.backbone = MobileNetV2Backbone3d()
        self.aspp = ASPP3d(BACKBONE_OUT[-1], cfg.aspp_channels, cfg.aspp_rates, cfg.dropout)
        self.out_channels = cfg.aspp_channels + BACKBONE_OUT[SKIP_AFTER_BLOCK - 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip, features = self.backbone(x)
        context = F.interpolate(self.aspp(features), size=skip.shape[2:], mode="trilinear",
                                align_corners=False)
        return torch.cat([context, skip], 1)


class UNetBackbone3d(nn.Module):
    """A compact 3D UNet (about 1.2M parameters, like backbone + ASPP) for the ablation.

    Three resolutions (1/2, 1/4, 1/8) down and back up to 1/2, with skip connections;
    returns 152 channels at half resolution so that the same heads fit.
    """

    def __init__(self, widths=(24, 48, 96), out_channels: int = 152):
        super().__init__()
        a, b, c = widths
        relu = nn.ReLU
        self.down1 = nn.Sequential(conv_bn(1, a, 3, stride=2, activation=relu),
                                   conv_bn(a, a, 3, activation=relu))
        self.down2 = nn.Sequential(conv_bn(a, b, 3, stride=2, activation=relu),
                                   conv_bn(b, b, 3, activation=relu))
        self.down3 = nn.Sequential(conv_bn(b, c, 3, stride=2, activation=relu),
                                   conv_bn(c, c, 3, activation=relu))
        self.up2 = nn.Sequential(conv_bn(c + b, 64, 3, activation=relu),
                                 conv_bn(64, 64, 3, activation=relu))
        self.up1 = conv_bn(64 + a, out_channels, 3, activation=relu)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.down1(x)
        quarter = self.down2(half)
        eighth = self.down3(quarter)
        up = F.interpolate(eighth, size=quarter.shape[2:], mode="trilinear", align_corners=False)
        up = self.up2(torch.cat([up, quarter], 1))
        up = F.interpolate(up, size=half.shape[2:], mode="trilinear", align_corners=False)
        return self.up1(torch.cat([up, half], 1))


class SupervoxelHead(nn.Module):
    """16 grouped classifiers, one per supervoxel layer: ``(B, layers, classes, ...)``.

    After a shared 1x1x1 convolution to 512 channels, every group of 32 channels serves one
    layer only (grouped convolutions), which keeps 16 x 128 outputs affordable.
    """

    #: Trained on the teacher's supervoxel layers (not on its displacements).
    predicts_displacements = False

    def __init__(self, in_channels: int, cfg: NetworkConfig):
        super().__init__()
        width, groups = cfg.head_channels, cfg.n_layers
        self.n_layers, self.n_classes = cfg.n_layers, cfg.n_classes
        self.layers = nn.Sequential(
            conv_bn(in_channels, width, 1, activation=nn.ReLU),
            conv_bn(width, width, 3, groups=groups, activation=nn.ReLU),
            nn.Conv3d(width, groups * cfg.n_classes, 1, groups=groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.layers(x)
        return logits.view(x.shape[0], self.n_layers, self.n_classes, *x.shape[2:])


class RegressionHead(nn.Module):
    """A 3D displacement (in voxels) per voxel, for the regression ablation."""

    #: Trained on the teacher's displacements.
    predicts_displacements = True

    def __init__(self, in_channels: int, cfg: NetworkConfig):
        super().__init__()
        self.layers = nn.Sequential(conv_bn(in_channels, 128, 1, activation=nn.ReLU),
                                    conv_bn(128, 64, 3, activation=nn.ReLU),
                                    nn.Conv3d(64, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SupervoxelNetwork(nn.Module):
    """A feature extractor (DeepLab or UNet) followed by a head."""

    def __init__(self, features: nn.Module, head: nn.Module, backbone: str, head_name: str):
        super().__init__()
        self.features, self.head = features, head
        self.backbone_name, self.head_name = backbone, head_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"input must have shape (B, 1, D, H, W); got {tuple(x.shape)}")
        if any(size % 4 for size in x.shape[2:]):
            raise ValueError(f"every spatial size must be divisible by 4 (two stride-2 steps); "
                             f"got {tuple(x.shape[2:])}")
        return self.head(self.features(x))

    @property
    def predicts_displacements(self) -> bool:
        """Whether the head regresses displacements (else: supervoxel layers)."""
        return self.head.predicts_displacements


#: The heads by name: what ``build_model(head=...)`` and the table of methods call them.
HEADS = {"slic": SupervoxelHead, "regression": RegressionHead}


def _kaiming_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv3d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm3d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def build_model(backbone: str = "deeplab", head: str = "slic", cfg=None) -> SupervoxelNetwork:
    """Assemble a network: ``backbone`` in {"deeplab", "unet"}, ``head`` in {"slic",
    "regression"}, sizes from ``cfg`` (a Config or NetworkConfig; default: the defaults).

    Given a whole Config, the head predicts ``cfg.supervoxels.n_layers`` layers of
    ``cfg.supervoxels.n_supervoxels`` classes (what step 1 made).

    Raises
    ------
    ValueError
        For an unknown backbone or head name.
    """
    network_cfg = NetworkConfig() if cfg is None else config_section(cfg, NetworkConfig)
    if isinstance(cfg, Config):
        # one source of truth: the head predicts the layers step 1 made
        network_cfg = dataclasses.replace(network_cfg, n_layers=cfg.supervoxels.n_layers,
                                          n_classes=cfg.supervoxels.n_supervoxels)
    builders = {"deeplab": lambda: DeepLabDecoder(network_cfg), "unet": UNetBackbone3d}
    heads = HEADS
    if backbone not in builders:
        raise ValueError(f"backbone must be one of {sorted(builders)}; got {backbone!r}")
    if head not in heads:
        raise ValueError(f"head must be one of {sorted(heads)}; got {head!r}")
    features = builders[backbone]()
    model = SupervoxelNetwork(features, heads[head](features.out_channels, network_cfg),
                              backbone, head)
    _kaiming_init(model)
    return model


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)



def _predict(model: SupervoxelNetwork, head: str, image, input_shape, intensity_scale,
             device) -> torch.Tensor:
    """The network's output for one scan (batch dimension removed), checking its head."""
    import numpy as np

    if getattr(model, "head_name", head) != head:
        raise ValueError(f"expected a network with the {head!r} head; got "
                         f"{getattr(model, 'head_name', '?')!r}")
    device = torch.device(device or next(model.parameters()).device)
    model.eval()
    scaled = resize(np.asarray(image, dtype=np.float32) / intensity_scale, input_shape)
    return model(torch.from_numpy(scaled)[None, None].to(device))[0]


@torch.no_grad()
def predict_supervoxels(model: SupervoxelNetwork, image, input_shape, output_shape=None, *,
                        intensity_scale: float = 500.0, device=None):
    """The supervoxel layers a network predicts for a scan.

    Parameters
    ----------
    model : SupervoxelNetwork
        With the "slic" head.
    image : numpy.ndarray, shape (D, H, W)
        CT in HU, on any grid covering the scan.
    input_shape : tuple of 3 ints
        The network's input grid (``cfg.network.input_shape``).
    output_shape : tuple of 3 ints, optional
        Grid of the returned labels (e.g. the supervoxel grid); default: the network's own
        output grid (half of ``input_shape``).

    Returns
    -------
    numpy.ndarray of uint8, shape (L, *output_shape)
        The most likely label of every layer at every voxel.
    """
    logits = _predict(model, "slic", image, input_shape, intensity_scale, device)
    labels = logits.argmax(1).to(torch.uint8).cpu().numpy()  # (L, d, h, w)
    if output_shape is not None and tuple(output_shape) != labels.shape[1:]:
        labels = resize(labels, output_shape, mode="nearest")
    return labels


@torch.no_grad()
def prediction_entropy(model: SupervoxelNetwork, image, input_shape, output_shape=None, *,
                       intensity_scale: float = 500.0, device=None):
    """How unsure the network is of its supervoxels: the entropy of its softmax.

    The entropy of each layer's class probabilities, averaged over the layers and divided
    by that of a uniform guess (``log 128``): 0 where every layer is certain, 1 where the
    network has no idea.

    Parameters are those of :func:`predict_supervoxels`.

    Returns
    -------
    numpy.ndarray of float32, shape output_shape (default: the network's output grid)
    """
    import numpy as np

    logits = _predict(model, "slic", image, input_shape, intensity_scale, device).float()
    log_p = torch.log_softmax(logits, 1)  # (L, classes, d, h, w)
    entropy = -(log_p.exp() * log_p).sum(1).mean(0) / np.log(logits.shape[1])
    entropy = entropy.cpu().numpy().astype(np.float32)
    if output_shape is not None and tuple(output_shape) != entropy.shape:
        entropy = resize(entropy, output_shape)
    return entropy


@torch.no_grad()
def predict_displacement(model: SupervoxelNetwork, image, input_shape, output_shape=None, *,
                         intensity_scale: float = 500.0, device=None):
    """The displacement field a network with the regression head predicts for a scan.

    Parameters
    ----------
    model : SupervoxelNetwork
        With the "regression" head, trained on the teacher's fields.
    image : numpy.ndarray, shape (D, H, W)
        CT in HU.
    input_shape : tuple of 3 ints
        The network's input grid (``cfg.network.input_shape``).
    output_shape : tuple of 3 ints, optional
        Grid of the returned field; default: the network's own output grid.

    Returns
    -------
    numpy.ndarray of float32, shape (3, *output_shape)
        In voxels of ``output_shape``: voxel ``y`` of the scan corresponds to template
        voxel ``y + v(y)`` (the direction of the teacher's fields it learnt).
    """
    field = _predict(model, "regression", image, input_shape, intensity_scale,
                     device).float().cpu().numpy()
    if output_shape is not None and tuple(output_shape) != field.shape[1:]:
        field = resize_displacement(field, output_shape)
    return field
