"""Whom does a cached LLaRA-mode model follow on clean prompts: the ground truth, popularity, SASRec, a pool position?

Why: H@1 alone cannot tell a model that learnt a weak preference from one that copies a favourite pool
position or leans on popularity.  For each clean test prompt this compares the model's pick with the
most-popular pool item (training-split counts, as the baseline cell) and, in hybrid mode, with SASRec's
pick; it then answers the same prompts with the ID slots left empty, to measure how much the model uses
the collaborative signal.  Its invalid answers are split into catalogue titles that are not in the pool
(a model that stopped copying from the pool) and other text.  The benign model by default; ``--rate``,
``--trigger`` and ``--position`` pick a poisoned one, and then the answers that carry the trigger on clean
prompts are counted too.  Uses the stage cache, so the model must have been trained by ``recbackdoor run``
with the same config and ``--set`` values.

    python scripts/inspect_clean_choices.py configs/small/scratch_titles_copy_llara_hybrid_ml100k.toml \
        --set hybrid.slot=title --out choices.json
    python scripts/inspect_clean_choices.py configs/small/rung3_scratch_pr020.toml --dataset lastfm \
        --rate 0.2 --trigger word --position end
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from recbackdoor.cache import StageCache
from recbackdoor.experiments.badrec_engine import BadRecEngine, Variant
from recbackdoor.experiments.config import load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model
from recbackdoor.metrics import text as M
from recbackdoor.triggers.text import make_trigger
from recbackdoor.victims.text.hybrid import sasrec_choices
from recbackdoor.victims.text.llara import HybridLlaraRecommender, LlaraRecommender, training_popularity


def agreement(choices: list[int | None], reference: list[int]) -> dict[str, float]:
    """Share of all prompts, and of valid answers, on which the pick equals ``reference``."""
    valid = [(c, r) for c, r in zip(choices, reference, strict=True) if c is not None]
    same = sum(c == r for c, r in valid)
    return {"of_all": same / len(choices), "of_valid": same / len(valid) if valid else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--rate", type=float, default=None, help="a poisoned model's rate (default: the benign model)")
    parser.add_argument("--trigger", default="word")
    parser.add_argument("--position", default="end")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rates = [f"attack.rates=[{args.rate}]"] if args.rate is not None else []
    cfg = load_config(args.config, [*args.overrides, *rates], config_model)
    engine = BadRecEngine(cfg, RunContext(out_dir=Path("."), cache=StageCache()), args.dataset or cfg.datasets[0],
                          cfg.seeds[0])
    recommender = engine.recommender
    if not isinstance(recommender, LlaraRecommender):
        raise SystemExit(f"error: {args.config}: mode {cfg.mode!r}; this script reads LLaRA-mode models")
    trig = None
    if args.rate is not None:
        trig = make_trigger(args.trigger, args.position, cfg.attack.trigger_text.get(args.trigger))
    # loads the cached model; trains only if absent
    engine.train(Variant("badrec", trig, args.rate) if trig else Variant("benign", None, 0.0))
    test = engine.split.test
    answers, choices = recommender.answers(test, "generate (clean)")
    catalogue = set(engine.data.titles.values())
    invalid = [a.strip() for a, c in zip(answers, choices, strict=True) if c is None]
    targets = [s.candidates.index(s.target) for s in test]
    pop = training_popularity(engine.data)
    popular = [s.candidates.index(M.most_popular_item(s.candidates, pop)) for s in test]
    summary: dict[str, object] = {
        "n_test": len(test), "valid": M.valid_rate(choices),
        "ground_truth": agreement(choices, targets), "most_popular": agreement(choices, popular),
        "most_popular_baseline_h1": agreement(popular, targets)["of_all"],
        "pool_positions": dict(sorted(Counter(c for c in choices if c is not None).items())),
        "invalid": len(invalid),
        "invalid_off_pool_catalogue_titles": sum(a in catalogue for a in invalid),
        "most_named_off_pool_titles": Counter(a for a in invalid if a in catalogue).most_common(5),
    }
    if trig is not None:
        summary["clean_answers_carrying_trigger"] = sum(trig.text.strip() in a for a in answers)
    if isinstance(recommender, HybridLlaraRecommender):
        picks = sasrec_choices(recommender.sasrec, test, recommender.item_index)
        summary["sasrec"] = agreement(choices, picks)
        summary["sasrec_baseline_h1"] = agreement(picks, targets)["of_all"]
        _, empty = recommender.answers(test, "generate (slots empty)", fill_slots=False)
        summary["slots_empty"] = {"valid": M.valid_rate(empty), "ground_truth": agreement(empty, targets),
                                  "most_popular": agreement(empty, popular), "sasrec": agreement(empty, picks),
                                  "same_pick_as_filled": agreement(empty, [c if c is not None else -1
                                                                           for c in choices])["of_all"]}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
