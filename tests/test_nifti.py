"""NIfTI files: round trips, reorientation, clear errors for what is not a 3D volume."""

from __future__ import annotations

import numpy as np
import pytest

from slicreg_lite.cohort.nifti import load_nifti, save_nifti

SHAPE = (8, 9, 10)
# A RAS+ affine with anisotropic voxels and an offset, as a real scan would have.
AFFINE = np.array([[1.5, 0, 0, -60.0], [0, 1.5, 0, 20.0], [0, 0, 3.0, 100.0], [0, 0, 0, 1]])


def _world(affine, voxel):
    return affine[:3, :3] @ np.asarray(voxel, dtype=float) + affine[:3, 3]


# ---------------------------------------------------------------------------- NIfTI
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_nifti_round_trip_keeps_array_and_affine(tmp_path, dtype):
    data = (np.arange(np.prod(SHAPE)) % 14).reshape(SHAPE).astype(dtype)
    path = save_nifti(tmp_path / "sub" / "volume.nii.gz", data, AFFINE)

    loaded, affine = load_nifti(path, dtype=None)

    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, data)
    np.testing.assert_allclose(affine, AFFINE)
    assert sorted(p.name for p in path.parent.iterdir()) == ["volume.nii.gz"]  # no temp file


def test_save_nifti_stores_floats_as_float32_and_scanner_codes(tmp_path):
    import nibabel as nib

    path = save_nifti(tmp_path / "v.nii", np.zeros(SHAPE, np.float64), AFFINE)
    header = nib.load(str(path)).header
    assert header.get_data_dtype() == np.float32
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1


def test_load_nifti_reorients_lps_to_ras(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])
    save_nifti(tmp_path / "lps.nii.gz", data, lps)

    canonical, affine = load_nifti(tmp_path / "lps.nii.gz", canonical=True)
    raw, raw_affine = load_nifti(tmp_path / "lps.nii.gz", canonical=False)

    np.testing.assert_array_equal(canonical, data[::-1, ::-1, :])
    np.testing.assert_allclose(np.diag(affine)[:3], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(raw, data)
    np.testing.assert_allclose(raw_affine, lps)
    # The same voxel content sits at the same world position in both.
    np.testing.assert_allclose(_world(affine, (0, 0, 4)), _world(lps, (2, 3, 4)))


def test_load_nifti_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.nii.gz"):
        load_nifti(tmp_path / "nothing.nii.gz")


def test_save_nifti_rejects_other_suffixes(tmp_path):
    with pytest.raises(ValueError, match=r"'\.nii\.gz' or '\.nii'; got .*volume\.npy"):
        save_nifti(tmp_path / "volume.npy", np.zeros(SHAPE), AFFINE)


def test_load_nifti_drops_trailing_axes_of_one_and_refuses_other_dimensions(tmp_path):
    data = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    save_nifti(tmp_path / "x.nii.gz", data[..., None], AFFINE)
    loaded, _ = load_nifti(tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(loaded, data)
    save_nifti(tmp_path / "series.nii.gz", np.stack([data, data], -1), AFFINE)
    with pytest.raises(ValueError, match=r"series\.nii\.gz' must hold a 3D volume; got shape "
                                         r"\(8, 9, 10, 2\) \(4D\)"):
        load_nifti(tmp_path / "series.nii.gz")
    import nibabel as nib

    nib.save(nib.Nifti1Image(data[:, :, 0], np.eye(4)), str(tmp_path / "slice.nii.gz"))
    with pytest.raises(ValueError, match=r"must hold a 3D volume; got shape \(8, 9\) \(2D\)"):
        load_nifti(tmp_path / "slice.nii.gz")


@pytest.mark.parametrize("content", [b"not a nifti file at all", b""])
def test_load_nifti_names_a_file_that_is_not_nifti(tmp_path, content):
    (tmp_path / "broken.nii.gz").write_bytes(content)
    with pytest.raises(ValueError, match=r"broken\.nii\.gz' is not a readable NIfTI file"):
        load_nifti(tmp_path / "broken.nii.gz")


def test_load_nifti_names_a_truncated_file(tmp_path):
    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    path = save_nifti(tmp_path / "cut.nii.gz", data, AFFINE)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"cut\.nii\.gz'"):
        load_nifti(path)


def test_to_ras_keeps_every_voxel_at_its_world_position():
    from slicreg_lite.cohort.nifti import to_ras

    rng = np.random.default_rng(1)
    data = rng.normal(size=(4, 5, 6))
    # axes permuted and flipped: array axis 0 runs along -z, 1 along x, 2 along -y
    affine = np.array([[0, 2.0, 0, -5], [0, 0, -3.0, 7], [-1.5, 0, 0, 9], [0, 0, 0, 1]])
    ras, ras_affine = to_ras(data, affine)
    assert ras.shape == (5, 6, 4)
    assert np.allclose(ras_affine[:3, :3], np.diag([2.0, 3.0, 1.5]))
    for voxel in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        world = _world(affine, voxel)
        found = np.linalg.solve(ras_affine[:3, :3], world - ras_affine[:3, 3])
        assert np.allclose(found, np.round(found))
        assert ras[tuple(np.round(found).astype(int))] == data[voxel]
