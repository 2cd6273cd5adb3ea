"""The LLM poison scanner D_Ψ: a causal LM that answers Yes/No to the paper's prompt (eqs. 6-7).

The score of a title is P(Yes) / (P(Yes) + P(No)) at the answer position.
Everything before the title in the prompt is the same for every title, so at
scoring time its key/value cache is computed once and shared by every batch;
only the title and the few closing tokens are run per title.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

PROMPT = ("Determine whether the following sentence contains any character-level, word-level, "
          "or sentence-level noise: {item}")
MAX_TITLE_TOKENS = 64
_PLACEHOLDER = "\x00ITEM\x00"


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    top_layers: int | None = None  # LoRA only on the top K decoder layers: backward stops there (CPU cost)


class LLMScanner:
    """Wraps a causal LM (optionally with a LoRA adapter) as a Yes/No poison detector."""

    def __init__(self, model, tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer
        text = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT.format(item=_PLACEHOLDER)}],
                                             tokenize=False, add_generation_prompt=True)
        prefix, suffix = text.split(_PLACEHOLDER)
        if not prefix.endswith(" "):
            raise ValueError("the prompt must end in a space before the item")
        self.prefix_ids = tokenizer(prefix[:-1], add_special_tokens=False)["input_ids"]
        self.suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
        self.yes_id = self._single_token("Yes")
        self.no_id = self._single_token("No")

    def _single_token(self, word: str) -> int:
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"answer {word!r} is {len(ids)} tokens in this tokenizer; the scanner needs one")
        return ids[0]

    def title_ids(self, title: str) -> list[int]:
        return self.tokenizer(" " + title, add_special_tokens=False)["input_ids"][:MAX_TITLE_TOKENS]

    def _pad_left(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad so every row's answer position is the last one (the LM head then runs on one position)."""
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.tensor(row)
            mask[i, width - len(row):] = 1
        return ids, mask

    def _prefix_cache(self):
        from transformers import DynamicCache

        cache = DynamicCache()
        self.model(input_ids=torch.tensor([self.prefix_ids]), past_key_values=cache, use_cache=True)
        return cache

    def _answer_logits(self, titles: Sequence[str], cache) -> torch.Tensor:
        """(batch, vocab) logits at the answer position, the prompt prefix taken from ``cache`` (batch 1)."""
        rows = [self.title_ids(t) + self.suffix_ids for t in titles]
        ids, mask = self._pad_left(rows)
        cache.batch_repeat_interleave(len(rows))
        prefix_len = len(self.prefix_ids)
        full_mask = torch.cat([torch.ones((len(rows), prefix_len), dtype=torch.long), mask], dim=1)
        positions = prefix_len + (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=full_mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    def answer_logits(self, titles: Sequence[str]) -> torch.Tensor:
        """Answer logits with gradients: the prefix is run once per call (batch 1), not once per title."""
        return self._answer_logits(titles, self._prefix_cache())

    def loss(self, titles: Sequence[str], labels: Sequence[int]) -> torch.Tensor:
        """Eq. 7: the answer token's negative log-likelihood ('Yes' for poisoned, 'No' for benign)."""
        logits = self.answer_logits(titles)
        target = torch.tensor([self.yes_id if y else self.no_id for y in labels])
        return F.cross_entropy(logits, target)

    @torch.no_grad()
    def score(self, titles: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """P(Yes | prompt) normalised over {Yes, No}, for every title; the prompt prefix is computed once."""
        from tqdm import tqdm

        self.model.eval()
        cache = self._prefix_cache()
        out = np.empty(len(titles), dtype=np.float32)
        order = sorted(range(len(titles)), key=lambda i: len(titles[i]))  # batches of similar length
        bar = tqdm(total=len(titles), unit="title", disable=not progress, desc="LLM scanner")
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            logits = self._answer_logits([titles[i] for i in chunk], copy.deepcopy(cache))
            pair = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], dim=1).float()
            out[chunk] = torch.softmax(pair, dim=1)[:, 0].numpy()
            bar.update(len(chunk))
        bar.close()
        return out


def add_lora(model, settings: LoraSettings):
    from peft import LoraConfig, get_peft_model

    layers = None
    if settings.top_layers is not None:
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - settings.top_layers), total))
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.targets), task_type="CAUSAL_LM", layers_to_transform=layers)
    return get_peft_model(model, config)


def load_llm_scanner(adapter_dir: Path | None = None) -> LLMScanner:
    """SmolLM2-135M-Instruct, with the LoRA adapter saved in ``adapter_dir`` when given (None: w/o FT)."""
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    backbone = load_backbone(SMOLLM2)
    model = backbone.model
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return LLMScanner(model, backbone.tokenizer)
