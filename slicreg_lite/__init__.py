"""slicreg_lite: Slic-Reg (Heinrich, MIDL 2021) as a small teaching toolkit.

The package follows the method's steps, one folder each; the notebooks in ``notebooks/``
narrate, the package computes:

============================  ===========  ============================================
folder                        notebook     what it does
============================  ===========  ============================================
:mod:`~slicreg_lite.cohort`   00           step 0: the scans (phantom, BCV, Learn2Reg,
                                           your own), onto the preset's grid
``supervoxels``               01           step 1: layers of SLIC supervoxels on the
                                           template
``teacher``                   02           step 2: deeds-lite carries them onto the
                                           training scans
``network``                   03           step 3: a network learns to predict them
``alignment``                 04           step 4: Adam aligns the predicted supervoxels
``evaluation``                05           step 5: every method on the test scans
============================  ===========  ============================================

Below the steps, :mod:`~slicreg_lite.core` (presets, labels, coordinates, scores); above
them, :mod:`~slicreg_lite.methods` (the registration methods and their table),
:mod:`~slicreg_lite.pipeline` (the cached stages), :mod:`~slicreg_lite.evaluation`,
:mod:`~slicreg_lite.apps` (the command line) and :mod:`~slicreg_lite.display`.

The names a notebook or a script needs are here::

    import slicreg_lite as sl
    cfg, data = sl.setup("lite", "phantom")
    slicreg = sl.load_method(cfg, data, "slicreg")
    result = slicreg.register(moving_image)
    pair = slicreg.register(moving_image, fixed=other_image)  # neither the template
"""

from .apps.learn2reg import write_submission
from .apps.register import register_scans
from .cohort.sources import open_source, setup
from .core.config import get_config
from .core.metrics import score_registration
from .core.version import __version__
from .evaluation import evaluate, evaluate_pairs
from .methods import METHODS, Registration, method_named
from .pipeline import load_method, stages

__all__ = [
    "METHODS", "Registration", "__version__", "evaluate", "evaluate_pairs", "get_config",
    "load_method", "method_named", "open_source", "register_scans", "score_registration",
    "setup", "stages", "write_submission",
]
