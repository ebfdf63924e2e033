"""Tests of slicreg_lite.datasets: NIfTI I/O, dataset layouts, pre-processing, downloads.

Downloads only ever talk to a loopback HTTP server started by the ``http_server`` fixture.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import threading
import urllib.error
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest

from slicreg_lite.datasets import (
    AIR_HU,
    ChecksumError,
    Subject,
    crop_or_pad,
    crop_origin,
    download,
    fetch_dataset,
    learn2reg_subject_id,
    load_bcv,
    load_learn2reg,
    load_manifest,
    load_nifti,
    preprocess,
    save_nifti,
    sha256_of,
    soft_tissue_centre,
)

SHAPE = (8, 9, 10)
# A RAS+ affine with anisotropic voxels and an offset, as a real scan would have.
AFFINE = np.array([[1.5, 0, 0, -60.0], [0, 1.5, 0, 20.0], [0, 0, 3.0, 100.0], [0, 0, 0, 1]])


# ------------------------------------------------------------------------ helpers
def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _zip_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, content in files.items():
            zipped.writestr(name, content)
    return buffer.getvalue()


def _world(affine, voxel):
    return affine[:3, :3] @ np.asarray(voxel, dtype=float) + affine[:3, 3]


# ------------------------------------------------------------------ loopback server
class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder, counts requests, and has one URL that hangs up mid-transfer."""

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.request_count += 1
        if self.path == "/truncated":
            # Promise 100000 bytes, send a few, hang up: a dropped connection.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"only a few bytes")
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A loopback HTTP server serving ``tmp_path / "served"``; shut down after the test."""
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Handler, directory=str(folder)))
    server.request_count = 0
    # A short poll interval makes shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}",
                              folder=folder, server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------- download
def test_download_with_correct_checksum_writes_the_file(http_server, tmp_path):
    payload = b"abdominal CT" * 1000
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "downloads" / "scan.bin"

    result = download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)

    assert result == dest
    assert dest.read_bytes() == payload
    assert sha256_of(dest) == _digest(payload)
    assert not dest.with_name("scan.bin.part").exists()


def test_download_with_wrong_checksum_leaves_nothing(http_server, tmp_path):
    payload = b"not what you expected"
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"
    wrong = "0" * 64

    with pytest.raises(ChecksumError) as caught:
        download(f"{http_server.url}/scan.bin", dest, wrong, progress=False)

    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert wrong in message and _digest(payload) in message and "/scan.bin" in message
    assert not dest.exists()
    assert not dest.with_name("scan.bin.part").exists()


def test_download_http_error_leaves_nothing(http_server, tmp_path):
    dest = tmp_path / "missing.bin"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        download(f"{http_server.url}/missing.bin", dest, "a" * 64, progress=False)
    assert list(tmp_path.iterdir()) == [http_server.folder]


def test_download_dropped_connection_leaves_nothing(http_server, tmp_path):
    dest = tmp_path / "truncated.bin"
    with pytest.raises(ConnectionError, match="closed"):
        download(f"{http_server.url}/truncated", dest, "a" * 64, progress=False)
    assert not dest.exists()
    assert not dest.with_name("truncated.bin.part").exists()


def test_download_interrupted_by_the_user_leaves_nothing(http_server, tmp_path, monkeypatch):
    payload = b"x" * 10_000
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"

    class InterruptingBar:  # stands in for tqdm: Ctrl+C after the first chunk
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr("slicreg_lite.datasets.tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        download(f"{http_server.url}/scan.bin", dest, _digest(payload), chunk_size=1000)
    assert not dest.exists()
    assert not dest.with_name("scan.bin.part").exists()


def test_download_skips_an_existing_file_with_the_right_checksum(http_server, tmp_path):
    payload = b"already here"
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"
    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 1

    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 1  # no second request

    # A damaged local copy is replaced by a fresh download.
    dest.write_bytes(b"damaged")
    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 2
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "a" * 63, "a" * 64 + "\n", None, 123])
def test_download_rejects_a_malformed_sha256(tmp_path, bad):
    with pytest.raises(ValueError, match="sha256 must be .*64 hexadecimal"):
        download("http://127.0.0.1:9/never", tmp_path / "x.bin", bad, progress=False)
    assert not (tmp_path / "x.bin").exists()


# -------------------------------------------------------------------- fetch_dataset
def _manifest(tmp_path, url, sha256):
    path = tmp_path / "manifest.json"
    entry = {"name": "toy", "url": url, "filename": "toy.zip", "description": "a toy set",
             "layout": "bcv", "sha256": sha256}
    path.write_text(json.dumps({"datasets": [entry]}))
    return path


def test_fetch_dataset_verifies_a_published_checksum_and_unpacks(http_server, tmp_path):
    archive = _zip_bytes({"Toy/img/readme.txt": "hello", "Toy/label/readme.txt": "world"})
    (http_server.folder / "toy.zip").write_bytes(archive)
    manifest = _manifest(tmp_path, f"{http_server.url}/toy.zip", _digest(archive))
    cache = tmp_path / "cache"

    root = fetch_dataset("toy", cache, manifest=manifest, progress=False)

    # The zip's single top-level folder becomes the dataset root.
    assert root == cache / "toy"
    assert (root / "img" / "readme.txt").read_text() == "hello"
    assert (root / "label" / "readme.txt").read_text() == "world"
    assert not (cache / "checksums.json").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["toy", "toy.zip"]  # no staging left
    # Fetched before: returned without a request.
    requests = http_server.server.request_count
    assert fetch_dataset("toy", cache, manifest=manifest, progress=False) == root
    assert http_server.server.request_count == requests


def test_fetch_dataset_trusts_on_first_use_then_verifies(http_server, tmp_path):
    first = _zip_bytes({"a.txt": "first version"})
    (http_server.folder / "toy.zip").write_bytes(first)
    manifest = _manifest(tmp_path, f"{http_server.url}/toy.zip", None)
    cache = tmp_path / "cache"

    with pytest.warns(UserWarning, match="not verified against a published checksum"):
        root = fetch_dataset("toy", cache, manifest=manifest, progress=False)

    assert (root / "a.txt").read_text() == "first version"
    record = json.loads((cache / "checksums.json").read_text())
    assert record["toy"]["sha256"] == _digest(first)

    # Someone replaces the file behind the same URL; a fresh fetch must refuse it.
    second = _zip_bytes({"a.txt": "tampered version"})
    (http_server.folder / "toy.zip").write_bytes(second)
    (cache / "toy.zip").unlink()
    (root / "a.txt").unlink()
    root.rmdir()
    with pytest.raises(ChecksumError, match=f"{_digest(first)}.*{_digest(second)}"):
        fetch_dataset("toy", cache, manifest=manifest, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["checksums.json"]


def test_fetch_dataset_unknown_name_lists_the_known_ones(tmp_path):
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/toy.zip", None)
    with pytest.raises(ValueError, match=r"name must be one of .*\['toy'\]; got 'nope'"):
        fetch_dataset("nope", tmp_path / "cache", manifest=manifest, progress=False)


def test_shipped_manifest_lists_both_public_datasets():
    manifest = load_manifest()
    assert manifest["bcv_abdomen_isocrop"]["layout"] == "bcv"
    assert manifest["bcv_abdomen_isocrop"]["url"].endswith("/c9GapHY3cx9x82p/download")
    assert manifest["learn2reg_abdomenctct"]["layout"] == "learn2reg"
    for entry in manifest.values():
        assert entry["sha256"] is None  # not published: trust on first use
        assert entry["url"].startswith("https://")


def test_load_manifest_rejects_an_entry_without_url(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"datasets": [{"name": "toy", "filename": "toy.zip",
                                              "description": "", "layout": "bcv",
                                              "sha256": None}]}))
    with pytest.raises(ValueError, match=r"missing \['url'\]"):
        load_manifest(path)


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
    with pytest.raises(FileNotFoundError, match=r"subject 2 needs .*img0002\.nii\.gz"):
        load_bcv(tmp_path, ids=[1, 2])
    (tmp_path / "label" / "label0001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"label0001\.nii\.gz"):
        load_bcv(tmp_path, ids=[1])


def test_load_bcv_labels_out_of_range(tmp_path):
    _write_bcv(tmp_path, [1])
    labels = np.zeros(SHAPE, np.uint8)
    labels[2, 2, 2] = 20
    save_nifti(tmp_path / "label" / "label0001.nii.gz", labels, AFFINE)
    with pytest.raises(ValueError, match=r"label0001\.nii\.gz.* values in 0\.\.13; got .*20"):
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


# ------------------------------------------------------------------- preprocessing
def _blob_scan(shape, centre, radius, spacing):
    """Air everywhere with a soft-tissue ball (60 HU, label 6) at ``centre``."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    inside = ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) <= radius**2
    image = np.where(inside, 60.0, AIR_HU).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-40.0, 15.0, 120.0)
    return Subject(7, image, inside.astype(np.uint8) * 6, affine)


def test_soft_tissue_centre_ignores_isolated_voxels():
    subject = _blob_scan((30, 30, 30), (8, 20, 12), 4, (2, 2, 2))
    image = subject.image.copy()
    image[28, 2, 27] = 100.0  # one noisy soft-tissue voxel far away: eroded away
    np.testing.assert_allclose(soft_tissue_centre(image), (8, 20, 12), atol=1e-3)


def test_crop_or_pad_copies_and_pads():
    volume = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    np.testing.assert_array_equal(crop_origin((2, 3, 3), (3, 3, 3)), (1, 2, 2))
    np.testing.assert_array_equal(crop_or_pad(volume, (2, 3, 3), (3, 3, 3)),
                                  volume[1:4, 2:5, 2:5])
    # Centred at voxel 0, a box of 4 starts one voxel before the volume: one voxel of fill.
    padded = crop_or_pad(volume, (0, 0, 0), (4, 4, 4), fill=-1)
    np.testing.assert_array_equal(padded[1:, 1:, 1:], volume[:3, :3, :3])
    assert (padded[0] == -1).all() and padded.dtype == volume.dtype
    assert (crop_or_pad(volume, (100, 0, 0), (2, 2, 2), fill=-1) == -1).all()


def test_preprocess_output_shape_and_spacing():
    subject = _blob_scan((20, 18, 12), (10, 9, 6), 4, (3.0, 3.0, 4.0))

    result = preprocess(subject, spacing_mm=2.0, shape=(16, 20, 24))

    assert result.shape == (16, 20, 24)
    np.testing.assert_allclose(result.spacing, (2.0, 2.0, 2.0))
    assert result.image.dtype == np.float32 and result.labels.dtype == np.uint8
    assert result.image.min() == AIR_HU  # padding is air
    assert result.subject_id == subject.subject_id


def test_preprocess_centres_an_off_centre_blob():
    subject = _blob_scan((40, 40, 40), (10, 28, 12), 4, (2.0, 2.0, 2.0))
    shape = (24, 24, 24)

    result = preprocess(subject, spacing_mm=2.0, shape=shape)

    middle = (np.array(shape) - 1) / 2
    np.testing.assert_allclose(soft_tissue_centre(result.image), middle, atol=1.0)
    label_centre = np.argwhere(result.labels == 6).mean(axis=0)
    np.testing.assert_allclose(label_centre, middle, atol=1.0)


def test_preprocess_keeps_world_positions():
    subject = _blob_scan((20, 18, 12), (10, 9, 6), 4, (3.0, 3.0, 4.0))
    marked = (11, 8, 5)
    subject.labels[marked] = 13  # one marked voxel inside the blob

    result = preprocess(subject, spacing_mm=2.0, shape=(24, 24, 24))

    # Upsampling with nearest neighbour: every output voxel carrying the mark lies within
    # half an input voxel of the marked input voxel.
    found = np.argwhere(result.labels == 13)
    assert len(found) > 0
    before = _world(subject.affine, marked)
    for voxel in found:
        offset = np.abs(_world(result.affine, voxel) - before)
        assert (offset <= np.array(subject.spacing) / 2 + 1e-6).all()
    # The blob's world centre is where it was (within half an output voxel).
    blob_before = _world(subject.affine, np.argwhere(subject.labels > 0).mean(axis=0))
    blob_after = _world(result.affine, np.argwhere(result.labels > 0).mean(axis=0))
    np.testing.assert_allclose(blob_after, blob_before, atol=1.0)


def test_preprocess_rejects_a_bad_shape():
    subject = _blob_scan((10, 10, 10), (5, 5, 5), 3, (2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match=re.escape("shape must be three positive integers")):
        preprocess(subject, shape=(16, 16))
