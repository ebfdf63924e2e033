"""Below the steps (every notebook): what every step uses, and nothing above it.

- :mod:`~slicreg_lite.core.config`: the presets (smoke / lite / paper), every parameter;
- :mod:`~slicreg_lite.core.labels`: label names and the paper's constants, defined once;
- :mod:`~slicreg_lite.core.spatial`: the coordinate convention, warping and resampling;
- :mod:`~slicreg_lite.core.checks`: input checks with clear errors;
- :mod:`~slicreg_lite.core.files`: atomic writes;
- :mod:`~slicreg_lite.core.metrics`: the measures, and the one scoring function
  :func:`~slicreg_lite.core.metrics.score_registration`;
- :mod:`~slicreg_lite.core.dice_table`: the paper's table of Dice scores;
- :mod:`~slicreg_lite.core.version`: the package version."""

