"""Registering NIfTI scans: any orientation in, files that other tools read out."""

import json

import numpy as np
import pytest

from slicreg_lite.apps.cli import main
from slicreg_lite.apps.register import register_scans
from slicreg_lite.cohort.nifti import save_nifti
from slicreg_lite.core.config import RunSettings, get_config
from slicreg_lite.core.metrics import average_dice, dice_per_label
from slicreg_lite.pipeline import stages

SMOKE = get_config("smoke")
LITE = get_config("lite")
QUIET = RunSettings(jobs=1, progress=False)


def _resample_onto(subject, affine, shape):
    """A subject's image (linear) and labels (nearest) on another grid of the world."""
    from slicreg_lite.core.spatial import identity_grid, sample, voxel_to_world, world_to_voxel

    voxels = identity_grid(shape, dtype=np.float64).reshape(3, -1)
    source = world_to_voxel(subject.affine, voxel_to_world(affine, voxels))
    source = source.reshape(3, *shape).astype(np.float32)
    return (sample(subject.image, source, fill=-1000.0).astype(np.float32),
            sample(subject.labels, source, mode="nearest"))


def _write_pair(folder, cfg, voxel_mm, shape):
    """Subject 1 written as a scanner would store it: LPS, anisotropic voxels, another size
    and field of view; the template #38 as it is on the preset's grid."""
    subjects = stages.cohort(cfg, "phantom", (1, 38), run=QUIET)
    lps = np.diag([-voxel_mm[0], -voxel_mm[1], voxel_mm[2], 1.0])
    lps[:3, 3] = (170.0, 140.0, -200.0)
    image, labels = _resample_onto(subjects[1], lps, shape)
    save_nifti(folder / "moving.nii.gz", image, lps)
    save_nifti(folder / "moving_labels.nii.gz", labels, lps)
    fixed = subjects[38]
    save_nifti(folder / "fixed.nii.gz", fixed.image, fixed.affine)
    save_nifti(folder / "fixed_labels.nii.gz", fixed.labels, fixed.affine)
    return folder, subjects


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A smoke-sized pair: 9 x 9 x 15 mm voxels."""
    return _write_pair(tmp_path_factory.mktemp("scans"), SMOKE, (9.0, 9.0, 15.0), (40, 36, 27))


@pytest.fixture(scope="module")
def lite_scans(tmp_path_factory):
    """A lite-sized pair (the shipped lite networks are trained): 5 x 5 x 7 mm voxels."""
    return _write_pair(tmp_path_factory.mktemp("lite_scans"), LITE, (5.0, 5.0, 7.0),
                       (72, 64, 58))


def _avg4_before(folder, fixed):
    """avg(4) Dice of the moving labels put onto the fixed grid by world position alone."""
    from slicreg_lite.cohort.nifti import load_nifti
    from slicreg_lite.cohort.subject import Subject

    labels, affine = load_nifti(folder / "moving_labels.nii.gz", canonical=False)
    _, placed = _resample_onto(Subject(0, labels, labels, affine), fixed.affine, fixed.shape)
    return average_dice(dice_per_label(placed, fixed.labels), (1, 2, 3, 6))


@pytest.mark.parametrize("method", ["teacher", "slicreg", "pdd"])
def test_a_pair_of_nifti_files_is_registered_and_read_back_by_simpleitk(
        request, method, tmp_path):
    import SimpleITK as sitk

    # the teacher on a smoke-sized pair; Slic-Reg and PDD-Net with the shipped lite networks
    cfg = SMOKE if method == "teacher" else LITE
    folder, subjects = request.getfixturevalue("scans" if method == "teacher"
                                               else "lite_scans")
    out = tmp_path / method
    fixed = {"fixed": folder / "fixed.nii.gz"} if method == "teacher" else {}
    result = register_scans(folder / "moving.nii.gz", labels=folder / "moving_labels.nii.gz",
                            fixed_labels=folder / "fixed_labels.nii.gz", method=method,
                            out=out, cfg=cfg, run=QUIET, **fixed)
    report = json.loads((out / "report.json").read_text())
    before = _avg4_before(folder, subjects[38])
    if method != "pdd":  # lite's PDD-Net does not improve this subject (see the table)
        assert report["avg(4)"] > before + 0.02, (report["avg(4)"], before)
    assert set(report["hd95_mm"]) >= {"spleen", "liver"}
    assert report["percent_folding"] < 5
    assert report["seconds"]["inference"] + report["seconds"]["alignment"] > 0
    for name in ("warped.nii.gz", "warped_labels.nii.gz", "displacement_itk.nii.gz",
                 "displacement_learn2reg.nii.gz", "overlay.png"):
        assert (out / name).stat().st_size > 0
    # the Learn2Reg field: (X, Y, Z, 3) on the fixed grid, in voxels
    import nibabel as nib

    learn2reg = nib.load(str(out / "displacement_learn2reg.nii.gz"))
    assert learn2reg.shape == (*subjects[38].shape, 3)
    # SimpleITK applies the written field to the moving labels: the same warped labels
    field = sitk.ReadImage(str(out / "displacement_itk.nii.gz"), sitk.sitkVectorFloat64)
    transform = sitk.DisplacementFieldTransform(field)
    moving_labels = sitk.ReadImage(str(folder / "moving_labels.nii.gz"))
    reference = sitk.ReadImage(str(out / "warped_labels.nii.gz"))
    resampled = sitk.Resample(moving_labels, reference, transform, sitk.sitkNearestNeighbor,
                              0, moving_labels.GetPixelID())
    ours = sitk.GetArrayFromImage(reference)
    theirs = sitk.GetArrayFromImage(resampled)
    assert np.mean(ours == theirs) >= 0.99
    assert result.warped_labels.shape == subjects[38].shape


def test_the_command_line_registers_and_reports(scans, tmp_path, capsys):
    folder, _ = scans
    code = main(["register", str(folder / "moving.nii.gz"), "--method", "teacher",
                 "--fixed", str(folder / "fixed.nii.gz"), "--labels",
                 str(folder / "moving_labels.nii.gz"), "--fixed-labels",
                 str(folder / "fixed_labels.nii.gz"), "--out", str(tmp_path / "out"),
                 "--preset", "smoke", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "avg(4) Dice" in printed and "report.json" in printed


@pytest.mark.parametrize("method", ["slicreg", "regression"])
def test_a_pair_of_files_neither_of_them_the_template(lite_scans, tmp_path, method):
    # subject 1 (stored as a scanner would) onto subject 4; the template is #38
    import json

    folder, _ = lite_scans
    other = stages.cohort(LITE, "phantom", (4,), run=QUIET)[4]
    save_nifti(tmp_path / "fixed.nii.gz", other.image, other.affine)
    save_nifti(tmp_path / "fixed_labels.nii.gz", other.labels, other.affine)
    out = tmp_path / "out"
    code = main(["register", str(folder / "moving.nii.gz"), "--method", method,
                 "--fixed", str(tmp_path / "fixed.nii.gz"), "--labels",
                 str(folder / "moving_labels.nii.gz"), "--fixed-labels",
                 str(tmp_path / "fixed_labels.nii.gz"), "--out", str(out), "--quiet"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0 and report["fixed"] == str(tmp_path / "fixed.nii.gz")
    assert report["data"] == "phantom" and report["method"] == method
    before = _avg4_before(folder, other)
    assert report["avg(4)"] > before + 0.1, (before, report["avg(4)"])


@pytest.mark.parametrize("arguments, message", [
    (["missing.nii.gz"], "expected an existing NIfTI file"),
    (["not_nifti.nii.gz"], "is not a readable NIfTI file"),
    (["series.nii.gz"], "must hold a 3D volume; got shape (8, 8, 8, 2) (4D)"),
    (["slice.nii.gz"], "must hold a 3D volume; got shape (8, 8) (2D)"),
    (["moving.nii.gz", "--labels", "small_labels.nii.gz"], "must have the image's shape "
                                                           "(40, 36, 27); got (4, 4, 4)"),
    (["moving.nii.gz", "--method", "teacher"], "the teacher registers a pair of scans"),
    (["moving.nii.gz", "--method", "pdd", "--fixed", "moving.nii.gz"],
     "a fixed scan of your own needs one of ['teacher', 'regression', 'slicreg', "
     "'slicreg-fit']"),
    (["moving.nii.gz", "--data", "bcv:{folder}"], "root: expected a folder img/"),
])
def test_bad_input_is_named_and_nothing_is_written(scans, tmp_path, capsys, arguments,
                                                   message):
    import nibabel as nib

    folder, _ = scans
    (tmp_path / "not_nifti.nii.gz").write_bytes(b"no")
    save_nifti(tmp_path / "series.nii.gz", np.zeros((8, 8, 8, 2)), np.eye(4))
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)),
             str(tmp_path / "slice.nii.gz"))
    moving_affine = nib.load(str(folder / "moving.nii.gz")).affine
    save_nifti(tmp_path / "small_labels.nii.gz", np.zeros((4, 4, 4), np.uint8), moving_affine)
    for name in ("moving.nii.gz",):
        (tmp_path / name).write_bytes((folder / name).read_bytes())

    def resolve(argument):
        if argument.endswith(".nii.gz"):
            return str(tmp_path / argument)
        return argument.replace("{folder}", str(tmp_path))

    out = tmp_path / "out"
    code = main(["register", *map(resolve, arguments), "--out", str(out), "--preset",
                 "smoke", "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_out_folder(scans, tmp_path, capsys):
    folder, _ = scans
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["register", str(folder / "moving.nii.gz"), "--out", str(blocker / "x"),
                 "--preset", "smoke", "--quiet"])
    assert code == 2 and "out: cannot write into" in capsys.readouterr().err


def test_no_trained_network_for_the_data_is_an_error_not_a_training(scans, tmp_path,
                                                                     monkeypatch, capsys):
    from slicreg_lite.pipeline import weights

    folder, _ = scans
    monkeypatch.setattr(weights, "weights_dir", lambda: tmp_path / "no_weights")
    monkeypatch.setenv("SLICREG_CACHE", str(tmp_path / "empty_cache"))
    code = main(["register", str(folder / "moving.nii.gz"), "--out", str(tmp_path / "out"),
                 "--preset", "smoke", "--quiet"])
    assert code == 2
    assert "no trained deeplab + slic network for preset 'smoke'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_scan_unlike_the_training_scans_is_reported_unreliable(tmp_path, capsys):
    """An exported phantom scan is registered without a warning; the same scan with its
    intensities remapped as a real CT's would differ gets a warning that says what to do
    instead, on the command line and as "reliable": false in report.json."""
    from slicreg_lite.methods import UntrustedResultWarning

    stages.network(SMOKE, "phantom", run=QUIET)  # register never trains: seconds under smoke
    scan = stages.cohort(SMOKE, "phantom", (4,), run=QUIET)[4]
    save_nifti(tmp_path / "phantom.nii.gz", scan.image, scan.affine)
    remapped = np.where(scan.image > -500, 0.6 * scan.image + 40, scan.image)
    remapped += np.random.default_rng(0).normal(0, 40, scan.shape)
    save_nifti(tmp_path / "ct.nii.gz", remapped.astype(np.float32), scan.affine)

    plain = register_scans(tmp_path / "phantom.nii.gz", cfg=SMOKE, run=QUIET)
    assert not any("unlike the scans" in message for message in plain.report["warnings"])
    with pytest.warns(UntrustedResultWarning, match="--method teacher --fixed FIXED"):
        register_scans(tmp_path / "ct.nii.gz", out=tmp_path / "out", cfg=SMOKE, run=QUIET)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["reliable"] is False
    assert "unlike the scans the network was trained on" in report["warnings"][0]
    code = main(["register", str(tmp_path / "ct.nii.gz"), "--preset", "smoke", "--quiet",
                 "--out", str(tmp_path / "cli")])
    assert code == 0
    assert "WARNING: this scan is unlike" in capsys.readouterr().err


def test_a_folding_field_is_reported_unreliable():
    from slicreg_lite.core.metrics import jacobian_stats, unreliable_reasons

    smooth = np.zeros((3, 12, 12, 12), np.float32)
    assert unreliable_reasons(jacobian_stats(smooth)) == []
    torn = smooth.copy()
    torn[0, 4:8] = np.linspace(0, -12, 4)[:, None, None]  # neighbours overtake each other
    reasons = unreliable_reasons(jacobian_stats(torn))
    assert any("fold" in reason for reason in reasons)
