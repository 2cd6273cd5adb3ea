"""Paper-shaped tables (BadEmbNets Tables 2–10, Fig. 5 data, defenses) from vision ``results.json`` files.

    recbackdoor tables docs/results/badembnets_*/results.json
"""

from __future__ import annotations

from typing import Any


def _pct(v: float | None) -> str:
    return "/" if v is None else f"{100 * v:.2f}"


def _num(v: float | None, digits: int = 3) -> str:
    return "/" if v is None else f"{v:.{digits}f}"


def _find(cells: list[dict], **want: Any) -> dict | None:
    extra_want = want.pop("extra", {})
    for c in cells:
        if all(c.get(k) == v for k, v in want.items()) and all(c.get("extra", {}).get(k) == v
                                                                for k, v in extra_want.items()):
            return c
    return None


def _metric(cells, name, **want) -> float | None:
    c = _find(cells, **want)
    return None if c is None else c["metrics"].get(name)


def _main_keys(run: dict) -> dict:
    t = run["config"]["trigger"]
    label = t["pattern"] if t["size"] == 3 else f"{t['pattern']}{t['size']}"
    return {"trigger": label, "position": t["position"]}


def tables(runs: dict[str, dict]) -> str:
    out = []
    row = out.append
    row("**Table 2/3 — BA, ASR (%) and ARI of poisoned vs target clusters**\n")
    row("| backbone | model | BA | ASR | ARI | kNN mix (0.5 = mixed) | centroid ratio (1 = as close as target) |")
    row("|---|---|---|---|---|---|---|")
    for bb, run in runs.items():
        cells, k = run["cells"], _main_keys(run)
        for v in ("clean", "badnets", "badembnets"):
            w = dict(dataset="fashion-mnist", victim="classifier", variant=v, **k)
            row(f"| {bb} | {v} | {_pct(_metric(cells, 'ba', **w))} | {_pct(_metric(cells, 'asr', **w))} | "
                f"{_num(_metric(cells, 'ari', **w))} | {_num(_metric(cells, 'knn_mix', **w))} | "
                f"{_num(_metric(cells, 'centroid_ratio', **w), 2)} |")
    row("\n**Tables 4/5 — BadEmbNets with other trigger patterns, sizes, positions (trained and tested with it)**\n")
    row("| backbone | trigger | position | BA | ASR | ARI |")
    row("|---|---|---|---|---|---|")
    for bb, run in runs.items():
        for c in run["cells"]:
            if c["victim"] == "classifier" and c["variant"] == "badembnets" and c["position"] != "random":
                row(f"| {bb} | {c['trigger']} | {c['position']} | {_pct(c['metrics'].get('ba'))} | "
                    f"{_pct(c['metrics'].get('asr'))} | {_num(c['metrics'].get('ari'))} |")
    row("\n**Table 6 — ASR (%) with the trigger at the trained place vs a random place (test time)**\n")
    row("| backbone | model | correct place | random place |")
    row("|---|---|---|---|")
    for bb, run in runs.items():
        cells, k = run["cells"], _main_keys(run)
        for v in ("badnets", "badembnets"):
            a = _metric(cells, "asr", dataset="fashion-mnist", victim="classifier", variant=v, **k)
            r = _metric(cells, "asr", dataset="fashion-mnist", victim="classifier", variant=v,
                        trigger=k["trigger"], position="random")
            row(f"| {bb} | {v} | {_pct(a)} | {_pct(r)} |")
    row("\n**Tables 7/8 — VisRank MAP and t-MAP (%); transfer = categories held out of extractor training**\n")
    row("| backbone | model | MAP | t-MAP | MAP (transfer) | t-MAP (transfer) |")
    row("|---|---|---|---|---|---|")
    for bb, run in runs.items():
        cells, k = run["cells"], _main_keys(run)
        for v in ("clean", "badnets", "badembnets"):
            vals = [_metric(cells, m, dataset=d, victim="visrank", variant=v, **k)
                    for d in ("fashion-mnist", "fashion-mnist-heldout") for m in ("map", "t_map")]
            row(f"| {bb} | {v} | " + " | ".join(_pct(x) for x in vals) + " |")
    row("\n**Tables 9/10 — VBPR AUC (%), Δp and ΔHR@10 (target group; 10a cold test items, 10b transfer items)**\n")
    row("| backbone | model | AUC | Δp | ΔHR@10 | HR@10 clean→poisoned | Δp (transfer) | ΔHR@10 (transfer) |")
    row("|---|---|---|---|---|---|---|---|")
    for bb, run in runs.items():
        cells, k = run["cells"], _main_keys(run)
        dim = run["config"]["vbpr"]["k_visual"]
        for v in ("clean", "badnets", "badembnets"):
            a = _find(cells, dataset="fashion-mnist", victim="vbpr", variant=v, extra={"vbpr_dim": dim}, **k)
            b = _find(cells, dataset="fashion-mnist-heldout", victim="vbpr", variant=v, **k)
            if a is None:
                continue
            m, n = a["metrics"], (b or {"metrics": {}})["metrics"]
            row(f"| {bb} | {v} | {_pct(m.get('auc'))} | {_num(m.get('delta_p'), 4)} | "
                f"{_num(m.get('delta_hr10'), 4)} | {_num(m.get('hr10_clean'), 4)}→{_num(m.get('hr10_poisoned'), 4)} | "
                f"{_num(n.get('delta_p'), 4)} | {_num(n.get('delta_hr10'), 4)} |")
    row("\n**Fig. 5 — VBPR visual-factor dimension vs ΔHR@10 (and AUC)**\n")
    row("| backbone | model | dim | AUC | Δp | ΔHR@10 |")
    row("|---|---|---|---|---|---|")
    for bb, run in runs.items():
        for c in run["cells"]:
            if c["victim"] == "vbpr" and c.get("extra", {}).get("study") == "vbpr_dim":
                m = c["metrics"]
                row(f"| {bb} | {c['variant']} | {c['extra']['vbpr_dim']} | {_pct(m.get('auc'))} | "
                    f"{_num(m.get('delta_p'), 4)} | {_num(m.get('delta_hr10'), 4)} |")
    row("\n**Defenses — STRIP (AUROC; TPR at 1 % FRR), Activation Clustering (TPR / FPR; target class flagged), "
        "fine-tuning on clean data (BA / ASR per epoch, %)**\n")
    row("| backbone | model | STRIP AUROC | STRIP TPR@1%FRR | AC raw: TPR / FPR / flags target / silhouette "
        "target vs others | AC L2-normalised: TPR / FPR / flags target / silhouette |")
    row("|---|---|---|---|---|---|")
    for bb, run in runs.items():
        cells, k = run["cells"], _main_keys(run)
        for v in ("clean", "badnets", "badembnets"):
            s = (_find(cells, variant=f"strip-{v}", **k) or {"metrics": {}})["metrics"]
            a = (_find(cells, variant=f"ac-{v}", **k) or {"metrics": {}})["metrics"]
            ac = []
            for p in ("ac_", "ac_norm_"):
                flag = a.get(f"{p}target_class_flagged")
                ac.append("/" if flag is None else
                          f"{_pct(a.get(f'{p}tpr'))} / {_pct(a.get(f'{p}fpr'))} / {'yes' if flag else 'no'} / "
                          f"{_num(a.get(f'{p}silhouette_target'))} vs {_num(a.get(f'{p}silhouette_others_median'))}")
            row(f"| {bb} | {v} | {_num(s.get('strip_auroc'))} | {_pct(s.get('strip_tpr'))} | {ac[0]} | {ac[1]} |")
    row("\n**Fine-tuning on clean data — BA / ASR (%) after each epoch (epoch 0 = before)**\n")
    row("| backbone | model | lr | clean images | BA per epoch | ASR per epoch |")
    row("|---|---|---|---|---|---|")
    for bb, run in runs.items():
        for c in run["cells"]:
            if c["variant"].startswith("finetune"):
                e = c["extra"]
                row(f"| {bb} | {e['attack']} | {e.get('lr', '/')} | {e.get('clean_images', '/')} | "
                    + " ".join(_pct(x) for x in e["ba_per_epoch"]) + " | "
                    + " ".join(_pct(x) for x in e["asr_per_epoch"]) + " |")
    out += _seed_rows(runs)
    return "\n".join(out) + "\n"


SEED_METRICS = (("classifier", "fashion-mnist", ("ba", "asr", "ari")),
                ("visrank", "fashion-mnist", ("map", "t_map")),
                ("vbpr", "fashion-mnist", ("auc", "delta_p", "delta_hr10")),
                ("vbpr", "fashion-mnist-heldout", ("delta_hr10",)))


def _seed_rows(runs: dict[str, dict]) -> list[str]:
    """Mean ± std and every seed's value, for runs made with several seeds (cells carry ``per_seed``)."""
    rows: list[str] = []
    for bb, run in runs.items():
        if len(run.get("seeds", [])) < 2:
            continue
        if not rows:
            rows += ["\n**Seed spread — mean ± std over seeds, then each seed's value**\n",
                     "| backbone | victim | data | model | metric | mean ± std | per seed |",
                     "|---|---|---|---|---|---|---|"]
        k = _main_keys(run)
        for victim, data, names in SEED_METRICS:
            for v in ("clean", "badnets", "badembnets"):
                c = _find(run["cells"], dataset=data, victim=victim, variant=v, **k)
                if c is None:
                    continue
                for name in names:
                    if name not in c["metrics"]:
                        continue
                    per = c["extra"].get("per_seed", {}).get(name, [])
                    rows.append(f"| {bb} | {victim} | {data} | {v} | {name} | {c['metrics'][name]:.4f} ± "
                                f"{c.get('metrics_std', {}).get(name, 0.0):.4f} | "
                                + ", ".join(f"{x:.4f}" for x in per) + " |")
    return rows
