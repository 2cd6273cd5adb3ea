"""Can a from-scratch backbone learn to copy a title spelled in BPE pieces (what BadRec-Random's answer needs)?

Pre-trains the titles-copy architecture with the copy recipe's split-title rows (``CopyRecipe.split_share``: a
share of the titles in copy and pick rows split by catalogue filler words) from scratch or continuing from the
cached titles-copy backbone, and logs every ``--probe-every`` steps: ``in_pool`` (zero-shot, the greedy answer
to 200 held-out LLaRA prompts is a pool title), ``copy_acc`` (repeated tokens of held-out copy rows with split
titles) and ``split_answer_acc`` (teacher-forced answer tokens after the first, on held-out pick rows whose every
title is split). Results are in docs/results.md ("Rung 3", BadRec-Random).

    python scripts/probe_split_copy.py --out DIR [--from-base] [--lr 1e-3] [--steps 400] [--split-share 0.25]
        [--list-len 16] [--fixed-codes titles|all]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from recbackdoor.experiments.cache import StageCache
from recbackdoor.victims.text import scratch
from recbackdoor.victims.text.backbones import SCRATCH_DATASETS, SCRATCH_TEXTS, scratch_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--from-base", action="store_true", help="continue from the cached titles-copy backbone")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--split-share", type=float, default=0.25)
    parser.add_argument("--list-len", type=int, default=16, help="titles per copy row (titles-copy: 24)")
    parser.add_argument("--fixed-codes", choices=("titles", "all"), default="titles")
    parser.add_argument("--probe-every", type=int, default=50)
    args = parser.parse_args()

    base = scratch_path("titles-copy", StageCache()) if args.from_base else None
    recipe = dataclasses.replace(scratch.COPY_RECIPES["titles-copy"], lr=args.lr, split_share=args.split_share,
                                 list_len=args.list_len, fixed_codes=args.fixed_codes)
    start = time.time()
    stats = scratch.build_scratch(args.out, "titles-copy", SCRATCH_DATASETS, args.steps, 0,
                                  per_dataset=SCRATCH_TEXTS["titles-copy"], probe_every=args.probe_every,
                                  recipe=recipe, init_from=base)
    stats.update(seconds=round(time.time() - start, 1), base=None if base is None else base.name,
                 args={**vars(args), "out": str(args.out)})
    (args.out / "pretrain_log.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps({k: v for k, v in stats.items() if k != "loss_every_100"}))


if __name__ == "__main__":
    main()
