"""Where a cohort comes from: the phantom, the paper's BCV scans, a Learn2Reg task or a
folder of your own scans, chosen by one string.

=====================  ==================================================================
``phantom``            the synthetic cohort of :mod:`slicreg_lite.cohort.phantom` (the default),
                       generated on the preset's grid; the paper's split, template #38
``bcv:PATH``           the paper's "AbdomenIsoCrop" layout: ``PATH/img/img0001.nii.gz``
                       and ``PATH/label/label0001.nii.gz``; the paper's split (the
                       preset's ids), template #38, the 13 BTCV labels
``learn2reg:PATH``     a Learn2Reg task folder described by ``PATH/dataset.json``
                       (e.g. "AbdomenCTCT"): its ``training`` list, its label names; the
                       scans named in ``registration_val`` are the test scans, the others
                       train the network; the template is the scan that is most often
                       ``fixed`` there (ties: the lowest id)
``folder:PATH``        any NIfTI scans: ``PATH/images/*.nii.gz`` (or ``PATH/*.nii.gz``
                       when there is no ``images/`` folder), labels optional in
                       ``PATH/labels/`` under the same file names; the split from
                       ``PATH/split.json`` or by default (:func:`default_split`)
=====================  ==================================================================

A split file (``PATH/split.json`` of a folder, or any file given as ``split_file``) may
hold any of these keys; what it leaves out takes the default::

    {"template": "patient07",                  # the scan every test scan is registered to
     "test": ["patient01", "patient04"],       # registered to the template and scored
     "train": ["patient02", "patient03"],      # default: every scan that is not a test scan
     "labels": {"1": "liver", "2": "spleen"}}  # names of the label values

Every source opened with :func:`open_source` is a :class:`DataSource`: its split, its
label names, its *identity* (what the caches are keyed by: the phantom's parameters, or
the folder's path and a digest of the names, sizes and modification times of its files)
and :meth:`DataSource.load`, which returns one scan on the preset's grid
(:func:`slicreg_lite.cohort.preprocessing.to_grid`).

Examples
--------
>>> from slicreg_lite.core.config import get_config
>>> source = open_source("phantom", get_config("smoke"))
>>> source.split.template_id, source.split.evaluation_ids, source.is_btcv
(38, (1, 4, 7), True)
>>> source.load(38).shape
(32, 28, 36)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..core.checks import SubjectId
from ..core.config import (
    Config,
    GridConfig,
    PhantomConfig,
    SplitConfig,
    get_config,
    is_real_ct,
)
from ..core.labels import BTCV_LABELS, is_btcv, name_labels
from .layouts import (
    SPLIT_FILENAME,
    bcv_files,
    check_files,
    folder_files,
    learn2reg_files,
    learn2reg_label_names,
    learn2reg_split,
    parse_label_names,
    read_learn2reg_description,
    read_split_file,
    read_subject,
)
from .phantom import PHANTOM_VERSION, generate_subject
from .preprocessing import to_grid
from .subject import Subject

PathLike = Union[str, os.PathLike]

#: The kinds of data source and the form of their strings.
SOURCE_FORMS = ("phantom", "bcv:PATH", "learn2reg:PATH", "folder:PATH")
#: Bump when reading or pre-processing real scans changes its results.
READER_VERSION = 1


def default_split(ids) -> dict:
    """The split of a folder of scans that has no split file.

    The scans sorted by id; the **first** is the template; of the others, the **last
    third** (at least one) are test scans and the rest train the network.

    Examples
    --------
    >>> default_split(["a", "b", "c", "d", "e", "f", "g"])
    {'template': 'a', 'test': ['a', 'f', 'g'], 'train': ['b', 'c', 'd', 'e']}
    """
    ids = sorted(ids)
    template, others = ids[0], ids[1:]
    n_test = max(1, round(len(others) / 3))
    return {"template": template, "test": [template, *others[len(others) - n_test:]],
            "train": others[:len(others) - n_test]}


# ------------------------------------------------------------------------ data sources
@dataclass
class DataSource:
    """A cohort: where its scans come from, its split, its labels, its identity.

    Open one with :func:`open_source`; do not build it by hand.

    Attributes
    ----------
    spec : str
        The string it was opened from, e.g. ``"phantom"`` or ``"bcv:/data/BCV"``.
    kind : {"phantom", "bcv", "learn2reg", "folder"}
    split : SplitConfig
        Training ids, test ids and the template.
    label_names : dict of int -> str, or None
        Label number -> organ name; None when the source does not name its labels (they
        are then called "label 1", ... after the values found in the template).
    identity : dict
        What the caches are keyed by, JSON-ready: the phantom's parameters and version, or
        the folder's path and a digest of the names, sizes and modification times of
        every file that is read.
    grid : GridConfig
        The preset's grid that :meth:`load` brings every scan onto.
    files : dict
        Subject id -> :class:`ScanFiles` (empty for the phantom).
    phantom : PhantomConfig or None
        The phantom's parameters (for ``kind == "phantom"``).
    options : dict
        The ``template`` and ``split_file`` it was opened with (to open it again for
        another preset).
    opened_for : str
        A hash of the preset sections it depends on (grid, phantom, split).
    """

    spec: str
    kind: str
    split: SplitConfig
    label_names: Optional[dict]
    identity: dict
    grid: GridConfig
    files: dict = field(default_factory=dict)
    phantom: Optional[PhantomConfig] = None
    options: dict = field(default_factory=dict)
    opened_for: str = ""

    @property
    def key(self) -> str:
        """12 hexadecimal characters that change with :attr:`identity`."""
        return short_hash(self.identity)

    @property
    def label(self) -> str:
        """A readable, unique folder name for the caches: ``"phantom"``,
        ``"bcv-AbdomenIsoCrop-3f2a1c"`` (kind, folder name, a hash of the path)."""
        if self.kind == "phantom":
            return "phantom"
        path = self.identity["path"]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).name) or "data"
        return f"{self.kind}-{name}-{short_hash(path)[:6]}"

    @property
    def is_btcv(self) -> bool:
        """Whether the labels are the 13 BTCV organs (the paper's columns apply)."""
        return self.label_names is not None and is_btcv(self.label_names)

    def load(self, subject_id: SubjectId) -> Subject:
        """One scan on the preset's grid (reoriented, resampled, cropped or padded).

        Use :func:`slicreg_lite.pipeline.stages.cohort` to read scans through the cache instead.

        Raises
        ------
        ValueError
            If ``subject_id`` is not in this source, or the files are invalid.
        """
        subject_id = self.find(subject_id)
        if self.kind == "phantom":

            return generate_subject(subject_id, self.phantom, self.grid)
        return to_grid(read_subject(subject_id, self.files[subject_id]), self.grid)

    def find(self, subject_id) -> SubjectId:
        """The id of one of this source's scans, also when written as text (``"38"``).

        Raises
        ------
        ValueError
            If there is no such scan.
        """
        return _match_id(self.split.all_ids, subject_id, f"subject_id (data {self.spec!r})")

    def names_for(self, label_values) -> dict[int, str]:
        """Label names for the values found in a label map (e.g. the template's), by the
        one naming rule (:func:`~slicreg_lite.core.labels.name_labels`)."""
        return name_labels(label_values, self.label_names)


def short_hash(content) -> str:
    """12 hexadecimal characters of the SHA-256 of any JSON-ready value (sorted keys)."""
    blob = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def open_source(data: Union[str, DataSource] = "phantom", cfg: Config | None = None, *,
                template: SubjectId | None = None,
                split_file: PathLike | None = None) -> DataSource:
    """Open a data source from its string (module docstring), for one preset.

    Parameters
    ----------
    data : str or DataSource
        ``"phantom"``, ``"bcv:PATH"``, ``"learn2reg:PATH"`` or ``"folder:PATH"``. A
        :class:`DataSource` is returned as it is when it was opened for ``cfg``'s grid,
        phantom and split, and opened again for ``cfg`` otherwise.
    cfg : Config, optional
        The preset (its grid; for the phantom and BCV also its split). Default: the
        ``SLICREG_PRESET`` environment variable, else ``lite``.
    template : int or str, optional
        Another template than the source's (it must be one of its scans; a training scan
        chosen as template becomes a test scan).
    split_file : str or os.PathLike, optional
        A split file (module docstring) for a Learn2Reg task or a folder; a folder's own
        ``split.json`` is read without it.

    Returns
    -------
    DataSource

    Raises
    ------
    ValueError
        For an unknown form of ``data``, a split that does not fit the scans (fewer than
        3 scans, a template or test id that is not in the data, no training scan), or an
        invalid file (named in the message).
    FileNotFoundError
        For a missing folder or file.
    """
    cfg = get_config() if cfg is None else cfg
    if isinstance(data, DataSource):
        if data.opened_for == _preset_key(cfg):
            return data
        return open_source(data.spec, cfg, **data.options)
    if not isinstance(data, str):
        raise ValueError(f"data must be a string such as {' / '.join(SOURCE_FORMS)}; "
                         f"got {type(data).__name__}")
    kind, _, location = data.partition(":")
    kind = kind.strip().lower()
    openers = {"bcv": _open_bcv, "learn2reg": _open_learn2reg, "folder": _open_folder}
    if data.strip().lower() == "phantom":
        source = _open_phantom(cfg)
    elif kind in openers and location.strip():
        source = openers[kind](Path(location.strip()).expanduser(), cfg, split_file)
    else:
        raise ValueError(f"data: expected one of {', '.join(SOURCE_FORMS)}; got {data!r}")
    if template is not None:
        source = _with_template(source, template)
    source.options = {"template": template, "split_file": split_file}
    source.opened_for = _preset_key(cfg)
    return source


def _preset_key(cfg: Config) -> str:
    """What a source takes from the preset: its grid, the phantom, the paper's split."""
    return short_hash([dataclasses.asdict(cfg.grid), dataclasses.asdict(cfg.phantom),
                       dataclasses.asdict(cfg.split)])


def _open_phantom(cfg: Config) -> DataSource:

    identity = {"source": "phantom", "version": PHANTOM_VERSION,
                "phantom": dataclasses.asdict(cfg.phantom)}
    return DataSource("phantom", "phantom", cfg.split, dict(BTCV_LABELS), identity, cfg.grid,
                      phantom=cfg.phantom)


def _open_bcv(root: Path, cfg: Config, split_file) -> DataSource:
    # the paper's split; the phantom's validation subjects do not exist among real scans
    split = dataclasses.replace(cfg.split, validation_ids=())
    files = bcv_files(root, split.all_ids)
    if split_file is not None:
        split, _ = _apply_split_file(split_file, files, split)
    return _file_source("bcv", root, files, split, dict(BTCV_LABELS), cfg, extra=[split_file])


def _open_learn2reg(root: Path, cfg: Config, split_file) -> DataSource:
    path, description = read_learn2reg_description(root)
    files = learn2reg_files(root)
    labels = learn2reg_label_names(description, path)
    chosen = learn2reg_split(description, files, path) or default_split(files)
    split = _split_from(chosen, files, str(path))
    if split_file is not None:
        split, named = _apply_split_file(split_file, files, split)
        labels = named if named is not None else labels
    return _file_source("learn2reg", root, files, split, labels, cfg,
                        extra=[path, split_file])


def _open_folder(root: Path, cfg: Config, split_file) -> DataSource:
    files = folder_files(root)
    split = _split_from(default_split(files), files, "the default split")
    own = root / SPLIT_FILENAME
    split_file = split_file if split_file is not None else (own if own.is_file() else None)
    labels = None
    if split_file is not None:
        split, labels = _apply_split_file(split_file, files, split)
    return _file_source("folder", root, files, split, labels, cfg, extra=[split_file])


def _apply_split_file(path, files: dict, split: SplitConfig) -> tuple[SplitConfig, dict | None]:
    """The split (and label names) of a split file; what it leaves out stays as it was."""
    content = read_split_file(path)
    chosen = {"template": split.template_id, "test": list(split.test_ids),
              "train": list(split.train_ids)}
    if "test" in content or "template" in content:
        chosen.pop("train")  # recomputed: every scan that is not a test scan
    chosen.update({k: content[k] for k in ("template", "test", "train") if k in content})
    labels = content.get("labels")
    labels = None if labels is None else parse_label_names(labels, f"'labels' in {str(path)!r}")
    return _split_from(chosen, files, str(path)), labels


def _split_from(chosen: dict, files: dict, where: str) -> SplitConfig:
    """A checked SplitConfig from ``{"template", "test", "train"?}`` and the scans."""
    ids = list(files)

    def known(value, key):
        return _match_id(ids, value, f"{key} (from {where})")

    if len(ids) < 3:
        raise ValueError(f"data: need at least 3 scans (a template, a test scan and a training "
                         f"scan); found {len(ids)}: {ids}")
    template = known(chosen["template"], "template")
    test = [known(i, "test id") for i in chosen["test"]]
    test = list(dict.fromkeys([*test, template] if template not in test else test))
    train = ([known(i, "training id") for i in chosen["train"]] if "train" in chosen
             else [i for i in ids if i not in test])
    train = [i for i in dict.fromkeys(train) if i not in test]
    if len(test) < 2:
        raise ValueError(f"data: need at least one test scan besides the template "
                         f"{template!r} (from {where}); got test ids {test}")
    if not train:
        raise ValueError(f"data: need at least one training scan (from {where}); every scan "
                         "is a test scan")
    return SplitConfig(tuple(train), tuple(test), template)


def _with_template(source: DataSource, template) -> DataSource:
    split = source.split
    template = _match_id(split.all_ids, template, f"template (data {source.spec!r})")
    test = split.test_ids if template in split.test_ids else (*split.test_ids, template)
    train = tuple(i for i in split.train_ids if i != template)
    validation = tuple(i for i in split.validation_ids if i != template)
    if not train:
        raise ValueError(f"template {template!r} was the only training scan; choose another")
    return dataclasses.replace(source, split=SplitConfig(train, tuple(test), template,
                                                         validation))


def _file_source(kind: str, root: Path, files: dict, split: SplitConfig, labels, cfg: Config,
                 extra=()) -> DataSource:
    """A source of files: checked headers, and the identity from the files' metadata."""
    used = {i: files[i] for i in split.all_ids}
    check_files(used)
    root = root.resolve()
    paths = [p for scan in used.values() for p in (scan.image, scan.label) if p is not None]
    paths += [Path(p) for p in extra if p is not None]
    identity = {"source": kind, "path": str(root), "version": READER_VERSION,
                "files": files_digest(paths, root)}
    return DataSource(f"{kind}:{root}", kind, split, labels, identity, cfg.grid, files=used)


def files_digest(paths, root: Path) -> str:
    """A digest of the names (relative to ``root``), sizes and modification times of files.

    Cheap (no file is read) and it changes when a file is replaced, edited or touched.
    """
    lines = []
    for path in sorted(Path(p).resolve() for p in paths):
        stat = path.stat()
        name = os.path.relpath(path, root)
        lines.append(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _match_id(ids, value, what: str) -> SubjectId:
    """The id in ``ids`` that ``value`` names; numbered ids may be written as text."""
    match = [i for i in ids if i == value or str(i) == str(value).strip()]
    if not match:
        raise ValueError(f"{what}: {value!r} is not one of the scans; expected one of "
                         f"{_shorten(ids)}")
    return match[0]


def _shorten(ids, n: int = 8) -> str:
    ids = list(ids)
    return str(ids[:n])[:-1] + (", ...]" if len(ids) > n else "]")


#: The environment variable that chooses a notebook's data source (like ``--data``).
DATA_ENV = "SLICREG_DATA"


def setup(preset: str | None = None, data: str | None = None) -> tuple[Config, DataSource]:
    """The preset and the data source a notebook or a script works on: every notebook's
    first line of code.

    Parameters
    ----------
    preset : {"smoke", "lite", "paper"}, optional
        Default: the ``SLICREG_PRESET`` environment variable, else ``"lite"``.
    data : str, optional
        A data source (``"phantom"``, ``"bcv:PATH"``, ...). Default: the
        ``SLICREG_DATA`` environment variable, else ``"phantom"``. Real CT gets the
        teacher's settings for real CT (:func:`~slicreg_lite.core.config.is_real_ct`).

    Returns
    -------
    cfg : Config
    data : DataSource

    Examples
    --------
    >>> cfg, data = setup("smoke", "phantom")
    >>> cfg.name, data.kind, data.split.template_id
    ('smoke', 'phantom', 38)
    """
    data = data or os.environ.get(DATA_ENV) or "phantom"
    cfg = get_config(preset, real_ct=is_real_ct(data))
    return cfg, open_source(data, cfg)
