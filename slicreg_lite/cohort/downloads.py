"""Downloads of the real data: streamed, SHA-256 verified, never half-written.

- :func:`download` fetches one file through a ``.part`` file, checks its digest and only
  then renames it;
- the manifest ``slicreg_lite/manifest.json`` (:func:`load_manifest`) lists the public
  datasets (the paper's pre-processed BCV scans, Learn2Reg "AbdomenCTCT") with their
  addresses, layouts and checksums;
- :func:`fetch_dataset` downloads one of them and unpacks it, ready for
  ``--data bcv:PATH`` or ``--data learn2reg:PATH`` (:mod:`slicreg_lite.cohort.sources`).
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
from pathlib import Path
from typing import Optional, Union

from tqdm.auto import tqdm

from ..core.files import atomic_write_json
from .layouts import load_bcv, load_learn2reg

PathLike = Union[str, os.PathLike]

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

