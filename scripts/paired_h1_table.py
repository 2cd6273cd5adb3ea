"""Paired clean-H@1 table (markdown) from eval_llara_clean_wider.py reports, each poisoned model against the benign one.

Why: the reports come from separate processes (two models per core), so pairing needs the per-prompt
choices both reports keep; the interval is the eval script's bootstrap (``paired_bootstrap_interval``, seed 0).

    python scripts/paired_h1_table.py clean_400_a.json clean_400_b.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from recbackdoor.metrics.text import paired_bootstrap_interval

HEADER = ("| model | Valid | H@1 (valid) | H@1 (all) | H@1 (all) − benign [95 % CI] "
          "| committed prompts: Valid / H@1 | extra prompts: Valid / H@1 |")


def label(spec: str, with_rate: bool, overrides: list[str]) -> str:
    """``badrec:word:end:0.3`` → ``word-end`` (``word-end, PR 0.3`` when the table mixes rates).

    A report scored with ``--set`` overrides (e.g. ``train.epochs=5``) names them, so two models of the
    same spec trained differently stay two rows.
    """
    parts = spec.split(":")
    name = spec if len(parts) != 4 else f"{parts[1]}-{parts[2]}" + (f", PR {parts[3]}" if with_rate else "")
    return name + (f" ({', '.join(overrides)})" if overrides else "")


def main() -> None:
    reports = [json.load(open(p)) for p in sys.argv[1:]]
    if not reports or any(r["targets"] != reports[0]["targets"] for r in reports):
        sys.exit("error: give reports scored on the same test prompts")
    targets = reports[0]["targets"]
    # one row per (spec, overrides): the same spec scored under other --set values is another model
    models: dict[tuple[str, tuple[str, ...]], dict] = {}
    for r in reports:
        for spec, row in r["models"].items():
            key = (spec, tuple(r.get("overrides", [])))
            if key in models:
                sys.exit(f"error: {spec} with overrides {list(key[1])} is in more than one report")
            models[key] = row
    benign_keys = [k for k in models if k[0] == "benign"]
    if len(benign_keys) != 1:
        sys.exit(f"error: give exactly one benign model; found {len(benign_keys)}")

    def hits(key: tuple[str, tuple[str, ...]]) -> np.ndarray:
        return np.array([c == t for c, t in zip(models[key]["choices"], targets, strict=True)], dtype=float)

    benign = hits(benign_keys[0])
    mixed_rates = len({spec.split(":")[-1] for spec, _ in models if spec.count(":") == 3}) > 1
    print(HEADER)
    print("|---|---|---|---|---|---|---|")
    for key, r in models.items():
        spec, overrides = key
        h = hits(key)
        diff = "—"
        if spec != "benign":
            lo, hi = paired_bootstrap_interval(h, benign, seed=0)
            diff = f"{h.mean() - benign.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"
        c, e = r["committed_prompts"], r["extra_prompts"]
        name = label(spec, mixed_rates, list(overrides))
        print(f"| {name} | {r['valid']:.3f} | {r['h1']:.3f} | {r['h1_all']:.3f} | {diff} "
              f"| {c['valid']:.2f} / {c['h1']:.3f} | {e['valid']:.3f} / {e['h1']:.3f} |")
    first = reports[0]
    print(f"\n{first['n_test']} prompts ({first['n_committed']} committed + {first['n_extra']} extra); "
          f"random {first['baselines']['random']:.3f}, most-popular {first['baselines']['most-popular']:.3f}")


if __name__ == "__main__":
    main()
