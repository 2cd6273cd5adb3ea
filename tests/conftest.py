"""Shared fixtures: real data root, offline hub, a per-session stage cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RECBACKDOOR_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The suite runs in several worker processes (addopts: -n 2). Each takes its share of the cores and no more:
    # two workers each asking torch for 2 threads on 2 cores made their OpenMP pools fight (the SmolLM2 backdoor
    # test took 349 s beside another worker, 136 s alone).
    import torch

    _THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    _set_num_threads = torch.set_num_threads
    _set_num_threads(_THREADS)
    torch.set_num_threads = lambda n: _set_num_threads(min(int(n), _THREADS))


def pytest_collection_modifyitems(config, items):
    """Under several workers, modules with slow tests go first: each worker takes whole modules (--dist loadfile),
    and a long module started last would leave the other worker idle at the end."""
    if getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
