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
# # 02 · deeds supervision: a conventional registration teaches the network
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/02_deeds_supervision.ipynb)
#
# Step 2 of the method. **Here the roles are swapped** (see the conventions in notebook
# 00): the teacher carries the template's supervoxels *onto* a training scan, so the
# training scan is *fixed* and the template *moves*.
#
# **What you will learn**
# - why Slic-Reg needs a *teacher*, and why the teacher needs no labels either;
# - MIND descriptors: structure, not grey values;
# - deeds' deformable step: a cost per candidate displacement, a minimum spanning tree,
#   belief propagation;
# - how the template's supervoxels are carried onto every training scan.

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
import torch
from IPython.display import Markdown, display

from slicreg_lite import display as viz
from slicreg_lite import setup
from slicreg_lite.core.dice_table import DiceTable
from slicreg_lite.core.metrics import score_registration
from slicreg_lite.core.spatial import affine_to_displacement, warp_image, warp_labels
from slicreg_lite.display import TeacherExplorer
from slicreg_lite.pipeline import stages
from slicreg_lite.supervoxels import body_mask
from slicreg_lite.teacher import deformable, grid, reference, register
from slicreg_lite.teacher.mind import mind_ssc
from slicreg_lite.teaching import exercises

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
split = data.split
subjects = stages.cohort(cfg, data, (split.train_ids[0], split.template_id))
fixed, template = subjects[split.train_ids[0]], subjects[split.template_id]
# organ labels only *measure* the teacher; scans without labels are shown without Dice
labelled = fixed.labels is not None and template.labels is not None
label_names = data.names_for(np.unique(template.labels) if labelled else [])
print(f"preset {cfg.name!r}: fixed = training subject #{fixed.subject_id}, "
      f"moving = template #{template.subject_id}, {fixed.shape} voxels")

# %% [markdown]
# ## Why a teacher?
# The network of step 3 needs examples: training scans on which the template's
# supervoxels have been drawn. Nobody draws them by hand. A conventional registration,
# deeds (Heinrich et al.), aligns the template to each training scan and *carries* the
# supervoxels along, from the images alone: still no labels. Here is **deeds-lite**, the
# same ingredients in Python: MIND descriptors, an affine step by block matching, and a
# deformable step by discrete optimisation on a minimum spanning tree.

# %% [markdown]
# ## MIND: describing structure, not grey values
# For each voxel, MIND compares small patches around its six neighbours with each other
# (12 pairs $r$): with $D_r(x)$ the sum of squared differences of the two patches of pair
# $r$ and $V(x)$ their mean over the pairs, $\mathrm{MIND}_r(x) = \exp(-D_r(x) / V(x))$.
# It describes edges and corners, not brightness: a linear change of intensities (another
# contrast level, another scanner) leaves it unchanged, as the cell checks.

# %%
fixed_mind = mind_ssc(fixed.image)
moving_mind = mind_ssc(template.image)
brighter = mind_ssc(1.3 * fixed.image + 80.0)
print(f"MIND: {tuple(fixed_mind.shape)} channels x voxels; largest change after "
      f"intensity * 1.3 + 80: {float((brighter - fixed_mind).abs().max()):.1e}")

fig, axes = plt.subplots(1, 4, figsize=(14, 4))
viz.show_slice(fixed.image, axis=1, ax=axes[0], title="CT (coronal)")
for ax, channel in zip(axes[1:], (0, 5, 11)):
    viz.show_slice(fixed_mind[channel].numpy(), axis=1, ax=ax, window=(0, 1),
                   title=f"MIND channel {channel}")
plt.show()

# %% [markdown]
# ## One registration
# `register(fixed, moving, cfg)` runs the affine and the deformable step;
# `keep_levels=True` also keeps the field after each level, to look inside.
# ⏱ about 10 s under `lite` on 2 CPU cores (it is not cached).

# %%
result = register(fixed.image, template.image, cfg.teacher, keep_levels=True)
print("seconds per part:", {k: round(v, 2) for k, v in result.timings.items()})

affine_field = affine_to_displacement(result.affine, fixed.shape)
steps = {"not registered": np.zeros_like(affine_field), "affine": affine_field,
         "affine + deformable": result.displacement}
if labelled:
    table = DiceTable(label_names=label_names)
    for name, field in steps.items():
        scores = score_registration(warp_labels(template.labels, field), fixed.labels,
                                    label_names=table.label_names, hd95=False)
        table.add(name, fixed.subject_id, scores.dice)
    display(Markdown(table.to_markdown()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), layout="constrained")
for ax, (name, field) in zip(axes, steps.items()):
    if labelled:
        viz.show_slice(fixed.image, axis=1, ax=ax,
                       title=f"{name}: fixed (solid), template (dashed)")
        viz.overlay_contours(ax, viz.view_slice(fixed.labels, axis=1))
        viz.overlay_contours(ax, viz.view_slice(warp_labels(template.labels, field), axis=1),
                             linestyle="dashed")
    else:  # no labels: the checkerboard of the fixed scan and the warped template
        viz.show_checkerboard(fixed.image, warp_image(template.image, field, fill=-1000.0),
                              axis=1, ax=ax, title=f"{name}: fixed / warped template")
if labelled:
    viz.add_organ_key(fig, [fixed.labels])
plt.show()

# %% [markdown]
# ## The deformable step: a cost for every candidate displacement
# Control points sit on a grid (every `cfg.teacher.grid_spacings[0]` voxels at the first
# level). Each may move by any of a cube of candidate displacements. The **data cost** of
# a candidate is how different the MIND descriptors around the point are from those at
# the displaced position in the (affinely aligned) moving scan. Below: the cost of every
# candidate of one control point with a clear best match, in three slices of the cube
# through the best candidate, in millimetres. In flat regions every candidate looks
# alike, which is why a smoothness penalty is needed.

# %%
spacing, radius = cfg.teacher.grid_spacings[0], cfg.teacher.search_radii[0]
quantisation = cfg.teacher.quantisations[0]
box = grid.patch_offsets(spacing)[1]
moving_aligned = warp_image(grid.smooth_features(moving_mind, box),
                            torch.from_numpy(affine_field), padding="border")
field_1, level_1 = deformable.register_level(
    grid.smooth_features(fixed_mind, box), moving_aligned, torch.from_numpy(fixed.image),
    spacing=spacing, radius=radius, quantisation=quantisation, alpha=cfg.teacher.regularisation)

side = 2 * radius + 1
points = level_1["points"]
cost = level_1["cost"].numpy()
# the control point whose best candidate stands out most (flat regions match anywhere)
contrast = (cost.mean(1) - cost.min(1)) / cost.mean(1)
point = int(np.argmax(contrast))
cube = cost[point].reshape(side, side, side)
best = np.unravel_index(np.argmin(cube), cube.shape)
mm = (np.arange(side) - radius) * quantisation * cfg.grid.spacing_mm  # candidates in mm
half_step = quantisation * cfg.grid.spacing_mm / 2
extent = [mm[0] - half_step, mm[-1] + half_step, mm[0] - half_step, mm[-1] + half_step]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
for ax, (axis, name) in zip(axes, enumerate("dhw")):
    rows, columns = [other for k, other in enumerate("dhw") if k != axis]
    plane = np.take(cube, best[axis], axis=axis)
    drawn = ax.imshow(plane, cmap="viridis", origin="lower", extent=extent)
    ax.set_title(f"slice u_{name} = {mm[best[axis]]:g} mm")
    ax.set_xlabel(f"displacement u_{columns} (mm)")
    ax.set_ylabel(f"displacement u_{rows} (mm)")
    fig.colorbar(drawn, ax=ax, shrink=0.8, label="data cost")
fig.suptitle(f"control point {points[point]}: {side}^3 = {side ** 3} candidate displacements")
plt.show()

# %% [markdown]
# ## The minimum spanning tree and belief propagation
# Choosing the cheapest candidate at every point independently gives a noisy field.
# deeds adds a penalty between neighbouring points $p, q$ and minimises
#
# $$E(d) = \sum_p C_p(d_p) + \alpha \sum_{(p, q) \in T} \frac{\|d_p - d_q\|^2}{s^2},$$
#
# ($C_p$ the data cost, $s$ the grid spacing), but only along the edges of a **tree** $T$:
# the minimum spanning tree of the grid, weighted by intensity differences. The tree
# prefers edges inside one tissue, so organs can slide along each other. And on a tree
# the minimum is found *exactly*, in two passes: upwards, each node sends its parent a
# message, "for each label you might choose, the least my subtree can cost",
#
# $$m_{p \to q}(d_q) = \min_{d_p} \Big( C_p(d_p) + \sum_{c \text{ child of } p}
#   m_{c \to p}(d_p) + \alpha \frac{\|d_p - d_q\|^2}{s^2} \Big);$$
#
# downwards, every node picks its best label given its parent's choice.

# %%
index = int(np.median(points[:, 1]))
viz.show_tree(fixed.image, points, level_1["parents"], axis=1, index=index,
              thickness=spacing / 2, title="spanning tree edges near this coronal slice")
plt.show()

# %% [markdown]
# A chain of 40 points with a noisy cost per label shows the effect: independent
# choices jump around, belief propagation finds the best smooth path. With a squared
# penalty each message is a **distance transform** (right): the lower envelope of one
# parabola per label, computed in linear time.

# %%
rng = np.random.default_rng(0)
n_points, n_labels = 40, 21
truth = np.round(10 + 6 * np.sin(np.linspace(0, 3, n_points))).astype(int)
costs = (np.arange(n_labels)[None] - truth[:, None]) ** 2 / 20 + rng.gamma(1, 2, (n_points,
                                                                                  n_labels))
chain_parents = np.arange(n_points) - 1  # node i hangs from node i - 1; node 0 is the root
labels = reference.tree_belief_propagation(costs, np.arange(n_points), chain_parents,
                                          (n_labels, 1, 1), weight=2.0)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
axes[0].imshow(costs.T, origin="lower", aspect="auto", cmap="viridis")
axes[0].plot(costs.argmin(1), "w.", label="cheapest label of each point")
axes[0].plot(labels, "r-", label="belief propagation")
axes[0].set_xlabel("point along the chain")
axes[0].set_ylabel("label")
axes[0].legend(loc="lower right", framealpha=0.9)
message = reference.distance_transform_1d(costs[:1], 2.0)[0]
axes[1].plot(costs[0], "o-", label="cost of each label")
axes[1].plot(message, "s-", label="message = lower envelope of parabolas")
axes[1].set_xlabel("label")
axes[1].legend()
plt.show()

# %% [markdown]
# ## The supervision stage: every training scan
# `stages.supervision(cfg, data)` registers the template onto every training scan (one
# process per CPU core) and warps the 16 supervoxel layers with the fields. The organ
# labels below only *measure* the teacher; nothing is trained on them.
#
# ⏱ From an empty cache the teacher registers all 20 training scans: about 190 s
# (3 min) under `lite` on 2 CPU cores. Afterwards they come from the cache at once.

# %%
supervised = stages.supervision(cfg, data)
teacher_table = stages.teacher_dice(cfg, data, supervised)
display(Markdown(teacher_table.to_markdown()))
seconds = [s.timings["total"] for s in supervised.values()]
print(f"\n{len(supervised)} training scans, {np.mean(seconds):.1f} s per registration "
      f"(several in parallel, so each had a share of the cores)")

# %% [markdown]
# These carried layers are the targets of the network in notebook 03:

# %%
layers = stages.template_supervoxels(cfg, data).layers
shown = list(supervised)[:3]
fig, axes = plt.subplots(1, 1 + len(shown), figsize=(4 * (1 + len(shown)), 4))
viz.show_supervoxels(template.image, layers[0], axis=1, ax=axes[0], title="template, layer 0")
for ax, subject_id in zip(axes[1:], shown):
    scan = stages.cohort(cfg, data, (subject_id,))[subject_id]
    viz.show_supervoxels(scan.image, supervised[subject_id].layers[0], axis=1, ax=ax,
                         title=f"carried onto #{subject_id}")
plt.show()

# %% [markdown]
# ## Exercise: one min-sum message
# On a chain child $\to$ parent, the child sends for every label $q$ of the parent
# $m(q) = \min_p \big(c(p) + \alpha\,(p - q)^2\big)$, with $c$ the child's costs. Write
# `message(costs, alpha)` by brute force (two loops, or one with NumPy); the package's
# distance transform computes the same in linear time.

# %% tags=["exercise"]
def message(costs, alpha):
    """The min-sum message of a child with label ``costs`` (n,) to its parent: (n,)."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def message(costs, alpha):
    """The min-sum message of a child with label ``costs`` (n,) to its parent: (n,)."""
    labels = np.arange(len(costs))
    return (costs[:, None] + alpha * (labels[:, None] - labels[None, :]) ** 2).min(axis=0)


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_message(message)

# %% [markdown]
# ## Going further (optional)
#
# ### The affine step
# The moving scan is cut into blocks; each block of the fixed body looks for its best
# match within a cube of shifts (on 4x, then 2x coarser copies of both MIND volumes).
# Many blocks are wrong: repeated vertebrae and bowel loops, organs that moved on their
# own. A **least-trimmed-squares** fit handles them: fit an affine matrix to all matches,
# keep the half that agree best, fit again, and so on.

# %%
print("affine matrix (fixed voxel -> template voxel):")
print(np.round(result.affine, 3))

# %% [markdown]
# ### Coarse to fine, and symmetric
# deeds repeats the deformable step on finer grids with smaller candidate cubes, each
# level starting from the previous result; the penalty acts on the *whole* displacement,
# so a finer level also smooths what coarser ones left. It also registers the other way
# round and makes both fields each other's inverse, so folding (Jacobian determinant
# <= 0) stays rare. Registration runs the cost and belief propagation *compiled*
# (`slicreg_lite/teacher/compiled.py`, numba): the same loops as above, several times
# faster.
#
# The grid shows the field: the fixed scan's regular grid, drawn where each of its points
# lands in the *moving* scan (here the template, underneath).

# %%
body = body_mask(fixed.image)  # from intensities: no labels needed
for level, field in enumerate(result.levels, start=1):
    scores = score_registration(warp_labels(template.labels, field) if labelled else None,
                                fixed.labels, field, label_names=label_names, body=body,
                                hd95=False)
    stats, dice = scores.jacobian, ""
    if labelled:  # the paper's summary (the four large organs) for the BTCV organs
        summary = "avg(4)" if "avg(4)" in scores.summary else "mean"
        dice = f"{summary} Dice {100 * scores.headline:.1f}%, "
    print(f"level {level} (spacing {cfg.teacher.grid_spacings[level - 1]}): {dice}"
          f"folding {stats['percent_folding']:.2f}%, std(log J) "
          f"{stats['std_log_jacobian']:.2f}")
viz.show_deformation_grid(result.displacement, axis=1, step=3, background=template.image,
                          title="the fixed grid, where it lands in the template")
plt.show()

# %% [markdown]
# ### Explore: regularisation, level, slice
# `alpha` weighs smoothness against the data: too small and the field follows noise (and
# folds), too large and organs cannot move enough. `level` 0 shows the affine step.
# ⏱ about 10 s to start (it registers once).

# %%
if labelled:  # the explorer reports Dice: it needs labels
    explorer = TeacherExplorer(fixed, template, cfg.teacher)
    display(explorer.widget)

# %% [markdown]
# ### Try it yourself
# 1. Run `register` with `symmetric=False` (`dataclasses.replace(cfg.teacher,
#    symmetric=False)`). How do Dice, folding and time change? And with
#    `regularise_total=False`, which penalises only each level's own step?
# 2. Replace MIND by the raw image (`fixed.image[None] / 500`) in `register_level` above.
#    Where does the cost become ambiguous?
# 3. Make the penalty act on *all* grid neighbours instead of the tree's edges: why can
#    belief propagation then no longer find the exact minimum?

# %% [markdown]
# ## Summary
# - A conventional registration, deeds-lite, carries the template's supervoxels onto every
#   training scan: the network's targets, made without labels.
# - MIND descriptors compare structure, not intensities.
# - Each control point weighs a cube of candidate displacements; a smoothness penalty on a
#   minimum spanning tree is minimised exactly by belief propagation.
#
# ## References
# - M. P. Heinrich et al. MRF-based deformable registration and ventilation estimation of
#   lung CT. *IEEE TMI* 32(7), 2013 (deeds).
# - M. P. Heinrich et al. MIND: modality independent neighbourhood descriptor for
#   multi-modal deformable registration. *Medical Image Analysis* 16(7), 2012; and
#   Towards realtime multimodal fusion for image-guided interventions using
#   self-similarities. *MICCAI* 2013 (MIND-SSC).
# - P. F. Felzenszwalb, D. P. Huttenlocher. Distance transforms of sampled functions.
#   *Theory of Computing* 8, 2012.
