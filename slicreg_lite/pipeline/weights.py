"""Shipped network weights: ``data/weights/<preset>/`` and the manifest that vouches for them.

The repository ships the ``lite`` networks of the evaluation table (Slic-Reg's four and
PDD-Net's), trained on the phantom cohort, so that nobody has to train before trying the
method. The manifest
``data/weights/manifest.json`` records each file's SHA-256 and its *key*: a hash of
everything that decided the training (the data source's identity, the grid, the split, the
supervoxel, teacher, network and training parameters, the network code's version). Weights
whose key or checksum does not match are never used: the network is trained anew instead.
How a run is executed (parallel jobs, device, validation frequency, mixed precision,
checkpointing) is not in the key.

Weights trained on another data source (``python -m slicreg_lite train --data ...``) are
published under ``data/weights/<preset>/<data source>/`` and serve that source only.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from ..cohort.downloads import sha256_of
from ..cohort.sources import DataSource, short_hash
from ..core.config import Config
from ..core.files import CHECKOUT, atomic_write, atomic_write_json
from ..core.version import __version__
from .cache import decided_by

#: Bump when the networks or their training change their results.
NETWORK_VERSION = 2
#: The config sections a trained network depends on (besides the data, grid and split).
NETWORK_SECTIONS = ("supervoxels", "teacher", "network", "training")
#: PDD-Net (the "backbone" ``"pdd"``) learns from the scans alone, or with their labels:
#: its own section decides it (no supervoxels, no teacher); and its code's version.
PDD_SECTIONS = ("pdd",)
PDD_VERSION = 1


def decided_by_sections(backbone: str) -> tuple[tuple[str, ...], int]:
    """The config sections and the code version that decide a network's training."""
    return (PDD_SECTIONS, PDD_VERSION) if backbone == "pdd" else (NETWORK_SECTIONS,
                                                                    NETWORK_VERSION)


def weights_dir() -> Path:
    """``data/weights`` of the source checkout: shipped pretrained weights + manifest."""
    return CHECKOUT / "data" / "weights"


def network_key(cfg: Config, data: DataSource, backbone: str, head: str) -> str:
    """The key of a network: what it is, and a hash of everything that decided its training."""
    sections, version = decided_by_sections(backbone)
    return f"{backbone}-{head}-v{version}-{short_hash(decided_by(cfg, data, sections))}"


def weights_name(cfg: Config, data: DataSource, backbone: str, head: str) -> str:
    """The file's name under ``data/weights``: ``lite/deeplab_slic.pt`` for the phantom,
    ``lite/<data source>/deeplab_slic.pt`` for any other source."""
    folder = cfg.name if data.kind == "phantom" else f"{cfg.name}/{data.label}"
    return f"{folder}/{backbone}_{head}.pt"


def shipped_weights(cfg: Config, data: DataSource, backbone: str, head: str) -> Path | None:
    """The shipped weights for this configuration and data, if present, verified and current.

    Returns None (with a warning when a file exists but does not qualify) otherwise.
    """
    manifest_path = weights_dir() / "manifest.json"
    name = weights_name(cfg, data, backbone, head)
    if not manifest_path.exists():
        return None
    entry = json.loads(manifest_path.read_text()).get(name)
    path = weights_dir() / name
    if entry is None or not path.exists():
        return None
    if entry.get("config_key") != network_key(cfg, data, backbone, head):
        warnings.warn(f"shipped weights {name} were trained with other parameters, other data "
                      "or an older version; training anew instead", stacklevel=3)
        return None
    if sha256_of(path) != entry.get("sha256"):
        warnings.warn(f"shipped weights {name} do not match their checksum in "
                      f"{manifest_path}; training anew instead", stacklevel=3)
        return None
    return path


def publish_weights(cfg: Config, data: DataSource, backbone: str, head: str,
                    checkpoint_path: Path) -> Path:
    """Copy a trained network into ``data/weights/`` and record its checksum and key.

    Run by ``python -m slicreg_lite train``; the manifest ties the file to the exact
    configuration and data it was trained with (a later change is detected).

    Returns
    -------
    pathlib.Path
        The published file.
    """
    name = weights_name(cfg, data, backbone, head)
    target = weights_dir() / name
    atomic_write(target, lambda temporary: shutil.copyfile(checkpoint_path, temporary))
    manifest_path = weights_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    data_option = "" if data.kind == "phantom" else f" --data {data.spec}"
    manifest[name] = {"sha256": sha256_of(target),
                      "config_key": network_key(cfg, data, backbone, head),
                      "data": data.spec, "package_version": __version__,
                      "command": f"python -m slicreg_lite train --preset {cfg.name}"
                                 f"{data_option} --backbone {backbone} --head {head}"}
    atomic_write_json(manifest_path, dict(sorted(manifest.items())))
    return target
