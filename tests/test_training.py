"""Training: aligned augmentation, a tiny batch overfits, checkpoints round-trip safely."""

import numpy as np
import pytest
import torch

from slicreg_lite.core.config import NetworkConfig, RunSettings, TrainingConfig
from slicreg_lite.network.models import build_model
from slicreg_lite.network.training import (
    SupervoxelDataset,
    TrainingSample,
    augment,
    centre_mask,
    layer_accuracy,
    load_checkpoint,
    recalibrate_batchnorm,
    save_checkpoint,
    supervoxel_loss,
    train,
)

TWO_LAYERS = NetworkConfig(n_layers=2)

CPU = RunSettings(progress=False, device="cpu")


def synthetic(shape=(16, 16, 16), n_layers=2, block=4, seed=0):
    """Blocks of constant intensity 100 * label (labels 1..8) in a margin of "air" (0,
    label 0): labels follow intensity everywhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 9, [-(-n // block) for n in shape])
    labels = np.kron(coarse, np.ones((block,) * 3, dtype=int))[:shape[0], :shape[1], :shape[2]]
    margin = block // 2
    labels[:margin], labels[-margin:], labels[:, :margin], labels[:, -margin:] = 0, 0, 0, 0
    labels[..., :margin], labels[..., -margin:] = 0, 0
    image = (100.0 * labels).astype(np.float32)
    return image, np.stack([labels.astype(np.uint8)] * n_layers)


def labels_of(scaled_image):
    """The labels the (scaled, moved) intensities stand for."""
    return np.round(scaled_image * 500.0 / 100.0).astype(np.int64)


def test_augmentation_keeps_image_and_targets_aligned():
    image, layers = synthetic((24, 24, 24), block=6)
    sample = TrainingSample(torch.from_numpy(image / 500.0)[None],
                            torch.from_numpy(layers.astype(np.int64)))
    moved = augment(sample, 0.07, np.random.default_rng(1))
    assert not torch.equal(moved.image, sample.image)  # it did move
    # compare where the moved intensity is pure, not a linear mix across a block border
    value = moved.image[0].numpy() * 500.0 / 100.0
    pure = np.abs(value - np.round(value)) < 0.02
    assert pure.mean() > 0.5
    assert (moved.layers[0].numpy() == labels_of(moved.image[0].numpy()))[pure].mean() > 0.97


def test_augmentation_of_grids_of_different_size_moves_them_alike():
    image, layers = synthetic((24, 24, 24), block=6)
    dataset = SupervoxelDataset([image], [layers], (24, 24, 24), (12, 12, 12))
    moved = augment(dataset[0], 0.07, np.random.default_rng(2))
    # the moved image, read at the label grid's voxel centres, still gives the labels
    small = torch.nn.functional.interpolate(moved.image[None], size=(12, 12, 12),
                                            mode="trilinear", align_corners=True)[0, 0]
    assert (moved.layers[0].numpy() == labels_of(small.numpy())).mean() > 0.8


def test_a_tiny_batch_is_overfitted():
    image, layers = synthetic()
    dataset = SupervoxelDataset([image], [layers], (16, 16, 16), (8, 8, 8))
    torch.manual_seed(0)
    model = build_model("deeplab", "slic", TWO_LAYERS)
    cfg = TrainingConfig(iterations=40, batch_size=1, learning_rate=0.004, augment_std=0.0,
                         seed=0)
    history = train(model, dataset, cfg, run=CPU)
    assert history["loss"][-1] < history["loss"][0] / 5


@pytest.mark.parametrize("bfloat16", [False, True])
def test_training_is_deterministic_on_the_cpu(bfloat16):
    image, layers = synthetic()
    dataset = SupervoxelDataset([image, image[::-1].copy()], [layers, layers[:, ::-1].copy()],
                                (16, 16, 16), (8, 8, 8))
    cfg = TrainingConfig(iterations=2, batch_size=2, seed=5, cpu_bfloat16=bfloat16)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(cfg=TWO_LAYERS)
        runs.append((train(model, dataset, cfg, run=CPU)["loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][name], runs[1][1][name]) for name in runs[0][1])


def test_bfloat16_training_changes_what_is_learnt_but_still_learns():
    image, layers = synthetic()
    dataset = SupervoxelDataset([image], [layers], (16, 16, 16), (8, 8, 8))
    losses = {}
    for bfloat16 in (False, True):
        torch.manual_seed(0)
        # a few iterations: bfloat16 is slow on CPUs without bfloat16 instructions
        cfg = TrainingConfig(iterations=5, batch_size=1, learning_rate=0.004,
                             augment_std=0.0, seed=0, cpu_bfloat16=bfloat16)
        losses[bfloat16] = train(build_model("deeplab", "slic", TWO_LAYERS), dataset, cfg,
                                 run=CPU)["loss"]
    assert losses[True] != losses[False]  # reduced precision: not the float32 run
    assert losses[True][-1] < losses[True][0] / 5


def test_recalibrated_batchnorm_holds_the_mean_statistics_of_the_training_scans():
    images = [synthetic(seed=seed)[0] for seed in range(3)]
    dataset = SupervoxelDataset(images, [synthetic(seed=s)[1] for s in range(3)],
                                (16, 16, 16), (8, 8, 8))
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 4, 3, padding=1)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm3d(4), torch.nn.Dropout3d(0.5))
    model.train()
    recalibrate_batchnorm(model, dataset)
    with torch.no_grad():
        outputs = [conv(sample.image[None]) for sample in dataset]
    expected_mean = torch.stack([o.mean((0, 2, 3, 4)) for o in outputs]).mean(0)
    expected_var = torch.stack([o.var((0, 2, 3, 4)) for o in outputs]).mean(0)
    norm = model[1]
    torch.testing.assert_close(norm.running_mean, expected_mean)
    torch.testing.assert_close(norm.running_var, expected_var)
    assert norm.momentum == 0.1 and model.training  # settings and mode restored


def test_regression_head_trains_at_supervoxel_centres():
    image, layers = synthetic()
    field = np.ones((3, 16, 16, 16), np.float32)
    dataset = SupervoxelDataset([image], [layers], (16, 16, 16), (8, 8, 8),
                                displacements=[field])
    assert centre_mask(dataset[0].layers[None]).sum() > 0
    torch.manual_seed(0)
    history = train(build_model("unet", "regression"), dataset,
                    TrainingConfig(iterations=15, batch_size=1, augment_std=0.0), run=CPU)
    assert history["loss"][-1] < history["loss"][0]


def test_loss_and_accuracy_shapes():
    logits = torch.zeros(1, 2, 128, 4, 4, 4)
    logits[:, :, 5] = 10.0
    targets = torch.full((1, 2, 4, 4, 4), 5, dtype=torch.long)
    assert float(supervoxel_loss(logits, targets)) < 0.01
    assert torch.equal(layer_accuracy(logits, targets), torch.ones(2))
    with pytest.raises(ValueError, match="must match"):
        supervoxel_loss(logits, targets[:, :1])


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model().eval()
    path = save_checkpoint(tmp_path / "model.pt", model, preset="smoke")
    restored, content = load_checkpoint(path)
    restored.eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))
    assert content["preset"] == "smoke" and content["backbone"] == "deeplab"
    assert content["package_version"]


def test_checkpoint_of_another_shape_or_corrupt_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "unet.pt", build_model("unet", "slic"), preset="smoke")
    with pytest.raises(ValueError, match="does not fit this model"):
        load_checkpoint(path, build_model("deeplab", "slic"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(broken)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_dataset_bad_input():
    image, layers = synthetic()
    with pytest.raises(ValueError, match="must pair up"):
        SupervoxelDataset([image, image], [layers], (16, 16, 16), (8, 8, 8))
    with pytest.raises(ValueError, match=r"expected an image \(D, H, W\)"):
        SupervoxelDataset([image[0]], [layers], (16, 16, 16), (8, 8, 8))
