"""Scans on disk: NIfTI I/O, the BCV and Learn2Reg layouts, pre-processing, downloads.

Every loader returns :class:`Subject` objects whose arrays follow the convention of
:mod:`slicreg_lite.spatial` (RAS+ axes, (D, H, W) order).

The module has four parts:

- NIfTI files: :func:`load_nifti`, :func:`save_nifti` (atomic writes);
- dataset layouts: :func:`load_bcv` ("AbdomenIsoCrop": ``img/img0001.nii.gz``,
  ``label/label0001.nii.gz``) and :func:`load_learn2reg` ("AbdomenCTCT": a ``dataset.json``);
- the paper's pre-processing: :func:`preprocess` (2 mm voxels, a 192 x 160 x 256 crop
  around the centre of the soft tissue), built from :func:`soft_tissue_centre`,
  :func:`crop_origin` and :func:`crop_or_pad`;
- downloads: :func:`download` (streamed, SHA-256 verified, atomic), the manifest
  ``slicreg_lite/manifest.json`` (:func:`load_manifest`) and :func:`fetch_dataset`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import nibabel as nib
import numpy as np
from scipy.ndimage import minimum_filter
from scipy.special import expit
from tqdm.auto import tqdm

from .checks import check_affine, check_labels, check_volume
from .files import atomic_write, atomic_write_json
from .spatial import resample_to_spacing


@dataclass
class Subject:
    """One CT scan with its organ labels.

    Attributes
    ----------
    subject_id : int
        BCV-style id (1..40).
    image : numpy.ndarray, shape (D, H, W), float32
        Intensities in Hounsfield units.
    labels : numpy.ndarray, shape (D, H, W), uint8, or None
        0 = background, 1..13 = the BTCV organs (:data:`slicreg_lite.config.LABEL_NAMES`).
    affine : numpy.ndarray, shape (4, 4)
        Voxel index -> world position in mm (RAS+), as in NIfTI.
    body_mask : numpy.ndarray, shape (D, H, W), bool, or None
        Inside the body (the phantom knows it; real scans leave it None).
    """

    subject_id: int
    image: np.ndarray
    labels: Optional[np.ndarray]
    affine: np.ndarray
    body_mask: Optional[np.ndarray] = None

    def __post_init__(self):
        self.image = check_volume(self.image, "image").astype(np.float32, copy=False)
        if self.labels is not None:
            self.labels = check_labels(self.labels, self.image.shape, "labels")
        self.affine = check_affine(self.affine)
        if self.body_mask is not None:
            mask = check_volume(self.body_mask, "body_mask")
            if mask.shape != self.image.shape:
                raise ValueError(f"body_mask must have the image's shape {self.image.shape}; "
                                 f"got {mask.shape}")
            self.body_mask = mask.astype(bool, copy=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)`` of the image."""
        return tuple(self.image.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (d, h, w)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


PathLike = Union[str, os.PathLike]

#: Hounsfield units of air: the value outside a scan's field of view.
AIR_HU = -1000.0
#: The paper's pre-processing: 2 mm isotropic voxels, a 192 x 160 x 256 crop.
PAPER_SPACING_MM = 2.0
PAPER_SHAPE = (192, 160, 256)


# ------------------------------------------------------------------------------ NIfTI
def load_nifti(path: PathLike, *, canonical: bool = True,
               dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file: its voxel array and its voxel -> world (mm) matrix.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii`` or ``.nii.gz`` file.
    canonical : bool
        Reorient to RAS+ with :func:`nibabel.as_closest_canonical`, so that the array axes
        run left -> right, posterior -> anterior, inferior -> superior (the convention of
        :mod:`slicreg_lite.spatial`). This only flips and transposes axes (no
        interpolation), and the returned affine changes with the array, so every voxel
        keeps its world position.
    dtype : numpy dtype or None
        Data type of the returned array (float32 by default, exact for integer labels
        up to 2**24). ``None`` keeps what nibabel returns (after the header's scaling).

    Returns
    -------
    data : numpy.ndarray
        The voxel values, e.g. shape ``(D, H, W)``.
    affine : numpy.ndarray, shape (4, 4), float64
        Voxel index -> world position in mm.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected an existing NIfTI file; got {str(path)!r}, "
                                "which does not exist")
    image = nib.load(str(path))
    if canonical:
        image = nib.as_closest_canonical(image)
    data = np.asanyarray(image.dataobj)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    return data, np.asarray(image.affine, dtype=np.float64)


def save_nifti(path: PathLike, data, affine) -> Path:
    """Write a volume to a NIfTI file, atomically.

    The file is first written under a temporary name in the same folder and then renamed
    with :func:`os.replace`, so that a reader never sees a half-written file and an
    interrupted write leaves the old file (or nothing) behind.

    Parameters
    ----------
    path : str or os.PathLike
        Target file ending in ``.nii.gz`` (compressed) or ``.nii``. Missing parent
        folders are created.
    data : array_like, shape (D, H, W) or (D, H, W, C)
        Floating-point data is stored as float32; integer data keeps its type (uint8
        labels stay uint8) except 64-bit integers, stored as int32; bool is stored as
        uint8.
    affine : array_like, shape (4, 4)
        Voxel index -> world position in mm. Written as both qform and sform with code 1
        ("scanner"), so every NIfTI reader agrees on it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix, the shape, the data type or the affine is not valid.
    """
    path = Path(path)
    _nifti_suffix(path)  # checks the suffix
    array = _as_nifti_array(data)
    affine = check_affine(affine)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    # nibabel chooses gzip from the suffix, which atomic_write keeps on its temporary name.
    return atomic_write(path, lambda temporary: nib.save(image, str(temporary)))


def _nifti_suffix(path: Path) -> str:
    for suffix in (".nii.gz", ".nii"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return suffix
    raise ValueError(f"path must end in '.nii.gz' or '.nii'; got {str(path)!r}")


def _as_nifti_array(data) -> np.ndarray:
    array = np.asarray(data)
    if array.ndim not in (3, 4):
        raise ValueError(f"data must be a 3D (D, H, W) or 4D (D, H, W, C) array; "
                         f"got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype.itemsize <= 4:
            return array
        # Many NIfTI readers reject 64-bit integers (nibabel does by default): use int32.
        limits = np.iinfo(np.int32)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise ValueError(f"data of dtype {array.dtype} must fit into int32 "
                             f"({limits.min}..{limits.max}); got values in "
                             f"{array.min()}..{array.max()}")
        return array.astype(np.int32)
    raise ValueError(f"data must be numeric (bool, integer or floating point); "
                     f"got dtype {array.dtype}")


# ---------------------------------------------------------------------- dataset layouts
_BCV_IMAGE_NAME = re.compile(r"img(\d+)\.nii\.gz")
#: File names Learn2Reg uses for the description of a task.
LEARN2REG_JSON_NAMES = ("dataset.json", "AbdomenCTCT_dataset.json")
# AbdomenCTCT_0001_0000.nii.gz: task name, subject id, modality/time-point index.
_LEARN2REG_IMAGE_NAME = re.compile(r".*_(\d+)_\d+\.nii(\.gz)?")


def load_bcv(root: PathLike, ids=None, *, canonical: bool = True) -> list[Subject]:
    """Load scans in the BCV "AbdomenIsoCrop" layout.

    ::

        root/img/img0001.nii.gz      root/label/label0001.nii.gz
        root/img/img0002.nii.gz      root/label/label0002.nii.gz
        ...

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``img/`` and ``label/``.
    ids : sequence of int, optional
        Subject ids to load (file names are zero-padded to 4 digits). ``None`` loads
        every ``img*.nii.gz`` in ``root/img``, sorted by id.
    canonical : bool
        Reorient to RAS+ (see :func:`load_nifti`).

    Returns
    -------
    list of Subject
        In the order of ``ids``; images in HU (float32), labels 0..13 (uint8).

    Raises
    ------
    FileNotFoundError
        If ``root``, ``root/img`` or ``root/label`` is missing, if the image or the label
        file of a requested id is missing, or if ``ids=None`` and there is no image.
    ValueError
        If a volume is not 3D, an image holds NaN/Inf, labels are outside 0..13 or do not
        have the image's shape; the message names the file.
    """
    root = Path(root)
    _require_folder(root, "root", "the BCV dataset folder (holding img/ and label/)")
    image_folder, label_folder = root / "img", root / "label"
    _require_folder(image_folder, "root", "a folder img/ with the images img0001.nii.gz, ...")
    _require_folder(label_folder, "root",
                    "a folder label/ with the labels label0001.nii.gz, ...")
    if ids is None:
        matches = (_BCV_IMAGE_NAME.fullmatch(p.name) for p in image_folder.iterdir())
        ids = sorted(int(match.group(1)) for match in matches if match)
        if not ids:
            raise FileNotFoundError(f"root: expected images img0001.nii.gz, ... in "
                                    f"{str(image_folder)!r}; found none")
    elif isinstance(ids, (int, np.integer)):
        raise ValueError(f"ids must be a sequence of subject ids, e.g. [{ids}]; got {ids!r}")

    subjects = []
    for subject_id in ids:
        subject_id = int(subject_id)
        image_path = image_folder / f"img{subject_id:04d}.nii.gz"
        label_path = label_folder / f"label{subject_id:04d}.nii.gz"
        for path in (image_path, label_path):
            if not path.is_file():
                raise FileNotFoundError(f"ids: subject {subject_id} needs the file "
                                        f"{str(path)!r}, which does not exist")
        subjects.append(_load_subject(subject_id, image_path, label_path, canonical))
    return subjects


def load_learn2reg(root: PathLike, *, split: str = "training",
                   canonical: bool = True) -> list[Subject]:
    """Load scans in the Learn2Reg layout ("AbdomenCTCT"), described by a ``dataset.json``.

    The description lists the scans of each split with paths relative to ``root``::

        {"name": "AbdomenCTCT", ...,
         "training": [{"image": "./imagesTr/AbdomenCTCT_0001_0000.nii.gz",
                       "label": "./labelsTr/AbdomenCTCT_0001_0000.nii.gz"}, ...],
         "test": [{"image": "./imagesTs/AbdomenCTCT_0031_0000.nii.gz"}, ...]}

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``dataset.json`` (or ``AbdomenCTCT_dataset.json``).
    split : str
        Which list of the description to load, e.g. ``"training"`` or ``"test"``.
    canonical : bool
        Reorient to RAS+ (see :func:`load_nifti`).

    Returns
    -------
    list of Subject
        In the order of the description. The subject id comes from the file name
        (``AbdomenCTCT_0001_0000.nii.gz`` -> 1); ``labels`` is None for entries without
        a ``"label"``.

    Raises
    ------
    FileNotFoundError
        If ``root``, the description or a file it lists is missing.
    ValueError
        If the description is not valid JSON, has no key ``split``, an entry has no
        ``"image"``, a file name has no subject id, or a volume is invalid (as in
        :func:`load_bcv`).
    """
    root = Path(root)
    _require_folder(root, "root", "the Learn2Reg dataset folder (holding dataset.json)")
    candidates = [root / name for name in LEARN2REG_JSON_NAMES]
    description_path = next((path for path in candidates if path.is_file()), None)
    if description_path is None:
        raise FileNotFoundError(f"root: expected a Learn2Reg description "
                                f"{' or '.join(LEARN2REG_JSON_NAMES)} in {str(root)!r}; "
                                "found neither")
    try:
        description = json.loads(description_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(description_path)!r} is not valid JSON: {error}") from error
    found_keys = sorted(description) if isinstance(description, dict) else []
    if split not in found_keys or not isinstance(description[split], list):
        raise ValueError(f"split: expected the key {split!r} with a list of scans in "
                         f"{str(description_path)!r}; found keys {found_keys}")

    subjects = []
    for index, entry in enumerate(description[split]):
        if not isinstance(entry, dict) or "image" not in entry:
            entry_keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"entry {index} of {split!r} in {str(description_path)!r} must "
                             f"have the key 'image' (and optionally 'label'); found keys "
                             f"{entry_keys}")
        image_path = root / entry["image"]
        label_path = root / entry["label"] if entry.get("label") else None
        for path in (image_path, label_path):
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"{str(description_path)!r} lists the file "
                                        f"{str(path)!r}, which does not exist")
        subject_id = learn2reg_subject_id(image_path.name)
        subjects.append(_load_subject(subject_id, image_path, label_path, canonical))
    return subjects


def learn2reg_subject_id(filename: str) -> int:
    """The subject id in a Learn2Reg file name: ``"AbdomenCTCT_0001_0000.nii.gz"`` -> 1.

    Raises
    ------
    ValueError
        If the name does not look like ``<task>_<id>_<index>.nii.gz``.
    """
    match = _LEARN2REG_IMAGE_NAME.fullmatch(filename)
    if match is None:
        raise ValueError(f"filename: expected <task>_<id>_<index>.nii.gz, e.g. "
                         f"'AbdomenCTCT_0001_0000.nii.gz'; got {filename!r}")
    return int(match.group(1))


def _require_folder(folder: Path, argument: str, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: expected {what} at {str(folder)!r}; "
                                "it does not exist")


def _load_subject(subject_id: int, image_path: Path, label_path: Optional[Path],
                  canonical: bool) -> Subject:
    """Read one image (and its labels) and check them, naming the file on any error."""
    image, affine = load_nifti(image_path, canonical=canonical)
    image = check_volume(image, f"image {str(image_path)!r}")
    labels = None
    if label_path is not None:
        labels, label_affine = load_nifti(label_path, canonical=canonical)
        labels = check_labels(labels, image.shape, f"labels {str(label_path)!r}")
        # Same shape but another grid is almost always a sloppy header, rarely a real
        # misalignment: warn instead of refusing the scan.
        if not np.allclose(label_affine, affine, atol=1e-3):
            warnings.warn(f"the affines of {str(image_path)!r} and {str(label_path)!r} "
                          "differ; using the image's", stacklevel=3)
    return Subject(subject_id, image, labels, affine)


# ------------------------------------------------------------------------ pre-processing
def soft_tissue_centre(image) -> np.ndarray:
    """Centre of mass of the soft tissue of a CT volume, in voxels.

    Each voxel is weighted by a smooth window that is high for 0..250 HU::

        w = sigmoid(10 - 10 * |HU / 250 * 2 - 1|)

    (1 at 125 HU, 0.5 at 0 and 250 HU, about 0 for air, fat and bone), then the weight is
    eroded by a 3 x 3 x 3 minimum filter so that thin structures and isolated noisy
    voxels count for nothing: only the interior of organs pulls the centre.

    Parameters
    ----------
    image : array_like, shape (D, H, W)
        Intensities in Hounsfield units.

    Returns
    -------
    numpy.ndarray, shape (3,), float64
        ``sum(xyz * w) / sum(w)`` in (d, h, w) voxel coordinates.

    Raises
    ------
    ValueError
        If the image is not a finite 3D volume or holds no soft tissue at all.
    """
    hu = check_volume(image, "image").astype(np.float32, copy=False)
    weight = minimum_filter(expit(10.0 - 10.0 * np.abs(hu / 250.0 * 2.0 - 1.0)), size=3)
    total = float(weight.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError(f"image must contain soft tissue (about 0..250 HU) to find its "
                         f"centre; got intensities in {hu.min():g}..{hu.max():g} HU")
    centre = []
    for axis, length in enumerate(hu.shape):
        # The weight summed over the two other axes: a 1D profile along this axis.
        other_axes = tuple(a for a in range(3) if a != axis)
        profile = weight.sum(axis=other_axes, dtype=np.float64)
        centre.append(float(profile @ np.arange(length)) / total)
    return np.array(centre)


def crop_origin(centre, shape) -> np.ndarray:
    """Where a crop of ``shape`` centred at ``centre`` starts in the input.

    Parameters
    ----------
    centre : sequence of 3 floats
        Voxel coordinates (d, h, w) that should land in the middle of the crop.
    shape : sequence of 3 ints
        ``(D, H, W)`` of the crop.

    Returns
    -------
    numpy.ndarray, shape (3,), int64
        Input index of the crop's first voxel (negative when the crop starts before the
        volume). Voxel ``j`` of the crop is voxel ``origin + j`` of the input, and the
        crop's middle ``(shape - 1) / 2`` lies within half a voxel of ``centre``.
    """
    shape = np.asarray(_as_shape(shape))
    centre = np.asarray(centre, dtype=np.float64).reshape(-1)
    if centre.shape != (3,) or not np.isfinite(centre).all():
        raise ValueError(f"centre must be 3 finite voxel coordinates (d, h, w); got {centre}")
    return np.floor(centre - (shape - 1) / 2.0 + 0.5).astype(np.int64)


def crop_or_pad(volume, centre, shape, fill: float = 0.0) -> np.ndarray:
    """Cut a box of ``shape`` voxels centred at ``centre`` out of a volume.

    Parts of the box outside the volume are filled with ``fill`` (-1000 HU for images,
    0 for labels). No interpolation: voxels are copied.

    Parameters
    ----------
    volume : array_like, shape (D, H, W)
    centre : sequence of 3 floats
        Voxel coordinates (d, h, w) of the box's middle (see :func:`crop_origin`).
    shape : sequence of 3 ints
        ``(D', H', W')`` of the result.
    fill : float
        Value of the voxels outside ``volume``.

    Returns
    -------
    numpy.ndarray, shape (D', H', W')
        Same dtype as ``volume``; ``out[j] == volume[crop_origin(centre, shape) + j]``.
    """
    volume = check_volume(volume, "volume", finite=False)
    shape = _as_shape(shape)
    origin = crop_origin(centre, shape)
    out = np.full(shape, fill, dtype=volume.dtype)
    source, target = [], []
    for start, size, length in zip(origin, shape, volume.shape):
        low, high = max(start, 0), min(start + size, length)  # the overlap, input indices
        if high <= low:
            return out  # the box misses the volume entirely
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    out[tuple(target)] = volume[tuple(source)]
    return out


def preprocess(subject: Subject, *, spacing_mm=PAPER_SPACING_MM,
               shape=PAPER_SHAPE) -> Subject:
    """The paper's pre-processing: isotropic voxels, then a crop around the soft tissue.

    1. Resample to ``spacing_mm`` with :func:`slicreg_lite.spatial.resample_to_spacing`:
       trilinear for the image (-1000 HU outside), nearest neighbour for labels.
    2. Crop or pad to ``shape`` around :func:`soft_tissue_centre` (-1000 HU and label 0
       where the box leaves the scan).

    No affine pre-alignment is done (that is what makes the paper's task hard).
    Intensities stay in HU.

    Parameters
    ----------
    subject : Subject
    spacing_mm : float or sequence of 3 floats
        Voxel size of the result in mm (2 mm in the paper).
    shape : sequence of 3 ints
        ``(D, H, W)`` of the result (192 x 160 x 256 in the paper).

    Returns
    -------
    Subject
        A new subject whose affine maps the new voxels to the same world positions:
        every voxel lies where its content was in the input (up to the resampling).

    Raises
    ------
    ValueError
        If ``spacing_mm`` or ``shape`` is not valid, or the image has no soft tissue.
    """
    shape = _as_shape(shape)
    old_spacing = np.asarray(subject.spacing)
    new_spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    image = resample_to_spacing(subject.image, old_spacing, new_spacing, mode="linear",
                                fill=AIR_HU)
    # resample_to_spacing keeps the first voxel centre: new voxel i lies at old voxel
    # i * new / old, so each column of the affine is scaled by new / old.
    affine = subject.affine @ np.diag([*(new_spacing / old_spacing), 1.0])
    centre = soft_tissue_centre(image)
    # Crop voxel j is resampled voxel origin + j: shift the affine's origin by that much.
    affine = affine @ _translation(crop_origin(centre, shape))

    def resample_and_crop_mask(mask):
        if mask is None:
            return None
        resampled = resample_to_spacing(mask.astype(np.uint8), old_spacing, new_spacing,
                                        mode="nearest")
        return crop_or_pad(resampled, centre, shape, fill=0)

    return Subject(subject_id=subject.subject_id,
                   image=crop_or_pad(image, centre, shape, fill=AIR_HU),
                   labels=resample_and_crop_mask(subject.labels),
                   affine=affine,
                   body_mask=resample_and_crop_mask(subject.body_mask))


def _as_shape(shape) -> tuple[int, int, int]:
    values = tuple(np.asarray(shape).reshape(-1).tolist())
    if len(values) != 3 or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"shape must be three positive integers (D, H, W); got {shape!r}")
    return tuple(int(v) for v in values)


def _translation(offset) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


# ----------------------------------------------------------------------------- downloads
class ChecksumError(ValueError):
    """A downloaded file's SHA-256 digest is not the expected one."""


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_of(path: PathLike, *, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 digest of a file as 64 lowercase hexadecimal characters.

    Parameters
    ----------
    path : str or os.PathLike
    chunk_size : int
        Bytes read at a time (the file is never held in memory as a whole).

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(sha256, name: str = "sha256") -> str:
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256.lower()):
        raise ValueError(f"{name} must be a SHA-256 digest of 64 hexadecimal characters; "
                         f"got {sha256!r}")
    return sha256.lower()


def download(url: str, dest: PathLike, sha256: str, *, chunk_size: int = 1 << 20,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download a file and verify its SHA-256 digest; never leave a partial file behind.

    The data is streamed (with a tqdm progress bar) into ``dest`` + ``".part"`` in the
    same folder and hashed on the way; only when the digest matches is it renamed to
    ``dest``. After any failure (HTTP error, dropped connection, wrong digest,
    KeyboardInterrupt) neither ``dest`` nor the ``.part`` file exists.

    Parameters
    ----------
    url : str
        ``http(s)://`` (or ``file://``) address.
    dest : str or os.PathLike
        Where the file goes; missing parent folders are created. If it already exists
        with the right digest, nothing is downloaded; an existing file with another digest
        is deleted (it is not the file we want) and downloaded again.
    sha256 : str
        The expected digest, 64 hexadecimal characters.
    chunk_size : int
        Bytes read and written at a time.
    progress : bool
        Show a progress bar.
    timeout : float
        Seconds to wait for the server before giving up.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ValueError
        If ``sha256`` is not 64 hexadecimal characters.
    ChecksumError
        If the downloaded data has another digest (a :class:`ValueError`).
    urllib.error.HTTPError, urllib.error.URLError, ConnectionError
        If the server answers with an error, cannot be reached or closes the connection
        early.
    """
    expected = _check_sha256(sha256)
    dest = Path(dest)
    if dest.is_file():
        if sha256_of(dest) == expected:
            return dest
        dest.unlink()
    _download_to(url, dest, expected, chunk_size=chunk_size, progress=progress,
                 timeout=timeout)
    return dest


def _download_to(url: str, dest: Path, expected: Optional[str], *, chunk_size: int,
                 progress: bool, timeout: float) -> str:
    """Stream ``url`` to ``dest`` through a ``.part`` file; check the digest if one is given.

    Returns the digest of the data received.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        digest = hashlib.sha256()
        received = 0
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                open(partial, "wb") as file:
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dest.name, disable=not progress) as bar:
                try:
                    while chunk := response.read(chunk_size):
                        file.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except http.client.IncompleteRead as error:
                    raise ConnectionError(f"{url}: the connection closed early "
                                          f"({error})") from error
        # http.client simply stops when a server hangs up early: compare with the length.
        if total is not None and received != total:
            raise ConnectionError(f"{url}: the connection closed after {received} of "
                                  f"{total} bytes")
        received_digest = digest.hexdigest()
        if expected is not None and received_digest != expected:
            raise ChecksumError(f"checksum mismatch for {url}: expected sha256 {expected}, "
                                f"received {received_digest}")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)  # only still there when something failed
    return received_digest


# ---------------------------------------------------------------------- dataset manifest
#: The manifest shipped inside the package (so that a pip install on Colab has it too).
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.json"
#: Where :func:`fetch_dataset` records digests of downloads without a published checksum.
CHECKSUMS_FILENAME = "checksums.json"
_MANIFEST_KEYS = ("name", "url", "filename", "description", "layout", "sha256")
#: The layouts a dataset can have, and the function that loads each.
LAYOUT_LOADERS = {"bcv": load_bcv, "learn2reg": load_learn2reg}


def load_manifest(path: Optional[PathLike] = None) -> dict[str, dict]:
    """Read a dataset manifest: the public downloads and how to check them.

    The file holds ``{"datasets": [entry, ...]}``; each entry has the keys ``name``,
    ``url``, ``filename``, ``description``, ``layout`` ("bcv" or "learn2reg") and
    ``sha256`` (64 hexadecimal characters, or null when no checksum is published).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The manifest file; ``None`` reads the package's ``manifest.json``.

    Returns
    -------
    dict
        Dataset name -> entry (a dict with the keys above).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not valid JSON or an entry lacks a key or has an invalid value.
    """
    path = MANIFEST_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a dataset manifest at {str(path)!r}; "
                                "it does not exist")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    entries = content.get("datasets") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{str(path)!r} must hold {{'datasets': [...]}}; found keys {found}")

    manifest = {}
    for index, entry in enumerate(entries):
        found = sorted(entry) if isinstance(entry, dict) else []
        missing = [key for key in _MANIFEST_KEYS if key not in found]
        if missing:
            raise ValueError(f"dataset {index} in {str(path)!r} must have the keys "
                             f"{list(_MANIFEST_KEYS)}; missing {missing}, found keys {found}")
        where = f"dataset {entry['name']!r} in {str(path)!r}"
        if entry["sha256"] is not None:
            entry["sha256"] = _check_sha256(entry["sha256"], f"sha256 of {where}")
        if entry["layout"] not in LAYOUT_LOADERS:
            raise ValueError(f"layout of {where} must be one of {list(LAYOUT_LOADERS)}; "
                             f"got {entry['layout']!r}")
        # The file name is joined to dest_dir: it must not lead out of that folder.
        if not entry["filename"] or Path(entry["filename"]).name != entry["filename"]:
            raise ValueError(f"filename of {where} must be a plain file name; "
                             f"got {entry['filename']!r}")
        manifest[entry["name"]] = entry
    return manifest


def fetch_dataset(name: str, dest_dir: PathLike, *, manifest=None,
                  progress: bool = True) -> Path:
    """Download a dataset of the manifest and unpack it into ``dest_dir/name``.

    Checksum policy:

    - the manifest gives a ``sha256``: the download is verified against it;
    - the manifest's ``sha256`` is null (no published checksum): *trust on first use*.
      The first download's digest is recorded in ``dest_dir/checksums.json`` (with a
      warning that it was not verified), and every later download must match that record.

    The zip stays in ``dest_dir`` next to the unpacked folder. Unpacking goes to a
    temporary folder that is renamed when complete, so an interrupted fetch leaves no
    half-unpacked dataset. If ``dest_dir/name`` already exists it is returned as it is;
    delete it to fetch again.

    Parameters
    ----------
    name : str
        A dataset of the manifest, e.g. ``"bcv_abdomen_isocrop"``.
    dest_dir : str or os.PathLike
        Folder for the zip, the unpacked dataset and ``checksums.json``.
    manifest : str, os.PathLike or dict, optional
        A manifest file, or the dict :func:`load_manifest` returns; ``None`` uses the
        package's ``manifest.json``.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path
        The unpacked dataset's root (``dest_dir/name``). When the zip holds a single
        top-level folder, that folder's content is the root. Load it with the loader of
        the entry's layout: ``LAYOUT_LOADERS[entry["layout"]](root)``.

    Raises
    ------
    ValueError
        If ``name`` is not in the manifest.
    ChecksumError
        If the download does not match the manifest's or the recorded digest.
    urllib.error.URLError, ConnectionError, zipfile.BadZipFile
        If the download or the unpacking fails.
    """
    datasets = manifest if isinstance(manifest, dict) else load_manifest(manifest)
    if name not in datasets:
        raise ValueError(f"name must be one of the datasets {sorted(datasets)}; got {name!r}")
    entry = datasets[name]
    dest_dir = Path(dest_dir)
    unpacked = dest_dir / name
    if unpacked.is_dir():
        return unpacked
    archive = dest_dir / entry["filename"]
    _download_archive(entry, archive, dest_dir / CHECKSUMS_FILENAME, progress=progress)
    _unpack_zip(archive, unpacked)
    return unpacked


def _download_archive(entry: dict, archive: Path, checksums_path: Path, *,
                      progress: bool) -> None:
    """Download a manifest entry's file, verified against the manifest or our own record."""
    url = entry["url"]
    expected = entry["sha256"]
    records = _read_json(checksums_path) if checksums_path.is_file() else {}
    record = records.get(entry["name"], {})
    if expected is None and record.get("url") == url:
        expected = record["sha256"]
    if expected is not None:
        download(url, archive, expected, progress=progress)
        return

    # Trust on first use: nothing to verify against yet, so record what we received.
    if archive.is_file():
        digest = sha256_of(archive)
    else:
        digest = _download_to(url, archive, None, chunk_size=1 << 20, progress=progress,
                              timeout=60.0)
    records[entry["name"]] = {"url": url, "filename": entry["filename"], "sha256": digest}
    atomic_write_json(checksums_path, records)
    warnings.warn(f"{archive.name} from {url} was not verified against a published "
                  f"checksum (the manifest has none). Its sha256 {digest} is now recorded "
                  f"in {str(checksums_path)!r}; later downloads must match it.", stacklevel=3)


def _unpack_zip(archive: Path, target: Path) -> None:
    """Unpack a zip to ``target`` through a temporary folder renamed when complete."""
    staging = target.with_name(f".{target.name}.unpacking-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)  # left over from an interrupted run
    try:
        with zipfile.ZipFile(archive) as zipped:
            # extractall drops absolute paths and ".." from member names: it stays inside.
            zipped.extractall(staging)
        contents = [p for p in staging.iterdir() if p.name != "__MACOSX"]
        # Most archives wrap everything in one folder: make its content the dataset root.
        source = contents[0] if len(contents) == 1 and contents[0].is_dir() else staging
        os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error

