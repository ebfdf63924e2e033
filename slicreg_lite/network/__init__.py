"""Step 3 of Slic-Reg (notebook 03): the network that predicts the template's supervoxels
on a new scan.

- :mod:`~slicreg_lite.network.models`: MobileNetV2-3D, ASPP, DeepLab, UNet, the heads;
- :mod:`~slicreg_lite.network.training`: training on the teacher's supervoxels;
- :mod:`~slicreg_lite.network.domain`: whether a scan is like the training scans (else a
  network's result cannot be trusted)."""

