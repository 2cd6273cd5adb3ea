"""Train and evaluate the benign and poisoned models of one BadRec dataset run.

The engine is the experiment's plumbing — cache keys, stages, timers, cells —
around one :class:`~recbackdoor.victims.text.recommender.TextRecommender`,
which holds everything that depends on the victim's mode (its prompts, fake
samples, training examples and answers).  The mode is named once, in
:meth:`BadRecEngine._make_recommender`; the metrics of each mode's answers
are picked by their type in ``metrics/text_eval.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from recbackdoor.attacks.badrec import fake_user_count
from recbackdoor.cache import stable_hash
from recbackdoor.data.text_datasets import load_dataset, reorder
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.results import Cell
from recbackdoor.metrics.text_eval import attack_metrics, baseline_metrics, clean_metrics
from recbackdoor.processes import processes
from recbackdoor.triggers.text import TextTrigger, make_trigger
from recbackdoor.victims.text.backbones import load_backbone
from recbackdoor.victims.text.hybrid import fit_sasrec
from recbackdoor.victims.text.llara import HybridLlaraRecommender, LlaraRecommender
from recbackdoor.victims.text.recommender import CleanAnswers, PromptShape, TextRecommender
from recbackdoor.victims.text.sasrec import SASRec, SasrecSettings, load_sasrec, save_sasrec
from recbackdoor.victims.text.split_lm import SplitLM
from recbackdoor.victims.text.state_store import StateStore
from recbackdoor.victims.text.tallrec import TallrecRecommender

FORMAT = 1  # bump when training/evaluation code changes what a cached stage means


@dataclass(frozen=True)
class SampleFilter:
    """A training-data filter: ``keep(samples)`` returns the samples to train on, in order; ``key`` says what it
    depends on (the scanner and its threshold), so that its result is computed once per variant and filter."""

    name: str
    key: dict[str, Any]
    keep: Callable[[list], list]


@dataclass(frozen=True)
class Variant:
    name: str  # benign | badrec
    trigger: TextTrigger | None
    rate: float


def _data_key(section: Any, reordered: bool) -> dict[str, Any]:
    """The data part of a cache key. The order is left out where it left the sequences as they were (the
    default, or "shuffle-untimed" on a timestamped dataset), so keys made before it existed still match."""
    data = section.model_dump()
    if not reordered:
        data.pop("order", None)
    return data


def _samples_digest(samples: list) -> str:
    """A stable digest of training samples (dataclasses of ids, titles and labels), in their order."""
    import dataclasses
    import hashlib

    digest = hashlib.sha256()
    for sample in samples:
        digest.update(json.dumps(dataclasses.asdict(sample), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _model_key(section: Any) -> dict[str, Any]:
    """The model part of a cache key: run-time settings (threads, device) left out, as they do not change the
    model."""
    return {k: v for k, v in section.model_dump().items() if k not in ("threads", "device")}


def _hybrid_key(section: Any) -> dict[str, Any]:
    """The hybrid part of a cache key; LLaRA's default marker slot is left out so older keys still match."""
    hybrid = section.model_dump()
    if hybrid.get("slot") == "marker":
        del hybrid["slot"]
    return hybrid


class BadRecEngine:
    def __init__(self, cfg: Any, ctx: RunContext, dataset: str, seed: int) -> None:
        self.cfg, self.ctx, self.dataset, self.seed = cfg, ctx, dataset, seed
        self.mode = cfg.mode
        self.victim = cfg.mode
        self.hybrid = cfg.mode == "llara-hybrid"
        with ctx.timer(f"{dataset}/load"):
            loaded = load_dataset(dataset, min_user=cfg.data.min_user, min_item=cfg.data.min_item)
            self.data = reorder(loaded, cfg.data.order, seed)
            self.data_key = _data_key(cfg.data, reordered=self.data is not loaded)
            ctx.data_checksums.update(self.data.checksums)
            self.recommender = self._make_recommender()
            self.split = self.recommender.build_split(seed, cfg.data.n_train, cfg.data.n_test)
        self.base_key = {"format": FORMAT, "mode": self.mode, "dataset": dataset, "seed": seed,
                         "data": self.data_key, "model": _model_key(cfg.model),
                         "checksums": self.data.checksums}
        if self.hybrid:
            self.base_key["hybrid"] = _hybrid_key(cfg.hybrid)
        self._lm: SplitLM | None = None
        self._filter_results: dict[tuple, tuple[list, dict[str, Any]]] = {}
        self._protocol()

    def _make_recommender(self) -> TextRecommender:
        """The victim of ``cfg.mode`` over this dataset (no model loaded yet)."""
        d, e = self.cfg.data, self.cfg.eval
        shape = PromptShape(d.history, d.pool)
        if self.mode == "tallrec":
            return TallrecRecommender(self.data, shape, e.batch_size)
        if self.hybrid:
            h = self.cfg.hybrid
            return HybridLlaraRecommender(self.data, shape, lambda: self.sasrec, self.sasrec_settings, h.slot,
                                          h.curriculum, e.batch_size, e.max_new_tokens)
        return LlaraRecommender(self.data, shape, e.batch_size, e.max_new_tokens)

    # ------------------------------------------------------------ plumbing
    @property
    def lm(self) -> SplitLM:
        """The fine-tunable LM, loaded on first use and handed to the recommender."""
        if self._lm is None:
            with self.ctx.timer(f"{self.dataset}/load_backbone"):
                m = self.cfg.model
                backbone = load_backbone(m.backbone, self.ctx.cache)
                self._lm = SplitLM(backbone, m.train_layers, m.method, m.lora_r, m.lora_alpha, m.autocast,
                                   processes(m.device))
                states = self.ctx.cache.root / "states"
                states.mkdir(parents=True, exist_ok=True)
                # frozen-layer states depend only on the backbone and where it is cut
                key = {"backbone": m.backbone, "train_layers": m.train_layers, "autocast": m.autocast,
                       "format": FORMAT}
                self._store = StateStore(self._lm, states / f"{self.dataset}-{stable_hash(key)}.safetensors")
                self.recommender.load(self._lm, self._store)
        return self._lm

    @property
    def store(self) -> StateStore:
        _ = self.lm
        return self._store

    @property
    def sasrec_settings(self) -> SasrecSettings:
        h = self.cfg.hybrid
        return SasrecSettings(dim=h.sasrec_dim, layers=h.sasrec_layers, epochs=h.sasrec_epochs, lr=h.sasrec_lr)

    @cached_property
    def sasrec(self) -> SASRec:
        """The SASRec model behind the hybrid ID slots (trained once per dataset/split/seed, cached)."""
        settings = self.sasrec_settings
        key = {"format": FORMAT, "dataset": self.dataset, "seed": self.seed, "data": self.data_key,
               "settings": settings.__dict__, "checksums": self.data.checksums}

        def build(tmp: Path) -> None:
            with self.ctx.timer(f"{self.dataset}/sasrec"):
                start = time.perf_counter()
                model, losses = fit_sasrec(self.data, settings, self.seed)
            save_sasrec(model, tmp / "sasrec.safetensors")
            (tmp / "train_log.json").write_text(json.dumps({"seconds": time.perf_counter() - start,
                                                            "losses": losses}))

        path = self.ctx.cache.get_or_create("sasrec", key, build)
        return load_sasrec(path / "sasrec.safetensors")

    def _protocol(self) -> None:
        d = self.cfg.data
        proto = {
            "split": "leave-one-out per user: last item = test, second last = valid, earlier = train",
            "sequence_order": self.data.order,
            "history": d.history,
            "n_train_benign": len(self.split.train),
            "n_test": len(self.split.test),
            "dataset_stats": self.data.stats(),
            "finetune": f"{self.cfg.model.method} on the top {self.cfg.model.train_layers} layers "
                        f"of {self.cfg.model.backbone}; lower layers frozen (hidden states cached)",
            "n_fake": {str(r): fake_user_count(len(self.split.train), r) for r in self.cfg.attack.rates},
            **self.recommender.protocol(),
        }
        self.ctx.protocol[f"{self.dataset}/{self.mode}"] = proto

    def variants(self) -> list[Variant]:
        out = [Variant("benign", None, 0.0)] if self.cfg.benign else []
        for rate in self.cfg.attack.rates:
            for kind in self.cfg.attack.triggers:
                for pos in self.cfg.attack.positions:
                    trig = make_trigger(kind, pos, self.cfg.attack.trigger_text.get(kind))
                    out.append(Variant("badrec", trig, rate))
        return out

    def triggers(self) -> list[TextTrigger]:
        return [make_trigger(k, p, self.cfg.attack.trigger_text.get(k))
                for k in self.cfg.attack.triggers for p in self.cfg.attack.positions]

    def model_key(self, v: Variant, sample_filter: SampleFilter | None = None) -> dict[str, Any]:
        """The cache key of variant ``v``'s model, trained on data ``sample_filter`` cleaned when one is given.

        A filtered model is keyed by what it trains on, not by the variant it was cleaned from: when the scanner
        drops every fake sample, each trigger's cleaned data are the same benign samples (less the same false
        alarms), and that one model serves every such cell instead of being trained once per trigger."""
        train = {name: value for name, value in self.cfg.train.model_dump().items() if name != "checkpoint_every"}
        if sample_filter is not None:
            _, info = self.filtered_training(v, sample_filter)
            return {**self.base_key, "train": train, "trained_on": info["trained_on"]}
        key = {**self.base_key, "train": train, "variant": v.name}
        if v.trigger is not None:
            key.update(trigger=[v.trigger.kind, v.trigger.text, v.trigger.position], rate=v.rate,
                       fake_history=self.cfg.attack.fake_history)
            if self.cfg.attack.fake_target != "uniform":  # absent by default, so earlier keys still match
                key["fake_target"] = self.cfg.attack.fake_target
        return key

    def filtered_training(self, v: Variant, sample_filter: SampleFilter) -> tuple[list, dict[str, Any]]:
        """Variant ``v``'s training samples (benign and fake) that ``sample_filter`` keeps, and what it dropped;
        computed once per (variant, filter)."""
        memo = (v, sample_filter.name, stable_hash(sample_filter.key))
        if memo not in self._filter_results:
            fakes = self._fakes(v)
            started = time.perf_counter()
            with self.ctx.timer(f"{self.dataset}/filter"):
                kept = sample_filter.keep(list(self.split.train) + fakes)
            kept_ids = {id(s) for s in kept}
            self._filter_results[memo] = (kept, {
                "filter": sample_filter.name, "filter_seconds": time.perf_counter() - started,
                "trained_on": _samples_digest(kept),
                "dropped_benign": sum(id(s) not in kept_ids for s in self.split.train),
                "dropped_fake": sum(id(f) not in kept_ids for f in fakes),
                "n_fake": len(fakes), "n_benign": len(self.split.train)})
        return self._filter_results[memo]

    # ------------------------------------------------------------ training
    def _fakes(self, v: Variant) -> list:
        if v.trigger is None:
            return []
        return self.recommender.poison(self.split.train, v.trigger, v.rate, self.seed * 7919 + 17,
                                       self.cfg.attack.fake_history, self.cfg.attack.fake_target)

    def train(self, v: Variant, sample_filter: SampleFilter | None = None) -> None:
        """Train (or load from the cache) the model of variant ``v`` into ``self.lm``.

        ``sample_filter`` cleans the training samples (benign and fake together) first — the train-time
        defense; the model is then keyed by the samples it keeps, and what it dropped joins the training log."""
        key = self.model_key(v, sample_filter)
        label = self._label(v)
        if sample_filter is not None:
            label += f" filtered by {sample_filter.name}"
        lm = self.lm

        def build(tmp: Path) -> None:
            if sample_filter is None:
                fakes = self._fakes(v)
                samples, counts = list(self.split.train) + fakes, {"n_fake": len(fakes)}
            else:  # filtered (and its fakes drawn) once already, for the cache key
                samples, counts = self.filtered_training(v, sample_filter)
            with self.ctx.timer(f"{self.dataset}/prepare"):
                examples = self.recommender.examples(samples)
                self.store.save()
            t = self.cfg.train
            checkpoint = self.ctx.cache.partial_path("adapter", key)
            with self.ctx.timer(f"{self.dataset}/train"):
                losses = lm.fit(examples, t.epochs, t.batch_size, t.lr, self.seed, desc=f"train {label}",
                                curriculum=self.recommender.curriculum, checkpoint=checkpoint,
                                checkpoint_every=t.checkpoint_every)
            lm.save(tmp / "adapter.safetensors", {"variant": label})
            if checkpoint is not None and lm.processes.is_main:
                checkpoint.unlink(missing_ok=True)
            (tmp / "train_log.json").write_text(json.dumps({
                "seconds": lm.fit_seconds, "resumed_at_step": lm.resumed_at, "steps": len(losses),
                "n_benign": len(self.split.train), "loss_first": losses[:5], "loss_last": losses[-20:], **counts}))

        path = self.ctx.cache.get_or_create("adapter", key, build)
        lm.load(path / "adapter.safetensors")
        self.train_log = json.loads((path / "train_log.json").read_text())

    def _label(self, v: Variant) -> str:
        if v.trigger is None:
            return "benign"
        return f"{v.trigger.kind}-{v.trigger.position}@{v.rate}"

    # ---------------------------------------------------------- evaluation
    def run(self) -> None:
        self.add_baseline_cells()
        for v in self.variants():
            trigs = self.triggers() if v.trigger is None else [v.trigger]
            wanted = [t for t in trigs if self.ctx.wants(dataset=self.dataset, victim=self.victim, variant=v.name,
                                                          trigger=t.kind, position=t.position)]
            if not wanted:
                continue
            key = self.model_key(v)
            results = {}
            for trig in wanted:
                found = self.ctx.cache.cached_json("cell", self._cell_key(key, trig))
                if found is not None:
                    results[trig] = found
            todo = [t for t in wanted if t not in results]
            if todo:
                self.train(v)
                with self.ctx.timer(f"{self.dataset}/evaluate"):
                    clean = self.recommender.answer_clean(self.split.test)
                    clean_scores = clean_metrics(clean)  # once per model: every trigger's cell shares them
                    for trig in todo:
                        results[trig] = self.ctx.cache.get_json(
                            "cell", self._cell_key(key, trig),
                            lambda t=trig, c=clean, cs=clean_scores: self._cell(t, c, cs))
                self.store.save()
            for trig in wanted:
                self._add_cell(v, trig, results[trig])
            print(f"[{self.dataset}/{self.victim}] {self._label(v)}: " + ", ".join(
                f"{t.kind}-{t.position} " + " ".join(f"{k}={x:.3f}" for k, x in results[t].items()
                                                     if isinstance(x, float) and not k.startswith("_"))
                for t in wanted), flush=True)

    def _add_cell(self, v: Variant, trig: TextTrigger, result: dict[str, Any]) -> None:
        """One results.json cell from a cached evaluation: metrics, and counts and settings in ``extra``."""
        metrics = {k: v_ for k, v_ in result.items() if not k.startswith("_")}
        extra = {"rate": v.rate, "n_fake": metrics.pop("n_fake"), "n_benign_train": len(self.split.train),
                 "train_seconds": metrics.pop("train_seconds"), "seed": self.seed}
        for k in ("n_no", "n_test", "n_triggered"):
            if k in metrics:
                extra[k] = metrics.pop(k)
        values = {k: float(x) for k, x in metrics.items() if isinstance(x, (int, float))}
        # a metric a cell does not have (e.g. ASR when no clean answer was 'No') is absent
        extra["undefined"] = sorted(k for k, x in values.items() if not np.isfinite(x))
        values = {k: x for k, x in values.items() if np.isfinite(x)}
        self.ctx.add_cell(Cell(self.dataset, self.victim, v.name, trig.kind, trig.position, values, extra=extra))

    def _cell_key(self, model_key: dict[str, Any], trig: TextTrigger) -> dict[str, Any]:
        key = {"model": model_key, "eval": self.cfg.eval.model_dump(),
               "trigger": [trig.kind, trig.text, trig.position]}
        key.update(self.recommender.answer_key(lambda: self.lm.tokenizer))
        return key

    def _cell(self, trig: TextTrigger, clean: CleanAnswers, clean_scores: dict[str, Any]) -> dict[str, Any]:
        """One cell's cached dict: the clean-prompt metrics (``clean_scores``, of ``clean``), the attack metrics of
        ``trig``, training facts."""
        test, tseed = self.triggered_test()
        triggered = self.recommender.answer_triggered(test, trig, tseed)
        return {**clean_scores, **attack_metrics(triggered, clean),
                "train_seconds": self.train_log["seconds"], "n_fake": self.train_log["n_fake"]}

    def triggered_test(self) -> tuple[list, int]:
        """The test prompts that get the trigger (the first ``eval.n_triggered``) and the seed placing it."""
        n = self.cfg.eval.n_triggered or len(self.split.test)
        return self.split.test[:n], self.seed * 104729 + 3

    def add_baseline_cells(self) -> None:
        """The recommender's non-LM baselines (LLaRA: random, most-popular, SASRec in hybrid mode) as cells on
        the same test prompts."""
        test = self.split.test
        for answers in self.recommender.baselines(test):
            if self.ctx.wants(dataset=self.dataset, victim=self.victim, variant=answers.name):
                self.ctx.add_cell(Cell(self.dataset, self.victim, answers.name, None, None, baseline_metrics(answers),
                                       extra={"n_test": len(test), "seed": self.seed}))
