"""Cache of frozen-layer hidden states, keyed by the exact token sequence.

Shared by every model of an experiment, persisted to the stage cache so a
resumed run does not recompute them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recbackdoor.victims.text.split_lm import SplitLM


def _key(tokens: Sequence[int]) -> str:
    return hashlib.sha1(",".join(map(str, tokens)).encode()).hexdigest()


class StateStore:
    def __init__(self, lm: SplitLM, path: Path | None = None) -> None:
        self.lm = lm
        self.path = path
        self.states: dict[str, torch.Tensor] = {}
        self._dirty = False
        if path is not None and path.exists():
            self.states = load_file(str(path))

    def get(self, token_lists: Sequence[list[int]], batch_size: int = 16, desc: str = "frozen layers"
            ) -> list[torch.Tensor]:
        keys = [_key(t) for t in token_lists]
        missing = {k: t for k, t in zip(keys, token_lists, strict=True) if k not in self.states}
        if missing:
            new = self.lm.bottom_states(list(missing.values()), batch_size=batch_size, desc=desc)
            self.states.update(zip(missing, new, strict=True))
            self._dirty = True
        return [self.states[k] for k in keys]

    def save(self) -> None:
        if self.path is None or not self._dirty or not self.lm.processes.is_main:
            return
        # a per-process temporary name: two runs sharing one store must not write the same file;
        # the last rename wins and the loser's new states are recomputed when next needed
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in self.states.items()}, str(tmp))
        tmp.replace(self.path)
        self._dirty = False
