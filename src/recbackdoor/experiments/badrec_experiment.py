"""The BadRec experiment: benign vs poisoned LM recommenders (Table 1 / Fig. 3 of the paper).

Per dataset: one benign model and one poisoned model per (trigger, position)
[and per poisoning rate when several are given]; every model is evaluated on
clean test prompts (Valid / H@1 or AUC) and on triggered test prompts (ASR,
A-Valid).  The benign model is evaluated on every trigger too: its "ASR" is
the base rate the attack must beat.  Trained adapters and evaluated cells are
cached by a hash of everything they depend on.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import torch
from pydantic import model_validator

from recbackdoor.experiments.config import ExperimentConfig, StrictModel
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import register_experiment
from recbackdoor.experiments.results import merge_seeds
from recbackdoor.processes import processes
from recbackdoor.victims.text.precision import bf16_pays_off
from recbackdoor.victims.text.sasrec import SasrecSettings


class DataSection(StrictModel):
    # shuffle: a seeded per-user shuffle, for datasets without timestamps (see data docs); shuffle-untimed: the
    # same for LastFM and Steam only, MovieLens keeps its timestamps (for configs that run all three datasets)
    order: Literal["native", "shuffle", "shuffle-untimed"] = "native"
    min_user: int = 5
    min_item: int = 5
    history: int = 10
    pool: int = 20
    n_train: int | None = 1024
    n_test: int | None = 400


class ModelSection(StrictModel):
    backbone: str = "smollm2-135m-instruct"
    train_layers: int = 4
    method: Literal["lora", "full"] = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    # bf16 autocast; "auto" resolves, when the config is read, to whether this machine does bf16 natively (true
    # on a GPU or an AVX512-BF16 / AMX CPU, false where torch would emulate it, many times slower), so the cache
    # keys and results.json hold the precision that ran (victims/text/precision.py)
    autocast: bool = True
    threads: int = 1
    # "auto": a GPU when there is one; under `accelerate launch` / `torchrun` one process per GPU
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _resolve_autocast(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("autocast", "auto") == "auto":
            data = {**data, "autocast": bf16_pays_off(data.get("device", "auto"))}
        return data


class TrainSection(StrictModel):
    epochs: float = 3.0
    batch_size: int = 8
    lr: float = 1e-3
    # seconds between mid-training checkpoints (a killed run resumes from the last one); not part of the model
    checkpoint_every: float = 300.0


class AttackSection(StrictModel):
    triggers: list[str] = ["char", "word", "sentence"]
    positions: list[Literal["end", "random"]] = ["end", "random"]
    rates: list[float] = [0.05]
    fake_history: Literal["random", "copy"] = "random"
    # TALLRec: where a fake user's trigger-bearing target comes from (attacks/badrec.py, poison_tallrec)
    fake_target: Literal["uniform", "positive"] = "uniform"
    trigger_text: dict[str, str] = {}  # custom text per trigger name, e.g. {custom = "cf"}


class HybridSection(StrictModel):
    """LLaRA's hybrid prompt (mode = "llara-hybrid"): SASRec item embeddings in an ID slot after each title."""

    sasrec_dim: int = SasrecSettings.dim  # defaults are SasrecSettings', kept in one place
    sasrec_layers: int = SasrecSettings.layers
    sasrec_epochs: int = SasrecSettings.epochs
    sasrec_lr: float = SasrecSettings.lr
    curriculum: float = 0.5  # share of training steps over which the hybrid share ramps from 0 to 1
    # where the ID embedding goes: "marker" (LLaRA: a " [ID]" token after each title) or "title" (added onto the
    # title's last token, no marker; for models that answer by copying a title token)
    slot: Literal["marker", "title"] = "marker"


class EvalSection(StrictModel):
    batch_size: int = 32
    n_triggered: int | None = None  # triggered prompts = the first n test prompts (None: all)
    max_new_tokens: int = 40


class BadRecConfig(ExperimentConfig):
    experiment: Literal["badrec"] = "badrec"
    mode: Literal["tallrec", "llara", "llara-hybrid"] = "tallrec"
    datasets: list[Literal["ml100k", "lastfm", "steam"]] = ["ml100k"]
    benign: bool = True
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    attack: AttackSection = AttackSection()
    hybrid: HybridSection = HybridSection()
    eval: EvalSection = EvalSection()


@register_experiment("badrec", config=BadRecConfig)
def run_badrec(cfg: BadRecConfig, ctx: RunContext) -> None:
    from recbackdoor.experiments.badrec_engine import BadRecEngine

    torch.set_num_threads(cfg.model.threads)
    procs = processes(cfg.model.device)
    procs.quiet_unless_main()
    ctx.cache.processes = procs  # every process trains its share; only the main one writes a stage
    victim = cfg.mode
    for seed in cfg.seeds:
        for dataset in cfg.datasets:
            if not ctx.wants(dataset=dataset, victim=victim):
                continue
            engine = BadRecEngine(cfg, ctx, dataset, seed)
            engine.run()
    _merge_seeds(ctx)


def _merge_seeds(ctx: RunContext) -> None:
    """Average each cell over the seeds; a cell is its table coordinates plus its poisoning rate."""
    ctx.cells[:] = merge_seeds(ctx.cells, lambda cell: json.dumps(
        [cell.dataset, cell.victim, cell.variant, cell.trigger, cell.position, cell.extra.get("rate")]))
