"""A Learn2Reg task written by ``export --layout learn2reg`` and a submission of it: the
description has every key of the challenge's, and the fields are named, shaped and
scored as the challenge's evaluation reads them."""

import json
import zipfile
from itertools import combinations

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from slicreg_lite.__main__ import main
from slicreg_lite.apps.learn2reg import field_name, task_pairs, write_submission
from slicreg_lite.cohort.layouts import export_cohort
from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.pipeline import stages

SMOKE = get_config("smoke")
QUIET = RunSettings(jobs=1, progress=False)
#: Every key of the AbdomenCTCT task's dataset.json.
L2R_KEYS = {"name", "release", "description", "licence", "reference", "pairings",
            "provided_data", "registration_direction", "modality", "img_shift", "labels",
            "tensorImageSize", "tensorImageShape", "numTraining", "numTest", "training",
            "test", "numPairedTraining", "training_paired_images", "numPairedTest",
            "test_paired_images", "numRegistration_val", "registration_val",
            "numRegistration_test", "registration_test"}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The smoke phantom's paper split, exported as a Learn2Reg task."""
    folder = tmp_path_factory.mktemp("task")
    data = open_source("phantom", SMOKE)
    for backbone, head in (("deeplab", "slic"), ("deeplab", "regression")):
        stages.network(SMOKE, data, backbone, head, run=QUIET)  # the command never trains
    ids = (*data.split.train_ids, *data.split.test_ids)
    export_cohort(stages.cohort(SMOKE, data, ids, run=QUIET), folder, layout="learn2reg",
                  split=data.split, label_names=data.label_names)
    return folder


def description(folder):
    return json.loads((folder / "dataset.json").read_text())


def test_the_exported_description_has_every_key_of_the_challenges(task):
    content = description(task)
    assert L2R_KEYS <= set(content)
    assert content["name"] == "AbdomenCTCT" and content["modality"] == {"0": "CT"}
    assert content["tensorImageSize"] == {"0": "3D"}
    assert content["tensorImageShape"] == {"0": list(SMOKE.grid.shape)}
    image = nib.load(str(task / content["training"][0]["image"]))
    assert image.shape == tuple(content["tensorImageShape"]["0"])
    assert np.allclose(image.header.get_zooms(), SMOKE.grid.spacing_mm)
    assert content["numTraining"] == len(content["training"]) == 8
    assert all(set(e) == {"image", "label"} for e in content["training"])
    assert content["numTest"] == len(content["test"]) == 0
    # every pair among the test scans but the template once, the earlier one fixed
    # (AbdomenCTCT: 45 pairs among 10 scans)
    test_ids = SMOKE.split.evaluation_ids
    expected = [{"fixed": f"./imagesTr/AbdomenCTCT_{a:04d}_0000.nii.gz",
                 "moving": f"./imagesTr/AbdomenCTCT_{b:04d}_0000.nii.gz"}
                for a, b in combinations(test_ids, 2)]
    assert content["registration_val"] == expected
    assert content["numRegistration_val"] == len(expected) == 3
    assert content["registration_test"] == [] and content["numRegistration_test"] == 0
    assert content["labels"]["0"]["0"] == "background" and len(content["labels"]["0"]) == 14
    assert content["registration_direction"] == {"fixed": 0, "moving": 0}
    assert content["provided_data"] == {"0": ["image", "label"]}


def test_the_exported_task_reads_back_with_its_template(task):
    data = open_source(f"learn2reg:{task}", SMOKE)
    assert data.split.template_id == SMOKE.split.template_id  # not the most often fixed
    assert data.split.test_ids == tuple(sorted(SMOKE.split.test_ids))


def test_a_task_of_scans_of_different_shapes_is_refused(tmp_path):
    scans = stages.cohort(SMOKE, "phantom", (1, 4), run=QUIET)
    other = scans[4]
    smaller = type(other)(other.subject_id, other.image[:-2], other.labels[:-2], other.affine)
    with pytest.raises(ValueError, match="one tensorImageShape"):
        export_cohort([scans[1], smaller], tmp_path, layout="learn2reg", split=SMOKE.split)


def test_field_names_follow_the_challenge():
    assert field_name("./imagesTr/AbdomenCTCT_0001_0000.nii.gz",
                      "./imagesTr/AbdomenCTCT_0004_0000.nii.gz") == \
        "disp_0001_0000_0004_0000.nii.gz"
    with pytest.raises(ValueError, match="4-digit id"):
        field_name("scan.nii.gz", "AbdomenCTCT_0004_0000.nii.gz")


def warped_dice(fixed_labels, moving_labels, disp):
    """Dice of the moving labels warped by a Learn2Reg field, as the challenge computes it:
    fixed voxel x takes the moving label at x + disp[x] (nearest neighbour)."""
    identity = np.stack(np.meshgrid(*[np.arange(n) for n in fixed_labels.shape],
                                    indexing="ij"))
    warped = map_coordinates(moving_labels, identity + np.moveaxis(disp, -1, 0), order=0)
    scores = []
    for label in np.unique(fixed_labels[fixed_labels > 0]):
        a, b = fixed_labels == label, warped == label
        scores.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    return float(np.mean(scores))


def test_a_submission_is_named_shaped_and_scored_as_the_challenge_reads_it(task, tmp_path):
    pairs, shape = task_pairs(task, "val")
    submission = write_submission(task, tmp_path / "submission", method="slicreg",
                                  cfg=SMOKE, run=QUIET, zip_file=True)
    names = sorted(p.name for p in submission.fields)
    assert names == sorted(p.name for p in pairs) and len(names) == 3
    assert "disp_0001_0000_0004_0000.nii.gz" in names
    for pair in pairs:
        disp = nib.load(str(tmp_path / "submission" / pair.name))
        assert disp.shape == (*shape, 3) and disp.get_data_dtype() == np.float32
        fixed = np.asarray(nib.load(str(pair.fixed_labels)).dataobj)
        moving = np.asarray(nib.load(str(pair.moving_labels)).dataobj)
        ours = warped_dice(fixed, moving, np.asarray(disp.dataobj))
        assert ours == pytest.approx(submission.scores[pair.name]["dice"], abs=1e-12)
    with zipfile.ZipFile(submission.zip_file) as archive:
        assert sorted(archive.namelist()) == names  # flat, the fields alone
    stored = json.loads((tmp_path / "submission" / "scores.json").read_text())
    assert set(stored["per_pair"]) == set(names) and stored["pairs"] == "registration_val"


def test_the_command_prints_the_scores_and_where_to_upload(task, tmp_path, capsys):
    code = main(["learn2reg", str(task), "--out", str(tmp_path / "sub"), "--preset",
                 "smoke", "--method", "regression", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "[3/3] disp_" in printed and "mean Dice" in printed and "HD95" in printed
    assert "learn2reg.grand-challenge.org" in printed


@pytest.fixture
def broken(task, tmp_path):
    """A copy of the task's description, to break, with links to its files."""
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("imagesTr", "labelsTr"):
        (folder / name).symlink_to(task / name)
    content = description(task)
    (folder / "dataset.json").write_text(json.dumps(content))
    return folder, content


def test_bad_tasks_are_refused_before_anything_is_registered(broken, tmp_path, capsys):
    folder, content = broken

    def refused(changed, pairs="val"):
        (folder / "dataset.json").write_text(json.dumps(changed))
        code = main(["learn2reg", str(folder), "--out", str(tmp_path / "out"), "--preset",
                     "smoke", "--pairs", pairs, "--quiet"])
        assert code == 2 and not (tmp_path / "out").exists()
        return capsys.readouterr().err

    assert "lists no 'registration_test' pairs" in refused(content, "test")
    assert "lists no 'registration_val' pairs" in refused(
        {k: v for k, v in content.items() if k != "registration_val"})
    missing = dict(content, registration_val=[
        {"fixed": content["registration_val"][0]["fixed"],
         "moving": "./imagesTr/AbdomenCTCT_0099_0000.nii.gz"}])
    assert "AbdomenCTCT_0099_0000.nii.gz" in refused(missing) and "does not exist" in \
        refused(missing)
    other = dict(content, tensorImageShape={"0": [192, 160, 256]})
    assert "tensorImageShape [192, 160, 256]" in refused(other)
