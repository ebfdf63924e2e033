"""slicreg_lite: Slic-Reg (Heinrich, MIDL 2021) as a small teaching toolkit.

One module per step of the method; the notebooks in ``notebooks/`` narrate, this
package computes:

- :mod:`slicreg_lite.config`: presets (smoke / lite / paper) with every parameter;
- :mod:`slicreg_lite.spatial`: the coordinate convention, warping and resampling;
- :mod:`slicreg_lite.phantom`: the synthetic abdominal CT cohort with 13 BTCV labels;
- :mod:`slicreg_lite.subject`, :mod:`slicreg_lite.sources`, :mod:`slicreg_lite.layouts`:
  a scan, where a cohort comes from (the phantom, BCV, Learn2Reg, a folder of your own
  NIfTI scans) and the file layouts they are read from and written to;
- :mod:`slicreg_lite.nifti`, :mod:`slicreg_lite.preprocessing`,
  :mod:`slicreg_lite.downloads`: NIfTI files, every scan onto the preset's grid,
  verified downloads of the real data;
- :mod:`slicreg_lite.supervoxels`, :mod:`slicreg_lite.teacher`,
  :mod:`slicreg_lite.networks` / :mod:`slicreg_lite.training`, :mod:`slicreg_lite.adamreg`
  and :mod:`slicreg_lite.regression`: steps 1 to 4 of the method;
- :mod:`slicreg_lite.metrics`: Dice tables and Jacobian statistics;
- :mod:`slicreg_lite.viz` and :mod:`slicreg_lite.widgets`: figures and sliders;
- :mod:`slicreg_lite.cache`, :mod:`slicreg_lite.stages`, :mod:`slicreg_lite.weights`: the
  stages of the method with their on-disk cache, and the shipped network weights;
- :mod:`slicreg_lite.registration`, :mod:`slicreg_lite.register`: one object per
  registration method, and the ``register`` command on NIfTI files;
- :mod:`slicreg_lite.evaluation`: every method on the test scans, the paper's table.
"""

__version__ = "0.1.0"
