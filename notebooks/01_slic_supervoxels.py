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
# # 01 · SLIC supervoxels: an integer encoding of canonical coordinates
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/01_slic_supervoxels.ipynb)
#
# Step 1 of the method (the conventions are in notebook 00).
#
# **What you will learn**
# - why Slic-Reg turns registration into a *segmentation* problem without labels;
# - how SLIC and a robust merge cut the template into exactly 127 + 1 supervoxels;
# - why 16 *layers* of supervoxels locate a voxel far better than one layer;
# - where the keypoints of the registration step come from.

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
import os

PRESET = os.environ.get("SLICREG_PRESET", "lite")
DATA = os.environ.get("SLICREG_DATA", "phantom")

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from skimage.measure import label as connected_components
from skimage.segmentation import slic

from slicreg_lite import display as viz
from slicreg_lite import setup, supervoxels
from slicreg_lite.display import SupervoxelExplorer
from slicreg_lite.pipeline import stages
from slicreg_lite.teaching import exercises

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
params = cfg.supervoxels
print(f"preset {cfg.name!r}: {params.n_layers} layers of {params.n_supervoxels - 1} "
      f"supervoxels + background on a {params.shape} grid")

# %% [markdown]
# ## The idea: registration by segmentation
# If a network could tell, for every voxel of a new scan, *which voxel of the template it
# corresponds to*, registration would be solved. Predicting a template coordinate is a
# regression, and regression networks are hard to train for this (the paper's ablation
# shows it); segmentation networks are excellent. So Slic-Reg *encodes template
# coordinates as classes*: the template is cut into supervoxels (small compact regions
# that follow image edges), and a voxel's class is the supervoxel it belongs to. No
# expert drew anything: the classes come from SLIC.
#
# One cut into 128 classes is coarse (each supervoxel is several centimetres wide), and
# 100,000 classes would be too many for a network's output. The trick: **16 layers** of
# 128 classes, each cut differently. A voxel is identified by its 16 labels, like a
# position read off several coarse rulers at once.

# %% [markdown]
# ## The template and a body mask without labels
# Supervoxels fill the body. The mask comes from intensities alone (denser than air,
# holes filled, the largest connected piece), never from organ labels.
#
# ⏱ The first time, the cell below computes all 16 layers: about 40 s under `lite` on
# 2 CPU cores (then cached).

# %%
result = stages.template_supervoxels(cfg, DATA)
image, mask, layers = result.image, result.mask, result.layers
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
viz.show_slice(image, axis=1, ax=axes[0], title="template (coronal)")
viz.show_slice(image, mask.astype(np.uint8) * 6, axis=1, ax=axes[1], alpha=0.3,
               title="label-free body mask")
plt.show()

# %% [markdown]
# ## One layer, step by step
# 1. a small random affine moves the template, so that SLIC's regular grid of seeds lands
#    elsewhere in each layer;
# 2. 3D SLIC (scikit-image, with the authors' settings) clusters the voxels inside the
#    mask: a k-means in which voxel $x$ joins the seed $k$ nearest in
#    $D(x, k) = \sqrt{(I(x) - I_k)^2 + m^2 \, \|x - x_k\|^2 / S^2}$, with $S$ the seeds'
#    spacing and $m$ the compactness;
# 3. the segments are warped back with the inverse affine;
# 4. SLIC rarely returns exactly the number asked for, so a **robust merge** finishes:
#    every 26-connected piece becomes its own segment, then the smallest segment joins
#    its smallest neighbour until exactly 127 remain (too few: the largest is split).

# %%
raw = slic(image / params.intensity_scale, n_segments=params.n_segments,
           compactness=params.compactness, max_num_iter=params.max_iter,
           min_size_factor=params.min_size_factor, mask=mask, channel_axis=None)
print(f"SLIC alone returned {raw.max()} segments "
      f"(26-connected pieces: {connected_components(raw, connectivity=3).max()})")
merged = supervoxels.merge_to_count(raw, params.n_supervoxels - 1)
print(f"after the robust merge: {merged.max()} segments")

# %% [markdown]
# Every layer has exactly 127 supervoxels + background, each one 26-connected piece:

# %% tags=["nbval-check-output"]
exact = all(np.array_equal(np.unique(layer), np.arange(128)) for layer in layers)
connected = all(connected_components(layer, connectivity=3, background=0).max() == 127
                for layer in layers)
print(f"every layer has exactly 127 supervoxels + background: {exact}")
print(f"every supervoxel is one 26-connected piece: {connected}")

# %% [markdown]
# ## Several layers
# The same coronal slice, cut by four layers: every layer's boundaries fall elsewhere.

# %%
shown = min(4, len(layers))
fig, axes = plt.subplots(1, shown, figsize=(4 * shown, 4))
for index, ax in enumerate(np.atleast_1d(axes)):
    viz.show_supervoxels(image, layers[index], axis=1, ax=ax, seed=index,
                         title=f"layer {index}")
plt.show()

# %% [markdown]
# ## The integer encoding: intersection cells
# Voxels that share their labels in the first *n* layers form a *cell*. With one layer a
# cell is a supervoxel; every further layer cuts the cells again. How precisely does the
# code locate a voxel? The fair measure is the size of the cell a random voxel falls into
# (many cells are tiny slivers, which would flatter a plain average).

# %%
counts = [n for n in (1, 2, 4, 16) if n <= len(layers)]
fig, axes = plt.subplots(1, len(counts), figsize=(4 * len(counts), 4))
for n, ax in zip(counts, np.atleast_1d(axes)):
    cells = supervoxels.intersection_cells(layers[:n])
    viz.show_supervoxels(image, cells, axis=1, ax=ax, alpha=0.8, outlines=False,
                         title=f"cells of {n} layer{'s' * (n > 1)}")
plt.show()

# %%
rows = supervoxels.encoding_resolution(layers)
# the supervoxel grid covers the scan's extent (corners aligned): its voxel size in mm
spacing_mm = cfg.grid.spacing_mm * (cfg.grid.shape[0] - 1) / (params.shape[0] - 1)
voxel_ml = spacing_mm ** 3 / 1000
print(f"{'layers':>6s} {'cells':>8s} {'cell around a voxel (ml)':>25s} {'supervoxel / cell':>18s}")
for row in rows:
    print(f"{row['layers']:6d} {row['cells']:8d} "
          f"{row['cell_volume_per_voxel'] * voxel_ml:25.2f} {row['ratio']:18.1f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog([r["layers"] for r in rows], [r["cell_volume_per_voxel"] * voxel_ml for r in rows],
          "o-", label="cell around a voxel")
ax.axhline(rows[0]["supervoxel_volume"] * voxel_ml, color="grey", linestyle="--",
           label="one supervoxel")
ax.set_xlabel("number of layers")
ax.set_ylabel("volume (ml)")
ax.legend()
plt.show()

# %% [markdown]
# ## Keypoints for the registration step
# The centre of every supervoxel of every layer becomes a keypoint: 16 x 127 = 2032
# under `lite` (the poster says "N=2048 supervoxel centres", counting each layer's
# background label). In notebook 04 these keypoints form a kNN graph, and Adam moves each
# of them to where the predicted supervoxels of a new scan say it belongs.

# %%
centres = supervoxels.supervoxel_centres(layers)
print(f"keypoints: {centres.shape[0]} layers x {centres.shape[1]} supervoxels = "
      f"{centres.shape[0] * centres.shape[1]}")
viz.show_keypoints(image, centres.reshape(-1, 3), axis=1, thickness=2.0,
                   title="supervoxel centres near this coronal slice")
plt.show()

# %% [markdown]
# ## Exercise: the centre of a supervoxel
# The keypoints are the supervoxels' centres of mass. Write `centre(layer, label)`: the
# mean voxel coordinate $(d, h, w)$ of the voxels of `layer` that hold `label`, as an
# array of 3 numbers.

# %% tags=["exercise"]
def centre(layer, label):
    """Centre of mass (d, h, w), in voxels, of ``layer == label``."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def centre(layer, label):
    """Centre of mass (d, h, w), in voxels, of ``layer == label``."""
    return np.argwhere(layer == label).mean(axis=0)


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_centre(centre)

# %% [markdown]
# ## Going further (optional)
#
# ### Explore SLIC's parameters
# Move `n_segments` and `compactness` to recompute one layer (about a second under
# `lite`), `layer` to change the random affine, `slice` to browse. Low compactness lets
# supervoxels follow intensity edges; high compactness makes them round and regular.
# (The authors' settings: `n_segments=208, compactness=1.5, max_num_iter=5,
# min_size_factor=0.85`, connectivity enforced.)

# %%
explorer = SupervoxelExplorer(image, mask, params)
display(explorer.widget)

# %% [markdown]
# ### Try it yourself
# 1. With `n_segments=64`, how many segments does SLIC return, and how many merges or
#    splits does the robust merge need?
# 2. Redo the localisation table with 32 instead of 128 supervoxels per layer
#    (`cfg.with_updates(supervoxels={"n_supervoxels": 33, "n_segments": 52})` and
#    `stages.template_supervoxels(cfg, DATA)`). How many layers give the same cell size,
#    and what does that mean for the network's output layer?
# 3. Why must every supervoxel be one connected piece? Think of what its centre (the
#    keypoint) would mean for a supervoxel made of two distant blobs.

# %% [markdown]
# ## Summary
# - Slic-Reg encodes each template voxel's position as classes: its supervoxel in each of
#   16 differently cut layers; a segmentation network can learn to predict them.
# - SLIC plus a robust merge gives exactly 127 connected supervoxels + background per
#   layer, from intensities alone.
# - 16 layers locate a voxel in a cell far smaller than one supervoxel.
# - The supervoxels' centres are the keypoints that notebook 04 moves.
#
# ## References
# - R. Achanta et al. SLIC superpixels compared to state-of-the-art superpixel methods.
#   *IEEE TPAMI* 34(11), 2012.
# - S. van der Walt et al. scikit-image: image processing in Python. *PeerJ* 2, 2014.
# - M. P. Heinrich. Rethinking the design of learning based inter-patient registration
#   using deformable supervoxels. *MIDL* 2021.
