"""Training the fast student on P-Scanner's synthetic data (and, optionally, its scores)."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch.nn import functional as F
from tqdm import tqdm

from recbackdoor.data.benign_titles import augment_benign
from recbackdoor.defenses.text.pscanner import calibrate_threshold, netflix_fingerprint, validation_sets
from recbackdoor.defenses.text.scanner_data import AgentTrigger, ExampleStream, netflix_split
from recbackdoor.defenses.text.student import StudentNet, StudentScorer, StudentShape, reduced_token_table
from recbackdoor.separation import auroc
from recbackdoor.triggers.text_sampler import InitialTriggerSampler, lm_token_pool


class StudentConfig(BaseModel):
    """Settings of the student (TOML section ``[student]``)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    threads: int = 2
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    agent_share: float = 0.5
    distill_weight: float = 1.0
    validation_per_kind: int = 1000
    calibration_titles: int = 1500
    target_fpr: float = 0.01
    embed_dim: int = 48
    width: int = 128
    layers: int = 2
    pool_rounds: int | None = None  # agent pools of P-Scanner's first N rounds (None: every round)
    augmentation: int = 2  # benign_titles.augment_benign's version (1: the recipe of the first default scanner)


def train_student(config: StudentConfig, out: Path, agent_pool: Sequence[AgentTrigger] = (),
                  teacher: tuple[Sequence[str], np.ndarray] | None = None, command: str = "") -> dict:
    """Train, calibrate and save the student into ``out``; ``teacher`` = (titles, P-Scanner scores)."""
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    backbone = load_backbone(SMOLLM2)
    table = reduced_token_table(backbone.model.get_input_embeddings().weight.detach(), config.embed_dim)
    shape = StudentShape(embed_dim=config.embed_dim, width=config.width, layers=config.layers)
    net = StudentNet(table.half().float(), shape)  # train on the fp16-rounded table the saved model will use
    scorer = StudentScorer(net, backbone.tokenizer.backend_tokenizer)
    sampler = InitialTriggerSampler(lm_token_pool(backbone.tokenizer))
    del backbone
    split = netflix_split(config.seed)
    stream = ExampleStream(split.train, sampler, seed=config.seed + 1, agent_pool=agent_pool,
                           augmentation=config.augmentation)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    teacher_rng = random.Random(config.seed + 2)
    started = time.time()
    losses = []
    net.train()
    bar = tqdm(range(config.steps), desc="student", unit="step")
    for _step in bar:
        batch = stream.batch(config.batch_size, config.agent_share)
        logits = net(**scorer.featurize([e.title for e in batch]))
        loss = F.binary_cross_entropy_with_logits(logits, torch.tensor([float(e.label) for e in batch]))
        if teacher is not None and config.distill_weight > 0:
            picks = [teacher_rng.randrange(len(teacher[0])) for _ in range(config.batch_size // 4)]
            soft = torch.tensor([float(teacher[1][i]) for i in picks])
            t_logits = net(**scorer.featurize([teacher[0][i] for i in picks]))
            loss = loss + config.distill_weight * F.binary_cross_entropy_with_logits(t_logits, soft)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
    net.eval()
    val = validation_sets(split.validation, sampler, list(agent_pool), config.validation_per_kind, config.seed + 99,
                          config.augmentation)
    scores = {k: scorer.score(v) for k, v in val.items()}
    calibration = [augment_benign(t, random.Random(f"{config.seed}:cal:{i}"), config.augmentation)
                   for i, t in enumerate(split.calibration[:config.calibration_titles])]
    threshold = calibrate_threshold(scorer.score(calibration), config.target_fpr)
    record = {
        "kind": "student", "threshold": threshold, "target_fpr": config.target_fpr,
        "calibration_titles": len(calibration), "config": config.model_dump(), "command": command,
        "netflix_sha256": netflix_fingerprint(), "agent_pool": len(agent_pool),
        "distilled_from": None if teacher is None else len(teacher[0]),
        "train_seconds": time.time() - started, "loss_last50": float(np.mean(losses[-50:])),
        "val_auroc_initial": auroc(scores["benign"], scores["initial"]),
    }
    if "agent" in scores:
        record["val_auroc_agent"] = auroc(scores["benign"], scores["agent"])
    scorer.save(out)
    (out / "scanner.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))
    return record
