"""Probe: `recbackdoor run` with the ID projector's output layer started at small random weights, not zero.

Why: with the user slot (``hybrid.user_slot``) the answer's query and each candidate's key both come out of the
projector; a zero-initialised output layer makes their product start with no gradient on either side (a saddle),
which may be why the user state went unused (docs/results.md, the from-scratch GPT-2). This probe patches
``IdProjector.reset`` instead of adding a config key; the patch is not part of the cache key, so pass a fresh
``train.epochs`` (e.g. 3.01) to train anew.

    python scripts/probe_projector_init.py 0.02 run configs/small/scratch_titles_copy_llara_hybrid_ml100k.toml \
        --set hybrid.slot=title hybrid.user_slot=true train.epochs=3.01 --only variant=benign --out /tmp/init
"""

import sys

import torch

from recbackdoor.cli import main
from recbackdoor.victims.text.split_lm import IdProjector


def patch_reset(std: float) -> None:
    zero_init = IdProjector.reset

    def reset(self: IdProjector, seed: int) -> None:
        zero_init(self, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            last = self.proj[2]
            last.weight.copy_(torch.randn(last.weight.shape, generator=gen) * std)

    IdProjector.reset = reset


if __name__ == "__main__":
    patch_reset(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
