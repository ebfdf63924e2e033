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
# # 04 · Adam registration: aligning predicted supervoxels on a keypoint graph
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/04_adam_registration.ipynb)
#
# Step 4 of the method: the template #38 is *fixed*, a test scan *moves* (conventions:
# notebook 00).
#
# **What you will learn**
# - why predicted supervoxels turn registration into a small, fast optimisation;
# - the keypoints, their kNN graph, and the folded feature channels;
# - the paper's Adam loop, written out in 20 lines of PyTorch;
# - how a thin-plate spline turns about 2,000 keypoint motions into a dense field.
#
# ⏱ From an empty cache (a fresh Colab VM) the setup cell first makes the cohort and the
# template's supervoxels: about 65 s under `lite` on 2 CPU cores; with a warm cache a few
# seconds.

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
# SUBJECT picks a test scan. TRAIN = True allows training networks this data has none
# of (only the phantom's are shipped, under "lite").
import os

PRESET = os.environ.get("SLICREG_PRESET", "lite")
DATA = os.environ.get("SLICREG_DATA", "phantom")
TRAIN = os.environ.get("SLICREG_TRAIN", "0") == "1"
SUBJECT = 0  # index into the test subjects

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from slicreg_lite import alignment, setup
from slicreg_lite import display as viz
from slicreg_lite.core.metrics import jacobian_stats, score_registration
from slicreg_lite.core.spatial import resize, warp_labels
from slicreg_lite.display import AdamExplorer
from slicreg_lite.evaluation import oracles
from slicreg_lite.methods import compare_alignments
from slicreg_lite.pipeline import load_method, stages
from slicreg_lite.teaching import exercises, tutorial

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
tutorial.check_training(cfg, data, tutorial.networks_of(["slicreg", "slicreg-fit",
                                                         "regression"]), TRAIN)
template_id = data.split.template_id
moving_id = data.split.evaluation_ids[SUBJECT]
subjects = stages.cohort(cfg, data, (template_id, moving_id))
fixed, moving = subjects[template_id], subjects[moving_id]
layers = stages.template_supervoxels(cfg, data).layers
# Slic-Reg in one object: the template, its supervoxels and keypoints, the trained network
# and the paper's Adam settings (cfg.adam). The evaluation (notebook 05) and
# `python -m slicreg_lite register` use the same object.
slicreg = load_method(cfg, data, "slicreg")
labelled = fixed.labels is not None and moving.labels is not None


def avg4(warped):
    """avg(4) Dice (%) of warped moving labels against the template's (for labels other
    than the 13 BTCV organs: the mean over all labels; NaN without labels)."""
    if not labelled:
        return float("nan")
    names = data.names_for(np.unique(fixed.labels))
    return 100 * score_registration(warped, fixed.labels, label_names=names,
                                    hd95=False).headline


print(f"preset {cfg.name!r}: template #{template_id}, moving scan #{moving_id}; the paper's "
      f"Adam: lr {cfg.adam.learning_rate}, alpha {cfg.adam.alpha}, k {cfg.adam.k}, "
      f"{cfg.adam.iterations} iterations")

# %% [markdown]
# ## The idea
# After step 3 the network tells, for every voxel of the moving scan, which supervoxel of
# each template layer it belongs to. The template's supervoxels have known centres, so
# registration reduces to: *move each template supervoxel centre to where the moving
# scan's copy of that supervoxel is*. Instead of matching intensities at a million
# voxels, we optimise ~2,000 keypoint displacements, in about a second.
#
# ## Keypoints and their kNN graph
# The keypoints are the centres of the template's supervoxels (notebook 01), each joined
# to its `k` nearest neighbours: the graph says which displacements should agree. Like
# every setting, `k` was chosen on validation subjects, not on the test subjects of
# notebook 05's table.

# %%
template = slicreg.template  # keypoints, and the template's features
graph = alignment.keypoint_graph(template.keypoints, cfg.adam.k)
print(f"{len(template.keypoints)} keypoints ({cfg.adam.keypoints}), {len(graph.edges)} "
      f"undirected edges with k = {graph.k}")

# %%
image = resize(fixed.image, layers.shape[1:])  # the template on the supervoxel grid
coronal = int(np.median(template.keypoints[:, 1]))
ax = viz.show_keypoint_graph(image, template.keypoints, graph.edges, axis=1, index=coronal,
                             title=f"keypoints within 2 voxels of coronal slice {coronal}")
plt.show()

# %% [markdown]
# ## Features: 16 x 128 classes folded into smooth channels
# A one-hot encoding of 16 layers x 128 classes would need 2,048 channels. Instead each
# layer's 128 classes are *folded* into 16 channels by a fixed random assignment (the
# same for the template and the moving scan), and average pooling blurs the channels,
# so that a keypoint slightly off still feels a gradient pointing the right way.

# %%
predicted = slicreg.predict(moving.image)  # the network's 16 layers, on the supervoxel grid
moving_scan = slicreg.moving_scan(predicted)  # folded, smoothed features
features = moving_scan.features
folding = alignment.fold_permutation(len(layers), 128, cfg.adam.fold_channels, cfg.adam.seed,
                                   cfg.adam.fold)
print(f"features: {tuple(features.shape)} (channels, grid); layer 0 sends classes 1..8 to "
      f"channels {folding[0, 1:9].tolist()}")
middle = template.feature_shape[1] // 2
fig, axes = plt.subplots(2, 4, figsize=(13, 6))
for column, channel in enumerate((0, 1, 2, 3)):
    for row, (name, volume) in enumerate([("template", template.features),
                                          (f"#{moving_id}", features)]):
        axes[row, column].imshow(viz.view_slice(volume[channel].numpy(), 1, middle),
                                 cmap="magma", vmin=0, vmax=1)
        axes[row, column].set_title(f"{name}, channel {channel}", fontsize="small")
        axes[row, column].set_axis_off()
plt.show()

# %% [markdown]
# ## The paper's Adam loop, written out
# For the displacement $u_i$ of every keypoint $p_i$ ($N$ keypoints, $C$ feature
# channels), Adam minimises
#
# $$\mathcal{L}(u) = \frac{1}{N C} \sum_{i, c} \big(f^{\mathrm{template}}_c(p_i)
#   - f^{\mathrm{moving}}_c(p_i + u_i)\big)^2
#   + \frac{\alpha}{N} \sum_{i, j} A_{ij} \|u_i - u_j\|^2 ,$$
#
# where $A$ is the adjacency matrix of the kNN graph ($A_{ij} = 1$ when $j$ is among the
# $k$ nearest neighbours of $i$ or $i$ among those of $j$). $f^{\mathrm{moving}}(p_i +
# u_i)$ is read by trilinear interpolation (`grid_sample`), which is differentiable, so
# PyTorch gives the gradient with respect to every $u_i$. This is the whole of the
# paper's alignment, as the poster prints it: a flow in `grid_sample`'s coordinates
# ($[-1, 1]$ across the grid, in $(x, y, z)$ order), `torch.optim.Adam`, the features'
# mean squared error and the kNN penalty.

# %%
import torch
import torch.nn.functional as F

adam = cfg.adam
n = len(template.keypoints)
half = torch.tensor([(size - 1) / 2 for size in template.feature_shape])  # voxels per unit
points = torch.from_numpy(template.to_feature_grid(template.keypoints)).float()
kpts_fixed = (points / half - 1).flip(-1)  # grid_sample's (x, y, z) in [-1, 1]
feat_kpts_fixed = template.keypoint_features()  # (N, C): the template's features there
feat_moving = moving_scan.features[None]  # (1, C, D, H, W)
i, j = torch.from_numpy(np.argwhere(graph.adjacency())).T  # neighbours, both ways round

flow = torch.zeros(n, 3, requires_grad=True)
optimizer = torch.optim.Adam([flow], lr=adam.learning_rate)
for _ in range(adam.iterations):
    optimizer.zero_grad()
    kpts_moving = (kpts_fixed + flow).view(1, 1, 1, n, 3)
    feat_kpts_moving = F.grid_sample(feat_moving, kpts_moving, align_corners=True,
                                     padding_mode="border").view(-1, n).T
    data_loss = F.mse_loss(feat_kpts_moving, feat_kpts_fixed)
    reg_loss = ((flow[i] - flow[j]) ** 2).sum() / n  # the sum of A_ij |u_i - u_j|^2
    loss = data_loss + adam.alpha * reg_loss
    loss.backward()
    optimizer.step()
# back to voxels of the supervoxel grid, in (d, h, w) order
by_hand = (flow.detach().flip(-1) * half).numpy() / template.to_feature_grid(np.ones(3))

# %% [markdown]
# The package runs the same loop (`alignment.align_keypoints`), faster: it reads the 8
# corners of each keypoint's cell directly instead of calling `grid_sample`. Its result
# is the loop's, up to float32 rounding:

# %% tags=["nbval-check-output"]
result = slicreg.align(moving_scan)  # Adam (the paper's loss), then the thin-plate spline
difference = np.abs(by_hand - result.keypoint_displacement)
same_loss = np.isclose(result.losses["total"][-1], loss.item(), rtol=1e-3)
print(f"the same final loss: {same_loss}; keypoint motions apart by under 0.01 voxels on "
      f"average: {difference.mean() < 0.01}, and by under 0.5 voxels at most: "
      f"{difference.max() < 0.5}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, curve in result.losses.items():
    ax.plot(curve, label=name)
ax.set_xlabel("Adam iteration")
ax.set_ylabel("loss")
ax.set_yscale("log")
ax.legend()
plt.show()
print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))

# %%
ax = viz.show_keypoint_graph(image, template.keypoints, graph.edges,
                             displacement=result.keypoint_displacement, axis=1, index=coronal,
                             title="where each keypoint lies in the moving scan")
plt.show()

# %% [markdown]
# ## From keypoints to a dense field: the thin-plate spline
# A thin-plate spline passes (almost) through the keypoint displacements and bends as
# little as possible in between. Warping the moving scan's labels with the field gives
# the Dice. On the right, the template's regular grid drawn where each of its points
# lands in the moving scan (underneath).

# %%
moving_labels = moving.labels if labelled else np.zeros(moving.shape, np.uint8)
warped = warp_labels(moving_labels, result.displacement)
dice_before, dice_after = avg4(moving_labels), avg4(warped)
folding_percent = jacobian_stats(result.displacement)["percent_folding"]
fig, axes = plt.subplots(1, 3, figsize=(14, 5.2), layout="constrained")
index = fixed.shape[1] // 2
for ax, (title, labels) in zip(axes[:2], [(f"before: avg(4) {dice_before:.1f}%", moving_labels),
                                          (f"after: avg(4) {dice_after:.1f}%", warped)]):
    viz.show_slice(fixed.image, axis=1, index=index, ax=ax, title=title)
    if labelled:
        viz.overlay_contours(ax, viz.view_slice(fixed.labels, 1, index))
        viz.overlay_contours(ax, viz.view_slice(labels, 1, index), linestyle="dashed")
viz.show_deformation_grid(result.displacement, axis=1, index=index, ax=axes[2],
                          background=moving.image,
                          title=f"on #{moving_id}: {folding_percent:.2f}% folding")
if labelled:
    viz.add_organ_key(fig, [fixed.labels])
plt.show()

# %% [markdown]
# ## Exercise 1: fold one layer's classes into channels
# Write `fold(layer, channel_of, n_channels)`: the one-hot features of one layer, with
# class $k$ sent to channel `channel_of[k]`: an array of shape
# `(n_channels, *layer.shape)` that is 1 in channel $c$ where the voxel's class goes to
# $c$, else 0.

# %% tags=["exercise"]
def fold(layer, channel_of, n_channels):
    """Folded one-hot channels of a label volume: (n_channels, *layer.shape)."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def fold(layer, channel_of, n_channels):
    """Folded one-hot channels of a label volume: (n_channels, *layer.shape)."""
    channels = channel_of[layer]
    return np.stack([channels == c for c in range(n_channels)]).astype(float)


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_fold(fold)

# %% [markdown]
# ## Exercise 2: the kNN edge penalty
# Write `edge_penalty(u, adjacency, alpha)`: the regulariser of the paper's loss,
# $\frac{\alpha}{N} \sum_{i, j} A_{ij} \|u_i - u_j\|^2$, for displacements `u` (N, 3) and
# a symmetric 0/1 adjacency matrix `adjacency` (N, N), as `graph.adjacency()` gives it.
# The poster writes it `(pdist(flow) * weight).sum() / N`, with `pdist` the squared
# distances of all pairs.

# %% tags=["exercise"]
def edge_penalty(u, adjacency, alpha):
    """alpha / N times the sum over the adjacency of squared displacement differences."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def edge_penalty(u, adjacency, alpha):
    """alpha / N times the sum over the adjacency of squared displacement differences."""
    pdist = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
    return alpha * (pdist * adjacency).sum() / len(u)


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_edge_penalty(edge_penalty)

# %% [markdown]
# ## Going further (optional)
#
# ### A perfect network: the teacher's supervoxels
# The same alignment on the supervoxels that deeds-lite carried onto this scan (what the
# network was trained to reproduce). The gap between the two numbers is what the
# network's mistakes cost; notebook 05's table has this oracle as a row for every test
# scan (computed by the same function).
# ⏱ From an empty cache about 15 s: the teacher registers this scan first.

# %%
teacher_layers = stages.teacher_direct(cfg, data, (moving_id,))[moving_id].layers
exact = alignment.prepare_template(layers, cfg.adam)
on_teacher = oracles.register_layers(exact, teacher_layers, cfg.adam,
                                     output_shape=fixed.shape)
print(f"avg(4) Dice: no registration {dice_before:.1f}%, Adam on predicted supervoxels "
      f"{dice_after:.1f}%, Adam on the teacher's supervoxels "
      f"{avg4(warp_labels(moving_labels, on_teacher.displacement)):.1f}%")

# %% [markdown]
# ### Beyond the paper: this toolkit's centre fit
# *This section is not the paper's method but an extension of this toolkit, with a row
# of its own in notebook 05's table ("Slic-Reg + centre fit (this toolkit)").*
#
# The predicted layers say more than the smoothed features show: the voxels predicted as
# a template supervoxel have a centre of mass in the moving scan, and the step $c_i$ from
# that supervoxel's centre $p_i$ in the template to it is a direct guess of $u_i$. The
# extension starts Adam from these guesses and adds a third term,
# $\frac{w}{N} \sum_i \|u_i - c_i\|^2$ ($w$ = `cfg.centre_fit.centre_weight`), that keeps
# it near them (supervoxels the network never predicts start from their neighbours' mean
# and feel no pull). It needs the keypoints at the supervoxels' centres.
#
# Two subtleties make the guesses better:
# - a supervoxel's centre of mass moves with the *average* motion over the whole
#   supervoxel, which differs from the motion at its centre wherever the motion bends
#   inside it. So the guesses are not taken one by one: one smooth motion on a coarse
#   grid is fitted, by linear least squares, so that its average over every supervoxel
#   of every layer takes that supervoxel to its predicted centre (`alignment.fit_centres`,
#   `centre_fit_step`); $c_i$ is that motion at $p_i$;
# - where the motion stretches one side of a supervoxel more than the other, that side
#   takes more room in the moving scan, and the centre leans towards it. The supervoxels'
#   sizes show the stretch without any field (a supervoxel twice as large as in the
#   template was stretched twice), so before the fit each centre is moved back by that
#   lean (`alignment.stretch_correction`, `centre_stretch`).
#
# The table below puts the poster, the authors' code and this preset's two rows side by
# side; then both alignments run on this scan with the same network.

# %%
display(Markdown(compare_alignments(cfg)))
centre_fit = load_method(cfg, data, "slicreg-fit")  # the same network
fitted = centre_fit.align(centre_fit.moving_scan(predicted))
for name, field in (("Slic-Reg (paper)", result.displacement),
                    ("Slic-Reg + centre fit (this toolkit)", fitted.displacement)):
    print(f"{name}: avg(4) Dice {avg4(warp_labels(moving_labels, field)):.1f}%, folding "
          f"{jacobian_stats(field)['percent_folding']:.2f}%")
print(f"alignment seconds: paper {result.timings['total']:.2f}, centre fit "
      f"{fitted.timings['total']:.2f}")

# %% [markdown]
# ### Where is the registration unsure?
# Two maps of doubt that need no ground truth, pulled onto the template (at each
# template voxel, the doubt about its partner $x = y + u(y)$ in the moving scan):
# - **the network's entropy**: with $p_l(k \mid x)$ layer $l$'s softmax,
#   $H(x) = -\frac{1}{L \log 128} \sum_l \sum_k p_l(k \mid x) \log p_l(k \mid x)$:
#   0 where every layer is certain, 1 where it guesses;
# - **the spread of the named centres**: at $x$ every layer names one template
#   supervoxel; if network and field are right, all of them contain $y$ and their
#   centres lie close together; if the layers disagree, the centres scatter
#   (`alignment.centre_spread`, the root mean square distance from their mean).
#
# On the phantom the true field is known, so we can ask whether either map points at the
# voxels where the endpoint error $\lVert u(y) - u_{true}(y) \rVert$ is large: the rank
# correlation (Spearman's $\rho$) over the template's body.

# %%
from scipy.stats import spearmanr

from slicreg_lite.cohort import phantom
from slicreg_lite.core import labels, spatial
from slicreg_lite.core.metrics import endpoint_error_map
from slicreg_lite.network.models import prediction_entropy
from slicreg_lite.supervoxels import body_mask

partner = np.indices(fixed.shape, dtype=np.float32) + result.displacement
entropy = np.asarray(spatial.sample(
    prediction_entropy(slicreg.model, moving.image, cfg.network.input_shape, moving.shape,
                       intensity_scale=cfg.training.intensity_scale),
    partner, padding="border"))
supervoxel_mm = float(np.mean(np.asarray(fixed.spacing) * fixed.shape / layers.shape[1:]))
spread = resize(alignment.centre_spread(template, predicted,
                                      result.displacement), fixed.shape) * supervoxel_mm
maps = {"network entropy (0..1)": entropy, "spread of the named centres (mm)": spread}
body = fixed.body_mask if fixed.body_mask is not None else body_mask(fixed.image)
if data.kind == "phantom":
    truth = phantom.ground_truth(template_id, moving_id, cfg.phantom, cfg.grid)
    maps["true endpoint error (mm)"] = endpoint_error_map(result.displacement,
                                                          truth.displacement, fixed.spacing)
fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 5), layout="constrained")
index = fixed.shape[1] // 2
for ax, (name, values) in zip(np.atleast_1d(axes), maps.items()):
    viz.show_error_map(fixed.image, np.nan_to_num(values), fixed.labels, axis=1, index=index,
                       ax=ax, mask=body, title=name, label=name)
viz.add_organ_key(fig, [fixed.labels])
plt.show()
if data.kind == "phantom":
    error = maps["true endpoint error (mm)"]
    inside = body & np.isfinite(spread) & np.isfinite(error)
    for name in list(maps)[:2]:
        rho = spearmanr(maps[name][inside], error[inside]).statistic
        print(f"{name}: Spearman rho with the true error {rho:+.2f}")

# %% [markdown]
# A map that predicted the error would give $\rho$ near 1; $\rho$ near 0 means it does
# not know where the registration fails. The spread mostly shows the supervoxels' size,
# and where the network is *confidently wrong* neither the network nor the field has any
# sign of doubt. A learnt uncertainty would need to be trained against errors like these,
# which is what the phantom's ground truth makes possible.

# %% [markdown]
# ### Interactive: alpha, k, iterations and the centre term
# Move a slider and the registration runs again (while it runs the text under the sliders
# says so, and moves made meanwhile are not queued: only the latest is computed). The
# sliders start at the paper's loss: watch the Dice and the folding as `alpha` changes;
# too small an `alpha` lets neighbouring keypoints disagree and the spline folds, too
# large a one stiffens the motion. Then raise the **centre weight** above 0 to add this
# toolkit's centre term, first with each supervoxel's own centre, then with **centre
# fit** ticked.

# %%
if labelled:  # the explorer reports Dice: it needs labels
    explorer = AdamExplorer(slicreg, moving_scan, fixed, moving)
    display(explorer.widget)

# %% [markdown]
# ### The baseline: regressing displacements, then a random walk
# The paper's ablation trains the same network with a *regression* head: it predicts,
# at every voxel, where that voxel lies in the template. We read that field at the
# template's keypoints (inverting it where the network was trained: inside the moving
# scan's body, where its targets lay; keypoints without a partner there take their
# neighbours' motion), smooth the keypoint displacements by a random walk on the same
# kNN graph, and use the same spline.

# %%
baseline_registration = load_method(cfg, data, "regression").register(moving.image)
baseline = baseline_registration.details  # the keypoints before and after the random walk
baseline_warped = warp_labels(moving_labels, baseline.displacement)
print(f"avg(4) Dice on #{moving_id}: regression + RW {avg4(baseline_warped):.1f}% vs "
      f"Slic + the paper's Adam {dice_after:.1f}%; folding "
      f"{jacobian_stats(baseline.displacement)['percent_folding']:.2f}% vs "
      f"{folding_percent:.2f}%")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, (title, motion) in zip(axes, [("regression: raw keypoint motion",
                                       baseline.raw_displacement),
                                      ("after the random walk",
                                       baseline.keypoint_displacement)]):
    viz.show_keypoint_graph(image, exact.keypoints, baseline.graph.edges, displacement=motion,
                            axis=1, index=coronal, ax=ax, title=title)
plt.show()

# %% [markdown]
# ### Any pair: two scans, neither of them the template
# The paper registers every scan to one template. But the network gives *any* scan the
# template's labels, so two other scans can be related through them. This is our
# addition, not the paper's. Slic-Reg takes a pair by one of two routes:
# - **direct**: the fixed scan's predicted supervoxels take the template's place, and the
#   same Adam alignment matches the moving scan's with them;
# - **composed**: both scans are registered to the template, and fixed -> template ->
#   moving goes through the inverse of one field.
#
# On pairs of validation subjects both scored the same Dice, so `cfg.adam.pair_route` keeps
# the faster one, `direct` (`benchmarks/bench_pairs.py`). The cell registers the moving
# scan to the next test subject. `register --fixed`, `run --pairs all` and the
# `learn2reg` command (a Learn2Reg submission, see the README) do the same from the
# command line.
#
# ⏱ About 10 s: the pair registered twice, once by each route.

# %%
other_id = data.split.evaluation_ids[(SUBJECT + 1) % len(data.split.evaluation_ids)]
other = stages.cohort(cfg, data, (other_id,))[other_id]
for route in ("direct", "composed"):
    pair = slicreg.register(moving, fixed=other, route=route)
    if labelled and other.labels is not None:
        names = data.names_for(np.unique(other.labels))
        before, after = (100 * score_registration(warped, other.labels, label_names=names,
                                                  hd95=False).headline
                         for warped in (moving.labels, pair.warped_labels))
        print(f"#{moving_id} -> #{other_id}, {route}: avg(4) Dice {before:.1f}% -> "
              f"{after:.1f}% in {pair.timings['total']:.1f} s")

# %% [markdown]
# ### Your own scans: the `register` command
# The same object registers scans given as NIfTI files, in any orientation, voxel size
# and field of view: they are brought onto the preset's grid, registered to the template,
# and the results come back onto the fixed scan's grid as files other tools read
# (`warped.nii.gz`, `warped_labels.nii.gz`, `displacement_itk.nii.gz` for SimpleITK,
# ANTs or 3D Slicer, `displacement_learn2reg.nii.gz`, `overlay.png`, `report.json`):
#
# ```bash
# python -m slicreg_lite register moving.nii.gz --labels moving_labels.nii.gz --out result
# python -m slicreg_lite register moving.nii.gz --method slicreg-fit --out result  # + centre fit
# python -m slicreg_lite register moving.nii.gz --method teacher --fixed fixed.nii.gz --out result
# python -m slicreg_lite register moving.nii.gz --fixed fixed.nii.gz --out result  # any pair
# ```
#
# A network knows only scans like those it was trained on (here: the phantom). The
# command compares every scan's intensities with the training scans' and says so when
# they differ, and `report.json` says `"reliable": false` when the field folds or
# stretches too much. The cell below does the same from Python with the moving scan
# written to a NIfTI file.

# %%
import json
import tempfile
from pathlib import Path

from IPython.display import Image

from slicreg_lite.apps.register import register_scans
from slicreg_lite.cohort.nifti import save_nifti

folder = Path(tempfile.mkdtemp())
save_nifti(folder / "moving.nii.gz", moving.image, moving.affine)
labels_file = None
if moving.labels is not None:
    labels_file = save_nifti(folder / "moving_labels.nii.gz", moving.labels, moving.affine)
registered = register_scans(folder / "moving.nii.gz", labels=labels_file, cfg=cfg, data=data,
                            out=folder / "result")
report = json.loads((folder / "result" / "report.json").read_text())
print("written:", sorted(path.name for path in (folder / "result").iterdir()))
print("seconds:", {name: round(value, 2) for name, value in report["seconds"].items()})
print("reliable:", report["reliable"], report["warnings"])
if report["dice"] is not None:
    print(f"Dice: {report['dice']}")
display(Image(filename=str(folder / "result" / "overlay.png"), width=700))

# %% [markdown]
# ### Try it yourself
# Every setting of `cfg.adam` can be changed for one registration:
# `slicreg.align(moving_scan, name=value)` computes again whatever the setting decides
# (the features, the keypoints, the centre fit) before Adam runs.
# 1. **Choosing alpha.** Run `slicreg.align(moving_scan, alpha=a)` for `a` in
#    `np.geomspace(0.001, 3, 8)` and plot avg(4) Dice and % folding against alpha.
#    Where is the sweet spot? Is it the same for another `SUBJECT`?
# 2. The poster prints `alpha=0.015`, the authors' code passes `alpha=0.15`: compare both,
#    and look at the keypoint arrows. Which keypoints disagree with their neighbours,
#    and why are they often near organ boundaries?
# 3. Set `k=1` and then `k=20`. How does the graph change what alpha means?
# 4. Compare `pool_kernel=1` (no smoothing) with 3 and 5: why does a keypoint need blurred
#    features to find its way?
# 5. The poster's keypoints against the code's: `keypoints="centres"` and
#    `keypoints="random"`; the code's folding against a plain permutation:
#    `fold="blocks"` and `fold="permutation"`; the template's own features against the
#    network's view of it: `template_features="supervoxels"` and
#    `template_features="network"`.
# 6. Beyond the paper: add the centre term with `centre_weight=10` (each supervoxel's own
#    centre), then with `centre_fit_step=8` (one motion fitted to all centres) and
#    `centre_stretch=True`. What does each add to the Dice and the folding?

# %% [markdown]
# ## Summary
# - Slic-Reg registers a new scan by moving the template's ~2,000 supervoxel centres to
#   where the network's predicted supervoxels say they belong.
# - Adam minimises the folded features' squared difference plus a kNN-graph penalty.
# - A thin-plate spline turns the keypoints' motion into a dense field.
# - This toolkit's centre fit is an extension, not the paper's method.
#
# ## References
# - M. P. Heinrich. Rethinking the design of learning based inter-patient registration
#   using deformable supervoxels. *MIDL* 2021 (the loss and the loop).
# - D. P. Kingma, J. Ba. Adam: a method for stochastic optimization. *ICLR* 2015.
# - F. L. Bookstein. Principal warps: thin-plate splines and the decomposition of
#   deformations. *IEEE TPAMI* 11(6), 1989.
# - L. Grady. Random walks for image segmentation. *IEEE TPAMI* 28(11), 2006 (the
#   baseline's random walk).
