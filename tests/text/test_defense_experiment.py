"""The defense experiment end to end on a few real MovieLens prompts (tiny scratch LM, the shipped scanner)."""

from __future__ import annotations

import pytest

NAMES = ["rd", "llmsi", "strip", "p-scanner", "p-scanner-train-time"]


def _config(mode: str, names: list[str] = NAMES, triggers: tuple[str, ...] = ("word",), **defense):
    from recbackdoor.experiments.defense_experiment import DefenseConfig

    return DefenseConfig.model_validate({
        "experiment": "defense", "mode": mode, "datasets": ["ml100k"],
        "data": {"n_train": 24, "n_test": 10, "history": 2, "pool": 4},
        "model": {"backbone": "scratch-gpt2-tiny", "train_layers": 2, "method": "full", "autocast": False},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
        "attack": {"triggers": list(triggers), "positions": ["end"], "rates": [0.2]},
        "eval": {"max_new_tokens": 8},
        "defense": {"names": names, "n_clean": 6, "n_triggered": 4, "n_calibration": 2, "strip_runs": 3,
                    **defense},
    })


def _run(cfg, cache, tmp_path, only=None):
    from recbackdoor.experiments.context import RunContext
    from recbackdoor.experiments.defense_experiment import run_defense

    ctx = RunContext(out_dir=tmp_path, cache=cache, only=only or {})
    run_defense(cfg, ctx)
    return {c.variant: c for c in ctx.cells}


@pytest.mark.parametrize("mode", ["tallrec", "llara"])
@pytest.mark.slow
def test_every_row_of_the_table_comes_out_with_rates_cost_and_score(mode, tmp_path, session_cache, data_root):
    cells = _run(_config(mode), session_cache, tmp_path)
    assert set(cells) == {"benign", "badrec", *NAMES}
    utility = "auc" if mode == "tallrec" else "h1"
    for name, cell in cells.items():
        assert cell.victim == mode and (cell.trigger, cell.position) == ("word", "end")
        assert cell.extra["n_clean"] == 6 and cell.extra["n_triggered"] == 4
        has = set(cell.metrics) | set(cell.extra["undefined"])  # a rate with no attackable request is undefined
        assert {"asr", "queries_per_request", "seconds_per_request"} <= has, name
        assert ("score" in has) == (name not in ("benign", "badrec"))
    assert utility in set(cells["badrec"].metrics) | set(cells["badrec"].extra["undefined"])
    # the undefended model and LLMSI ask once per request; STRIP asks runs + 1 (LLaRA) or up to that (TALLRec)
    assert cells["badrec"].metrics["queries_per_request"] == cells["llmsi"].metrics["queries_per_request"] == 1
    assert 1 < cells["strip"].metrics["queries_per_request"] <= 4
    # the shipped scanner flags "Ethereal" glued to the end of a MovieLens title: the trigger never wins
    scanner = cells["p-scanner"]
    assert scanner.extra["detections"] == 1.0 and scanner.metrics.get("asr", 0.0) == 0.0
    if mode == "tallrec":  # a flagged target is answered "No" without asking the recommender
        assert scanner.metrics["queries_per_request"] == pytest.approx(6 / 10)
    # the train-time filter saw the fake users' poisoned titles and dropped them
    dropped = cells["p-scanner-train-time"].extra["filter"]
    assert dropped["dropped_fake"] >= 1 and dropped["dropped_fake"] <= dropped["n_fake"]


@pytest.mark.slow
def test_only_reruns_one_cell_from_the_cache_with_the_same_numbers(tmp_path, session_cache, data_root):
    first = _run(_config("tallrec"), session_cache, tmp_path)
    again = _run(_config("tallrec"), session_cache, tmp_path, only={"variant": "rd"})
    assert set(again) == {"rd"}
    assert again["rd"].metrics == first["rd"].metrics


@pytest.mark.slow
def test_train_time_models_on_the_same_cleaned_data_are_trained_once(tmp_path, session_cache, data_root):
    """Where the scanner drops every fake, each trigger's cleaned data are the same samples: one model serves all."""
    import json

    from recbackdoor.experiments.context import RunContext
    from recbackdoor.experiments.defense_experiment import run_defense

    cfg = _config("tallrec", names=["p-scanner-train-time"], triggers=("word", "sentence"))
    ctx = RunContext(out_dir=tmp_path, cache=session_cache)
    run_defense(cfg, ctx)
    filters = [c.extra["filter"] for c in ctx.cells if c.variant == "p-scanner-train-time"]
    assert len(filters) == 2 and all(f["dropped_fake"] == f["n_fake"] > 0 for f in filters)
    assert filters[0]["trained_on"] == filters[1]["trained_on"]
    trained = [d for d in (session_cache.root / "adapter").iterdir()
               if (d / "key.json").exists() and filters[0]["trained_on"] in (d / "key.json").read_text()]
    assert len(trained) == 1
    assert json.loads((trained[0] / "train_log.json").read_text())["dropped_fake"] == filters[0]["n_fake"]


def test_ablations_need_their_scanners_named():
    with pytest.raises(ValueError, match="scanner_wo_ft"):
        _config("tallrec", names=["p-scanner-wo-ft"])
    with pytest.raises(ValueError, match="cannot exceed n_clean"):
        _config("tallrec", n_triggered=9)
    with pytest.raises(ValueError, match="unknown defense"):
        _config("tallrec", names=["onoin"])


@pytest.mark.slow
def test_recurrence_rows_add_the_titles_carrying_the_catalogues_recurring_trigger(tmp_path, session_cache, data_root):
    """The char trigger at random positions: the per-title scanner misses some carriers, the catalogue's recurrence
    test names the trigger itself and the '+ recurrence' rows catch at least what P-Scanner does."""
    names = ["p-scanner", "p-scanner-recurrence", "p-scanner-train-time", "p-scanner-recurrence-train-time"]
    cfg = _config("tallrec", names=names, triggers=("char",))
    cfg = cfg.model_copy(update={"attack": cfg.attack.model_copy(update={"positions": ["random"]}),
                                 "data": cfg.data.model_copy(update={"n_train": 60})})
    cells = _run(cfg, session_cache, tmp_path)
    plain, rec = cells["p-scanner"], cells["p-scanner-recurrence"]
    assert rec.extra["spans"] == ["\u0d2e"]  # the trigger, and nothing benign, from 60 prompts + their fakes
    assert rec.extra["detections"] == 1.0 >= plain.extra["detections"]
    assert rec.extra["false_alarms"] == plain.extra["false_alarms"]  # no clean title carries it
    before, after = (cells[n].extra["filter"] for n in ("p-scanner-train-time", "p-scanner-recurrence-train-time"))
    assert after["dropped_fake"] == after["n_fake"] >= before["dropped_fake"]
    assert after["dropped_benign"] == before["dropped_benign"]


@pytest.mark.slow
def test_label_test_rows_drop_the_titles_the_training_data_always_likes(tmp_path, session_cache, data_root):
    """The label test reads the training data, not the scores: the fakes' titles are the only ones always liked.
    (60 prompts hold too few titles for 15 fakes to stand out at α = 10⁻³; 30 do.)"""
    names = ["p-scanner", "p-scanner-train-time", "p-scanner-label", "p-scanner-label-train-time"]
    cfg = _config("tallrec", names=names, triggers=("char",))
    cfg = cfg.model_copy(update={"attack": cfg.attack.model_copy(update={"positions": ["random"], "rates": [0.5]}),
                                 "data": cfg.data.model_copy(update={"n_train": 60})})
    cells = _run(cfg, session_cache, tmp_path)
    plain, label = cells["p-scanner"], cells["p-scanner-label"]
    assert label.extra["spans"] == ["\u0d2e"] and label.extra["detections"] == 1.0 >= plain.extra["detections"]
    assert label.extra["false_alarms"] == plain.extra["false_alarms"]
    before, after = (cells[n].extra["filter"] for n in ("p-scanner-train-time", "p-scanner-label-train-time"))
    assert after["dropped_fake"] == after["n_fake"] >= before["dropped_fake"]
    assert after["dropped_benign"] == before["dropped_benign"]


@pytest.mark.slow
def test_without_the_benign_row_no_benign_model_is_trained(tmp_path, session_cache, data_root, monkeypatch):
    """The README's quickstart leaves the benign control out to stay within its time: only the poisoned model."""
    from recbackdoor.experiments.badrec_engine import BadRecEngine

    trained = []
    original = BadRecEngine.train

    def spy(self, v, *args, **kwargs):
        trained.append(v.trigger is None)
        return original(self, v, *args, **kwargs)

    monkeypatch.setattr(BadRecEngine, "train", spy)
    cells = _run(_config("tallrec", names=["p-scanner"], benign=False), session_cache, tmp_path)
    assert set(cells) == {"badrec", "p-scanner"}
    # the benign model is never trained (the poisoned one may come from the cache, trained by an earlier test)
    assert not any(trained)
