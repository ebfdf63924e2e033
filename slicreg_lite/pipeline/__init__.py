"""The cached pipeline, above the steps: each stage computed once, then read from the cache.

- :mod:`~slicreg_lite.pipeline.cache`: the cache's keys (what decides a result) and
  folders;
- :mod:`~slicreg_lite.pipeline.stages`: the stages of the method, from the cohort to the
  trained networks;
- :mod:`~slicreg_lite.pipeline.weights`: the shipped network weights and their manifest;
- :mod:`~slicreg_lite.pipeline.load`: a registration method of the table, built from the
  cache (:func:`load_method`)."""

from .load import load_method

__all__ = ["load_method"]
