"""Stages and their cache: computed once, reused, recomputed when parameters change."""

import numpy as np
import pytest

from slicreg_lite import pipeline
from slicreg_lite.__main__ import main
from slicreg_lite.config import get_config

SMOKE = get_config("smoke")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLICREG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cohort_is_cached_and_reused(cache):
    first = pipeline.cohort(SMOKE, ids=(1, 38), progress=False)
    files = sorted(cache.rglob("subject*.npz"))
    assert [f.name for f in files] == ["subject0001.npz", "subject0038.npz"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = pipeline.cohort(SMOKE, ids=(1, 38), progress=False)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # read, not rewritten
    for i in (1, 38):
        assert np.array_equal(first[i].image, again[i].image)
        assert np.array_equal(first[i].labels, again[i].labels)
        assert np.array_equal(first[i].body_mask, again[i].body_mask)
        np.testing.assert_array_equal(first[i].affine, again[i].affine)


def test_changed_parameters_get_their_own_cache(cache):
    pipeline.cohort(SMOKE, ids=(1,), progress=False)
    other = SMOKE.with_updates(phantom={"seed": 99})
    with pytest.warns(UserWarning, match="not reused"):
        pipeline.cohort(other, ids=(1,), progress=False)
    folders = sorted(p.name for p in (cache / "smoke").iterdir())
    assert len(folders) == 2 and all(f.startswith("cohort-v") for f in folders)
    # each folder records what it was computed from
    assert all((cache / "smoke" / f / "config.json").exists() for f in folders)


def test_corrupt_cache_file_is_regenerated(cache):
    pipeline.cohort(SMOKE, ids=(4,), progress=False)
    path = next(cache.rglob("subject0004.npz"))
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        subject = pipeline.cohort(SMOKE, ids=(4,), progress=False)[4]
    assert subject.image.shape == SMOKE.phantom.shape
    assert pipeline.cohort(SMOKE, ids=(4,), progress=False)[4].labels.max() > 0


def test_interrupted_write_leaves_no_file(cache, monkeypatch):
    def interrupted(path, **arrays):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.cohort(SMOKE, ids=(7,), progress=False)
    assert not list(cache.rglob("*subject0007*"))


def test_initial_alignment_table(cache):
    table = pipeline.initial_alignment(SMOKE)
    assert table.subject_ids("initial, not registered") == SMOKE.split.evaluation_ids
    mean, std = table.column("initial, not registered", "avg(4)")
    assert 0 < mean < 60 and std >= 0


def test_cli_run_prints_the_whole_table_and_writes_the_results(cache, tmp_path, capsys):
    import json
    import math

    assert main(["run", "--preset", "smoke", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| method |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == ["spleen", "r.kidney", "l.kidney", "liver", "avg(4)", "avg(13)",
                       *pipeline.EXTRA_COLUMNS]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in printed.splitlines() if line.startswith("| ") and "+-" in line}
    assert list(rows) == list(pipeline.METHODS)
    for method, cells in rows.items():
        for cell in cells[:6]:  # Dice: "mean+-std", both finite
            mean, std = (float(x) for x in cell.split("+-"))
            assert math.isfinite(mean) and math.isfinite(std) and 0 <= mean <= 100
        registered = method != "initial, not registered"
        for cell in cells[6:8]:  # deformation: every registration has one
            assert (cell != "-") == registered
            if registered:
                assert math.isfinite(float(cell))
        assert (cells[9] != "-") == registered  # the alignment time
        assert (cells[8] != "-") == (registered and "teacher" not in method)  # inference
    assert "Slic-Reg reaches" in printed and "faster than the teacher" in printed

    out = tmp_path / "out" / "smoke"
    for name in ("table.md", "results.json", "dice_boxplots.png", "overlays.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == pipeline.RESULTS_SCHEMA
    assert results["preset"] == "smoke" and results["template_id"] == SMOKE.split.template_id
    assert results["subject_ids"] == list(SMOKE.split.evaluation_ids)
    assert results["columns"] == columns[:6]
    assert results["typical_subject"] in SMOKE.split.evaluation_ids
    assert math.isfinite(results["total_seconds"])
    assert list(results["methods"]) == list(pipeline.METHODS)
    for method, entry in results["methods"].items():
        assert set(entry) == {"dice", "dice_per_subject", "std_log_jacobian",
                              "percent_folding", "max_percent_folding", "inference_seconds",
                              "alignment_seconds"}
        assert set(entry["dice"]) == set(columns[:6])
        assert all(len(v) == 2 and all(math.isfinite(x) for x in v)
                   for v in entry["dice"].values())
        assert sorted(map(int, entry["dice_per_subject"])) == sorted(SMOKE.split.evaluation_ids)
        assert all(len(row) == 13 for row in entry["dice_per_subject"].values())
        if method != "initial, not registered":
            assert math.isfinite(entry["percent_folding"])
            assert math.isfinite(entry["alignment_seconds"])


def test_cache_of_another_preset_or_version_is_never_reused(cache):
    import json

    folder = pipeline.stage_dir(SMOKE, "cohort", ("phantom",), 2)
    (folder / "subject0001.npz").write_bytes(b"computed for lite")
    manifest = json.loads((folder / "config.json").read_text())
    manifest["preset"] = "lite"
    (folder / "config.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="written for 'lite'"):
        again = pipeline.stage_dir(SMOKE, "cohort", ("phantom",), 2)
    assert again == folder and not (folder / "subject0001.npz").exists()
    assert json.loads((folder / "config.json").read_text())["preset"] == "smoke"
    # an older version of the stage: a new folder, and a warning that names the old one
    with pytest.warns(UserWarning, match="not reused"):
        newer = pipeline.stage_dir(SMOKE, "cohort", ("phantom",), 3)
    assert newer != folder


def test_cli_rejects_unknown_preset(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--preset", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_cli_unwritable_output(cache, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--preset", "smoke", "--out", str(blocker), "--quiet"]) == 2
    assert "cannot write the results" in capsys.readouterr().err


def test_cli_export(cache, tmp_path):
    assert main(["export", str(tmp_path / "nifti"), "--preset", "smoke", "--quiet"]) == 0
    assert len(list((tmp_path / "nifti" / "img").glob("img*.nii.gz"))) == len(SMOKE.split.all_ids)


def test_template_supervoxels_are_cached(cache):
    first = pipeline.template_supervoxels(SMOKE, progress=False)
    assert first.layers.shape == (SMOKE.supervoxels.n_layers, *SMOKE.supervoxels.shape)
    assert first.image.shape == first.mask.shape == SMOKE.supervoxels.shape
    [path] = cache.rglob("template_supervoxels.npz")
    mtime = path.stat().st_mtime_ns
    again = pipeline.template_supervoxels(SMOKE, progress=False)
    assert path.stat().st_mtime_ns == mtime and np.array_equal(first.layers, again.layers)


def test_template_supervoxels_at_half_resolution(cache):
    cfg = SMOKE.with_updates(supervoxels={"shape": (16, 14, 18), "n_layers": 2})
    result = pipeline.template_supervoxels(cfg, progress=False)
    assert result.layers.shape == (2, 16, 14, 18)
    assert all(len(np.unique(layer)) == 128 for layer in result.layers)


def test_supervision_carries_the_layers_and_is_cached(cache):
    results = pipeline.supervision(SMOKE, progress=False)
    assert sorted(results) == sorted(SMOKE.split.train_ids)
    layers = pipeline.template_supervoxels(SMOKE, progress=False).layers
    for result in results.values():
        assert result.layers.shape == layers.shape and result.layers.dtype == np.uint8
        assert result.layers.max() <= 127 and len(np.unique(result.layers[0])) > 100
        assert result.displacement.shape == (3, *SMOKE.phantom.shape)
        assert result.timings["total"] > 0
    files = sorted(cache.rglob("supervision-*/subject*.npz"))
    assert len(files) == len(SMOKE.split.train_ids)
    mtimes = [f.stat().st_mtime_ns for f in files]
    pipeline.supervision(SMOKE, progress=False)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    table = pipeline.teacher_dice(SMOKE, results)
    before = table.column("initial, not registered", "avg(4)")[0]
    after = table.column("deeds-lite: affine + deformable", "avg(4)")[0]
    assert after > before + 10


def test_supervision_in_parallel_processes(cache):
    parallel = pipeline.supervision(SMOKE, ids=SMOKE.split.train_ids[:2], n_jobs=2,
                                    progress=False)
    assert len(parallel) == 2


def test_supervision_on_a_local_dask_cluster(cache):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_backend("dask"):
        results = pipeline.supervision(SMOKE, ids=SMOKE.split.train_ids[:1], n_jobs=-1,
                                       progress=False)
    assert len(results) == 1


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setattr(pipeline, "weights_dir", lambda: folder)
    return folder


def test_network_is_trained_cached_published_and_loaded(cache, weights):
    import torch

    model, checkpoint = pipeline.network(SMOKE, progress=False)
    assert len(checkpoint["history"]["loss"]) == SMOKE.training.iterations
    assert checkpoint["history"]["validation"]
    [cached] = cache.rglob("network-deeplab-slic-*/model.pt")
    mtime = cached.stat().st_mtime_ns
    again, _ = pipeline.network(SMOKE, progress=False)  # from the cache
    assert cached.stat().st_mtime_ns == mtime
    x = torch.randn(1, 1, *SMOKE.network.input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    target = pipeline.publish_weights(SMOKE, "deeplab", "slic")
    assert target == weights / "smoke" / "deeplab_slic.pt"
    cached.unlink()  # now only the shipped weights can serve
    shipped, _ = pipeline.network(SMOKE, progress=False)
    with torch.no_grad():
        assert torch.equal(model(x), shipped(x))
    agreement = pipeline.network_agreement(SMOKE, shipped, progress=False)
    assert agreement["network"].shape == (len(SMOKE.split.evaluation_ids),
                                          SMOKE.supervoxels.n_layers)
    assert ((agreement["template"] >= 0) & (agreement["template"] <= 1)).all()


def test_shipped_weights_of_other_parameters_or_damaged_are_not_used(cache, weights):
    pipeline.network(SMOKE, progress=False)
    target = pipeline.publish_weights(SMOKE, "deeplab", "slic")
    other = SMOKE.with_updates(training={"learning_rate": 0.001})
    with pytest.warns(UserWarning, match="other parameters"):
        pipeline.network(other, progress=False)
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(UserWarning, match="checksum"):
        pipeline.network(SMOKE, progress=False)


def test_cli_train_writes_weights(cache, weights, capsys):
    assert main(["train", "--preset", "smoke", "--backbone", "unet", "--quiet"]) == 0
    assert (weights / "smoke" / "unet_slic.pt").exists()
    assert "unet_slic" in (weights / "manifest.json").read_text()
    assert "wrote" in capsys.readouterr().out
