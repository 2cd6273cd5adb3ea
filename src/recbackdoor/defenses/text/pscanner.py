"""P-Scanner training (Algorithm 2, part i): curriculum, agent rewrites and adversarial rounds.

Per round t = 1..T: the agent rewrites a fresh pool of initial triggers
(eq. 5); the scanner trains on synthetic examples (eqs. 6-7) whose share r
of agent-written triggers rises linearly with overall training progress; the
scanner's misses and catches on that pool then update the agent (eq. 8,
with the bounded unlikelihood term, see ``augmentation_agent``).  Each
finished round is saved, so a killed run resumes at the next round.
``use_agent = false`` gives the paper's "w/o TA" ablation: initial triggers only.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from recbackdoor.data.benign_titles import augment_benign
from recbackdoor.defenses.text.augmentation_agent import AugmentationAgent
from recbackdoor.defenses.text.calibration import calibrate_threshold as clean_budget_threshold
from recbackdoor.defenses.text.llm_scanner import LLMScanner, LoraSettings, add_lora
from recbackdoor.defenses.text.scanner_data import AgentTrigger, ExampleStream, netflix_split, poison_title
from recbackdoor.separation import auroc
from recbackdoor.triggers.text_sampler import InitialTriggerSampler, lm_token_pool


class PScannerConfig(BaseModel):
    """Settings of one P-Scanner training run (TOML section ``[pscanner]``)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    threads: int = 2
    rounds: int = 3
    steps_per_round: int = 100
    batch_size: int = 16
    lr: float = 3e-4
    use_agent: bool = True
    agent_pool: int = 192
    agent_update: int = 128
    agent_lr: float = 1e-4
    r_max: float = 0.5
    m1: int = 3
    m2: int = 6
    validation_per_kind: int = 200
    calibration_titles: int = 1000
    target_fpr: float = 0.01
    lora_rank: int = 8
    lora_top_layers: int | None = 10
    stop_after_round: int | None = None  # end early on the same schedule (r still rises over all `rounds`)
    # which scanner decision counts a trigger as missed in eq. 8: "answer" = the LM's own Yes/No (P(Yes) < 0.5,
    # the paper); "calibrated" = below the score that flags 5 % of benign validation titles (a scanner that says
    # Yes to nearly everything early in training misses nothing at 0.5, and eq. 8 then only pushes down)
    adversarial_decision: Literal["answer", "calibrated"] = "answer"


def calibrate_threshold(benign_scores: np.ndarray, target_fpr: float) -> float:
    """The smallest threshold at which at most ``target_fpr`` of these benign scores are flagged (score > t)."""
    if not 0 < target_fpr < 1:
        raise ValueError(f"target_fpr must be in (0, 1), got {target_fpr}")
    return clean_budget_threshold(benign_scores, target_fpr)


def netflix_fingerprint() -> str:
    from recbackdoor.data.text_datasets import NETFLIX_FILES

    return NETFLIX_FILES[0].sha256


def validation_sets(titles, sampler, agent_pool, per_kind: int, seed: int,
                    augmentation: int = 1) -> dict[str, list[str]]:
    rng = random.Random(seed)

    def benign_title() -> str:
        return augment_benign(rng.choice(titles), rng, augmentation)

    benign = [benign_title() for _ in range(per_kind)]
    initial = [poison_title(benign_title(), sampler.sample(rng, rng.randint(1, 2)).text, rng) for _ in range(per_kind)]
    out = {"benign": benign, "initial": initial}
    if agent_pool:
        out["agent"] = [poison_title(benign_title(), rng.choice(agent_pool).text, rng) for _ in range(per_kind)]
    return out


def train_pscanner(config: PScannerConfig, out: Path) -> dict:
    """Train (or resume) P-Scanner into ``out``; returns the training record also written to scanner.json."""
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    split = netflix_split(config.seed)
    scanner_backbone = load_backbone(SMOLLM2)
    tokenizer = scanner_backbone.tokenizer
    lora = LoraSettings(rank=config.lora_rank, alpha=2 * config.lora_rank, top_layers=config.lora_top_layers)
    scanner_model = add_lora(scanner_backbone.model, lora)
    scanner = LLMScanner(scanner_model, tokenizer)
    optimizer = torch.optim.AdamW([p for p in scanner_model.parameters() if p.requires_grad], lr=config.lr)
    sampler = InitialTriggerSampler(lm_token_pool(tokenizer), m1=config.m1, m2=config.m2)
    stream = ExampleStream(split.train, sampler, seed=config.seed)

    agent = agent_optimizer = None
    if config.use_agent:
        agent_backbone = load_backbone(SMOLLM2)
        agent_model = add_lora(agent_backbone.model, LoraSettings(rank=8, alpha=16))
        agent = AugmentationAgent(agent_model, agent_backbone.tokenizer)
        agent_optimizer = torch.optim.AdamW([p for p in agent_model.parameters() if p.requires_grad],
                                            lr=config.agent_lr)

    total_steps = config.rounds * config.steps_per_round
    record: dict = {"config": config.model_dump(), "rounds": [], "netflix_sha256": netflix_fingerprint(),
                    "train_titles": len(split.train)}
    started = time.time()
    pool: list[AgentTrigger] = []
    last_round = min(config.rounds, config.stop_after_round or config.rounds)
    for round_no in range(1, last_round + 1):
        round_dir = out / f"round_{round_no}"
        if (round_dir / "round.json").exists():  # finished earlier: reload both policies and move on
            _load_adapter(scanner_model, round_dir / "scanner")
            if agent is not None:
                _load_adapter(agent.model, round_dir / "agent")
            record["rounds"].append(json.loads((round_dir / "round.json").read_text()))
            continue
        rng = random.Random(f"{config.seed}:pool:{round_no}")
        stream.rng = random.Random(f"{config.seed}:stream:{round_no}")  # a resumed round draws the same examples
        if agent is not None:
            saved = round_dir / "agent_pool.jsonl"
            if saved.exists():  # written before an interrupted round's training: the same agent wrote it
                pool = read_pool(saved)
            else:
                initials = [sampler.sample(rng, level=rng.randint(1, 2)) for _ in range(config.agent_pool)]
                pool = agent.rewrite(initials, seed=config.seed * 1000 + round_no)
            stream.set_agent_pool(pool)
        info: dict = {"round": round_no, "agent_pool": len(pool)}
        round_dir.mkdir(parents=True, exist_ok=True)
        if agent is not None:  # kept so the fast student can train on the same agent-written triggers
            _write_pool(round_dir / "agent_pool.jsonl", pool)
        if agent is not None:
            info["agent_examples"] = [t.text for t in pool[:12]]
            info["agent_distinct_words"] = len({w.lower() for t in pool for w in t.text.split()})
        losses = []
        scanner_model.train()
        bar = tqdm(range(config.steps_per_round), desc=f"round {round_no}/{config.rounds}", unit="step")
        for step in bar:
            progress = ((round_no - 1) * config.steps_per_round + step) / total_steps
            share = config.r_max * progress if agent is not None else 0.0
            batch = stream.batch(config.batch_size, share)
            loss = scanner.loss([e.title for e in batch], [e.label for e in batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", r=f"{share:.2f}", refresh=False)
        info["loss_first10"] = float(np.mean(losses[:10]))
        info["loss_last10"] = float(np.mean(losses[-10:]))
        val = validation_sets(split.validation, sampler, pool, config.validation_per_kind, config.seed + round_no)
        scores = {k: scanner.score(v) for k, v in val.items()}
        info["val_auroc_initial"] = auroc(scores["benign"], scores["initial"])
        if "agent" in scores:
            info["val_auroc_agent"] = auroc(scores["benign"], scores["agent"])
        if agent is not None and round_no < config.rounds and round_no < last_round:  # eq. 8 feeds the next round
            decision = 0.5 if config.adversarial_decision == "answer" else float(np.quantile(scores["benign"], 0.95))
            info.update(_adversarial_step(agent, agent_optimizer, scanner, pool, split.validation, sampler, config,
                                          round_no, decision))
        info["seconds"] = time.time() - started
        _save_adapter(scanner_model, round_dir / "scanner")
        if agent is not None:
            _save_adapter(agent.model, round_dir / "agent")
        (round_dir / "round.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
        record["rounds"].append(info)
        print(json.dumps({k: v for k, v in info.items() if k != "agent_examples"}), flush=True)

    calibration = [augment_benign(t, random.Random(f"{config.seed}:cal:{i}"))
                   for i, t in enumerate(split.calibration[:config.calibration_titles])]
    benign_scores = scanner.score(calibration)
    record["threshold"] = calibrate_threshold(benign_scores, config.target_fpr)
    record["target_fpr"] = config.target_fpr
    record["calibration_titles"] = len(calibration)
    record["train_seconds"] = time.time() - started
    _save_adapter(scanner_model, out / "adapter")
    (out / "scanner.json").write_text(json.dumps({"kind": "llm", **record}, indent=1, ensure_ascii=False))
    return record


def _adversarial_step(agent, optimizer, scanner, pool, titles, sampler, config, round_no, decision: float) -> dict:
    """Eq. 8: score the round's agent triggers, update the agent, and measure how often its next ones evade."""
    rng = random.Random(f"{config.seed}:adv:{round_no}")
    subset = pool[:config.agent_update]
    poisoned = [poison_title(augment_benign(rng.choice(titles), rng), t.text, rng) for t in subset]
    subset_scores = scanner.score(poisoned)
    missed = (subset_scores < decision).tolist()
    losses = agent.update(subset, missed, optimizer, seed=config.seed + round_no)
    fresh = agent.rewrite([sampler.sample(rng, level=rng.randint(1, 2)) for _ in range(48)],
                          seed=config.seed * 7919 + round_no)
    fresh_poisoned = [poison_title(augment_benign(rng.choice(titles), rng), t.text, rng) for t in fresh]
    return {
        "agent_miss_rate_before_update": float(np.mean(missed)),
        "agent_miss_rate_after_update": float(np.mean(scanner.score(fresh_poisoned) < decision)) if fresh else None,
        "decision_threshold": decision,
        "agent_loss_first": losses[0] if losses else None,
        "agent_loss_last": losses[-1] if losses else None,
        "agent_fresh_examples": [t.text for t in fresh[:8]],
    }


def _write_pool(path: Path, pool: list[AgentTrigger]) -> None:
    lines = [json.dumps({"level": t.initial.level, "initial": list(t.initial.tokens), "text": t.text},
                        ensure_ascii=False) for t in pool]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_pool(path: Path) -> list[AgentTrigger]:
    from recbackdoor.triggers.text_sampler import InitialTrigger

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append(AgentTrigger(InitialTrigger(row["level"], tuple(row["initial"])), row["text"]))
    return out


def _save_adapter(model, path: Path) -> None:
    model.save_pretrained(str(path))


def _load_adapter(model, path: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))



def export_llm_scanner(adapter: Path | None, out: Path, seed: int = 0, calibration_titles: int = 1000,
                       target_fpr: float = 0.01, threads: int = 2) -> dict:
    """A loadable scanner folder from one LoRA adapter (a round's checkpoint) or from none (w/o FT).

    The threshold is calibrated exactly as for the full P-Scanner: on the held-out Netflix calibration titles.
    """
    import shutil

    from recbackdoor.defenses.text.llm_scanner import load_llm_scanner

    torch.set_num_threads(threads)
    scanner = load_llm_scanner(adapter)
    split = netflix_split(seed)
    calibration = [augment_benign(t, random.Random(f"{seed}:cal:{i}"))
                   for i, t in enumerate(split.calibration[:calibration_titles])]
    threshold = calibrate_threshold(scanner.score(calibration), target_fpr)
    out.mkdir(parents=True, exist_ok=True)
    if adapter is not None:
        shutil.copytree(adapter, out / "adapter", dirs_exist_ok=True)
    meta = {"kind": "llm", "adapter": "adapter" if adapter is not None else None, "threshold": threshold,
            "target_fpr": target_fpr, "calibration_titles": len(calibration), "source": str(adapter),
            "netflix_sha256": netflix_fingerprint()}
    (out / "scanner.json").write_text(json.dumps(meta, indent=1))
    return meta
