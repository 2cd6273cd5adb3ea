"""Does the cached titles-copy backbone copy a list of title tokens by content, or by a fixed offset?

Its copy rows always hold ``list_len`` (24) titles, so the repeat's next token always sits ``list_len + len(" again:")``
tokens back. A model that learnt that offset copies rows of 24 titles (wherever they start) and fails on any
other length; a true induction head (find the current token earlier, copy what followed it) copies every length.
Prints teacher-forced copy accuracy per row length, and for 24 titles behind a few random BPE pieces.

    python scripts/check_copy_offset.py [--out FILE.json] [--rows 8]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from recbackdoor.data.text_datasets import load_dataset
from recbackdoor.experiments.cache import StageCache
from recbackdoor.victims.text import scratch
from recbackdoor.victims.text.backbones import SCRATCH_DATASETS, scratch_path

LENGTHS = (8, 16, 20, 23, 24, 25, 30)
PREFIX_PIECES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    base = scratch_path("titles-copy", StageCache())
    tok = PreTrainedTokenizerFast.from_pretrained(base)
    model = GPT2LMHeadModel.from_pretrained(base)
    titles = scratch.catalogue_titles([load_dataset(name) for name in SCRATCH_DATASETS])
    title_ids = tok.convert_tokens_to_ids(titles)
    again = tok(" again:", add_special_tokens=False)["input_ids"]
    trained_len = scratch.COPY_RECIPES["titles-copy"].list_len
    result: dict = {"backbone": base.name, "trained_list_len": trained_len, "rows_per_length": args.rows,
                    "copy_acc_by_list_len": {}}
    for length in LENGTHS:
        rng = random.Random(args.seed)
        rows = [scratch.copy_row(title_ids, again, length, rng) for _ in range(args.rows)]
        result["copy_acc_by_list_len"][length] = round(scratch.copy_accuracy(model, rows), 3)
    rng = random.Random(args.seed + 1)
    shifted = []
    for _ in range(args.rows):
        ids, labels = scratch.copy_row(title_ids, again, trained_len, rng)
        pieces = [rng.randrange(tok.vocab_size) for _ in range(PREFIX_PIECES)]
        shifted.append((pieces + ids, [-100] * PREFIX_PIECES + labels))
    result[f"copy_acc_{trained_len}_behind_{PREFIX_PIECES}_random_pieces"] = round(
        scratch.copy_accuracy(model, shifted), 3)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
