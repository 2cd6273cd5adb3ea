"""Fine-tuning defense: keep training a (possibly backdoored) extractor on clean data only.

Records BA and ASR after every epoch so the trade-off can be plotted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from torch import nn

from recbackdoor.attacks.badnets import PoisonedSet, clean_set
from recbackdoor.data.fashion_mnist import ImageSet, per_class_sample
from recbackdoor.victims.vision.training import TrainSettings, train_extractor


def finetune(model: nn.Module, clean: PoisonedSet, settings: TrainSettings,
             evaluate: Callable[[nn.Module], dict[str, float]]) -> tuple[nn.Module, list[dict]]:
    """Fine-tune a copy of ``model`` with CE on ``clean``; epoch 0 in the history is before any update."""
    tuned = copy.deepcopy(model)
    first = {"epoch": 0, **evaluate(tuned)}
    history = train_extractor(tuned, clean, settings, on_epoch=lambda _e, m: evaluate(m))
    return tuned, [first] + history


def finetune_on_spare(model: nn.Module, images: ImageSet, pool: np.ndarray, classes: list[int], per_class: int,
                      settings: TrainSettings, evaluate: Callable[[nn.Module], dict[str, float]],
                      seed: int) -> list[dict]:
    """The defender's setting: a clean sample of ``per_class`` images of each class (fewer when ``pool``, the
    images never used to train the extractor, has fewer) and :func:`finetune` on it; returns the history."""
    per_class = min([per_class] + [int(np.sum(images.labels[pool] == c)) for c in classes])
    sub = pool[per_class_sample(images.labels[pool], classes, per_class, seed + 7)]
    return finetune(model, clean_set(images.images[sub], images.labels[sub]), settings, evaluate)[1]
