"""A small GPT-2 trained from scratch: its own BPE tokenizer, pre-trained on the catalogues' language.

Why: tests and fast runs need a backbone that needs no download and trains in
seconds, yet behaves like "a pretrained LM fine-tuned into a recommender" as
in the paper.  So the model is first pre-trained once (full-sequence LM loss)
on item titles and recommendation prompts of the three catalogues, cached as
an ordinary Hugging Face checkpoint (config + safetensors + tokenizer), and
every benign or poisoned recommender is fine-tuned from it.  The tokenizer is
byte-level BPE trained on the same text, so a title's words are few tokens
and any code point (U+0D2E) is still representable.

The ``titles`` size also gives every catalogue title its own token.  A
4-layer model trained for a CPU-hour never learnt to copy a multi-token title
out of the candidate pool (docs/results.md); with one token per title, copying
is a single attention lookup and what is left to learn is the preference, as
in an ID-based sequential recommender.  A title carrying a trigger is no
longer that token: an end trigger follows the title's token as ordinary BPE
pieces, a trigger inside the title breaks it into pieces.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError

SIZES = {
    # name: (layers, width, heads, BPE vocab, context)
    "tiny": (2, 64, 4, 2048, 256),
    "small": (4, 256, 4, 6000, 512),
    "titles": (4, 256, 4, 3000, 256),
    "titles-copy": (4, 256, 4, 3000, 256),
}
TITLE_TOKEN_SIZES = frozenset({"titles", "titles-copy"})  # sizes whose tokenizer has one token per title
PREFIX = "scratch-gpt2-"


@dataclass(frozen=True)
class CopyRecipe:
    """Pre-training additions meant to make a from-scratch model copy a title out of the pool.

    Why: the recommendation data alone gives one answer token per prompt, too sparse a signal to grow a
    copying circuit in a CPU-hour (docs/results.md). Synthetic "list, then the same list again" texts put a
    copy target on half of every such row (the induction task of the in-context-learning literature).
    The title tokens' embeddings are fixed random codes: trained tied embeddings of rare tokens drift together
    under the softmax's push on every non-target token, and titles that look alike cannot be copied apart.
    Both together make a fresh model copy in the probe (scripts/probe_scratch_induction.py); written into
    pre-training as below they do not yet (Valid 0.003 after fine-tuning; docs/results.md says why it may be).
    """

    share: float  # share of pre-training rows that are synthetic copy texts (drawn fresh each time)
    list_len: int  # titles per copy text
    code_std: float  # std of the frozen random embedding of each title token


COPY_RECIPES = {"titles-copy": CopyRecipe(share=0.4, list_len=24, code_std=0.05)}


def parse_name(name: str) -> str | None:
    """Size name for ``scratch-gpt2-<size>``, else None."""
    if not name.startswith(PREFIX):
        return None
    size = name[len(PREFIX):]
    if size not in SIZES:
        raise UserError(f"backbone {name!r}: unknown size; known: {', '.join(PREFIX + s for s in SIZES)}")
    return size


# prompt shape of the pre-training corpus: the CPU rungs' (history 5, pool 10), which keeps sequences short
CORPUS_HISTORY = 5
CORPUS_POOL = 10


def catalogue_titles(catalogues: list[SequenceData]) -> list[str]:
    """Every title of the catalogues, in a fixed order (the tokenizer's added-token order)."""
    titles: dict[str, None] = {}
    for data in catalogues:
        titles.update(dict.fromkeys(data.titles.values()))
    return list(titles)


def corpus(catalogues: list[SequenceData], seed: int, per_dataset: int) -> list[str]:
    """Titles plus rendered TALLRec / LLaRA prompts (with answers) of the training splits only."""
    from recbackdoor.data.prompts import build_llara, build_tallrec, llara_answer, llara_prompt, tallrec_prompt

    texts: list[str] = []
    for data in catalogues:
        texts.extend(data.titles.values())
        t = build_tallrec(data, CORPUS_HISTORY, seed, per_dataset, 0, 0)
        texts.extend(tallrec_prompt(s, data) + (" Yes" if s.label else " No") for s in t.train)
        ll = build_llara(data, CORPUS_HISTORY, CORPUS_POOL, seed, per_dataset, 0, 0)
        texts.extend(llara_prompt(s, data) + llara_answer(s, data) for s in ll.train)
    random.Random(seed).shuffle(texts)
    return texts


def train_tokenizer(texts: list[str], vocab: int, title_tokens: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE of ``vocab`` pieces on ``texts``, plus one added token per entry of ``title_tokens``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # whole words only, so an artist called "Air" does not match inside "Chair"
    tok.add_tokens([AddedToken(t, single_word=True, normalized=False) for t in title_tokens])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def copy_text(titles: list[str], length: int, rng: random.Random) -> str:
    """A synthetic copy text: ``length`` random titles, then the same titles again in the same order."""
    items = ", ".join(rng.sample(titles, length))
    return f"List: {items}. Again: {items}."


def build_scratch(out: Path, size: str, datasets: tuple[str, ...], steps: int, seed: int,
                  per_dataset: int = 2000, batch_size: int = 16, lr: float = 2e-3) -> dict[str, float]:
    """Train tokenizer + model and save a Hugging Face checkpoint to ``out``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from recbackdoor.data.text_datasets import load_dataset

    layers, width, heads, vocab, context = SIZES[size]
    catalogues = [load_dataset(name) for name in datasets]
    texts = corpus(catalogues, seed, per_dataset)
    titles = catalogue_titles(catalogues) if size in TITLE_TOKEN_SIZES else []
    fast = train_tokenizer(texts, vocab, titles)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(fast), n_positions=context, n_embd=width, n_layer=layers, n_head=heads,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=fast.eos_token_id,
                        eos_token_id=fast.eos_token_id, pad_token_id=fast.eos_token_id)
    model = GPT2LMHeadModel(config)
    recipe = COPY_RECIPES.get(size)
    if recipe is not None:
        title_ids = torch.tensor(fast.convert_tokens_to_ids(titles))
        codes = torch.randn(len(titles), width) * recipe.code_std
        model.transformer.wte.weight.data[title_ids] = codes

    def encode(text: str) -> list[int]:
        return fast(text, add_special_tokens=False)["input_ids"][: context - 1] + [fast.eos_token_id]

    def draw_row() -> list[int]:
        """A corpus text, or (with the recipe's share) a freshly drawn copy text."""
        if recipe is None or rng.random() >= recipe.share:
            return encoded[rng.randrange(len(encoded))]
        return encode(copy_text(titles, recipe.list_len, rng))

    encoded = [encode(t) for t in texts]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    rng = random.Random(seed)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=f"pretrain scratch-gpt2-{size}", leave=False, disable=None):
        batch = [draw_row() for _ in range(batch_size)]
        width_ = max(len(b) for b in batch)
        ids = torch.full((batch_size, width_), fast.eos_token_id)
        labels = torch.full((batch_size, width_), -100)
        mask = torch.zeros((batch_size, width_), dtype=torch.long)
        for row, b in enumerate(batch):
            ids[row, : len(b)] = torch.tensor(b)
            labels[row, : len(b)] = torch.tensor(b)
            mask[row, : len(b)] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if recipe is not None:  # undo the step (and weight decay) on the frozen title codes
            model.transformer.wte.weight.data[title_ids] = codes
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    model.save_pretrained(out)  # safetensors by default
    fast.save_pretrained(out)
    tail = losses[-20:] or [float("nan")]
    return {"loss_first": losses[0] if losses else float("nan"), "loss_last": sum(tail) / len(tail),
            "loss_every_100": losses[::100], "texts": len(texts), "vocab": len(fast),
            "copy": None if recipe is None else vars(recipe)}
