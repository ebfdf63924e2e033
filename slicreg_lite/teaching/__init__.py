"""The notebooks' exercises and their checks (:mod:`~slicreg_lite.teaching.exercises`)."""

