"""The networks of step 3: the paper's exact sizes, shapes, clear errors."""

import pytest
import torch

from slicreg_lite.core.config import NetworkConfig, get_config
from slicreg_lite.network.models import (
    ASPP3d,
    InvertedResidual3d,
    MobileNetV2Backbone3d,
    SupervoxelHead,
    UNetBackbone3d,
    build_model,
    count_parameters,
)


def test_parameter_counts_of_the_paper():
    assert count_parameters(MobileNetV2Backbone3d()) == 216_768  # the poster's "220k"
    assert count_parameters(ASPP3d()) == 1_001_088  # "about 1.0M"
    assert count_parameters(SupervoxelHead(152, NetworkConfig())) == 589_824  # "about 590k"
    deeplab = count_parameters(MobileNetV2Backbone3d()) + count_parameters(ASPP3d())
    assert abs(count_parameters(UNetBackbone3d()) - deeplab) / deeplab < 0.05  # similar size


def test_backbone_resolutions_and_skip():
    skip, features = MobileNetV2Backbone3d().eval()(torch.zeros(1, 1, 16, 24, 32))
    assert skip.shape == (1, 24, 8, 12, 16) and features.shape == (1, 64, 4, 6, 8)


def test_residual_only_where_shapes_match():
    assert InvertedResidual3d(24, 128, 24).residual
    assert not InvertedResidual3d(24, 192, 32).residual
    assert not InvertedResidual3d(32, 192, 32, stride=2).residual


@pytest.mark.parametrize("backbone", ["deeplab", "unet"])
@pytest.mark.parametrize("head, channels", [("slic", (4, 128)), ("regression", (3,))])
def test_output_shapes(backbone, head, channels):
    model = build_model(backbone, head, get_config("smoke")).eval()  # smoke: 4 layers
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 16, 20, 24))
    assert out.shape == (2, *channels, 8, 10, 12)


def test_sizes_not_divisible_by_four_are_refused():
    model = build_model().eval()
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 1, 16, 18, 20))
    with pytest.raises(ValueError, match=r"shape \(B, 1, D, H, W\)"):
        model(torch.zeros(1, 2, 16, 16, 16))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_model("resnet", "slic")
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("deeplab", "softmax")


def test_a_mini_batch_of_one_trains():
    model = build_model().train()
    loss = model(torch.randn(1, 1, 16, 16, 16)).logsumexp(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_kaiming_initialisation_and_determinism():
    torch.manual_seed(0)
    a = build_model()
    torch.manual_seed(0)
    b = build_model()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    weight = a.features.backbone.blocks[1].expand[0].weight  # 1x1x1, fan_out = 128
    assert abs(float(weight.detach().std()) - (2 / 128) ** 0.5) < 0.03


def test_prediction_entropy_is_zero_when_certain_and_one_when_clueless():
    import numpy as np

    from slicreg_lite.network.models import prediction_entropy

    cfg = get_config("smoke")
    model = build_model("deeplab", "slic", cfg)
    image = np.zeros(cfg.network.input_shape, np.float32)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # every logit 0: a uniform guess
    clueless = prediction_entropy(model, image, cfg.network.input_shape)
    np.testing.assert_allclose(clueless, 1.0, atol=1e-5)
    with torch.no_grad():  # the last convolution's bias: class 5 of every layer wins
        model.head.layers[-1].bias.view(-1, cfg.network.n_classes)[:, 5] = 50.0
    certain = prediction_entropy(model, image, cfg.network.input_shape, (8, 7, 9))
    assert certain.shape == (8, 7, 9) and certain.max() < 1e-3
