"""On top: the command line (:mod:`~slicreg_lite.apps.cli`, ``python -m slicreg_lite``) and
registering your own NIfTI files (:mod:`~slicreg_lite.apps.register`)."""

