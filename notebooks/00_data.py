# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · The data: a synthetic abdominal CT cohort
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/00_data.ipynb)
#
# Slic-Reg (Heinrich, MIDL 2021) registers abdominal CT scans of *different patients*:
# 30 scans of the "Beyond the Cranial Vault" (BCV) challenge, each with 13 organs
# delineated. Those scans need a registration at synapse.org, so every notebook here runs
# on a **synthetic cohort** instead: 30 phantom scans with the same 13 labels, the same
# split into training and test scans, and the same difficulty: *no pre-alignment*.
#
# **What you will learn**
# - what is in the cohort: the 13 BTCV organs, the split, the template scan #38;
# - how a phantom subject is made, and why the scans differ so much;
# - how badly the organs overlap before any registration (the first row of the
#   paper's table);
# - how to use the real BCV or Learn2Reg data instead.

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
# the default) or "paper" (the paper's 192 x 160 x 256 voxels, for a GPU).
import os

PRESET = os.environ.get("SLICREG_PRESET", "lite")

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from slicreg_lite import config, pipeline, viz
from slicreg_lite.widgets import SliceViewer

cfg = config.get_config(PRESET)
print(f"preset {cfg.name!r}: volumes of {cfg.phantom.shape} voxels at "
      f"{cfg.phantom.spacing_mm:g} mm")

# %% [markdown]
# ## The 13 organs
# The labels keep the BTCV numbering. The paper reports the Dice overlap of the four large
# organs (avg(4): spleen, both kidneys, liver) and of all 13 (avg(13)); small organs such
# as the adrenal glands are very hard to align.

# %% tags=["nbval-check-output"]
for number, name in enumerate(config.LABEL_NAMES, start=1):
    marker = "  <- avg(4)" if number in config.LARGE_ORGANS else ""
    print(f"{number:2d}  {name}{marker}")

# %% [markdown]
# ## The cohort
# Subjects carry the BCV ids. The paper trains on 20 scans and tests on 10, one of which
# (#38) is the **template**: every test scan is registered to it. `pipeline.cohort`
# generates the subjects once and afterwards reads them from the cache in `data/cache/`.

# %%
subjects = pipeline.cohort(cfg)
split = cfg.split
template = subjects[split.template_id]
print(f"{len(split.train_ids)} training subjects: {split.train_ids}")
print(f"{len(split.test_ids)} test subjects: {split.test_ids}, template #{split.template_id}")
print(f"one subject: image {template.image.dtype} {template.shape}, labels "
      f"{template.labels.dtype}, voxel spacing {template.spacing} mm")

# %% [markdown]
# ## The template in three views
# Slices are shown the way a radiologist reads them: in the axial view the patient's front
# is at the top and the patient's **right** is on the **left** of the image.

# %%
fig = viz.show_orthogonal(template.image, template.labels)
fig.suptitle(f"template #{split.template_id}")
plt.show()

# %% [markdown]
# ## How a phantom subject is made
# 1. **Canonical anatomy**: organs, vessels, spine, ribs, bowel and body wall are simple
#    shapes (ellipsoids, tubes along curves) in a patient frame in mm. Each subject
#    moves, resizes and reshapes every organ a little.
# 2. **Pose and body shape**: the patient lies in the scanner with a different body size
#    (anisotropic scaling 0.85-1.15), a rotation of a few degrees, a translation of
#    10-20 mm, a shifted field of view along the body axis, and a smooth random
#    nonlinear deformation.
# 3. **Intensities** in Hounsfield units: every tissue has its typical value (fat -100,
#    liver about 100, enhanced kidney cortex about 185, bone several hundred, gas -950);
#    each subject gets its own amount of contrast agent and a smooth intensity shift;
#    texture, partial-volume blur and noise make the image look scanned.
#
# The organ volumes (in ml) show how the subjects differ:

# %%
voxel_ml = np.prod(template.spacing) / 1000
volumes = np.array([np.bincount(s.labels.ravel(), minlength=14)[1:] * voxel_ml
                    for s in subjects.values()])
print(f"{'organ':>24s}  {'mean ml':>8s}  {'min':>7s}  {'max':>7s}")
for label, name in enumerate(config.LABEL_NAMES):
    column = volumes[:, label]
    print(f"{name:>24s}  {column.mean():8.1f}  {column.min():7.1f}  {column.max():7.1f}")

# %% [markdown]
# ## Four subjects, the same slice
# The same voxel index shows different anatomy in each scan: this is what the
# registration has to undo.

# %%
shown = [split.template_id, *split.evaluation_ids[:3]]
fig = viz.show_subjects([subjects[i].image for i in shown], [subjects[i].labels for i in shown],
                        [f"#{i}" for i in shown], axis=1)
plt.show()

# %% [markdown]
# ## Initial misalignment: the first row of the paper's table
# Without registration, how much do the organs of each test subject overlap those of the
# template? Dice = 2|A∩B| / (|A|+|B|), in %, mean ± std over the 9 test subjects (the
# std of avg(4) and avg(13) is taken over all subject-organ pairs, as in the paper).
# The paper measured 16.4 % for avg(4) and 8.8 % for avg(13) on the real scans.

# %%
table = pipeline.initial_alignment(cfg, subjects)
print(table.to_markdown())

# %%
moving = subjects[split.evaluation_ids[0]]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
viz.show_checkerboard(template.image, moving.image, axis=1, ax=axes[0],
                      title=f"checkerboard: template / #{moving.subject_id}")
viz.show_slice(template.image, axis=1, ax=axes[1],
               title="organ outlines: template (solid), subject (dashed)")
viz.overlay_contours(axes[1], viz.view_slice(template.labels, axis=1))
viz.overlay_contours(axes[1], viz.view_slice(moving.labels, axis=1), linestyle="dashed")
plt.show()

# %% [markdown]
# ## Browse the cohort
# Choose a subject, a view and a slice. (Interactive controls need a live Jupyter kernel.)

# %%
viewer = SliceViewer(subjects)
display(viewer.widget)

# %% [markdown]
# ## Using the real data
# With internet access you can run everything on the real scans:
#
# ```python
# from slicreg_lite import datasets
# root = datasets.fetch_dataset("bcv_abdomen_isocrop", "data/real")  # 648 MB, verified
# scans = datasets.load_bcv(root)               # img/img0001.nii.gz, label/label0001.nii.gz
# # or Learn2Reg "AbdomenCTCT" (affinely pre-aligned, described by a dataset.json):
# scans = datasets.load_learn2reg(datasets.fetch_dataset("learn2reg_abdomenctct", "data/real"))
# # your own BCV download: resample to 2 mm and crop around the soft-tissue centre of mass
# scan = datasets.preprocess(scans[0], spacing_mm=2.0, shape=(192, 160, 256))
# ```
#
# The phantom cohort can also be written in the BCV layout, to open it in ITK-SNAP or
# 3D Slicer: `python -m slicreg_lite export data/phantom_nifti --preset lite`.
# The cell below does the same round trip in a temporary folder:

# %%
import tempfile

from slicreg_lite import datasets
from slicreg_lite.phantom import export_nifti

with tempfile.TemporaryDirectory() as folder:
    export_nifti({i: subjects[i] for i in shown[:2]}, folder)
    reloaded = datasets.load_bcv(folder)
print([s.subject_id for s in reloaded], "identical:",
      all(np.array_equal(s.image, subjects[s.subject_id].image) for s in reloaded))

# %% [markdown]
# ## Try it yourself
# 1. Make registration harder or easier: `cfg.with_updates(phantom={"translation_mm":
#    (30.0, 40.0)})` gives a new cohort (it gets its own cache folder). How does the
#    initial avg(4) change? Which organ suffers most, and why?
# 2. Which organ has the lowest initial Dice, and is it because it is small or because
#    it moves a lot? Compare the volume table with the per-organ Dice
#    (`print(table.per_label_markdown("initial, not registered"))`).
# 3. Look for the air in the stomach in the viewer. Why would a registration that
#    compares raw intensities struggle there, while MIND descriptors (notebook 02) cope?
