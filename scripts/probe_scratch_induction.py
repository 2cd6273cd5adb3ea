"""Which training signal makes a fresh title-token GPT-2 copy a title out of the LLaRA pool? A probe.

Why: the from-scratch recommenders never learnt to copy (docs/results.md). This trains a freshly initialised
4-layer, width-256 GPT-2 with one token per catalogue title (the ``titles`` tokenizer, rebuilt here in
seconds from a 500-prompt corpus) on MovieLens-100K LLaRA prompts (history 5, pool 10, answer-only loss),
optionally mixing in synthetic copy rows and freezing the title tokens' embeddings as random codes. Every
``--eval-every`` steps it reports how often the greedy title token on 300 test prompts is a pool title
(``in_pool``) and the right one (``hit``). The variants of docs/results.md (≈ 0.75 s per step on one core):

    python scripts/probe_scratch_induction.py                                            # plain
    python scripts/probe_scratch_induction.py --aux 0.5                                  # short repeats
    python scripts/probe_scratch_induction.py --freeze-titles 0.05                       # frozen codes
    python scripts/probe_scratch_induction.py --freeze-titles 0.05 --aux 0.5             # both
    python scripts/probe_scratch_induction.py --aux 0.5 --aux-kind induction             # 24-title lists
    python scripts/probe_scratch_induction.py --freeze-titles 0.05 --aux 0.5 --aux-kind induction
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from probe_scratch_copy import answer_only_batch, pool_case  # the sibling probe's batching and test cases
from transformers import GPT2Config, GPT2LMHeadModel

from recbackdoor.data.prompts import build_llara, llara_answer, llara_prompt
from recbackdoor.data.text_datasets import load_dataset
from recbackdoor.victims.text import scratch
from recbackdoor.victims.text.scratch import pool_copy_rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--aux", type=float, default=0.0, help="share of batch rows that are synthetic copy rows")
    ap.add_argument("--aux-kind", choices=["repeat", "induction"], default="repeat",
                    help="repeat: 3-10 titles then the same again; induction: 24 titles then the same again")
    ap.add_argument("--freeze-titles", type=float, default=0.0,
                    help="if > 0: title-token embeddings re-drawn with this std and kept fixed")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--eval-every", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    catalogues = [load_dataset(n) for n in ("ml100k", "lastfm", "steam")]
    tok = scratch.train_tokenizer(scratch.corpus(catalogues, 0, 500), 3000, scratch.catalogue_titles(catalogues))
    data = load_dataset("ml100k", min_user=5, min_item=5)
    split = build_llara(data, 5, 10, 0, args.n_train, 0, 300)

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    def encode(sample) -> tuple[list[int], list[int]]:
        return ids(llara_prompt(sample, data)), ids(llara_answer(sample, data)) + [tok.eos_token_id]

    train = [encode(s) for s in split.train]
    test = [pool_case(encode(s), [ids(s.title(c, data.titles))[0] for c in s.candidates]) for s in split.test[:300]]
    titles = [tok.convert_tokens_to_ids(t) for t in scratch.catalogue_titles([data])]
    rng = random.Random(0)

    def aux_row() -> tuple[list[int], list[int]]:
        """A copy row: prompt and answer; the loss falls on the repeated titles only."""
        k = rng.randint(3, 10)
        items = rng.sample(titles, k)
        if args.aux_kind == "repeat":
            return ids(" list:") + items + ids(". again:"), items + [tok.eos_token_id]
        items = rng.sample(titles, 24)
        return items + ids(" again:"), items

    config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=256, n_layer=4, n_head=4, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tok.eos_token_id,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    model = GPT2LMHeadModel(config)
    if args.freeze_titles > 0:
        all_titles = torch.tensor([tok.convert_tokens_to_ids(t) for t in scratch.catalogue_titles(catalogues)])
        with torch.no_grad():
            model.transformer.wte.weight[all_titles] = torch.randn(len(all_titles), 256) * args.freeze_titles
        keep = torch.ones(len(tok), 1)
        keep[all_titles] = 0
        model.transformer.wte.weight.register_hook(lambda g: g * keep)  # no weight decay below, so rows stay
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        batch = [aux_row() if rng.random() < args.aux else train[rng.randrange(len(train))]
                 for _ in range(args.batch)]
        input_ids, mask, labels = answer_only_batch(batch)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps - 1:
            in_pool, hit = pool_copy_rates(model, test)
            print(f"step {step:5d} loss {loss.item():.3f} in_pool {in_pool:.3f} hit {hit:.3f} "
                  f"{time.perf_counter() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
