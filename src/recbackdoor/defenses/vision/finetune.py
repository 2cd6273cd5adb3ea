"""Fine-tuning defense: keep training a (possibly backdoored) extractor on clean data only.

Records BA and ASR after every epoch so the trade-off can be plotted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from recbackdoor.attacks.badnets import PoisonedSet
from recbackdoor.victims.vision.training import TrainSettings, train_extractor


def finetune(model: nn.Module, clean: PoisonedSet, settings: TrainSettings,
             evaluate: Callable[[nn.Module], dict[str, float]]) -> tuple[nn.Module, list[dict]]:
    """Fine-tune a copy of ``model`` with CE on ``clean``; epoch 0 in the history is before any update."""
    tuned = copy.deepcopy(model)
    first = {"epoch": 0, **evaluate(tuned)}
    history = train_extractor(tuned, clean, settings, on_epoch=lambda _e, m: evaluate(m))
    return tuned, [first] + history
