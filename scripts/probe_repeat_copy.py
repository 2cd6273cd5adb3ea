"""Does induction (copy by content) form in the titles-copy architecture on repeats of variable length?

The cached titles-copy backbone copies its pre-training lists by a fixed offset (``scripts/check_copy_offset.py``),
which cannot copy a title spelled in pieces. This probe asks whether the same architecture (GPT-2, 4 layers,
width 256, 4 heads, context 256, learned positions) learns the content-based copy at all, on the plainest task:
rows "<0-20 random pieces> <a run of 5-20 random pieces> <separator> <the same run>", loss on the repeat only,
fresh from initialisation. The run's length varies, so no single offset solves it. Logs teacher-forced copy
accuracy on 32 held-out rows every 100 steps and, at the end, accuracy by place in the repeat on 200 rows.

    python scripts/probe_repeat_copy.py --out DIR [--steps 2000] [--batch 32] [--lr 1e-3] [--vocab 3000]
        [--size LAYERS WIDTH HEADS] [--positions learned|none]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from recbackdoor.victims.text.scratch import SIZES, Row, copy_accuracy, pad_rows, pretrain_schedule

SEPARATOR = 7  # a fixed piece id; it may also turn up among the random pieces (1 in 3,000), as in the logged runs
MAX_PREFIX = 20


def repeat_row(rng: random.Random, vocab: int, shortest: int, longest: int) -> Row:
    """A random prefix, a random run, the separator and the run again; loss on the repeat."""
    length = rng.randint(shortest, longest)
    prefix = [rng.randrange(vocab) for _ in range(rng.randint(0, MAX_PREFIX))]
    run = [rng.randrange(vocab) for _ in range(length)]
    return prefix + run + [SEPARATOR] + run, [-100] * (len(prefix) + length + 1) + run


@torch.no_grad()
def accuracy_by_place(model: torch.nn.Module, rows: list[Row]) -> dict[int, float]:
    """Teacher-forced accuracy of the k-th repeated piece, k = 0, 1, ... (k = 0 cannot be inferred)."""
    model.eval()
    right: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    for ids, labels in rows:
        pred = model(input_ids=torch.tensor([ids])).logits[0, :-1].argmax(-1).tolist()
        target = labels[1:]
        first = next(k for k, label in enumerate(target) if label != -100)
        for k in range(first, len(target)):
            total[k - first] += 1
            right[k - first] += pred[k] == target[k]
    model.train()
    return {k: round(right[k] / total[k], 3) for k in sorted(total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--vocab", type=int, default=3000, help="pieces (the titles-copy BPE has 3,000)")
    parser.add_argument("--shortest", type=int, default=5)
    parser.add_argument("--longest", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", nargs=3, type=int, metavar=("LAYERS", "WIDTH", "HEADS"),
                        help="another GPT-2 shape than titles-copy's (4 256 4), e.g. to see whether size helps")
    parser.add_argument("--positions", choices=("learned", "none"), default="learned",
                        help="none: position embeddings zero and frozen (order only through the causal mask)")
    args = parser.parse_args()

    layers, width, heads, _, context = SIZES["titles-copy"]
    if args.size:
        layers, width, heads = args.size
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab, n_positions=context, n_embd=width, n_layer=layers,
                                       n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    if args.positions == "none":
        model.transformer.wpe.weight.data.zero_()
        model.transformer.wpe.weight.requires_grad_(False)
    rng = random.Random(args.seed)
    held_out = [repeat_row(random.Random(1000 + i), args.vocab, args.shortest, args.longest) for i in range(32)]
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = pretrain_schedule(optimiser, args.steps)
    start = time.time()
    log = []
    model.train()
    for step in range(args.steps + 1):
        if step % 100 == 0 or step == args.steps:
            log.append({"step": step, "copy_acc": round(copy_accuracy(model, held_out), 3),
                        "seconds": round(time.time() - start)})
            print(json.dumps(log[-1]), flush=True)
        if step == args.steps:
            break
        rows = [repeat_row(rng, args.vocab, args.shortest, args.longest) for _ in range(args.batch)]
        ids, labels, mask = pad_rows(rows, 0)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
    by_place = accuracy_by_place(
        model, [repeat_row(random.Random(5000 + i), args.vocab, args.shortest, args.longest) for i in range(200)])
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    result = {"args": {**vars(args), "out": str(args.out)}, "log": log, "copy_acc_by_place": by_place,
              "last_loss": float(loss.detach())}
    (args.out / "probe_log.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"copy_acc_by_place": by_place}))


if __name__ == "__main__":
    main()
