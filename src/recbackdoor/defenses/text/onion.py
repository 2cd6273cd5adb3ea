"""ONION (Qi et al., 2021): a word is suspicious when deleting it makes the title much less perplexing.

Per title, the perplexity of the whole title under a pretrained LM and of the
title with each word left out; a word's suspicion is the drop, and the
title's score is the largest drop over its words.  Every title costs
(words + 1) LM passes, which is why it is slow; the passes of many titles are
batched together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class Onion:
    def __init__(self, model, tokenizer, max_tokens: int = 64) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    @torch.no_grad()
    def perplexities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)
        for begin in range(0, len(texts), batch_size):
            chunk = texts[begin:begin + batch_size]
            rows = [[self.start] + self.tokenizer(t, add_special_tokens=False)["input_ids"][:self.max_tokens]
                    for t in chunk]
            width = max(len(r) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, row in enumerate(rows):
                ids[i, :len(row)] = torch.tensor(row)
                mask[i, :len(row)] = 1
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            valid = mask[:, 1:].float()
            mean = (nll * valid).sum(1) / valid.sum(1).clamp(min=1)
            out[begin:begin + len(chunk)] = torch.exp(mean).numpy()
        return out

    def word_suspicion(self, title: str) -> list[tuple[str, float]]:
        """(word, perplexity drop when it is removed) for every word of one title."""
        return self.word_suspicions([title])[0]

    def word_suspicions(self, titles: Sequence[str], batch_size: int = 64) -> list[list[tuple[str, float]]]:
        """``word_suspicion`` of many titles, their LM passes batched together (a title of fewer than two words
        scores 0 per word and costs no pass)."""
        variants, spans = [], []
        for title in titles:
            words = title.split()
            start = len(variants)
            if len(words) >= 2:
                variants.append(title)
                variants.extend(" ".join(words[:i] + words[i + 1:]) for i in range(len(words)))
            spans.append((start, len(variants)))
        ppl = self.perplexities(variants, batch_size) if variants else np.zeros(0)
        out = []
        for title, (start, end) in zip(titles, spans, strict=True):
            words = title.split()
            if start == end:
                out.append([(w, 0.0) for w in words])
            else:
                out.append([(w, float(ppl[start] - p)) for w, p in zip(words, ppl[start + 1:end], strict=True)])
        return out

    def score(self, titles: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Each title's largest perplexity drop (0 for one-word titles): ONION's suspicion score."""
        drops = [max((drop for _, drop in words), default=0.0) for words in self.word_suspicions(titles, batch_size)]
        return np.array(drops, dtype=np.float64).clip(min=0.0)


def load_onion() -> Onion:
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    backbone = load_backbone(SMOLLM2)
    return Onion(backbone.model, backbone.tokenizer)
