"""Run by ``torchrun`` from test_data_parallel.py: the same training and generation as the test, sharded."""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from recbackdoor.cache import StageCache
from recbackdoor.processes import Processes
from recbackdoor.victims.text.backbones import load_backbone
from recbackdoor.victims.text.split_lm import Example, SplitLM

TEXTS = ["Toy Story (1995) Answer:", "Heat (1995) Answer:", "a b c", "Jumanji (1995), Heat (1995) Answer:",
         "d e f g h"]


def train_and_generate(lm: SplitLM) -> tuple[dict[str, torch.Tensor], list[float], list[str]]:
    """Five examples in batches of 4 (uneven shards), a few steps; then greedy generation of every text."""
    states = lm.bottom_states([lm.encode(t) for t in TEXTS])
    target = lm.encode(" Yes", bos=False)[0]
    examples = [Example(s, (s.shape[0] - 1,), (target,)) for s in states]
    losses = lm.fit(examples, epochs=3, batch_size=4, lr=1e-2, seed=0)
    gens = lm.generate([lm.encode(t) for t in TEXTS], max_new_tokens=4, batch_size=2)
    return {k: v.clone() for k, v in lm.trainable_state().items()}, losses, gens


if __name__ == "__main__":
    cache, out = Path(sys.argv[1]), Path(sys.argv[2])
    procs = Processes("cpu")
    backbone = load_backbone("scratch-gpt2-tiny", StageCache(cache))
    lm = SplitLM(backbone, train_layers=1, method="lora", lora_r=4, lora_alpha=8, autocast=False, processes=procs)
    state, losses, gens = train_and_generate(lm)
    if procs.is_main:
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "state.safetensors"))
        (out / "run.json").write_text(json.dumps({"world": procs.world, "losses": losses, "gens": gens}))
