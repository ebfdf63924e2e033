"""One scan of a cohort: :class:`Subject`, the unit every step passes around.

A subject is an image in Hounsfield units, optionally its organ labels, and the NIfTI
affine that places its voxels in the world (mm, RAS+). Its arrays follow the convention
of :mod:`slicreg_lite.core.spatial`: ``(D, H, W)`` with RAS+ axes.

Examples
--------
>>> import numpy as np
>>> scan = Subject(7, np.zeros((4, 5, 6)), None, np.diag([2.0, 2.0, 3.0, 1.0]))
>>> scan.shape, scan.spacing, scan.labels is None
((4, 5, 6), (2.0, 2.0, 3.0), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.checks import SubjectId, check_affine, check_labels, check_subject_id, check_volume
from ..core.labels import MAX_LABEL


@dataclass
class Subject:
    """One CT scan with (optionally) its organ labels.

    Attributes
    ----------
    subject_id : int or str
        BCV-style number (1..40) or, for a folder of your own scans, the file name.
    image : numpy.ndarray, shape (D, H, W), float32
        Intensities in Hounsfield units.
    labels : numpy.ndarray, shape (D, H, W), uint8, or None
        0 = background, 1.. = organs (1..13 are the BTCV organs of
        :data:`slicreg_lite.core.labels.LABEL_NAMES` for the phantom and BCV); None when the
        scan has no labels.
    affine : numpy.ndarray, shape (4, 4)
        Voxel index -> world position in mm (RAS+), as in NIfTI.
    body_mask : numpy.ndarray, shape (D, H, W), bool, or None
        Inside the body (the phantom knows it; real scans leave it None).
    """

    subject_id: SubjectId
    image: np.ndarray
    labels: Optional[np.ndarray]
    affine: np.ndarray
    body_mask: Optional[np.ndarray] = None

    def __post_init__(self):
        self.subject_id = check_subject_id(self.subject_id)
        self.image = check_volume(self.image, "image").astype(np.float32, copy=False)
        if self.labels is not None:
            self.labels = check_labels(self.labels, self.image.shape, "labels",
                                       max_label=MAX_LABEL)
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




def subject_filename(subject_id: SubjectId, suffix: str = ".npz") -> str:
    """The cache file name of a subject: ``subject0038.npz`` or ``subject-<name>.npz``."""
    subject_id = check_subject_id(subject_id)
    if isinstance(subject_id, int):
        return f"subject{subject_id:04d}{suffix}"
    return f"subject-{subject_id}{suffix}"
