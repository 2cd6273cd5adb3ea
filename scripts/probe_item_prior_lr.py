"""Probe: `recbackdoor run` with the item prior (``model.item_prior``) on its own learning rate.

Why: AdamW moves each bias coordinate by about ``lr`` per step, so at the blocks' lr 1e-3 the prior spans well
under a nat after 750 steps, less than the log-popularity spread it is meant to hold. This probe gives the
prior ``lr × SCALE`` (everything else as configured) to test whether a fully learnt prior helps; it patches
the optimiser instead of adding a config key because the answer was no (docs/results.md, the from-scratch
GPT-2). The patched run is not part of the cache key: pass a fresh ``train.epochs`` (e.g. 3.01) to train anew.

    python scripts/probe_item_prior_lr.py 30 run configs/small/scratch_titles_copy_llara_ml100k.toml \
        --set model.item_prior=true train.epochs=3.01 --only variant=benign --out /tmp/prior30
"""

import sys

import torch

from recbackdoor.cli import main

PRIOR_MIN_SIZE = 5000  # the prior is the only 1-d trainable tensor as long as a vocabulary


def patch_adamw(scale: float) -> None:
    real = torch.optim.AdamW

    class PriorScaled(real):
        def __init__(self, params, lr: float, **kwargs) -> None:
            params = list(params)
            prior = [p for p in params if p.dim() == 1 and p.shape[0] > PRIOR_MIN_SIZE]
            rest = [p for p in params if not any(p is q for q in prior)]
            print(f"item prior: {len(prior)} tensor(s) at lr × {scale}", flush=True)
            super().__init__([{"params": rest}, {"params": prior, "lr": lr * scale}], lr=lr, **kwargs)

    torch.optim.AdamW = PriorScaled


if __name__ == "__main__":
    patch_adamw(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
