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
# - how to run everything on real scans instead: the BCV or Learn2Reg data, or a folder
#   of your own.

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
# DATA chooses the scans: "phantom" (the synthetic cohort), or your real data:
# "bcv:PATH", "learn2reg:PATH" or "folder:PATH" (see the end of this notebook).
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
from slicreg_lite.teaching import exercises

cfg, data = setup(PRESET, DATA)  # the preset and the scans of the parameters
print(f"preset {cfg.name!r}: data {data.spec!r} on a grid of {cfg.grid.shape} voxels at "
      f"{cfg.grid.spacing_mm:g} mm")

# %% [markdown]
# ## The 13 organs
# The labels keep the BTCV numbering. The paper reports the Dice overlap of the four large
# organs (avg(4): spleen, both kidneys, liver) and of all 13 (avg(13)); small organs such
# as the adrenal glands are very hard to align.

# %% tags=["nbval-check-output"]
for number, name in enumerate(labels.LABEL_NAMES, start=1):
    marker = "  <- avg(4)" if number in labels.LARGE_ORGANS else ""
    print(f"{number:2d}  {name}{marker}")

# %% [markdown]
# Real data may bring other labels (a Learn2Reg `dataset.json` names its own); they are
# scored under their own names, and avg(4) / avg(13) appear only for the 13 BTCV organs.

# %%
print("this data's labels:", "the 13 BTCV organs" if data.is_btcv else data.label_names)

# %% [markdown]
# ## The cohort
# Subjects carry the BCV ids. The paper trains on 20 scans and tests on 10, one of which
# (#38) is the **template**: every test scan is registered to it. `stages.cohort`
# generates the subjects once (or reads and pre-processes real scans) and afterwards
# reads them from the cache in `data/cache/`.

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
# Slices are shown the way a radiologist reads them: in the axial view the patient's front
# is at the top and the patient's **right** is on the **left** of the image.

# %%
fig = viz.show_orthogonal(template.image, template.labels)
fig.suptitle(f"template #{split.template_id}")
plt.show()

# %% [markdown]
# ## How a phantom subject is made
# 1. **One canonical anatomy**: organs, vessels, spine, ribs and body wall are simple
#    shapes (ellipsoids, tubes along curves) in a patient frame in mm, the same for
#    every subject.
# 2. **Each subject is a smooth deformation of it**: every organ (or group of organs
#    that sit together) is moved, resized and reshaped by a displacement that fades out
#    around it; then the patient lies in the scanner with a different body size
#    (anisotropic scaling 0.85-1.15), a rotation of a few degrees, a translation of
#    10-20 mm, a shifted field of view along the body axis, and a smooth random
#    nonlinear deformation. Because all of it is one invertible map, the phantom knows
#    the *true* correspondence between any two subjects (notebook 05 measures against
#    it). Bowel loops and gas differ freely, as between real patients.
# 3. **Intensities** in Hounsfield units: every tissue has its typical value (fat -100,
#    liver about 100, enhanced kidney cortex about 185, bone several hundred, gas -950);
#    each subject gets its own amount of contrast agent and a smooth intensity shift;
#    texture, partial-volume blur and noise make the image look scanned.
#
# The organ volumes (in ml) show how the subjects differ:

# %%
voxel_ml = np.prod(template.spacing) / 1000
labelled = [s for s in subjects.values() if s.labels is not None]
names = data.names_for(np.unique(template.labels)) if template.labels is not None else {}
print(f"{'organ':>24s}  {'mean ml':>8s}  {'min':>7s}  {'max':>7s}")
for number, name in names.items():
    column = np.array([np.count_nonzero(s.labels == number) * voxel_ml for s in labelled])
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
# template? For an organ $A$ in the template and the same organ $B$ in the subject,
#
# $$\mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|},$$
#
# in %, mean ± std over the 9 test subjects (the std of avg(4) and avg(13) is taken over
# all subject-organ pairs, as in the paper).
# The paper measured 16.4 % for avg(4) and 8.8 % for avg(13) on the real scans.

# %%
table = stages.initial_alignment(cfg, data, subjects)
display(Markdown(table.to_markdown()))

# %%
moving = subjects[split.evaluation_ids[0]]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
viz.show_checkerboard(template.image, moving.image, axis=1, ax=axes[0],
                      title=f"checkerboard: template / #{moving.subject_id}")
viz.show_slice(template.image, axis=1, ax=axes[1],
               title="organ outlines: template (solid), subject (dashed)")
for scan, style in ((template, "solid"), (moving, "dashed")):
    if scan.labels is not None:
        viz.overlay_contours(axes[1], viz.view_slice(scan.labels, axis=1), linestyle=style)
plt.show()

# %% [markdown]
# ## Browse the cohort
# Choose a subject, a view and a slice. (Interactive controls need a live Jupyter kernel.)

# %%
viewer = SliceViewer(subjects)
display(viewer.widget)

# %% [markdown]
# ## Your own data
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
# Every scan is brought onto the preset's grid: reoriented to RAS+, resampled to the
# preset's voxel size (4 mm under `lite`, 2 mm under `paper`) and cropped or padded to its
# shape around the centre of its soft tissue, as the paper prepared BCV. With internet
# access, `downloads.fetch_dataset("bcv_abdomen_isocrop", "data/real")` fetches the
# paper's scans (648 MB, verified).
#
# The cell below writes two phantom scans as a folder of NIfTI files (ITK-SNAP and
# 3D Slicer open them) and reads them back as a data source: scans already on the grid
# come back unchanged. `python -m slicreg_lite export DEST --layout folder` does the same
# for a whole cohort.

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
# ## Exercise: the Dice of one organ
# Write `dice(a, b)` for two boolean masks of the same shape, following the formula
# above. The check cell below compares your function with the package's on a few masks
# (including two identical and two disjoint ones) and says "correct", "not yet" with a
# hint, or "not attempted".

# %% tags=["exercise"]
def dice(a, b):
    """Dice overlap of boolean masks ``a`` and ``b``: a number in 0..1."""
    raise NotImplementedError  # replace this line by your code


# %% tags=["solution"]
def dice(a, b):
    """Dice overlap of boolean masks ``a`` and ``b``: a number in 0..1."""
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# %% tags=["check", "nbval-check-output"]
verdict = exercises.check_dice(dice)

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
