"""Step 0 of Slic-Reg (notebook 00): the scans.

- :mod:`~slicreg_lite.cohort.subject`: one scan (image, labels, affine);
- :mod:`~slicreg_lite.cohort.phantom`: the synthetic abdominal CT cohort, with its exact
  ground truth;
- :mod:`~slicreg_lite.cohort.sources`: where a cohort comes from (the phantom, BCV,
  Learn2Reg, a folder of your own NIfTI scans) and its split;
- :mod:`~slicreg_lite.cohort.layouts`: the file layouts they are read from and written to;
- :mod:`~slicreg_lite.cohort.nifti`: NIfTI files in any orientation;
- :mod:`~slicreg_lite.cohort.preprocessing`: every scan onto the preset's grid;
- :mod:`~slicreg_lite.cohort.downloads`: verified downloads of the real data."""

