"""Where data and caches live; both are outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "RECBACKDOOR_DATA"
CACHE_ENV = "RECBACKDOOR_CACHE"


def data_root() -> Path:
    """The folder holding one sub-folder per dataset.

    Defaults to ``../shared/data`` relative to the working directory only
    because that is where this project's CI keeps it; users set
    ``RECBACKDOOR_DATA``.
    """
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path("../shared/data").resolve()


def cache_root() -> Path:
    """Stage cache (trained models, hidden-state caches, converted checkpoints)."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "recbackdoor"
    root.mkdir(parents=True, exist_ok=True)
    return root
