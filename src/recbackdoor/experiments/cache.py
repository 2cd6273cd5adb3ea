"""Moved to :mod:`recbackdoor.cache` (victims and defenses use it; they must not import from experiments).

Kept only for modules that other work in progress still imports it from (``cli.py``,
``defenses/vision/calibration.py``, ``tests/vision/test_experiment.py``,
``benchmarks/vision_trigger_inversion.py``); delete this file once they import ``recbackdoor.cache``.
"""

from recbackdoor.cache import DONE_MARKER, StageCache, stable_hash

__all__ = ["DONE_MARKER", "StageCache", "stable_hash"]
