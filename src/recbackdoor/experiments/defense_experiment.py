"""The defense experiment: P-Scanner against the seven baselines on BadRec's poisoned recommenders.

Its config is a BadRec config (the victims: mode, data, model, training,
attack — identical sections give identical cache keys, so the models a
``badrec`` run trained are reused) plus a ``[defense]`` section: which
defenses, how many requests, which scanners, and the baselines' settings
(Appendix B.1.2 of the P-Scanner paper as defaults).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import field_validator, model_validator

from recbackdoor.defenses.text.contract import DEFENSE_NAMES
from recbackdoor.experiments.badrec_experiment import BadRecConfig, _merge_seeds
from recbackdoor.experiments.config import StrictModel
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import register_experiment
from recbackdoor.processes import processes


class DefenseSection(StrictModel):
    # every defense but the two ablations, which need their scanners named below
    names: list[str] = [n for n in DEFENSE_NAMES if n not in ("p-scanner-wo-ft", "p-scanner-wo-ta")]
    # the benign model's row: the control that shows the trigger alone does not flip a clean model; it costs a
    # second trained model, which the README's quickstart leaves out to stay within its time
    benign: bool = True
    n_clean: int = 200  # clean requests: utility (H@1 / AUC) with the defense on
    n_triggered: int = 100  # the first n_clean requests with the trigger: ASR
    n_calibration: int = 100  # further clean requests a defender holds back to set thresholds
    # saved scanners (`recbackdoor train-scanner --out DIR`, or "default": the one the package ships)
    scanner: str = "default"  # p-scanner and p-scanner-train-time
    scanner_wo_ft: str | None = None  # the untuned LM as scanner (`train-scanner --llm-only` with no steps)
    scanner_wo_ta: str | None = None  # P-Scanner trained without the augmentation agent
    # false-alarm budget for ONION's and RPD's thresholds; None: P-Scanner's own false-alarm rate on the
    # held-out clean requests (the issue: "the same false-alarm budget as P-Scanner's")
    budget: float | None = None
    rd_chars: int = 3
    strip_runs: int = 10
    strip_share: float = 0.5
    strip_threshold: float = 0.4
    onion_remove_items: bool = False
    rpd_scope: Literal["all", "answer"] = "all"
    helper_batch_size: int = 16

    @field_validator("names")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in DEFENSE_NAMES]
        if unknown:
            raise ValueError(f"unknown defense(s) {unknown}; known: {', '.join(DEFENSE_NAMES)}")
        return names

    @model_validator(mode="after")
    def _counts(self) -> DefenseSection:
        if self.n_triggered > self.n_clean:
            raise ValueError(f"n_triggered ({self.n_triggered}) cannot exceed n_clean ({self.n_clean}): the "
                             "triggered requests are clean requests with the trigger added")
        for name, field in (("p-scanner-wo-ft", "scanner_wo_ft"), ("p-scanner-wo-ta", "scanner_wo_ta")):
            if name in self.names and getattr(self, field) is None:
                raise ValueError(f"defense {name!r} needs defense.{field} (a saved scanner folder)")
        return self


class DefenseConfig(BadRecConfig):
    experiment: Literal["defense"] = "defense"  # type: ignore[assignment]
    mode: Literal["tallrec", "llara"] = "tallrec"  # type: ignore[assignment]
    defense: DefenseSection = DefenseSection()


@register_experiment("defense", config=DefenseConfig)
def run_defense(cfg: DefenseConfig, ctx: RunContext) -> None:
    from recbackdoor.experiments.defense_engine import DefenseStudy

    torch.set_num_threads(cfg.model.threads)
    ctx.cache.processes = processes(cfg.model.device)
    for seed in cfg.seeds:
        for dataset in cfg.datasets:
            if ctx.wants(dataset=dataset, victim=cfg.mode):
                DefenseStudy(cfg, ctx, dataset, seed).run()
    _merge_seeds(ctx)
