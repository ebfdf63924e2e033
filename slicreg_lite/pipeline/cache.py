"""The stage cache: one folder per stage, named by what decides its result.

Every stage of :mod:`slicreg_lite.pipeline.stages` stores what it computed under::

    <cache root>/<preset>/<data source>/<stage>-v<version>-<package version>-<key>/

``<data source>`` is ``phantom`` or, for files, the kind, the folder's name and a hash of
its path (``bcv-AbdomenIsoCrop-3f2a1c``). ``<key>`` is a hash of everything that decides
the result: the data source's identity (for files: a digest of their names, sizes and
modification times), the preset's grid, the split, the config sections the stage depends
on. Change any of them and the stage is computed anew, never silently reused; how a run is
executed (:class:`~slicreg_lite.core.config.RunSettings`: parallel jobs, device, progress bars)
is not part of the key, so it never invalidates a cache. Each folder records its key's
content in ``config.json``.

Files are written atomically (:mod:`slicreg_lite.core.files`), so an interrupted run leaves no
half-written file behind; a later run simply continues. A file that cannot be read is
computed again, with a warning.

The cache root is ``$SLICREG_CACHE`` if set, else ``data/cache`` in a source checkout,
else ``~/.cache/slicreg_lite``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
import zipfile
from pathlib import Path

from ..cohort.sources import DataSource, short_hash
from ..core.config import Config, RunSettings
from ..core.files import CHECKOUT, atomic_write_json
from ..core.version import __version__

CACHE_ENV = "SLICREG_CACHE"
#: What reading a damaged cache file raises (it is then recomputed).
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def cache_root() -> Path:
    """Folder that holds every preset's cache (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if (CHECKOUT / "pyproject.toml").exists():
        return CHECKOUT / "data" / "cache"
    return Path.home() / ".cache" / "slicreg_lite"


def decided_by(cfg: Config, data: DataSource, sections: tuple[str, ...] = (), *,
               with_split: bool = True) -> dict:
    """Everything that decides a stage's result, as a JSON-ready dict.

    Parameters
    ----------
    cfg : Config
    data : DataSource
    sections : tuple of str
        The config sections the stage depends on besides the grid, e.g. ``("teacher",)``.
    with_split : bool
        Whether the split matters (not for reading one scan, say).
    """
    everything = cfg.to_dict()
    unknown = [s for s in sections if s not in everything or s == "name"]
    if unknown:
        raise ValueError(f"unknown config section(s) {unknown}; expected some of "
                         f"{[k for k in everything if k != 'name']}")
    content = {"data": data.identity, "grid": everything["grid"]}
    if with_split:
        split = dataclasses.asdict(data.split)
        # which subjects are held out to choose settings decides no cached result: the
        # per-subject stages store each subject on its own, and networks learn from the
        # training subjects only
        split.pop("validation_ids")
        content["split"] = json.loads(json.dumps(split))
    content.update({s: everything[s] for s in sections})
    return content


def stage_dir(cfg: Config, data: DataSource, stage: str, sections: tuple[str, ...],
              version: int, *, with_split: bool = True) -> Path:
    """The cache folder of one stage for one configuration and one data source.

    Parameters
    ----------
    cfg : Config
    data : DataSource
    stage : str
        Name of the stage, e.g. ``"cohort"``.
    sections : tuple of str
        The config sections the stage's result depends on (see :func:`decided_by`).
    version : int
        The stage's own version: bump it when its code changes its results.
    with_split : bool
        Whether the split decides the result.
    """
    content = decided_by(cfg, data, sections, with_split=with_split)
    parent = cache_root() / cfg.name / data.label
    folder = parent / f"{stage}-v{version}-{__version__}-{short_hash(content)}"
    # through JSON, as it is stored: tuples become lists, keys strings
    expected = json.loads(json.dumps({"stage": stage, "preset": cfg.name, "version": version,
                                      "package_version": __version__, **content}))
    manifest = folder / "config.json"
    if not folder.exists():
        # say so when an older version, other parameters or changed files left a cache
        others = sorted(p.name for p in parent.glob(f"{stage}-v*") if p.is_dir())
        if others:
            warnings.warn(f"the cache of stage {stage!r} in {parent} was written by another "
                          f"version, with other parameters or from other files "
                          f"({', '.join(others)}); it is not reused: computing {folder.name}",
                          stacklevel=3)
    elif manifest.exists():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError):
            found = None
        if found != expected:
            # a folder copied from another preset, or edited by hand: never trust it
            warnings.warn(f"cache folder {folder} was written for "
                          f"{(found or {}).get('preset', 'unknown')!r} with other parameters "
                          "than its name says; emptying it and computing anew", stacklevel=3)
            for item in folder.iterdir():
                if item.is_file():
                    item.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        atomic_write_json(manifest, expected)
    return folder


def per_subject(ids, paths: dict, load, job, *, run: RunSettings, desc: str) -> dict:
    """Read each subject's cached result, compute the missing ones in parallel.

    Parameters
    ----------
    ids : sequence
        The subjects, in the order of the result.
    paths : dict
        Subject id -> its cache file.
    load : callable
        ``load(path)`` reads one result back.
    job : callable
        ``job(missing_ids, threads)`` yields one joblib ``delayed`` call per missing
        subject, each writing ``paths[i]``; ``threads`` is the number of torch threads
        each worker should use so that the workers share the cores.
    run : RunSettings
        ``run.workers`` parallel processes (1: in this process), ``run.progress``.
    desc : str
        The progress bar's text.

    Returns
    -------
    dict
        Subject id -> result, in the order of ``ids``. An unreadable file is recomputed
        with a warning.
    """
    from joblib import Parallel
    from tqdm.auto import tqdm

    results = {}
    for i, path in paths.items():
        if path.exists():
            try:
                results[i] = load(path)
            except UNREADABLE as error:
                warnings.warn(f"cached result {path} is unreadable ({error}); recomputing it",
                              stacklevel=3)
    missing = [i for i in ids if i not in results]
    if missing:
        workers = min(run.workers, len(missing)) if run.workers > 0 else run.workers
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        runner = Parallel(n_jobs=workers, return_as="generator_unordered")
        with warnings.catch_warnings():
            # loky replaces a worker whose memory grew a lot since its first task (the
            # teacher's cost volumes do): every job still completes, the notice is noise
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs")
            for _ in tqdm(runner(job(missing, threads)), total=len(missing), desc=desc,
                          disable=not run.progress):
                pass
        for i in missing:
            results[i] = load(paths[i])
    return {i: results[i] for i in ids}

