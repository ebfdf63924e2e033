"""Stages and their cache: computed once, reused, recomputed when what decides them changes."""

import dataclasses
import json
import os

import numpy as np
import pytest

from slicreg_lite.cohort.layouts import export_cohort
from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.pipeline import cache as cache_module
from slicreg_lite.pipeline import stages, weights

SMOKE = get_config("smoke")
LITE = get_config("lite")
QUIET = RunSettings(jobs=1, progress=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLICREG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def stage_folders(cache) -> set:
    """Every stage folder of the cache, relative to it."""
    return {str(p.relative_to(cache)) for p in cache.glob("*/*/*") if p.is_dir()}


def test_cohort_is_cached_and_reused(cache):
    first = stages.cohort(SMOKE, "phantom", ids=(1, 38), run=QUIET)
    files = sorted(cache.rglob("subject*.npz"))
    assert [f.name for f in files] == ["subject0001.npz", "subject0038.npz"]
    assert files[0].parent.parent == cache / "smoke" / "phantom"
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = stages.cohort(SMOKE, "phantom", ids=(1, 38), run=QUIET)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # read, not rewritten
    for i in (1, 38):
        assert np.array_equal(first[i].image, again[i].image)
        assert np.array_equal(first[i].labels, again[i].labels)
        assert np.array_equal(first[i].body_mask, again[i].body_mask)
        np.testing.assert_array_equal(first[i].affine, again[i].affine)


def test_cohort_in_parallel_processes_equals_one_process(cache):
    one = stages.cohort(SMOKE, "phantom", ids=(1, 4), run=QUIET)
    for path in cache.rglob("subject*.npz"):
        path.unlink()
    two = stages.cohort(SMOKE, "phantom", ids=(1, 4), run=RunSettings(jobs=2, progress=False))
    for i in (1, 4):
        assert np.array_equal(one[i].image, two[i].image)


def test_changed_parameters_get_their_own_cache(cache):
    stages.cohort(SMOKE, "phantom", ids=(1,), run=QUIET)
    other = SMOKE.with_updates(phantom={"seed": 99})
    with pytest.warns(UserWarning, match="not reused"):
        stages.cohort(other, "phantom", ids=(1,), run=QUIET)
    folders = sorted(p.name for p in (cache / "smoke" / "phantom").iterdir())
    assert len(folders) == 2 and all(f.startswith("cohort-v") for f in folders)
    # each folder records what it was computed from
    for folder in folders:
        recorded = json.loads((cache / "smoke" / "phantom" / folder / "config.json").read_text())
        assert recorded["data"]["source"] == "phantom" and recorded["grid"]["spacing_mm"] == 12


def test_corrupt_cache_file_is_regenerated(cache):
    stages.cohort(SMOKE, "phantom", ids=(4,), run=QUIET)
    path = next(cache.rglob("subject0004.npz"))
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        subject = stages.cohort(SMOKE, "phantom", ids=(4,), run=QUIET)[4]
    assert subject.image.shape == SMOKE.grid.shape
    assert stages.cohort(SMOKE, "phantom", ids=(4,), run=QUIET)[4].labels.max() > 0


def test_interrupted_write_leaves_no_file(cache, monkeypatch):
    def interrupted(path, **arrays):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stages.cohort(SMOKE, "phantom", ids=(7,), run=QUIET)
    assert not list(cache.rglob("*subject0007*"))


def test_initial_alignment_table(cache):
    table = stages.initial_alignment(SMOKE, "phantom", run=QUIET)
    assert table.subject_ids("initial, not registered") == SMOKE.split.evaluation_ids
    mean, std = table.column("initial, not registered", "avg(4)")
    assert 0 < mean < 60 and std >= 0


def test_cache_of_another_preset_or_version_is_never_reused(cache):
    data = open_source("phantom", SMOKE)
    folder = cache_module.stage_dir(SMOKE, data, "cohort", (), 2, with_split=False)
    (folder / "subject0001.npz").write_bytes(b"computed for lite")
    manifest = json.loads((folder / "config.json").read_text())
    manifest["preset"] = "lite"
    (folder / "config.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="written for 'lite'"):
        again = cache_module.stage_dir(SMOKE, data, "cohort", (), 2, with_split=False)
    assert again == folder and not (folder / "subject0001.npz").exists()
    assert json.loads((folder / "config.json").read_text())["preset"] == "smoke"
    # an older version of the stage: a new folder, and a warning that names the old one
    with pytest.warns(UserWarning, match="not reused"):
        newer = cache_module.stage_dir(SMOKE, data, "cohort", (), 3, with_split=False)
    assert newer != folder


def test_template_supervoxels_are_cached(cache):
    first = stages.template_supervoxels(SMOKE, "phantom", run=QUIET)
    assert first.layers.shape == (SMOKE.supervoxels.n_layers, *SMOKE.supervoxels.shape)
    assert first.image.shape == first.mask.shape == SMOKE.supervoxels.shape
    [path] = cache.rglob("template_supervoxels.npz")
    mtime = path.stat().st_mtime_ns
    again = stages.template_supervoxels(SMOKE, "phantom", run=QUIET)
    assert path.stat().st_mtime_ns == mtime and np.array_equal(first.layers, again.layers)


def test_template_supervoxels_at_half_resolution(cache):
    cfg = SMOKE.with_updates(supervoxels={"shape": (16, 14, 18), "n_layers": 2})
    result = stages.template_supervoxels(cfg, "phantom", run=QUIET)
    assert result.layers.shape == (2, 16, 14, 18)
    assert all(len(np.unique(layer)) == 128 for layer in result.layers)


def test_supervision_carries_the_layers_and_is_cached(cache):
    results = stages.supervision(SMOKE, "phantom", run=QUIET)
    assert sorted(results) == sorted(SMOKE.split.train_ids)
    layers = stages.template_supervoxels(SMOKE, "phantom", run=QUIET).layers
    for result in results.values():
        assert result.layers.shape == layers.shape and result.layers.dtype == np.uint8
        assert result.layers.max() <= 127 and len(np.unique(result.layers[0])) > 100
        assert result.displacement.shape == (3, *SMOKE.grid.shape)
        assert result.timings["total"] > 0
    files = sorted(cache.rglob("supervision-*/subject*.npz"))
    assert len(files) == len(SMOKE.split.train_ids)
    mtimes = [f.stat().st_mtime_ns for f in files]
    stages.supervision(SMOKE, "phantom", run=QUIET)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    table = stages.teacher_dice(SMOKE, "phantom", results, run=QUIET)
    before = table.column("initial, not registered", "avg(4)")[0]
    after = table.column("deeds-lite: affine + deformable", "avg(4)")[0]
    assert after > before + 10


def test_teacher_direct_carries_the_layers_onto_the_test_scans(cache):
    template_id = SMOKE.split.template_id
    direct = stages.teacher_direct(SMOKE, "phantom", (1, template_id), run=QUIET)
    layers = stages.template_supervoxels(SMOKE, "phantom", run=QUIET).layers
    for result in direct.values():
        assert result.layers.shape == layers.shape and result.layers.dtype == layers.dtype
        assert result.displacement.shape == (3, *SMOKE.grid.shape)
    # the template registered to itself: its own layers, nearly voxel for voxel
    assert np.mean(direct[template_id].layers == layers) > 0.97
    # another subject: the layers moved with the anatomy, not copied
    assert np.mean(direct[1].layers == layers) < 0.9


def test_supervision_in_parallel_processes(cache):
    parallel = stages.supervision(SMOKE, "phantom", ids=SMOKE.split.train_ids[:2],
                                  run=RunSettings(jobs=2, progress=False))
    assert len(parallel) == 2


def test_supervision_on_a_local_dask_cluster(cache):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_backend("dask"):
        results = stages.supervision(SMOKE, "phantom", ids=SMOKE.split.train_ids[:1],
                                     run=RunSettings(jobs=-1, progress=False))
    assert len(results) == 1


# ------------------------------------------------------------------ run settings and data
RUN_VARIANTS = [RunSettings(jobs=2, progress=False), RunSettings(jobs=1, progress=True),
                RunSettings(jobs=1, device="cpu", progress=False),
                RunSettings(jobs=1, validate_every=1, progress=False),
                RunSettings(jobs=1, mixed_precision=False, checkpointing=False,
                            progress=False)]


def test_every_run_setting_reuses_every_cache(cache):
    stages.supervision(SMOKE, "phantom", run=QUIET)
    stages.teacher_direct(SMOKE, "phantom", run=QUIET)
    before = stage_folders(cache)
    files = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")}
    # every field of RunSettings is varied by at least one of the variants
    varied = {f.name for f in dataclasses.fields(RunSettings)
              for run in RUN_VARIANTS if getattr(run, f.name) != getattr(QUIET, f.name)}
    assert varied == {f.name for f in dataclasses.fields(RunSettings)}
    for run in RUN_VARIANTS:
        stages.supervision(SMOKE, "phantom", run=run)
        stages.teacher_direct(SMOKE, "phantom", run=run)
    assert stage_folders(cache) == before
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")} == files


@pytest.mark.parametrize("backbone, head", [("deeplab", "slic"), ("unet", "slic"),
                                            ("deeplab", "regression"), ("unet", "regression")])
def test_shipped_lite_weights_are_used_whatever_the_run_settings(cache, backbone, head):
    data = open_source("phantom", LITE)
    shipped = weights.shipped_weights(LITE, data, backbone, head)
    assert shipped == weights.weights_dir() / "lite" / f"{backbone}_{head}.pt"
    for run in RUN_VARIANTS:
        _, checkpoint = stages.network(LITE, "phantom", backbone, head, run=run)
        assert checkpoint["preset"] == "lite"
    assert not cache.exists() or not list(cache.rglob("model.pt"))  # nothing was trained


def test_shipped_weights_serve_the_phantom_only(cache, tmp_path):
    folder = export_cohort(stages.cohort(SMOKE, "phantom", run=QUIET), tmp_path / "bcv")
    bcv = open_source(f"bcv:{folder}", SMOKE)
    assert weights.weights_name(LITE, bcv, "deeplab", "slic").startswith("lite/bcv-bcv-")
    assert weights.shipped_weights(LITE, bcv, "deeplab", "slic") is None


def test_a_folder_after_the_phantom_recomputes_every_data_stage(cache, tmp_path):
    from slicreg_lite.evaluation import evaluate

    evaluate(SMOKE, "phantom", ["deeds-lite teacher (direct)"], run=QUIET)
    stages.supervision(SMOKE, "phantom", run=QUIET)
    phantom = stage_folders(cache)
    folder = export_cohort(stages.cohort(SMOKE, "phantom", run=QUIET), tmp_path / "bcv")
    data = open_source(f"bcv:{folder}", SMOKE)
    evaluate(SMOKE, data, ["deeds-lite teacher (direct)"], run=QUIET)
    stages.supervision(SMOKE, data, run=QUIET)
    added = stage_folders(cache) - phantom
    names = sorted(p.split("/")[-1].split("-v")[0] for p in added)
    assert names == ["cohort", "supervision", "supervoxels", "teacher-direct"]
    assert all(p.startswith(f"smoke/{data.label}/") for p in added)

    # touching one file is noticed: every stage of that folder is computed again
    image = folder / "img" / "img0002.nii.gz"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    touched = open_source(f"bcv:{folder}", SMOKE)
    assert touched.key != data.key and touched.label == data.label
    with pytest.warns(UserWarning, match="from other files"):
        stages.supervision(SMOKE, touched, run=QUIET)
    assert len(stage_folders(cache) - phantom - added) == 3  # cohort, supervoxels, supervision


def test_two_folders_never_share_a_cache(cache, tmp_path):
    subjects = stages.cohort(SMOKE, "phantom", run=QUIET)
    first = open_source(f"bcv:{export_cohort(subjects, tmp_path / 'a')}", SMOKE)
    second = open_source(f"bcv:{export_cohort(subjects, tmp_path / 'b')}", SMOKE)
    assert first.label != second.label and first.key != second.key


# ---------------------------------------------------------------------------- networks
@pytest.fixture
def weights_folder(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setattr(weights, "weights_dir", lambda: folder)
    return folder


def test_network_is_trained_cached_published_and_loaded(cache, weights_folder):
    import torch

    model, checkpoint = stages.network(SMOKE, "phantom", run=QUIET)
    assert len(checkpoint["history"]["loss"]) == SMOKE.training.iterations
    assert checkpoint["history"]["validation"]
    [cached] = cache.rglob("network-deeplab-slic-*/model.pt")
    mtime = cached.stat().st_mtime_ns
    again, _ = stages.network(SMOKE, "phantom", run=QUIET)  # from the cache
    assert cached.stat().st_mtime_ns == mtime
    x = torch.randn(1, 1, *SMOKE.network.input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    target = stages.publish_network(SMOKE, "phantom", "deeplab", "slic")
    assert target == weights_folder / "smoke" / "deeplab_slic.pt"
    entry = json.loads((weights_folder / "manifest.json").read_text())["smoke/deeplab_slic.pt"]
    assert entry["data"] == "phantom" and entry["config_key"].startswith("deeplab-slic-v")
    cached.unlink()  # now only the shipped weights can serve
    shipped, _ = stages.network(SMOKE, "phantom", run=QUIET)
    with torch.no_grad():
        assert torch.equal(model(x), shipped(x))
    agreement = stages.network_agreement(SMOKE, "phantom", shipped, run=QUIET)
    assert agreement["network"].shape == (len(SMOKE.split.evaluation_ids),
                                          SMOKE.supervoxels.n_layers)
    assert ((agreement["template"] >= 0) & (agreement["template"] <= 1)).all()


def test_shipped_weights_of_other_parameters_or_damaged_are_not_used(cache, weights_folder):
    stages.network(SMOKE, "phantom", run=QUIET)
    target = stages.publish_network(SMOKE, "phantom", "deeplab", "slic")
    other = SMOKE.with_updates(training={"learning_rate": 0.001})
    with pytest.warns(UserWarning, match="other parameters"):
        stages.network(other, "phantom", run=QUIET)
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(UserWarning, match="checksum"):
        stages.network(SMOKE, "phantom", run=QUIET)
