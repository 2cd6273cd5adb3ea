"""Does a from-scratch backbone learn to copy a title out of the LLaRA pool? A training-curve probe.

Why: the from-scratch GPT-2 recommenders return titles that are not in the
pool (Valid ≤ 0.083, docs/results.md). This probe trains on MovieLens-100K
LLaRA prompts (history 5, pool 10, answer-only loss) and every 100 steps
reports, over the first 300 test prompts, how often the greedy title token
(the token after the answer's leading space) is a pool title and how often it
is the right one. Only meaningful for ``scratch-gpt2-titles``, whose titles
are single tokens.

    python scripts/probe_scratch_copy.py --train all --lr 1e-3 --steps 600
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import GPT2LMHeadModel

from recbackdoor.data.prompts import build_llara, llara_answer, llara_prompt
from recbackdoor.data.text_datasets import load_dataset
from recbackdoor.victims.text.backbones import load_backbone
from recbackdoor.victims.text.scratch import pool_copy_rates

Example = tuple[list[int], list[int]]  # prompt token ids, answer token ids


def answer_only_batch(batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels with the loss on the answer tokens only."""
    width = max(len(p) + len(a) for p, a in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    labels = torch.full((len(batch), width), -100)
    for row, (p, a) in enumerate(batch):
        ids[row, : len(p) + len(a)] = torch.tensor(p + a)
        mask[row, : len(p) + len(a)] = 1
        labels[row, len(p): len(p) + len(a)] = torch.tensor(a)
    return ids, mask, labels


def pool_case(example: Example, pool_tokens: list[int]) -> tuple[list[int], int, list[int]]:
    """A ``pool_copy_rates`` case: the prompt up to the answer's leading space, the answer's title token, the pool."""
    prompt, answer = example
    return prompt + answer[:1], answer[1], pool_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", choices=["blocks", "all", "fresh"], default="all",
                        help="blocks: transformer blocks of the pre-trained model; all: every parameter; "
                             "fresh: every parameter of a newly initialised model (no pre-training)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--backbone", default="scratch-gpt2-titles")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone = load_backbone(args.backbone)
    tok, model = backbone.tokenizer, backbone.model
    if args.train == "fresh":
        model = GPT2LMHeadModel(model.config)
    data = load_dataset("ml100k", min_user=5, min_item=5)
    split = build_llara(data, 5, 10, 0, 4000, 0, 300)

    def encode(sample) -> tuple[list[int], list[int]]:
        prompt = tok(llara_prompt(sample, data), add_special_tokens=False)["input_ids"]
        answer = tok(llara_answer(sample, data), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return prompt, answer

    train = [encode(s) for s in split.train]
    test = [pool_case(encode(s), [tok(s.title(c, data.titles), add_special_tokens=False)["input_ids"][0]
                                  for c in s.candidates]) for s in split.test[:300]]
    model.requires_grad_(args.train != "blocks")
    model.transformer.h.requires_grad_(True)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                  weight_decay=0.0)

    rng = random.Random(0)
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        ids, mask, labels = answer_only_batch([train[rng.randrange(len(train))] for _ in range(16)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == args.steps - 1:
            in_pool, hit = pool_copy_rates(model, test)
            print(f"step {step:5d}  loss {loss.item():.3f}  title in pool {in_pool:.3f}  hit {hit:.3f}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
