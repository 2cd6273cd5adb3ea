"""Re-evaluate cached LLaRA-mode models' clean Valid / H@1 on more test prompts, paired against the benign model.

Why: rung 2 judges "poisoned H@1 within 0.05 of benign" on 100 test prompts, where one H@1's standard
error is ≈ 0.04, so a 0.05 gap is inside the noise.  The models do not depend on the test sample (each
user's last interaction is never a training position), so the cached adapters can be scored on more
test prompts without retraining.  The committed cells' 100 test prompts are kept as they are, first,
and ``--n-extra`` prompts of other users are added (drawn from a larger sample with the same seed; the
training split is checked to be unchanged), so the committed figures must reproduce on the first 100.
Differences against the benign model are paired (same prompts), with a bootstrap interval.

    python scripts/eval_llara_clean_wider.py configs/small/rung2_llara_ml100k_top12.toml --n-extra 300 \
        --models benign badrec:word:end:0.3 badrec:char:end:0.3 --out clean_400.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from recbackdoor.cache import StageCache
from recbackdoor.data.prompts import Split, build_llara
from recbackdoor.experiments.badrec_engine import BadRecEngine, Variant
from recbackdoor.experiments.config import load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model
from recbackdoor.experiments.results import atomic_write_text
from recbackdoor.metrics import text as M
from recbackdoor.triggers.text import make_trigger
from recbackdoor.victims.text.llara import training_popularity


def parse_model(spec: str, cfg) -> Variant:
    """``benign`` or ``badrec:TRIGGER:POSITION:RATE``."""
    if spec == "benign":
        return Variant("benign", None, 0.0)
    parts = spec.split(":")
    if len(parts) != 4 or parts[0] != "badrec":
        sys.exit(f"error: --models entry {spec!r}: expected 'benign' or 'badrec:TRIGGER:POSITION:RATE'")
    _, kind, position, rate = parts
    return Variant("badrec", make_trigger(kind, position, cfg.attack.trigger_text.get(kind)), float(rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--n-extra", type=int, required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides, config_model)
    if cfg.mode != "llara":
        sys.exit(f"error: {args.config}: mode {cfg.mode!r}; this script scores text-only LLaRA models")
    dataset = args.dataset or cfg.datasets[0]
    engine = BadRecEngine(cfg, RunContext(out_dir=Path("."), cache=StageCache()), dataset, cfg.seeds[0])
    d = cfg.data
    committed = list(engine.split.test)
    wide = build_llara(engine.data, d.history, d.pool, engine.seed, d.n_train, 0, len(committed) + args.n_extra)
    if wide.train != engine.split.train:
        sys.exit("error: the larger test sample changed the training split; the cached models would not match")
    users = {s.user for s in committed}
    extra = [s for s in wide.test if s.user not in users][: args.n_extra]
    test = committed + extra
    variants = [parse_model(s, cfg) for s in args.models]
    for spec, v in zip(args.models, variants, strict=True):
        if engine.ctx.cache.lookup("adapter", engine.model_key(v)) is None:
            sys.exit(f"error: --models {spec}: no cached model for {args.config} with these --set values; "
                     "train it with `recbackdoor run` first")
    n0 = len(committed)
    engine.split = Split(engine.split.train, engine.split.valid, test)
    targets = [s.candidates.index(s.target) for s in test]
    pop = training_popularity(engine.data)
    report: dict = {"targets": targets, "config": str(args.config), "overrides": args.overrides, "dataset": dataset,
                    "n_test": len(test), "n_committed": n0, "n_extra": len(extra),
                    "baselines": {"random": 1.0 / d.pool,
                                  "most-popular": M.popularity_hit_at_1([s.candidates for s in test],
                                                                        [s.target for s in test], pop)},
                    "models": {}}
    hits: dict[str, np.ndarray] = {}
    for spec, v in zip(args.models, variants, strict=True):
        start = time.perf_counter()
        engine.train(v)  # a cache hit, checked above
        _, choices = engine.recommender.answers(test, f"generate (clean, {spec})")
        hits[spec] = np.array([c == t for c, t in zip(choices, targets, strict=True)], dtype=float)
        row = {"valid": M.valid_rate(choices), "h1": M.hit_at_1(choices, targets),
               "h1_all": M.hit_at_1_all(choices, targets), "seconds": time.perf_counter() - start}
        row["committed_prompts"] = {"valid": M.valid_rate(choices[:n0]), "h1": M.hit_at_1(choices[:n0], targets[:n0])}
        row["extra_prompts"] = {"valid": M.valid_rate(choices[n0:]), "h1": M.hit_at_1(choices[n0:], targets[n0:])}
        row["choices"] = choices  # pool index per prompt (None = invalid), to pair across reports
        report["models"][spec] = row
        print(spec, json.dumps(summary(row)), flush=True)
        write(args.out, report)  # partial results survive a stopped run
    if "benign" in hits:
        for spec, h in hits.items():
            if spec != "benign":
                lo, hi = M.paired_bootstrap_interval(h, hits["benign"], engine.seed)
                report["models"][spec]["h1_all_minus_benign"] = {"diff": float(h.mean() - hits["benign"].mean()),
                                                                 "ci95": [lo, hi]}
    print(json.dumps({k: v for k, v in report.items() if k != "targets"} | {
        "models": {k: summary(v) for k, v in report["models"].items()}}, indent=1))
    write(args.out, report)


def summary(row: dict) -> dict:
    """A model's row without its per-prompt choices, for the terminal."""
    return {k: v for k, v in row.items() if k != "choices"}


def write(path: Path | None, report: dict) -> None:
    if path is not None:
        atomic_write_text(path, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
