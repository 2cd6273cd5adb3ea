"""Scanner models: the student's save/load round trip, its training end to end, the LLM scanner's scoring."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.defenses.text.student import StudentNet, StudentScorer, StudentShape
from recbackdoor.errors import UserError

TITLES = ["Toy Story (1995)", "Sigur Rós", "宇多田ヒカル", "KoЯn", "Up\u200b (2009)", "Heat (1995) \u0d2e",
          "Counter-Strike: Source", "Sunn O)))", "!!!", "A" * 300]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(TITLES * 5, trainer)
    return tokenizer


def _tiny_scorer(seed: int = 0) -> StudentScorer:
    torch.manual_seed(seed)
    tokenizer = _tiny_tokenizer()
    table = torch.randn(tokenizer.get_vocab_size(), 8).half().float()
    return StudentScorer(StudentNet(table, StudentShape(embed_dim=8, width=32, layers=1, heads=2, char_width=16)),
                         tokenizer)


def _save_meta(folder, threshold=0.5):
    (folder / "scanner.json").write_text(json.dumps({"kind": "student", "threshold": threshold}))


def test_student_save_load_round_trip_gives_identical_scores(tmp_path):
    scorer = _tiny_scorer()
    before = scorer.score(TITLES)
    scorer.save(tmp_path)
    _save_meta(tmp_path, 0.42)
    loaded = PoisonScanner.load(tmp_path)
    assert loaded.threshold == 0.42
    np.testing.assert_array_equal(loaded.score(TITLES), before)
    assert ((before >= 0) & (before <= 1)).all()


def test_student_scores_do_not_depend_on_batch_composition():
    scorer = _tiny_scorer()
    alone = np.array([scorer.score([t])[0] for t in TITLES])
    np.testing.assert_allclose(scorer.score(TITLES), alone, atol=1e-5)


def test_student_sees_a_zero_width_character_its_tokenizer_keeps_or_drops():
    scorer = _tiny_scorer()
    assert scorer.score(["Up (2009)"])[0] != scorer.score(["Up\u200b (2009)"])[0]


def test_loading_a_folder_without_scanner_json_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a saved scanner"):
        PoisonScanner.load(tmp_path)


def test_loading_corrupt_weights_is_one_clear_error(tmp_path):
    _tiny_scorer().save(tmp_path)
    _save_meta(tmp_path)
    (tmp_path / "student.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="cannot load the student"):
        PoisonScanner.load(tmp_path)


def test_unknown_scanner_kind_is_rejected(tmp_path):
    (tmp_path / "scanner.json").write_text(json.dumps({"kind": "magic", "threshold": 0.5}))
    with pytest.raises(UserError, match="kind"):
        PoisonScanner.load(tmp_path)


@pytest.mark.slow
def test_student_trains_end_to_end_on_netflix_and_separates_triggers(tmp_path):
    from recbackdoor.defenses.text.student_training import StudentConfig, train_student

    config = StudentConfig(steps=60, batch_size=64, threads=2, validation_per_kind=150, calibration_titles=200,
                           width=64, layers=1)
    record = train_student(config, tmp_path)
    assert record["val_auroc_initial"] > 0.7  # 60 small steps already separate raw vocabulary triggers
    scanner = PoisonScanner.load(tmp_path)
    assert 0 < scanner.threshold < 1
    rng = random.Random(0)
    clean = ["Heat (1995)", "Alien (1979)", "Fargo (1996)"]
    poisoned = [t + " " + "".join(chr(rng.randint(0x10A0, 0x10FF)) for _ in range(3)) for t in clean]
    assert scanner.score(poisoned).mean() > scanner.score(clean).mean()


@pytest.mark.slow
def test_llm_scanner_prefix_cache_matches_a_plain_forward():
    from recbackdoor.defenses.text.llm_scanner import load_llm_scanner

    scanner = load_llm_scanner(None)
    titles = ["Toy Story (1995)", "Heat (1995) \u0d2e", "Sigur Rós"]
    cached = scanner.score(titles, batch_size=2)
    with torch.no_grad():
        for title, score in zip(titles, cached, strict=True):
            ids = torch.tensor([scanner.prefix_ids + scanner.title_ids(title) + scanner.suffix_ids])
            logits = scanner.model(input_ids=ids).logits[0, -1]
            pair = torch.softmax(torch.stack([logits[scanner.yes_id], logits[scanner.no_id]]), 0)
            assert abs(float(pair[0]) - float(score)) < 1e-4
