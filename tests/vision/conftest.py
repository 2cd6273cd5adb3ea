"""Shared fixtures: a few hundred real Fashion-MNIST images, loaded once."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def fmnist_small():
    from recbackdoor.data import fashion_mnist as fm

    try:
        fm.check_files()
    except Exception as exc:  # noqa: BLE001 - the data folder is optional for a text-only checkout
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    torch.set_num_threads(1)
    train = fm.load_split("train")
    idx = fm.per_class_sample(train.labels, [0, 2, 3, 4, 5, 6, 7, 9], 80, seed=0)
    return train.subset(idx)


@pytest.fixture(scope="session")
def fmnist_test_small():
    from recbackdoor.data import fashion_mnist as fm

    try:
        test = fm.load_split("test")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    return test.subset(fm.per_class_sample(test.labels, [0, 2, 3, 4, 5, 6, 7, 9], 40, seed=1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
