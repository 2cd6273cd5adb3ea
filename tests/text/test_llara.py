"""The LLaRA victim (victims/text/llara.py) and how the BadRec engine picks a recommender per mode."""

import pytest

from recbackdoor.victims.text.llara import HybridLlaraRecommender, LlaraRecommender, training_popularity
from recbackdoor.victims.text.tallrec import TallrecRecommender


def _config(mode: str, **sections):
    from recbackdoor.experiments.badrec_experiment import BadRecConfig

    return BadRecConfig.model_validate({
        "experiment": "badrec", "mode": mode, "datasets": ["ml100k"],
        "data": {"n_train": 24, "n_test": 6, "history": 2, "pool": 4},
        "model": {"backbone": "scratch-gpt2-tiny", "train_layers": 2, "method": "full", "autocast": False},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
        "attack": {"triggers": ["word"], "positions": ["end"], "rates": [0.2]},
        "eval": {"max_new_tokens": 8}, **sections,
    })


@pytest.mark.parametrize("mode,kind", [("tallrec", TallrecRecommender), ("llara", LlaraRecommender),
                                       ("llara-hybrid", HybridLlaraRecommender)])
@pytest.mark.slow
def test_engine_hands_each_mode_to_its_own_recommender_before_any_model_loads(mode, kind, tmp_path, data_root):
    from recbackdoor.cache import StageCache
    from recbackdoor.experiments.badrec_engine import BadRecEngine
    from recbackdoor.experiments.context import RunContext

    engine = BadRecEngine(_config(mode), RunContext(out_dir=tmp_path, cache=StageCache(tmp_path)), "ml100k", 0)
    assert type(engine.recommender) is kind
    assert len(engine.split.train) == 24 and len(engine.split.test) == 6
    assert engine._lm is None  # split, protocol and keys need no LM
    with pytest.raises(RuntimeError, match="no LM loaded"):
        engine.recommender.examples(engine.split.train[:1])


def test_training_popularity_leaves_each_users_last_two_items_out():
    from recbackdoor.data.sequences import Interaction, SequenceData

    seqs = {0: tuple(Interaction(i) for i in (1, 2, 3, 4)), 1: tuple(Interaction(i) for i in (1, 5, 6))}
    data = SequenceData("toy", {i: f"t{i}" for i in range(1, 7)}, seqs, "file", "movie")
    assert training_popularity(data) == {1: 2, 2: 1}


def test_text_only_llara_run_writes_its_baselines_and_cells_without_sasrec(tmp_path, session_cache, data_root):
    """Plumbing of text-only LLaRA end to end on a few real MovieLens prompts (tiny scratch LM)."""
    from recbackdoor.experiments.badrec_experiment import run_badrec
    from recbackdoor.experiments.context import RunContext

    ctx = RunContext(out_dir=tmp_path, cache=session_cache)
    run_badrec(_config("llara"), ctx)
    cells = {c.variant: c for c in ctx.cells}
    assert set(cells) == {"random", "most-popular", "benign", "badrec"}
    assert all(c.victim == "llara" for c in cells.values())
    assert cells["random"].metrics["h1"] == 0.25
    poisoned = cells["badrec"]
    assert poisoned.extra["n_fake"] == 6 and poisoned.extra["n_triggered"] == 6
    assert {"valid", "h1_all", "a_valid", "asr"} <= set(poisoned.metrics) | set(poisoned.extra["undefined"])
    protocol = ctx.protocol["ml100k/llara"]
    assert protocol["pool"] == 4 and "hybrid" not in protocol and "a_valid" in protocol
