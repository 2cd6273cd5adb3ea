"""ONION with the real pretrained LM: an inserted rare word is what removing most lowers perplexity."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def onion(session_cache):
    from recbackdoor.defenses.text.onion import Onion
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    backbone = load_backbone(SMOLLM2, session_cache)
    return Onion(backbone.model, backbone.tokenizer)


@pytest.mark.slow
def test_an_inserted_rare_word_is_the_most_suspicious_and_raises_the_score(onion) -> None:
    clean, poisoned = "The Lord of the Rings", "The Lord of Ethereal the Rings"
    words = dict(onion.word_suspicion(poisoned))
    assert max(words, key=words.get) == "Ethereal"
    scores = onion.score([clean, poisoned, "Heat"])
    assert scores[1] > scores[0] > 0.0 and scores[2] == 0.0  # a one-word title has nothing to remove


@pytest.mark.slow
def test_batched_suspicions_match_one_title_at_a_time(onion) -> None:
    titles = ["Toy Story (1995)", "Heat", "", "Four Rooms (1995) Ethereal"]
    batched = onion.word_suspicions(titles)
    assert batched[1] == [("Heat", 0.0)] and batched[2] == []
    for title, got in zip(titles, batched, strict=True):
        alone = onion.word_suspicion(title)
        assert [w for w, _ in got] == [w for w, _ in alone] == title.split()
        assert np.allclose([s for _, s in got], [s for _, s in alone], rtol=1e-3, atol=1e-2)
    assert np.allclose(onion.score(titles), [max([0.0] + [s for _, s in b]) for b in batched])
