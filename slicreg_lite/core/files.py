"""Atomic file writes: a file is either complete or absent, never half-written.

Every cache entry, NIfTI file and record of this package is written through
:func:`atomic_write`: first under a temporary name in the same folder, then renamed with
:func:`os.replace` (atomic on one file system). An interrupted run (Ctrl+C, a crash, a full
disk) leaves the previous file or nothing, so a later run never reads a corrupt one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

#: The folder that holds the package: the source checkout (with ``pyproject.toml`` and
#: ``data/``) when the package is installed from it.
CHECKOUT = Path(__file__).resolve().parents[2]


def atomic_write(path, write) -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The target; missing parent folders are created.
    write : callable
        Writes the complete file to the path it is given. The temporary name keeps the
        target's suffixes (``.npz``, ``.nii.gz``), which numpy and nibabel look at.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=suffix)
    os.close(fd)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes files private; results are for sharing
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):  # only when something failed
            os.remove(temporary)
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(text))


def atomic_write_json(path, content) -> Path:
    """Write a JSON file (indented, with a final newline) atomically."""
    return atomic_write_text(path, json.dumps(content, indent=2) + "\n")


def atomic_save_npz(path, **arrays) -> Path:
    """``numpy.savez_compressed`` that leaves no partial file when interrupted."""
    return atomic_write(path, lambda temporary: np.savez_compressed(temporary, **arrays))


def check_writable(folder, argument: str = "out") -> Path:
    """Create ``folder`` if needed and check that files can be written there, before any
    long computation.

    Raises
    ------
    ValueError
        Naming ``argument`` and the reason, when the folder cannot be written.
    """
    import tempfile

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"{argument}: cannot write into {str(folder)!r}: {error}") from error
    return folder
