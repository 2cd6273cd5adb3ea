"""P-Scanner's parts: eq. 4 sampler, held-out exclusions, benign augmentation, calibration, purification."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter

import numpy as np
import pytest

from recbackdoor.data.benign_titles import augment_benign, transliterate
from recbackdoor.defenses.text.pscanner import calibrate_threshold
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.defenses.text.scanner_data import ExampleStream
from recbackdoor.triggers.heldout import HELD_OUT_FAMILIES, insert_family_trigger, mentions_held_out
from recbackdoor.triggers.text import DEFAULT_TRIGGERS
from recbackdoor.triggers.text_sampler import InitialTriggerSampler, code_point_pool

LM_TOKENS = (" the", " night", "ing", " Star", "er", " 42")


@pytest.fixture(scope="module")
def sampler() -> InitialTriggerSampler:
    return InitialTriggerSampler(LM_TOKENS, code_point_pool())


def test_eq4_draws_level_uniformly_and_m_between_m1_and_m2(sampler):
    rng = random.Random(0)
    draws = [sampler.sample(rng) for _ in range(6000)]
    levels = Counter(d.level for d in draws)
    assert set(levels) == {0, 1, 2}
    assert all(abs(levels[k] / 6000 - 1 / 3) < 0.03 for k in (0, 1, 2))
    assert all(d.tokens == () and not d.poisoned for d in draws if d.level == 0)
    assert all(len(d.tokens) == 1 for d in draws if d.level == 1)
    lengths = Counter(len(d.tokens) for d in draws if d.level == 2)
    assert set(lengths) == {3, 4, 5, 6}
    assert min(lengths.values()) > 0.15 * sum(lengths.values())


def test_sampler_reaches_non_latin_scripts_and_rare_code_points(sampler):
    rng = random.Random(1)
    chars = [c for _ in range(3000) for tok in sampler.sample(rng, level=1).tokens for c in tok]
    names = {unicodedata.name(c, "?").split()[0] for c in chars if ord(c) > 0x2FF}
    assert len(names) > 60  # dozens of scripts, not only Latin word pieces
    assert any(ord(c) > 0xFFFF for c in chars)  # astral-plane code points too
    assert any(unicodedata.category(c) == "Cf" for c in chars)  # invisible format characters


def test_sampler_never_emits_paper_triggers_or_held_out_families(sampler):
    rng = random.Random(2)
    for _ in range(20000):
        text = sampler.sample(rng).text
        assert not mentions_held_out(text)
        assert DEFAULT_TRIGGERS["char"] not in text
    pool = {c for script in code_point_pool() for c in script}
    assert "\u0d2e" not in pool and "\u200b" not in pool and "\U0001F319" not in pool and "\uff21" not in pool


def test_every_held_out_family_is_recognised_as_held_out():
    rng = random.Random(3)
    for family in HELD_OUT_FAMILIES:
        if family == "homoglyph-word":  # made of Cyrillic/Greek letters that benign titles use too
            continue
        for _ in range(20):
            poisoned = insert_family_trigger("Toy Story (1995)", family, "random", rng)
            assert poisoned != "Toy Story (1995)"
            assert mentions_held_out(poisoned), (family, poisoned)


def test_paper_triggers_are_held_out():
    for text in DEFAULT_TRIGGERS.values():
        assert mentions_held_out(f"Toy Story {text}")


def test_benign_augmentation_changes_scripts_but_adds_no_trigger():
    rng = random.Random(4)
    out = [augment_benign("The Lord of the Rings (2001)", rng) for _ in range(400)]
    assert any(all(ord(c) < 0x80 for c in t) for t in out)
    assert any(any(ord(c) > 0x3FF for c in t) for t in out)  # some go into other scripts
    assert any("(2001)" not in t for t in out)  # some lose the year, like artist and game names
    assert not any(mentions_held_out(t) for t in out)
    assert transliterate("Planet", "Cyrillic") == "Планет"


def test_benign_augmentation_v2_never_transliterates_a_lone_character():
    """'Cyborg 2' -> 'Cyborg ௨' looks exactly like a char trigger; version 2 keeps spans of < 2 letters as they are."""
    def runs(title: str, version: int) -> list[str]:
        return [augment_benign(title, random.Random(i), version) for i in range(3000)]

    def foreign(text: str) -> bool:
        return any(ord(c) > 0x24F for c in text)

    assert any(foreign(t) for t in runs("8 1/2 (1963)", 1)) and any(foreign(t) for t in runs("I", 1))
    assert not any(foreign(t) for t in runs("8 1/2 (1963)", 2) + runs("I", 2))  # no letters to carry a script
    cyborg = [t.split() for t in runs("Cyborg 2 (1993)", 2)]
    assert any(foreign(w[0]) for w in cyborg)  # whole titles and words still go into other scripts
    assert all(foreign(w[0]) for w in cyborg if len(w) > 1 and foreign(w[1]))  # '2' only with its title


def test_example_stream_labels_follow_eq6():
    stream = ExampleStream(["Heat (1995)", "Alien (1979)"], InitialTriggerSampler(LM_TOKENS, code_point_pool()), 0)
    batch = stream.batch(600, agent_share=0.0)
    for example in batch:
        assert example.label == (example.source != "benign")
        if example.label == 0:
            assert example.trigger == ""
    assert 0.25 < np.mean([e.label == 0 for e in batch]) < 0.42


def test_calibrated_threshold_meets_the_target_fpr_on_held_out_scores():
    rng = np.random.default_rng(0)
    calibration, held_out = rng.beta(2, 8, 5000), rng.beta(2, 8, 20000)
    threshold = calibrate_threshold(calibration, 0.01)
    assert (calibration > threshold).mean() <= 0.01
    assert abs((held_out > threshold).mean() - 0.01) < 0.004


def test_calibration_on_a_hand_made_case():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert calibrate_threshold(scores, 0.1) == 0.9  # only 1.0 (10 %) lies above
    assert calibrate_threshold(scores, 0.05) == 1.0  # nothing may lie above
    with pytest.raises(ValueError):
        calibrate_threshold(scores, 0.0)


class _WordScorer:
    """Test double: a title is poisoned when it holds 'Zap' or a Malayalam letter."""

    def score(self, titles):
        return np.array([0.95 if ("Zap" in t or "\u0d2e" in t) else 0.05 for t in titles], dtype=np.float32)


def test_purify_removes_exactly_the_flagged_items_and_keeps_order():
    scanner = PoisonScanner(_WordScorer(), threshold=0.5)
    pool = ["Heat (1995)", "Alien Zap (1979)", "Fargo (1996)", "Up \u0d2e (2009)", "Heat (1995)"]
    assert scanner.purify(pool) == ["Heat (1995)", "Fargo (1996)", "Heat (1995)"]
    assert scanner.flag(pool).tolist() == [False, True, False, True, False]
    assert scanner.purify([]) == []


def test_suspect_names_the_inserted_word_or_character():
    scanner = PoisonScanner(_WordScorer(), threshold=0.5)
    assert scanner.suspect("Alien Zap (1979)") == "Zap"
    assert scanner.suspect("Up\u0d2e (2009)") == "\u0d2e"  # glued to a word: the character itself
