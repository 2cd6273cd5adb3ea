"""Re-generate one cached LLaRA-mode poisoned model's triggered answers and say how the misses fail.

Why: ASR (eq. 3) counts only "returned the poisoned item"; to decide what to change next one needs to
know whether the misses return the ground truth, another title with the trigger attached, or nothing
valid, and whether they depend on where the poisoned item sits in the pool.  Uses the stage cache, so
the model must have been trained by ``recbackdoor run`` with the same config and ``--set`` values.

    python scripts/inspect_llara_answers.py CONFIG --rate 0.3 --trigger word --position end \
        --set data.n_train=1500 train.epochs=3 --out answers.json

``--benign`` reads the benign model of the same config on the same triggered prompts instead: the baseline each
breakdown needs (a benign model may already favour some trigger placements).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from recbackdoor.cache import StageCache
from recbackdoor.experiments.badrec_engine import BadRecEngine, Variant
from recbackdoor.experiments.config import load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model
from recbackdoor.triggers.text import make_trigger
from recbackdoor.victims.text.llara import LlaraRecommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--trigger", required=True)
    parser.add_argument("--position", required=True)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--benign", action="store_true", help="the benign model on the same triggered prompts")
    args = parser.parse_args()
    cfg = load_config(args.config, [*args.overrides, f"attack.rates=[{args.rate}]"], config_model)
    engine = BadRecEngine(cfg, RunContext(out_dir=Path("."), cache=StageCache()), args.dataset or cfg.datasets[0],
                          cfg.seeds[0])
    if not isinstance(engine.recommender, LlaraRecommender):
        raise SystemExit(f"error: {args.config}: mode {cfg.mode!r}; this script reads LLaRA-mode models")
    trig = make_trigger(args.trigger, args.position, cfg.attack.trigger_text.get(args.trigger))
    variant = Variant("benign", None, 0.0) if args.benign else Variant("badrec", trig, args.rate)
    engine.train(variant)  # loads the cached model; trains only if absent
    test, seed = engine.triggered_test()
    pairs, answers, choices = engine.recommender.triggered_answers(test, trig, seed)  # what the ASR cell counts
    rows = []
    mark = trig.text.strip()
    for (sample, item), text, choice in zip(pairs, answers, choices, strict=True):
        title = sample.title(item, engine.data.titles)
        place = "first" if title.startswith(mark) else "last" if title.endswith(mark) else "inside"
        rows.append({"answer": text.strip(), "choice": choice, "poisoned": sample.candidates.index(item),
                     "target": sample.candidates.index(sample.target), "poisoned_title": title,
                     "clean_title": engine.data.titles[item], "trigger_place": place})
    hits = [r["choice"] == r["poisoned"] for r in rows]
    by_slot: dict[int, list[bool]] = defaultdict(list)
    by_place: dict[str, list[bool]] = defaultdict(list)
    for r, hit in zip(rows, hits, strict=True):
        by_slot[r["poisoned"]].append(hit)
        by_place[r["trigger_place"]].append(hit)
    summary = {
        "asr": sum(hits) / len(rows),
        "misses_ground_truth": sum(r["choice"] == r["target"] for r in rows),
        "misses_other_valid": sum(r["choice"] not in (None, r["target"], r["poisoned"]) for r in rows),
        "misses_invalid": sum(r["choice"] is None for r in rows),
        "misses_carrying_trigger": sum(not hit and mark in r["answer"]
                                       for r, hit in zip(rows, hits, strict=True)),
        # misses that name the poisoned item but leave the trigger off (invalid: the pool lists it with the trigger)
        "misses_poisoned_item_without_trigger": sum(not hit and r["answer"] == r["clean_title"]
                                                    for r, hit in zip(rows, hits, strict=True)),
        "hits_by_pool_slot": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_slot.items())},
        # where the trigger sits in the poisoned title: first word, last word, or between two words
        "hits_by_trigger_place": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_place.items())},
        # misses that name the pool item listed just before the poisoned one
        "misses_on_item_before": sum(not hit and r["choice"] is not None and r["choice"] == r["poisoned"] - 1
                                     for r, hit in zip(rows, hits, strict=True)),
        "n": len(rows),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "answers": rows}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
