"""Shared fixtures: real data root, offline hub, a per-session stage cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RECBACKDOOR_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    from recbackdoor.paths import data_root as root

    path = root()
    if not (path / "ml100k" / "u.data").exists() and not (path / "ml-100k" / "u.data").exists():
        pytest.fail(f"real data not found under {path}; set RECBACKDOOR_DATA")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A stage cache shared by the tests of one session (backbones are built once)."""
    from recbackdoor.cache import StageCache

    env = os.environ.get("RECBACKDOOR_CACHE")
    return StageCache(Path(env) if env else tmp_path_factory.mktemp("cache"))
