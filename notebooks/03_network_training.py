# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Network training: a 3D DeepLab learns to predict the supervoxels
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/03_network_training.ipynb)
#
# Step 3 of the method (the conventions are in notebook 00).
#
# **What you will learn**
# - the task: for every voxel of a new scan, 16 classifications into 128 supervoxels;
# - the architecture: a 3D MobileNetV2, atrous spatial pyramid pooling, 16 grouped heads;
# - how augmentation moves a scan and its targets together;
# - how well the trained network reproduces the teacher on scans it never saw.

# %% tags=["colab"]
# On Google Colab, fetch the repository (with its pretrained weights) and install it
# (this cell does nothing elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["git", "clone", "-q", "https://github.com/slicreg-lite/slicreg_lite"])
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "slicreg_lite"],
                   check=True)
    sys.path.insert(0, "slicreg_lite")

# %% tags=["parameters"]
# The preset sets every size: "smoke" (seconds, used by the tests), "lite" (a laptop CPU,
# the default) or "paper" (the paper's sizes, for a GPU). DATA chooses the scans
# ("phantom", or "bcv:PATH", "learn2reg:PATH", "folder:PATH": see notebook 00).
# Under "lite" the phantom's network is shipped. Other data or presets train their own
# (tens of minutes on a CPU): set TRAIN = True to allow it; RETRAIN = True trains anew
# even when weights exist.
import os

PRESET = os.environ.get("SLICREG_PRESET", "lite")
DATA = os.environ.get("SLICREG_DATA", "phantom")
TRAIN = os.environ.get("SLICREG_TRAIN", "0") == "1"
RETRAIN = False

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from slicreg_lite import display as viz
from slicreg_lite import setup
from slicreg_lite.core.spatial import resize
from slicreg_lite.network import models
from slicreg_lite.network.training import augment
from slicreg_lite.pipeline import stages
from slicreg_lite.teaching import exercises, tutorial

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
tutorial.check_training(cfg, data, [("deeplab", "slic")], TRAIN or RETRAIN)
input_shape = tuple(cfg.network.input_shape)
print(f"preset {cfg.name!r}: the network sees {input_shape} voxels and answers at "
      f"{tuple(n // 2 for n in input_shape)}; training runs on {tutorial.device()}")

# %% [markdown]
# ## The task
# Notebook 02 carried the template's 16 layers of supervoxels onto every training scan.
# Now a network learns the mapping *scan -> supervoxel labels*: at every voxel, 16
# classifications (one per layer) into 128 classes. For a new scan, the predicted labels
# say where each voxel sits in the template: registration by segmentation.
#
# The loss is the cross-entropy of every layer $l$, averaged over the $L = 16$ layers and
# the voxels $x$ of the output grid $\Omega$, with $y_l(x)$ the teacher's label and
# $p_l(k \mid x)$ the network's softmax:
#
# $$\mathcal{L} = -\frac{1}{L\,|\Omega|} \sum_{l=1}^{L} \sum_{x \in \Omega}
#   \log p_l\big(y_l(x) \mid x\big).$$

# %% [markdown]
# ## The architecture
# - **Backbone**: a 3D MobileNetV2. Its *inverted residual* block expands a few channels
#   into many (1x1x1 convolution), filters each channel separately (depthwise 3x3x3
#   convolution) and projects back: only 216,768 parameters (the poster's "220k").
# - **ASPP**, six branches side by side: a 1x1x1 convolution, four *atrous* (dilated)
#   convolutions that look at voxels 2, 4, 8 and 16 steps apart, and the mean of
#   everything (image pooling). Context decides *which* supervoxel a voxel of liver is in.
# - **Skip connection**: features at half resolution bring back detail.
# - **Head**: 16 groups, one per layer, each predicting 128 classes.

# %%
model = models.build_model("deeplab", "slic", cfg)
rows = []
for index, block in enumerate(model.features.backbone.blocks, start=1):
    stride = block.expand[0].stride[0] * block.depthwise[0].stride[0]
    rows.append((f"inverted residual {index}", block.expand[0].in_channels,
                 block.expand[0].out_channels, block.project[0].out_channels, stride,
                 models.count_parameters(block)))
branches = len(model.features.aspp.branches) + 1  # + the image-pooling branch
rows.append((f"ASPP ({branches} branches + projection)", 64, 128 * branches, 128, 1,
             models.count_parameters(model.features.aspp)))
rows.append(("head (16 groups)", 152, 512, 16 * 128, 1, models.count_parameters(model.head)))
print(f"{'module':>32s} {'in':>4s} {'mid':>5s} {'out':>5s} {'stride':>6s} {'parameters':>10s}")
for name, cin, mid, cout, stride, count in rows:
    print(f"{name:>32s} {cin:4d} {mid:5d} {cout:5d} {stride:6d} {count:10,d}")
print(f"{'total':>32s} {models.count_parameters(model):>34,d}")

# %%
fig, ax = plt.subplots(figsize=(12, 2.6))
boxes = [("CT\n1 ch", "full"), ("blocks 1-2\n24 ch", "1/2"), ("blocks 3-8\n64 ch", "1/4"),
         (f"ASPP\n{branches} branches\n128 ch", "1/4"), ("concat\n152 ch", "1/2"),
         ("16 heads\n16 x 128", "1/2")]
for k, (label, resolution) in enumerate(boxes):
    ax.add_patch(plt.Rectangle((k * 2, 0), 1.5, 1, color=plt.cm.Blues(0.3 + 0.1 * k)))
    ax.text(k * 2 + 0.75, 0.5, label, ha="center", va="center")
    ax.text(k * 2 + 0.75, -0.25, f"{resolution} resolution", ha="center", color="grey",
            fontsize="small")
    if k:
        ax.annotate("", (k * 2, 0.5), (k * 2 - 0.5, 0.5), arrowprops={"arrowstyle": "->"})
ax.annotate("skip", (8.75, 1.0), (2.75, 1.0),
            arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-0.3"})
ax.set_xlim(-0.2, 11.7)
ax.set_ylim(-0.5, 1.9)
ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Augmentation: the scan and its targets move together
# Every training sample is moved by a random affine transform. The image is interpolated
# linearly, the labels by nearest neighbour, with the *same* transform, so they stay
# aligned.
#
# ⏱ From an empty cache the next cell first runs the teacher on the 20 training scans:
# about 180 s (3 min) under `lite` on 2 CPU cores; with a warm cache a few seconds.

# %%
dataset = stages.training_data(cfg, data)
sample = dataset[0]
rng = np.random.default_rng(0)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
for k, ax in enumerate(axes):
    moved = sample if k == 0 else augment(sample, cfg.training.augment_std, rng)
    labels = torch.nn.functional.interpolate(moved.layers[None, :1].float(),
                                             size=moved.image.shape[1:], mode="nearest")[0]
    viz.show_supervoxels(moved.image[0].numpy() * 500, labels[0].numpy(), axis=1, ax=ax,
                         title="original" if k == 0 else f"augmented {k}")
plt.show()

# %% [markdown]
# ## Training
# Adam minimises the loss above. Under `lite` the shipped weights were trained by
# `python -m slicreg_lite train --preset lite` on the CPU (the cell prints how long that
# took); under `smoke` a few iterations run here. Two validation subjects, never trained
# on and not in the table, are watched during training (right): the share of their
# voxels whose predicted supervoxel is the teacher's. Nothing is chosen by it; it shows
# whether the network still learns.

# %%
model, checkpoint = stages.network(cfg, data, "deeplab", "slic", retrain=RETRAIN)
history = checkpoint["history"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
axes[0].plot(history["loss"], alpha=0.4, label="each iteration")
window = max(1, len(history["loss"]) // 20)
axes[0].plot(np.arange(window - 1, len(history["loss"])),
             np.convolve(history["loss"], np.ones(window) / window, mode="valid"),
             label=f"mean of {window} iterations")
axes[0].set_xlabel("iteration")
axes[0].set_ylabel("cross-entropy")
axes[0].legend()
if history["validation"]:
    steps, values = zip(*history["validation"])
    axes[1].plot(steps, 100 * np.asarray(values), "o-", label="validation subjects")
    axes[1].legend()
axes[1].set_xlabel("iteration")
axes[1].set_ylabel("agreement with the teacher (%)")
plt.show()
print(f"trained for {len(history['loss'])} iterations in {history['seconds']:.0f} s")

# %% [markdown]
# ## Predictions on a test scan
# For a scan the network never saw: its predicted supervoxels next to the teacher's
# (deeds-lite carried the template onto that scan), and next to the template's own
# supervoxels, which is what "no registration" would assume. (⏱ From an empty cache
# about 11 s: the teacher registers this scan first.)

# %%
test_id = data.split.evaluation_ids[0]
scan = stages.cohort(cfg, data, (test_id,))[test_id]
teacher = stages.supervision(cfg, data, (test_id,))[test_id].layers
template_layers = stages.template_supervoxels(cfg, data).layers
predicted = models.predict_supervoxels(model, scan.image, input_shape, teacher.shape[1:],
                                         intensity_scale=cfg.training.intensity_scale)
image = resize(scan.image, teacher.shape[1:])  # the scan on the supervoxel grid
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
for ax, (name, layers) in zip(axes, [("teacher (deeds-lite)", teacher),
                                     ("network", predicted),
                                     ("template's own (no registration)", template_layers)]):
    viz.show_supervoxels(image, layers[0], axis=1, ax=ax, title=f"#{test_id}, layer 0: {name}")
plt.show()

# %% [markdown]
# ## Per-layer agreement with the teacher
# The share of body voxels whose predicted label equals the teacher's, on every test
# scan, per layer; the baseline assumes the template's supervoxels did not move.
#
# ⏱ From an empty cache about 60 s (the teacher first registers the 9 test scans);
# with a warm cache about 6 s.

# %%
agreement = stages.network_agreement(cfg, data, model)
mean_network = agreement["network"].mean(0)
mean_template = agreement["template"].mean(0)
print(f"mean over {len(agreement['network'])} test scans and {len(mean_network)} layers: "
      f"network {100 * mean_network.mean():.1f}%, template baseline "
      f"{100 * mean_template.mean():.1f}%")
fig, ax = plt.subplots(figsize=(10, 3.5))
layers_axis = np.arange(len(mean_network))
ax.bar(layers_axis - 0.2, 100 * mean_network, 0.4, label="network")
ax.bar(layers_axis + 0.2, 100 * mean_template, 0.4, label="template's own supervoxels")
ax.set_xlabel("layer")
ax.set_ylabel("agreement with the teacher (%)")
ax.legend()
plt.show()

# %% [markdown]
# ## Exercise: the loss of one layer
# Write `layer_loss(logits, target)`: the cross-entropy of one layer, averaged over the
# voxels of the batch. `logits` has shape (batch, classes, d, h, w), `target` (batch, d,
# h, w) holds class numbers. Write it with `torch.log_softmax`: the check compares with
# `F.cross_entropy`, and does not accept an answer that just calls it.

# %% tags=["exercise"]
def layer_loss(logits, target):
    """Mean cross-entropy of ``logits`` (B, K, d, h, w) against ``target`` (B, d, h, w)."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def layer_loss(logits, target):
    """Mean cross-entropy of ``logits`` (B, K, d, h, w) against ``target`` (B, d, h, w)."""
    log_p = torch.log_softmax(logits, dim=1)
    return -log_p.gather(1, target[:, None]).mean()


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_layer_loss(layer_loss)

# %% [markdown]
# ## Going further (optional)
#
# ### Precision, BatchNorm and GPUs
# - Under `lite` the CPU computes in float32; `cfg.training.cpu_bfloat16` switches to
#   bfloat16, which is faster only on a CPU with bfloat16 instructions (and much slower
#   on one without). On a GPU (`tutorial.device()` above says which is used), mixed
#   precision and activation checkpointing are switched on; the cache and the results do
#   not depend on the device.
# - After the last iteration, BatchNorm's mean and variance (a moving average of the last
#   batches, taken while the weights still changed) are **measured anew** on the
#   training scans with the final weights, in seconds.
# - If you can afford it, train longer: what counts is how many scans the network sees,
#   not how often it sees the same ones.
# - The authors' code also has 16 head groups, but reads each layer's 128 classes across
#   all of them; one group per layer is this toolkit's reading of the design.
#
# ### Try it yourself
# 1. Set `RETRAIN = True` and halve the iterations (`cfg = cfg.with_updates(training=
#    {"iterations": 300})`): how much agreement do you lose?
# 2. Train the UNet variant (`stages.network(cfg, data, "unet", "slic")`) and compare its
#    per-layer agreement. The paper found DeepLab 6.8 points better (avg(4) Dice).
# 3. Why is a layer's agreement far below what the organs' Dice suggests? Think of how
#    small one supervoxel is compared with the liver.

# %% [markdown]
# ## Summary
# - A 3D DeepLab (MobileNetV2 backbone, six-branch ASPP, one skip, 16 grouped heads)
#   learns to predict the teacher's 16 supervoxel layers: 16 classifications per voxel.
# - Its loss is the cross-entropy averaged over layers and voxels; augmentation moves scan
#   and targets together.
# - On unseen scans it agrees with the teacher far more often than the template's own
#   supervoxels do.
#
# ## References
# - M. Sandler et al. MobileNetV2: inverted residuals and linear bottlenecks. *CVPR* 2018.
# - L.-C. Chen et al. Encoder-decoder with atrous separable convolution for semantic image
#   segmentation (DeepLabv3+). *ECCV* 2018.
# - Ö. Çiçek et al. 3D U-Net: learning dense volumetric segmentation from sparse
#   annotation. *MICCAI* 2016.
# - D. P. Kingma, J. Ba. Adam: a method for stochastic optimization. *ICLR* 2015.
