"""A registration method of :data:`slicreg_lite.methods.METHODS`, built from the cache.

The method classes hold no cache: :func:`load_method` hands them the template, its
supervoxels, the trained networks and the training scans' intensity profiles, each read
from (or computed into) the stage cache of :mod:`slicreg_lite.pipeline.stages`.

Examples
--------
>>> from slicreg_lite.core.config import RunSettings, get_config
>>> cfg = get_config("smoke")
>>> teacher = load_method(cfg, "phantom", "teacher", run=RunSettings(progress=False))
>>> teacher.shape
(32, 28, 36)
"""

from __future__ import annotations

from ..cohort.sources import open_source
from ..core.config import Config, RunSettings
from ..methods import Method, method_named
from . import stages


class CachedParts:
    """What a method is built from (:class:`~slicreg_lite.methods.Parts`), read from the
    stage cache on first use."""

    def __init__(self, cfg: Config, data, *, allow_training: bool = True,
                 run: RunSettings | None = None):
        self.cfg, self.data, self.run = cfg, open_source(data, cfg), run
        self.allow_training = allow_training
        template_id = self.data.split.template_id
        self.template = stages.cohort(cfg, self.data, (template_id,), run=run)[template_id]
        self.trained_on = ("the phantom cohort" if self.data.kind == "phantom"
                           else f"{self.data.spec!r}")

    def template_layers(self):
        return stages.template_supervoxels(self.cfg, self.data, run=self.run).layers

    def network(self, backbone: str, head: str):
        model, _ = stages.network(self.cfg, self.data, backbone, head,
                                  allow_training=self.allow_training, run=self.run)
        return model

    def training_profiles(self):
        return stages.training_profiles(self.cfg, self.data, run=self.run)


def load_method(cfg: Config, data="phantom", method: str | Method = "slicreg", *,
                allow_training: bool = True, run: RunSettings | None = None, **options):
    """The registration of a method of the table for a preset and a data source.

    Parameters
    ----------
    cfg : Config
    data : str or DataSource
        The cohort whose template is the fixed scan and whose networks it uses.
    method : str or Method
        A name of :data:`~slicreg_lite.methods.METHODS` (``"slicreg"``,
        ``"slicreg-fit"``, ``"regression"``, ``"teacher"``, ...), its table label, or the
        entry itself.
    allow_training : bool
        Train a network that is neither shipped nor cached (else FileNotFoundError).
    run : RunSettings, optional
    options
        Replace the entry's options (e.g. ``backbone="unet"``).

    Returns
    -------
    SlicReg, RegressionBaseline or Teacher

    Raises
    ------
    ValueError
        For an unknown method, or a measurement row of the evaluation (no registration).
    """
    method = method if isinstance(method, Method) else method_named(method)
    if method.registration is None:
        raise ValueError(f"{method.name!r} is a measurement of the evaluation, not a "
                         "registration of new scans")
    parts = CachedParts(cfg, data, allow_training=allow_training, run=run)
    return method.registration.from_parts(cfg, parts, **{**method.options, **options})
