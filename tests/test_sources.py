"""Data sources: the BCV and Learn2Reg layouts, folders of scans, splits, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from slicreg_lite.cohort.layouts import learn2reg_subject_id, load_bcv, load_learn2reg
from slicreg_lite.cohort.nifti import save_nifti
from slicreg_lite.cohort.sources import open_source
from slicreg_lite.core.config import get_config

SHAPE = (8, 9, 10)
# A RAS+ affine with anisotropic voxels and an offset, as a real scan would have.
AFFINE = np.array([[1.5, 0, 0, -60.0], [0, 1.5, 0, 20.0], [0, 0, 3.0, 100.0], [0, 0, 0, 1]])


# ------------------------------------------------------------------------ helpers
def _random_scan(seed: int, shape=SHAPE):
    rng = np.random.default_rng(seed)
    image = rng.normal(40.0, 200.0, shape).astype(np.float32)
    labels = rng.integers(0, 14, shape).astype(np.uint8)
    return image, labels


def _write_bcv(root, ids, shape=SHAPE):
    """Write synthetic scans in the BCV layout; return {id: (image, labels)}."""
    scans = {}
    for subject_id in ids:
        image, labels = _random_scan(subject_id, shape)
        save_nifti(root / "img" / f"img{subject_id:04d}.nii.gz", image, AFFINE)
        save_nifti(root / "label" / f"label{subject_id:04d}.nii.gz", labels, AFFINE)
        scans[subject_id] = (image, labels)
    return scans


def _write_learn2reg(root, ids, *, json_name="dataset.json", with_test=True):
    """Write synthetic scans in the Learn2Reg layout; return {id: (image, labels)}."""
    scans, training = {}, []
    for subject_id in ids:
        image, labels = _random_scan(subject_id)
        name = f"AbdomenCTCT_{subject_id:04d}_0000.nii.gz"
        save_nifti(root / "imagesTr" / name, image, AFFINE)
        save_nifti(root / "labelsTr" / name, labels, AFFINE)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        scans[subject_id] = (image, labels)
    description = {"name": "AbdomenCTCT", "training": training}
    if with_test:
        test_image, _ = _random_scan(31)
        save_nifti(root / "imagesTs" / "AbdomenCTCT_0031_0000.nii.gz", test_image, AFFINE)
        description["test"] = [{"image": "./imagesTs/AbdomenCTCT_0031_0000.nii.gz"}]
        scans[31] = (test_image, None)
    (root / json_name).write_text(json.dumps(description))
    return scans


# -------------------------------------------------------------------------- layouts
def test_load_bcv_reads_every_subject(tmp_path):
    scans = _write_bcv(tmp_path, [1, 4, 38])

    subjects = load_bcv(tmp_path)

    assert [s.subject_id for s in subjects] == [1, 4, 38]
    for subject in subjects:
        image, labels = scans[subject.subject_id]
        np.testing.assert_array_equal(subject.image, image)
        np.testing.assert_array_equal(subject.labels, labels)
        assert subject.labels.dtype == np.uint8
        np.testing.assert_allclose(subject.spacing, (1.5, 1.5, 3.0))
        np.testing.assert_allclose(subject.affine, AFFINE)


def test_load_bcv_reads_the_requested_ids_in_order(tmp_path):
    _write_bcv(tmp_path, [1, 4, 38])
    assert [s.subject_id for s in load_bcv(tmp_path, ids=[38, 1])] == [38, 1]


def test_load_learn2reg_reads_training_and_test(tmp_path):
    scans = _write_learn2reg(tmp_path, [1, 2], json_name="AbdomenCTCT_dataset.json")

    training = load_learn2reg(tmp_path)
    test = load_learn2reg(tmp_path, split="test")

    assert [s.subject_id for s in training] == [1, 2]
    for subject in training:
        image, labels = scans[subject.subject_id]
        np.testing.assert_array_equal(subject.image, image)
        np.testing.assert_array_equal(subject.labels, labels)
        np.testing.assert_allclose(subject.spacing, (1.5, 1.5, 3.0))
    assert [s.subject_id for s in test] == [31]
    assert test[0].labels is None
    np.testing.assert_array_equal(test[0].image, scans[31][0])


def test_learn2reg_subject_id_from_file_name():
    assert learn2reg_subject_id("AbdomenCTCT_0001_0000.nii.gz") == 1
    assert learn2reg_subject_id("AbdomenCTCT_0030_0000.nii") == 30
    with pytest.raises(ValueError, match="<task>_<id>_<index>.*got 'scan.nii.gz'"):
        learn2reg_subject_id("scan.nii.gz")


# -------------------------------------------------------------------- bad input
def test_load_bcv_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"root: expected the BCV .*nowhere"):
        load_bcv(tmp_path / "nowhere")


@pytest.mark.parametrize("folder", ["img", "label"])
def test_load_bcv_missing_img_or_label_folder(tmp_path, folder):
    _write_bcv(tmp_path, [1])
    for path in (tmp_path / folder).iterdir():
        path.unlink()
    (tmp_path / folder).rmdir()
    with pytest.raises(FileNotFoundError, match=f"a folder {folder}/"):
        load_bcv(tmp_path)


def test_load_bcv_missing_file_for_an_id(tmp_path):
    _write_bcv(tmp_path, [1])
    with pytest.raises(FileNotFoundError, match=r"need 2 file\(s\).*img0002\.nii\.gz"):
        load_bcv(tmp_path, ids=[1, 2])
    (tmp_path / "label" / "label0001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"label0001\.nii\.gz"):
        load_bcv(tmp_path, ids=[1])


def test_load_bcv_labels_out_of_range(tmp_path):
    _write_bcv(tmp_path, [1])
    labels = np.zeros(SHAPE, np.int16)
    labels[2, 2, 2] = 300
    save_nifti(tmp_path / "label" / "label0001.nii.gz", labels, AFFINE)
    with pytest.raises(ValueError, match=r"label0001\.nii\.gz.* values in 0\.\.255; got .*300"):
        load_bcv(tmp_path)


def test_load_bcv_shape_mismatch(tmp_path):
    _write_bcv(tmp_path, [1])
    save_nifti(tmp_path / "label" / "label0001.nii.gz", np.zeros((8, 9, 11), np.uint8), AFFINE)
    with pytest.raises(ValueError, match=r"label0001\.nii\.gz.*\(8, 9, 10\); got \(8, 9, 11\)"):
        load_bcv(tmp_path)


def test_load_bcv_nan_intensities(tmp_path):
    _write_bcv(tmp_path, [1])
    image = np.zeros(SHAPE, np.float32)
    image[0, 0, 0] = np.nan
    save_nifti(tmp_path / "img" / "img0001.nii.gz", image, AFFINE)
    with pytest.raises(ValueError, match=r"img0001\.nii\.gz.* 1 NaN or Inf"):
        load_bcv(tmp_path)


def test_load_learn2reg_missing_description(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json or AbdomenCTCT_dataset.json"):
        load_learn2reg(tmp_path)


def test_load_learn2reg_description_without_the_split(tmp_path):
    _write_learn2reg(tmp_path, [1], with_test=False)
    description = json.loads((tmp_path / "dataset.json").read_text())
    description["train"] = description.pop("training")
    (tmp_path / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"key 'training'.*found keys \['name', 'train'\]"):
        load_learn2reg(tmp_path)


def test_load_learn2reg_entry_without_image(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"training": [{"img": "./imagesTr/AbdomenCTCT_0001_0000.nii.gz"}]}))
    with pytest.raises(ValueError, match=r"entry 0 .*key 'image'.*found keys \['img'\]"):
        load_learn2reg(tmp_path)


def test_load_learn2reg_missing_listed_file(tmp_path):
    _write_learn2reg(tmp_path, [1], with_test=False)
    (tmp_path / "labelsTr" / "AbdomenCTCT_0001_0000.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"labelsTr.AbdomenCTCT_0001_0000\.nii\.gz"):
        load_learn2reg(tmp_path)


# ---------------------------------------------------------------------- data sources
SMOKE = get_config("smoke")


def _write_folder(root, names, *, labels=True, shape=SHAPE, affine=AFFINE):
    for index, name in enumerate(names):
        image, label_map = _random_scan(index, shape)
        save_nifti(root / "images" / f"{name}.nii.gz", image, affine)
        if labels:
            save_nifti(root / "labels" / f"{name}.nii.gz", label_map, affine)


def test_open_source_phantom_is_the_default_cohort():
    data = open_source("phantom", SMOKE)
    assert data.kind == "phantom" and data.spec == "phantom" and data.label == "phantom"
    assert data.split == SMOKE.split and data.is_btcv
    assert data.identity["phantom"]["seed"] == SMOKE.phantom.seed
    assert open_source(data, SMOKE) is data
    again = open_source(data, get_config("lite"))  # another preset: opened for it
    assert again is not data and again.grid == get_config("lite").grid


def test_folder_default_split_and_string_ids(tmp_path):
    names = ["case_b", "case_a", "case_d", "case_c", "case_e", "case_f", "case_g"]
    _write_folder(tmp_path, names)
    data = open_source(f"folder:{tmp_path}", SMOKE)
    assert data.split.template_id == "case_a"
    assert data.split.test_ids == ("case_a", "case_f", "case_g")
    assert data.split.train_ids == ("case_b", "case_c", "case_d", "case_e")
    assert data.label_names is None and not data.is_btcv
    assert data.names_for([0, 3, 1]) == {1: "label 1", 3: "label 3"}
    scan = data.load("case_f")
    assert scan.subject_id == "case_f" and scan.shape == SMOKE.grid.shape


def test_folder_split_file_and_template_option(tmp_path):
    _write_folder(tmp_path, ["p1", "p2", "p3", "p4"])
    (tmp_path / "split.json").write_text(json.dumps(
        {"template": "p3", "test": ["p1"], "labels": {"1": "liver", "2": "tumour"}}))
    data = open_source(f"folder:{tmp_path}", SMOKE)
    assert data.split.template_id == "p3" and data.split.test_ids == ("p1", "p3")
    assert data.split.train_ids == ("p2", "p4")
    assert data.label_names == {1: "liver", 2: "tumour"}
    other = open_source(f"folder:{tmp_path}", SMOKE, template="p2")
    assert other.split.template_id == "p2" and "p2" not in other.split.train_ids


def test_learn2reg_split_from_its_validation_pairs(tmp_path):
    _write_learn2reg(tmp_path, [1, 2, 3, 4, 5], with_test=False)
    description = json.loads((tmp_path / "dataset.json").read_text())

    def image(i):
        return f"./imagesTr/AbdomenCTCT_{i:04d}_0000.nii.gz"

    description["registration_val"] = [{"fixed": image(5), "moving": image(3)},
                                       {"fixed": image(5), "moving": image(4)},
                                       {"fixed": image(4), "moving": image(3)}]
    description["labels"] = {"0": {"0": "background", "1": "spleen", "2": "liver"}}
    (tmp_path / "dataset.json").write_text(json.dumps(description))
    data = open_source(f"learn2reg:{tmp_path}", SMOKE)
    assert data.split.template_id == 5  # most often fixed
    assert data.split.test_ids == (3, 4, 5) and data.split.train_ids == (1, 2)
    assert data.label_names == {1: "spleen", 2: "liver"} and not data.is_btcv


def test_bcv_source_takes_the_presets_split(tmp_path):
    paper_split = (*SMOKE.split.train_ids, *SMOKE.split.test_ids)
    _write_bcv(tmp_path, paper_split)
    data = open_source(f"bcv:{tmp_path}", SMOKE)
    # the paper's split; the phantom's validation subjects do not exist among real scans
    assert data.split == dataclasses.replace(SMOKE.split, validation_ids=()) and data.is_btcv
    assert data.spec == f"bcv:{tmp_path.resolve()}"
    assert set(data.files) == set(paper_split)


def test_identity_changes_with_a_touched_file_and_another_folder(tmp_path):
    import os
    import shutil

    _write_folder(tmp_path / "a", ["x", "y", "z"])
    first = open_source(f"folder:{tmp_path / 'a'}", SMOKE)
    assert open_source(f"folder:{tmp_path / 'a'}", SMOKE).key == first.key  # stable
    image = tmp_path / "a" / "images" / "y.nii.gz"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert open_source(f"folder:{tmp_path / 'a'}", SMOKE).key != first.key
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copy2)
    copy = open_source(f"folder:{tmp_path / 'b'}", SMOKE)
    assert copy.key != first.key and copy.label != first.label


# ----------------------------------------------------------------- data source errors
@pytest.mark.parametrize("spec", ["dicom:/data", "bcv", "folder:", "phantoms", ""])
def test_unknown_source_lists_the_forms(spec):
    with pytest.raises(ValueError, match="expected one of phantom, bcv:PATH, learn2reg:PATH, "
                                         "folder:PATH; got"):
        open_source(spec, SMOKE)


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"expected NIfTI scans \(\*\.nii\.gz or "
                                                r"\*\.nii\) in .*images'; found none"):
        open_source(f"folder:{tmp_path}", SMOKE)


def test_label_file_without_its_image(tmp_path):
    _write_folder(tmp_path, ["a", "b", "c"])
    save_nifti(tmp_path / "labels" / "d.nii.gz", np.zeros(SHAPE, np.uint8), AFFINE)
    with pytest.raises(ValueError, match=r"label file .*d\.nii\.gz' has no image of the same "
                                         r"name .*expected one of \['a', 'b', 'c'\]"):
        open_source(f"folder:{tmp_path}", SMOKE)


def test_image_and_labels_of_another_shape_or_affine(tmp_path):
    _write_folder(tmp_path, ["a", "b", "c"])
    save_nifti(tmp_path / "labels" / "b.nii.gz", np.zeros((8, 9, 11), np.uint8), AFFINE)
    with pytest.raises(ValueError, match=r"labels .*b\.nii\.gz' must have the shape of their "
                                         r"image .*\(8, 9, 10\); got \(8, 9, 11\)"):
        open_source(f"folder:{tmp_path}", SMOKE)
    shifted = AFFINE.copy()
    shifted[0, 3] += 3.0
    save_nifti(tmp_path / "labels" / "b.nii.gz", np.zeros(SHAPE, np.uint8), shifted)
    with pytest.raises(ValueError, match=r"labels .*b\.nii\.gz' must have the affine of "
                                         r"their image"):
        open_source(f"folder:{tmp_path}", SMOKE)


def test_a_4d_scan(tmp_path):
    _write_folder(tmp_path, ["a", "b", "c"], labels=False)
    save_nifti(tmp_path / "images" / "b.nii.gz", np.zeros((*SHAPE, 4), np.float32), AFFINE)
    with pytest.raises(ValueError, match=r"b\.nii\.gz' must hold a 3D volume; got shape "
                                         r"\(8, 9, 10, 4\) \(4D\)"):
        open_source(f"folder:{tmp_path}", SMOKE)


def test_learn2reg_description_without_the_expected_keys(tmp_path):
    _write_learn2reg(tmp_path, [1, 2, 3], with_test=False)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "AbdomenCTCT", "scans": []}))
    with pytest.raises(ValueError, match=r"expected the key 'training' with a list of scans "
                                         r"in .*dataset\.json'; found keys \['name', 'scans'\]"):
        open_source(f"learn2reg:{tmp_path}", SMOKE)
    (tmp_path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object with the key 'training'"):
        open_source(f"learn2reg:{tmp_path}", SMOKE)


def test_fewer_than_three_scans(tmp_path):
    _write_folder(tmp_path, ["a", "b"])
    with pytest.raises(ValueError, match=r"need at least 3 scans \(a template, a test scan and "
                                         r"a training scan\); found 2: \['a', 'b'\]"):
        open_source(f"folder:{tmp_path}", SMOKE)


def test_template_not_in_the_data(tmp_path):
    _write_folder(tmp_path, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"template \(data 'folder:.*'\): 'zz' is not one of "
                                         r"the scans; expected one of \['a', 'b', 'c'\]"):
        open_source(f"folder:{tmp_path}", SMOKE, template="zz")
    (tmp_path / "split.json").write_text(json.dumps({"template": "q"}))
    with pytest.raises(ValueError, match=r"template \(from .*split\.json\): 'q' is not one"):
        open_source(f"folder:{tmp_path}", SMOKE)
    with pytest.raises(ValueError, match="template .*: 99 is not one of the scans"):
        open_source("phantom", SMOKE, template=99)


def test_bcv_folder_without_the_splits_scans(tmp_path):
    _write_bcv(tmp_path, [1, 2])
    with pytest.raises(FileNotFoundError, match=r"need \d+ file\(s\) that do not exist"):
        open_source(f"bcv:{tmp_path}", SMOKE)


def test_split_file_with_unknown_keys(tmp_path):
    _write_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "split.json").write_text(json.dumps({"templat": "a"}))
    with pytest.raises(ValueError, match=r"some of the keys \['template', 'test', 'train', "
                                         r"'labels'\]; found \['templat'\]"):
        open_source(f"folder:{tmp_path}", SMOKE)
