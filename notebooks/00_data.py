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
# # 00 · The data: a synthetic abdominal CT cohort
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/slicreg-lite/slicreg_lite/blob/main/notebooks/00_data.ipynb)
#
# This tutorial teaches one paper, *Slic-Reg* (Heinrich, MIDL 2021): registration of
# abdominal CT scans of different patients, learnt without a single drawn label. Six
# notebooks follow the method step by step; the agenda below the setup cell says what
# you do in each and how long it takes.
#
# **What you will learn here**
# - the whole method in one figure, and the conventions every notebook uses;
# - the cohort: 13 organs, training and test scans, the template #38;
# - how badly the organs overlap before registration (the first row of the paper's table).

# %% tags=["colab"]
# On Google Colab, fetch the repository (with its pretrained weights) and install it; the
# preinstalled PyTorch (with CUDA on a GPU runtime) is kept. This cell does nothing
# elsewhere.
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
# DATA chooses the scans: "phantom" (the synthetic cohort), or your real data:
# "bcv:PATH", "learn2reg:PATH" or "folder:PATH" (see "Going further" below).
import os

PRESET = os.environ.get("SLICREG_PRESET", "lite")
DATA = os.environ.get("SLICREG_DATA", "phantom")

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from slicreg_lite import display as viz
from slicreg_lite import setup
from slicreg_lite.cohort import layouts, sources
from slicreg_lite.core import labels
from slicreg_lite.display import SliceViewer
from slicreg_lite.pipeline import stages
from slicreg_lite.teaching import exercises, tutorial

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
print(f"preset {cfg.name!r}: data {data.spec!r} on a grid of {cfg.grid.shape} voxels at "
      f"{cfg.grid.spacing_mm:g} mm; computing on {tutorial.device()}")

# %% [markdown]
# ## The agenda
# The six notebooks fit a 90-minute session with a warm cache (running times measured
# on 2 CPU cores; the ⏱ notes above slow cells say more):

# %%
display(Markdown(tutorial.agenda_markdown()))

# %% [markdown]
# ## The method in one figure
# Steps 1-3 happen once, offline: the template is cut into layers of supervoxels, a
# conventional registration (the *teacher*) carries them onto every training scan, and a
# network learns to predict them. Registering a new scan then takes seconds: the network
# predicts its supervoxels, and Adam moves the template's supervoxel centres (the
# *keypoints*) until the two agree; a spline turns the keypoints' motion into a dense field.

# %%
fig = viz.show_pipeline(cfg)
plt.show()

# %% [markdown]
# ## Conventions used in every notebook
# - **Fixed and moving.** The *fixed* scan is the one we register *to*: the template #38
#   in notebooks 04 and 05. The *moving* scan is the one being aligned. Notebook 02 swaps
#   the roles on purpose: the teacher carries the template's supervoxels *onto* a
#   training scan, so there the training scan is fixed and the template moves.
# - **Displacements.** A field $u$ lives on the fixed scan's grid: the fixed voxel $x$
#   corresponds to $x + u(x)$ in the moving scan. Inside the package $u$ is in *voxels*,
#   in $(d, h, w)$ order (the array's axes); tables and figures report *millimetres*
#   (voxels times the voxel size).
# - **Grids.** Several grids are in play, all covering the same field of view:

# %%
display(Markdown(tutorial.grids_markdown(cfg)))

# %% [markdown]
# ## The 13 organs
# The labels keep the BTCV numbering. The paper reports the Dice overlap of the four large
# organs (avg(4): spleen, both kidneys, liver) and of all 13 (avg(13)). Labels serve only
# to *measure*: no step of Slic-Reg trains on them.

# %% tags=["nbval-check-output"]
for number, name in enumerate(labels.LABEL_NAMES, start=1):
    marker = "  <- avg(4)" if number in labels.LARGE_ORGANS else ""
    print(f"{number:2d}  {name}{marker}")

# %%
print("this data's labels:", "the 13 BTCV organs" if data.is_btcv else data.label_names)

# %% [markdown]
# ## The cohort
# The real scans of the "Beyond the Cranial Vault" (BCV) challenge need a registration
# at synapse.org, so the notebooks run on a **phantom**: 30 synthetic scans with the same
# 13 labels, the same ids and the same split: 20 training scans, 10 test scans, one of
# which (#38) is the **template** every test scan is registered to. Phantom subjects
# differ as patients do (organ shapes, body size, position in the scanner), and the
# phantom knows the *true* correspondence between any two of them (notebook 05).
#
# ⏱ The cell below makes the cohort once: about 35 s under `lite` on 2 CPU cores; later
# runs read it from the cache in `data/cache/` in under a second.

# %%
subjects = stages.cohort(cfg, data)
split = data.split
template = subjects[split.template_id]
print(f"{len(split.train_ids)} training subjects: {split.train_ids}")
print(f"{len(split.test_ids)} test subjects: {split.test_ids}, template #{split.template_id}")
print(f"one subject: image {template.image.dtype} {template.shape}, labels "
      f"{template.labels.dtype}, voxel spacing {template.spacing} mm")

# %% [markdown]
# ## The template in three views
# Slices are shown as a radiologist reads them: in the axial view the patient's front is
# at the top and the patient's **right** on the **left** of the image. The key below
# each figure names the organ colours.

# %%
fig = viz.show_orthogonal(template.image, template.labels)
fig.suptitle(f"template #{split.template_id}")
viz.add_organ_key(fig, [template.labels])
plt.show()

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
# How much do the organs of each test scan overlap the template's before registration?
# For an organ $A$ in the template and the same organ $B$ in the test scan,
#
# $$\mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|},$$
#
# in %, mean ± std over the 9 test subjects (for avg(4) and avg(13), over all
# subject-organ pairs, as in the paper). The paper measured 16.4 % avg(4) and 8.8 %
# avg(13) on the real scans.

# %%
table = stages.initial_alignment(cfg, data, subjects)
display(Markdown(table.to_markdown()))

# %%
moving = subjects[split.evaluation_ids[0]]
fig, axes = plt.subplots(1, 2, figsize=(10, 5.5), layout="constrained")
viz.show_checkerboard(template.image, moving.image, axis=1, ax=axes[0],
                      title=f"checkerboard: template / #{moving.subject_id}")
viz.show_slice(template.image, axis=1, ax=axes[1],
               title="outlines: template (solid), test scan (dashed)")
for scan, style in ((template, "solid"), (moving, "dashed")):
    if scan.labels is not None:
        viz.overlay_contours(axes[1], viz.view_slice(scan.labels, axis=1), linestyle=style)
viz.add_organ_key(fig, [template.labels, moving.labels])
plt.show()

# %% [markdown]
# ## Exercise: the Dice of one organ
# Write `dice(a, b)` for two boolean masks of the same shape, following the formula
# above. When both masks are empty the overlap is undefined: return `np.nan` (the
# package leaves such organs out of its averages). The check compares your function
# with the package's on a few masks and says "correct", "not yet" with a hint, or
# "not attempted".

# %% tags=["exercise"]
def dice(a, b):
    """Dice overlap of boolean masks ``a`` and ``b``: a number in 0..1 (NaN if both empty)."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def dice(a, b):
    """Dice overlap of boolean masks ``a`` and ``b``: a number in 0..1 (NaN if both empty)."""
    total = a.sum() + b.sum()
    if total == 0:
        return np.nan  # two absent organs: undefined, neither 0 nor 1
    return 2 * np.logical_and(a, b).sum() / total


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_dice(dice)

# %% [markdown]
# ## Going further (optional)
#
# ### How a phantom subject is made
# 1. **One canonical anatomy**: organs, vessels, spine, ribs and body wall are simple
#    shapes (ellipsoids, tubes along curves) in a patient frame in mm.
# 2. **Each subject is a smooth deformation of it**: every organ group is moved, resized
#    and reshaped; the patient lies in the scanner with another body size (scaling
#    0.85-1.15 per axis), a rotation of a few degrees, a translation of 10-20 mm, another
#    field of view along the body, and a smooth random deformation. All of it is one
#    invertible map, hence the true correspondence. Bowel loops and gas differ freely.
# 3. **Intensities** in Hounsfield units: fat -100, liver about 100, enhanced kidney
#    cortex about 185, bone several hundred, gas -950; each subject gets its own amount
#    of contrast agent, texture, blur and noise.
#
# The organ volumes (in ml) show how much the subjects differ:

# %%
voxel_ml = np.prod(template.spacing) / 1000
labelled = [s for s in subjects.values() if s.labels is not None]
names = data.names_for(np.unique(template.labels)) if template.labels is not None else {}
print(f"{'organ':>24s}  {'mean ml':>8s}  {'min':>7s}  {'max':>7s}")
for number, name in names.items():
    column = np.array([np.count_nonzero(s.labels == number) * voxel_ml for s in labelled])
    print(f"{name:>24s}  {column.mean():8.1f}  {column.min():7.1f}  {column.max():7.1f}")

# %% [markdown]
# ### Browse the cohort
# Choose a subject, a view and a slice (the controls need a live Jupyter kernel).

# %%
viewer = SliceViewer(subjects)
display(viewer.widget)

# %% [markdown]
# ### Your own data
# Every notebook and the command line run on real scans with the same code: set `DATA`
# above (or the environment variable `SLICREG_DATA`, or `--data` on the command line):
#
# - `"bcv:PATH"`: the paper's "AbdomenIsoCrop" scans, `PATH/img/img0001.nii.gz` and
#   `PATH/label/label0001.nii.gz`; the paper's split and template #38.
# - `"learn2reg:PATH"`: a Learn2Reg task such as "AbdomenCTCT", described by
#   `PATH/dataset.json`; its validation scans are the test scans, and the template is the
#   scan most often `fixed` in its validation pairs.
# - `"folder:PATH"`: any NIfTI scans in `PATH/images/`, labels (optional) in
#   `PATH/labels/` under the same names; the split from `PATH/split.json`, or by default:
#   the first scan by name is the template, the last third of the others are test scans.
#
# Every scan is reoriented to RAS+, resampled to the preset's voxel size and cropped or
# padded around its soft tissue, as the paper prepared BCV. Real data has no shipped
# networks: notebooks 03-05 then ask you to set `TRAIN = True` and say how long the
# training takes. With internet access, `downloads.fetch_dataset("bcv_abdomen_isocrop",
# "data/real")` fetches the paper's scans (648 MB, verified).
#
# The cell below writes three phantom scans as a folder of NIfTI files (ITK-SNAP and
# 3D Slicer open them) and reads them back as a data source; `python -m slicreg_lite
# export DEST --layout folder` does the same for a whole cohort.

# %%
import tempfile

from slicreg_lite.core.config import SplitConfig

with tempfile.TemporaryDirectory() as folder:
    few = SplitConfig(train_ids=(shown[2],), test_ids=tuple(shown[:2]), template_id=shown[0])
    layouts.export_cohort({i: subjects[i] for i in shown[:3]}, folder, layout="folder",
                          split=few, label_names=data.label_names)
    reloaded = sources.open_source(f"folder:{folder}", cfg)
    identical = all(np.array_equal(reloaded.load(str(i)).image, subjects[i].image)
                    for i in shown[:3])
print(f"template {reloaded.split.template_id!r}, test {reloaded.split.test_ids}, "
      f"identical after the round trip: {identical}")

# %% [markdown]
# ### Try it yourself
# 1. Make registration harder: `cfg.with_updates(phantom={"translation_mm": (30.0,
#    40.0)})` gives a new cohort (with its own cache folder). How does the initial
#    avg(4) change, and which organ suffers most?
# 2. Is the organ with the lowest initial Dice small, or does it move a lot? Compare the
#    volume table with `print(table.per_label_markdown("initial, not registered"))`.
# 3. Find the gas in the stomach in the viewer. Why would a registration that compares
#    raw intensities struggle there, while MIND descriptors (notebook 02) cope?

# %% [markdown]
# ## Summary
# - Slic-Reg registers every test scan to one template; labels only measure the result.
# - A field $u$ lives on the fixed scan's grid, in voxels inside the package, in mm in
#   tables; the fixed voxel $x$ matches $x + u(x)$ in the moving scan.
# - Before registration the organs barely overlap: the first row of the paper's table.
# - The phantom has BCV's labels and split, plus the true correspondence.
#
# ## References
# - M. P. Heinrich. Rethinking the design of learning based inter-patient registration
#   using deformable supervoxels. *MIDL* 2021 (short paper): the method of this tutorial.
# - B. Landman et al. MICCAI multi-atlas labeling beyond the cranial vault: workshop and
#   challenge. 2015 (the BCV scans and their 13 organs).
# - Z. Xu et al. Evaluation of six registration methods for the human abdomen on
#   clinically acquired CT. *IEEE Trans. Biomed. Eng.* 63(8), 2016.
# - L. R. Dice. Measures of the amount of ecologic association between species.
#   *Ecology* 26(3), 1945.
