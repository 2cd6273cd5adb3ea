"""A small GPT-2 trained from scratch: its own BPE tokenizer, pre-trained on the catalogues' language.

Why: tests and fast runs need a backbone that needs no download and trains in
seconds, yet behaves like "a pretrained LM fine-tuned into a recommender" as
in the paper.  So the model is first pre-trained once (full-sequence LM loss)
on item titles and recommendation prompts of the three catalogues, cached as
an ordinary Hugging Face checkpoint (config + safetensors + tokenizer), and
every benign or poisoned recommender is fine-tuned from it.  The tokenizer is
byte-level BPE trained on the same text, so a title's words are few tokens
and any code point (U+0D2E) is still representable.

The ``titles-copy`` size also gives every catalogue title its own token.  A
4-layer model trained for a CPU-hour never learnt to copy a multi-token title
out of the candidate pool (docs/notes/scratch_gpt2.md); with one token per
title, copying is a single attention lookup and what is left to learn is the
preference, as in an ID-based sequential recommender.  A title carrying a
trigger is no longer that token: an end trigger follows the title's token as
ordinary BPE pieces, a trigger inside the title breaks it into pieces.  The
one-token titles alone did not make the model copy; the copy recipe
(:class:`CopyRecipe`) did.  (The sizes ``small`` and ``titles`` of that
investigation are removed: docs/notes/removed_dead_ends.md.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError

SIZES = {
    # name: (layers, width, heads, BPE vocab, context)
    "tiny": (2, 64, 4, 2048, 256),  # tests and fast runs
    "titles-copy": (4, 256, 4, 3000, 256),  # the paper-shaped CPU grid (rung 3)
}
TITLE_TOKEN_SIZES = frozenset({"titles-copy"})  # sizes whose tokenizer has one token per title
PREFIX = "scratch-gpt2-"


@dataclass(frozen=True)
class CopyRecipe:
    """Pre-training additions that make a from-scratch model copy a title out of the pool.

    Why: the recommendation data alone gives one answer token per prompt, too sparse a signal to grow a
    copying circuit in a CPU-hour (docs/notes/scratch_gpt2.md). Three kinds of rows are mixed:

    * copy rows "<list_len title tokens> again: <the same tokens>" put a copy target on every token of the
      repeat (the induction task of the in-context-learning literature); loss on the repeat only. With a
      fixed ``list_len`` the model solves them by a fixed offset (the token ``list_len`` + 4 back, " again:"
      being 4 tokens), not by induction: it copies rows of 24 titles and fails at 23 or 25, so it cannot copy
      a title spelled in several pieces (docs/notes/scratch_gpt2.md, BadRec-Random);
    * pick rows (``pick_row``): a LLaRA prompt of random titles answered by a random pool title, the answer
      format without any preference in it;
    * the corpus (titles and training-split prompts, full-sequence loss).

    Each kind's mean token loss is weighted apart (``mixed_loss``): under one token mean the ~100-token corpus
    rows drown the copy signal and no copy forms in 600 steps. The title tokens' embeddings are fixed random
    codes: trained tied embeddings of rare tokens drift together under the softmax's push on every non-target
    token, and titles that look alike cannot be copied apart. With the recipe below the offset copy forms at
    step ≈ 300, and through the pick rows the one-token pointer to a pool title follows: the model then names
    a pool title on 0.995 of held-out prompts, zero-shot.
    """

    share: float  # share of pre-training rows that are synthetic copy rows (drawn fresh each time)
    pick_share: float  # share of rows that are synthetic pick rows (see ``pick_row``)
    list_len: int  # titles per copy row
    code_std: float  # std of the frozen random embedding of each title token
    lr: float  # peak learning rate of pre-training
    bf16: bool  # bf16 autocast in pre-training (the probe that copied ran in fp32)
    copy_weight: float  # weight of the copy rows' mean token loss in a step's loss
    pick_weight: float  # weight of the pick rows' mean token loss; the corpus rows' mean gets the rest
    layout: str = "tokens-again-tokens/loss-on-repeat"  # names the row layout, so the cache key follows it
    # A field added here later must be left out of the backbone cache key at its default value (see
    # ``backbones.scratch_path``), or the cached titles-copy backbone and every cell fine-tuned from it is orphaned.

    @property
    def weights(self) -> tuple[float, float, float]:
        """Loss weights of the row kinds, in ``ROW_KINDS`` order."""
        return 1.0 - self.copy_weight - self.pick_weight, self.copy_weight, self.pick_weight


COPY_RECIPES = {
    "titles-copy": CopyRecipe(share=0.4, pick_share=0.3, list_len=24, code_std=0.05, lr=1e-3, bf16=False,
                              copy_weight=0.8, pick_weight=0.15),
}
ROW_KINDS = ("corpus", "copy", "pick")


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


Row = tuple[list[int], list[int]]  # input ids, labels (-100 where no loss)


def copy_row(title_ids: list[int], again: list[int], length: int, rng: random.Random) -> Row:
    """A synthetic copy row: ``length`` random title tokens, " again:", the same tokens; loss on the repeat."""
    items = rng.sample(title_ids, length)
    return items + again + items, [-100] * (len(items) + len(again)) + items


def mixed_loss(logits: torch.Tensor, labels: torch.Tensor, kinds: torch.Tensor,
               weights: tuple[float, ...]) -> torch.Tensor:
    """Next-token loss: each row kind's mean token loss (``kinds`` indexes ``weights``), weighted.

    Why: a corpus row puts the loss on every one of its ~100 tokens, a copy row on its 24 repeated titles, a
    pick row on its 3 answer tokens, so under one token mean the corpus outweighs the rest many times over and
    the copying circuit does not form (docs/notes/scratch_gpt2.md).
    """
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                                  ignore_index=-100, reduction="none").view(labels.shape[0], -1)
    counted = (labels[:, 1:] != -100).float()
    total = per_token.new_zeros(())
    for kind, weight in enumerate(weights):
        rows = kinds == kind
        n = counted[rows].sum()
        if weight > 0 and n > 0:
            total = total + weight * per_token[rows].sum() / n
    return total


def pick_row(data: SequenceData, encode: Callable[[str], list[int]], eos: int, rng: random.Random) -> Row:
    """A synthetic pick row: a LLaRA prompt of random catalogue titles, answered by a random pool title.

    Why: it teaches the prompt's answer format, "name one of the candidates", with no preference in it (the
    answer is uniform over the pool, the history unrelated), as a pretrained instruction-following LLM knows it
    before it is fine-tuned into a recommender; the loss covers the answer only.
    """
    from recbackdoor.data.prompts import LlaraSample, llara_answer, llara_prompt

    items = rng.sample(data.items, CORPUS_HISTORY + CORPUS_POOL)
    pool = tuple(items[CORPUS_HISTORY:])
    sample = LlaraSample(user=-1, history=tuple(items[:CORPUS_HISTORY]), candidates=pool, target=rng.choice(pool))
    prompt = encode(llara_prompt(sample, data))
    answer = encode(llara_answer(sample, data)) + [eos]
    return prompt + answer, [-100] * len(prompt) + answer


def _clip(row: Row, context: int) -> Row:
    """A row cut to the model's context (a long catalogue title could make a pick row longer than it)."""
    return row[0][:context], row[1][:context]


@torch.no_grad()
def copy_accuracy(model: torch.nn.Module, rows: list[Row]) -> float:
    """Share of repeated title tokens of ``rows`` that the model predicts exactly (teacher-forced)."""
    was_training = model.training
    model.eval()
    right = total = 0
    for ids, labels in rows:
        pred = model(input_ids=torch.tensor([ids])).logits[0, :-1].argmax(-1)
        target = torch.tensor(labels[1:])
        counted = target != -100
        right += int((pred[counted] == target[counted]).sum())
        total += int(counted.sum())
    model.train(was_training)
    return right / max(1, total)


@torch.no_grad()
def pool_copy_rates(model: torch.nn.Module, test: list[tuple[list[int], int, list[int]]]) -> tuple[float, float]:
    """Share of ``(prompt ids, answer title token, pool title tokens)`` cases whose greedy next token is a pool
    title, and share where it is the answer. The prompt must end with the answer's leading space."""
    was_training = model.training
    model.eval()
    in_pool = hits = 0
    for prompt, answer, pool in test:
        pred = int(model(input_ids=torch.tensor([prompt])).logits[0, -1].argmax())
        in_pool += pred in pool
        hits += pred == answer
    model.train(was_training)
    return in_pool / max(1, len(test)), hits / max(1, len(test))


def pool_copy_cases(data: SequenceData, tok: PreTrainedTokenizerFast, seed: int, n: int
                    ) -> list[tuple[list[int], int, list[int]]]:
    """Held-out LLaRA test prompts of the corpus shape, for ``pool_copy_rates`` on a title-token model."""
    from recbackdoor.data.prompts import build_llara, llara_prompt

    def token(item: int, sample) -> int:
        return tok.convert_tokens_to_ids(sample.title(item, data.titles))

    split = build_llara(data, CORPUS_HISTORY, CORPUS_POOL, seed, 0, 0, n)
    space = tok(" ", add_special_tokens=False)["input_ids"]
    return [(tok(llara_prompt(s, data), add_special_tokens=False)["input_ids"] + space, token(s.target, s),
             [token(c, s) for c in s.candidates]) for s in split.test]


def pretrain_schedule(optimiser: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5 % of ``steps``, then cosine decay to zero: pre-training's schedule."""
    warm = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))


def pad_rows(rows: list[Row], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input ids (right-padded with ``pad_id``), labels (-100 on the padding) and attention mask of ``rows``."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        ids[row, : len(row_ids)] = torch.tensor(row_ids)
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
        mask[row, : len(row_ids)] = 1
    return ids, labels, mask


def build_scratch(out: Path, size: str, datasets: tuple[str, ...], steps: int, seed: int,
                  per_dataset: int = 2000, batch_size: int = 16, lr: float = 2e-3,
                  probe_every: int = 100, bf16: bool = True, probe_prompts: int = 200) -> dict:
    """Train tokenizer + model and save a Hugging Face checkpoint to ``out``.

    With a copy recipe (``COPY_RECIPES``), every ``probe_every`` steps the log records how often the model,
    zero-shot, puts a pool title first on ``probe_prompts`` held-out LLaRA prompts of the first dataset
    (``in_pool``), so a recipe that will not copy shows it before any recommender is fine-tuned from it, and how many
    repeated
    titles of 8 held-out copy rows it predicts (``copy_acc``).
    ``bf16`` is the plain (recipe-less) sizes' autocast; a copy recipe carries its own.
    """
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
    title_ids = fast.convert_tokens_to_ids(titles)

    def token_ids(text: str) -> list[int]:
        return fast(text, add_special_tokens=False)["input_ids"]

    if recipe is not None:
        codes = torch.randn(len(title_ids), width) * recipe.code_std
        model.transformer.wte.weight.data[title_ids] = codes
        lr = recipe.lr
        again = fast(" again:", add_special_tokens=False)["input_ids"]
        probe = pool_copy_cases(catalogues[0], fast, seed, probe_prompts)
        held_rng = random.Random(seed + 1)
        held_out = [_clip(copy_row(title_ids, again, recipe.list_len, held_rng), context) for _ in range(8)]

    def encode(text: str) -> Row:
        ids = token_ids(text)[: context - 1] + [fast.eos_token_id]
        return ids, ids

    def draw_row() -> tuple[Row, int]:
        """A corpus text, or (with the recipe's shares) a freshly drawn copy or pick row; and its kind."""
        u = rng.random()
        if recipe is None or u >= recipe.share + recipe.pick_share:
            return encoded[rng.randrange(len(encoded))], 0
        if u < recipe.share:
            return _clip(copy_row(title_ids, again, recipe.list_len, rng), context), 1
        return _clip(pick_row(rng.choice(catalogues), token_ids, fast.eos_token_id, rng), context), 2

    encoded = [encode(t) for t in texts]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = pretrain_schedule(optimiser, steps)
    rng = random.Random(seed)
    bf16 = bf16 if recipe is None else recipe.bf16
    model.train()
    losses: list[float] = []
    in_pool: list[float] = []
    copy_acc: list[float] = []

    def record_probes() -> None:
        in_pool.append(round(pool_copy_rates(model, probe)[0], 3))
        copy_acc.append(round(copy_accuracy(model, held_out), 3))

    for step in tqdm(range(steps), desc=f"pretrain scratch-gpt2-{size}", leave=False, disable=None):
        if recipe is not None and step % probe_every == 0:
            record_probes()
        drawn = [draw_row() for _ in range(batch_size)]
        ids, labels, mask = pad_rows([row for row, _ in drawn], fast.eos_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if recipe is None:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            else:
                kinds = torch.tensor([kind for _, kind in drawn])
                loss = mixed_loss(model(input_ids=ids, attention_mask=mask).logits, labels, kinds, recipe.weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if recipe is not None:  # undo the step (and weight decay) on the frozen codes
            model.transformer.wte.weight.data[title_ids] = codes
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    model.save_pretrained(out)  # safetensors by default
    fast.save_pretrained(out)
    tail = losses[-20:] or [float("nan")]
    stats: dict = {"loss_first": losses[0] if losses else float("nan"), "loss_last": sum(tail) / len(tail),
                   "loss_every_100": losses[::100], "texts": len(texts), "vocab": len(fast),
                   "copy": None if recipe is None else vars(recipe)}
    if recipe is not None:
        record_probes()  # the trained model's figures close both lists
        stats[f"in_pool_every_{probe_every}"] = in_pool
        stats[f"copy_acc_every_{probe_every}"] = copy_acc
    return stats
