"""The Unicode channel: a small network that reads only what Unicode says about a title.

Why a channel of its own: the student weighs every kind of evidence in one score, and on real catalogues its
highest clean scores come from ordinary but unusual words ('Natalie Imbruglia', 'Gratuitous Tank Battles'),
which a word trigger would also look like. One threshold at 1 % FPR then has to sit above those names, and a
lone letter of a foreign script between two words (0.7–0.9) falls under it. Scored apart, on evidence no
English word can produce (scripts, categories, ICU's UTS #39 spoof checks, short runs of a minority script),
a character-level insertion stands out from the benign tail of its own channel; ``fused_scanner`` then flags a
title when either channel is in its own benign tail.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recbackdoor.defenses.text.unicode_evidence import N_EVIDENCE, char_info, neutral_scripts, title_evidence

N_ISLAND = 4
N_FEATURES = N_EVIDENCE + N_ISLAND
MAX_ISLAND = 2  # a run of at most this many characters of a minority script is an island


class ChannelConfig(BaseModel):
    """Settings of the Unicode channel (TOML section ``[channel]``)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    seed: int = 0
    examples: int = 60000  # synthetic titles (initial triggers and benign, as the student's stream draws them)
    epochs: int = 30
    batch_size: int = 512
    lr: float = 3e-3
    hidden: int = 64
    augmentation: int = 2  # benign_titles.augment_benign's version for its benign titles


def script_islands(title: str) -> list[float]:
    """Short runs of a script other than the title's majority script (how many, how many stand alone as a
    word), the share of letters outside the majority script, and whether the title has two or more scripts.

    'Toy മ Story' has one island standing alone; 'KoЯn' one inside a word; '宇多田ヒカル' none (its runs of
    kana and Han are long). Script-less characters (digits, punctuation, marks) neither start nor break a run."""
    neutral = set(neutral_scripts())
    scripts = [char_info(c)[1] for c in title]
    counts: dict[int, int] = {}
    for s in scripts:
        if s not in neutral:
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return [0.0] * N_ISLAND
    major = max(counts, key=lambda s: (counts[s], -s))
    n_script = sum(counts.values())
    runs = alone = 0
    i = 0
    while i < len(title):
        s = scripts[i]
        if s in neutral or s == major:
            i += 1
            continue
        j = i
        while j < len(title) and scripts[j] == s:
            j += 1
        if j - i <= MAX_ISLAND:
            runs += 1
            alone += (i == 0 or title[i - 1] == " ") and (j == len(title) or title[j] == " ")
        i = j
    return [runs / 2, alone / 2, (n_script - counts[major]) / n_script, float(len(counts) > 1)]


def channel_features(titles: Sequence[str], evidence: np.ndarray | None = None) -> np.ndarray:
    """``title_evidence`` (passed in when the caller already has it) and ``script_islands`` per title."""
    if evidence is None:
        evidence = np.stack([title_evidence(t) for t in titles]) if titles else np.zeros((0, N_EVIDENCE))
    islands = np.asarray([script_islands(t) for t in titles], dtype=np.float32).reshape(len(titles), N_ISLAND)
    return np.concatenate([np.asarray(evidence, dtype=np.float32), islands], axis=1)


class UnicodeChannelNet(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.layers = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)

    @torch.no_grad()
    def probability(self, features: np.ndarray) -> np.ndarray:
        return torch.sigmoid(self(torch.from_numpy(np.asarray(features, dtype=np.float32)))).numpy()


def train_channel(config: ChannelConfig, benign_titles: Sequence[str], sampler) -> tuple[UnicodeChannelNet, dict]:
    """Fit the channel on the student's kind of synthetic stream (eq. 4's initial triggers, no agent rewrites:
    a fluent word carries no Unicode evidence). Every positive counts, seen or not by Unicode, so the channel's
    output is P(trigger | Unicode evidence) and its benign tail is where calibration puts the threshold."""
    from recbackdoor.defenses.text.scanner_data import ExampleStream

    torch.manual_seed(config.seed)
    stream = ExampleStream(benign_titles, sampler, seed=config.seed + 11, augmentation=config.augmentation)
    examples = stream.batch(config.examples, 0.0)
    x = torch.from_numpy(channel_features([e.title for e in examples]))
    y = torch.tensor([float(e.label) for e in examples])
    net = UnicodeChannelNet(config.hidden)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-3)
    order = torch.Generator().manual_seed(config.seed)
    losses = []
    for _epoch in range(config.epochs):
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), config.batch_size):
            idx = perm[start:start + config.batch_size]
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    net.eval()
    return net, {"examples": len(examples), "positives": int(y.sum()),
                 "loss_last50": float(np.mean(losses[-50:])), "seed": config.seed}


def seeded_benign(titles: Sequence[str], seed: str, version: int) -> list[str]:
    """Held-out benign titles as the training stream shows them (augmented), one seeded draw per title."""
    from recbackdoor.data.benign_titles import augment_benign

    return [augment_benign(t, random.Random(f"{seed}:{i}"), version) for i, t in enumerate(titles)]
