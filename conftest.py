"""Test-wide settings: the smoke preset, a private cache, and a calm hypothesis profile."""

import os
import tempfile

from hypothesis import HealthCheck, settings

# Notebook kernels started by nbval inherit these: they run the smoke preset, write their
# cache into a temporary folder instead of data/cache, and may train (see below).
os.environ.setdefault("SLICREG_PRESET", "smoke")
os.environ.setdefault("SLICREG_CACHE", tempfile.mkdtemp(prefix="slicreg-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")
# Nothing is shipped for smoke: its networks train in seconds, so the notebooks may train.
os.environ.setdefault("SLICREG_TRAIN", "1")

# Shared, noisy machines: no per-example deadline; a fixed number of examples.
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
