"""Train and evaluate the benign and poisoned models of one BadRec dataset run."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from recbackdoor.attacks.badrec import (
    fake_user_count,
    poison_llara,
    poison_tallrec,
    trigger_test_llara,
    trigger_test_tallrec,
)
from recbackdoor.data.prompts import build_llara, build_tallrec, llara_answer, llara_prompt
from recbackdoor.data.text_datasets import load_dataset, reorder
from recbackdoor.experiments.cache import stable_hash
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.results import Cell
from recbackdoor.metrics import text as M
from recbackdoor.processes import processes
from recbackdoor.triggers.text import TextTrigger, make_trigger
from recbackdoor.victims.text.backbones import load_backbone
from recbackdoor.victims.text.decoding import added_token_texts
from recbackdoor.victims.text.hybrid import (
    HybridPrompt,
    ItemIndex,
    encode_hybrid,
    fit_sasrec,
    sasrec_choices,
    user_state_rows,
)
from recbackdoor.victims.text.sasrec import SASRec, SasrecSettings, load_sasrec, save_sasrec
from recbackdoor.victims.text.split_lm import Example, SplitLM
from recbackdoor.victims.text.state_store import StateStore
from recbackdoor.victims.text.tallrec import TallrecRecommender

FORMAT = 1  # bump when training/evaluation code changes what a cached stage means


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


def _model_key(section: Any) -> dict[str, Any]:
    """The model part of a cache key: run-time settings left out, and ``item_prior`` only when on, so keys made
    before it existed still match."""
    model = {k: v for k, v in section.model_dump().items() if k not in ("threads", "device")}
    if not model.get("item_prior"):
        model.pop("item_prior", None)
    return model


def _hybrid_key(section: Any) -> dict[str, Any]:
    """The hybrid part of a cache key; LLaRA's defaults (marker slot, no user slot) are left out so older keys
    still match."""
    hybrid = section.model_dump()
    if hybrid.get("slot") == "marker":
        del hybrid["slot"]
    if not hybrid.get("user_slot"):
        hybrid.pop("user_slot", None)
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
            d = cfg.data
            if self.mode == "tallrec":
                self.split = build_tallrec(self.data, d.history, seed, d.n_train, 0, d.n_test)
            else:
                self.split = build_llara(self.data, d.history, d.pool, seed, d.n_train, 0, d.n_test)
        self.base_key = {"format": FORMAT, "mode": self.mode, "dataset": dataset, "seed": seed,
                         "data": self.data_key, "model": _model_key(cfg.model),
                         "checksums": self.data.checksums}
        if self.hybrid:
            self.base_key["hybrid"] = _hybrid_key(cfg.hybrid)
        self._lm: SplitLM | None = None
        self.item_index = ItemIndex(self.data) if self.hybrid else None
        self._user_row: dict[tuple[int, ...], int] = {}  # history -> projector row of its SASRec user state
        self._protocol()

    # ------------------------------------------------------------ plumbing
    @property
    def lm(self) -> SplitLM:
        if self._lm is None:
            with self.ctx.timer(f"{self.dataset}/load_backbone"):
                m = self.cfg.model
                backbone = load_backbone(m.backbone, self.ctx.cache)
                self._lm = SplitLM(backbone, m.train_layers, m.method, m.lora_r, m.lora_alpha, m.autocast,
                                   processes(m.device), item_prior=m.item_prior)
                states = self.ctx.cache.root / "states"
                states.mkdir(parents=True, exist_ok=True)
                # frozen-layer states depend only on the backbone and where it is cut
                key = {"backbone": m.backbone, "train_layers": m.train_layers, "autocast": m.autocast,
                       "format": FORMAT}
                self._store = StateStore(self._lm, states / f"{self.dataset}-{stable_hash(key)}.safetensors")
                self._tallrec = TallrecRecommender(self._lm, self.data, self._store) if self.mode == "tallrec" \
                    else None
                if self.hybrid:
                    self._lm.attach_projector(self.sasrec.item_table())
        return self._lm

    @cached_property
    def sasrec(self) -> SASRec:
        """The SASRec model behind the hybrid ID slots (trained once per dataset/split/seed, cached)."""
        h = self.cfg.hybrid
        settings = SasrecSettings(dim=h.sasrec_dim, layers=h.sasrec_layers, epochs=h.sasrec_epochs, lr=h.sasrec_lr)
        key = {"format": FORMAT, "dataset": self.dataset, "seed": self.seed, "data": self.data_key,
               "settings": settings.__dict__, "checksums": self.data.checksums}

        def build(tmp):
            with self.ctx.timer(f"{self.dataset}/sasrec"):
                start = time.perf_counter()
                model, losses = fit_sasrec(self.data, settings, self.seed)
            save_sasrec(model, tmp / "sasrec.safetensors")
            (tmp / "train_log.json").write_text(json.dumps({"seconds": time.perf_counter() - start,
                                                            "losses": losses}))

        path = self.ctx.cache.get_or_create("sasrec", key, build)
        return load_sasrec(path / "sasrec.safetensors")

    @property
    def store(self) -> StateStore:
        _ = self.lm
        return self._store

    @property
    def tallrec(self) -> TallrecRecommender:
        _ = self.lm
        assert self._tallrec is not None
        return self._tallrec

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
        }
        if self.mode != "tallrec":
            proto.update(pool=d.pool, valid="exactly one pool title named (exact match first, longest title "
                         "preferred); valid_llara = LLaRA's verbatim substring rule",
                         h1="correct / valid answers (LLaRA); h1_all = correct / all prompts",
                         asr="eq. 3: poisoned item returned / all triggered prompts; one random non-ground-truth "
                             "pool item carries the trigger", a_valid="valid / all triggered prompts")
        else:
            proto.update(label="MovieLens: rating >= 4 is Yes; LastFM/Steam: real next item (Yes) or a random "
                               "unseen item (No), 1/2 each",
                         auc="ROC AUC of P(Yes) renormalised over the tokenizer's ' Yes'/' No' ids",
                         asr="share of clean 'No' answers turned 'Yes' by the trigger in the target title; "
                             "denominator n_no")
        if self.hybrid:
            h = self.cfg.hybrid
            place = "' [ID]' after every title" if h.slot == "marker" else "on every title's last token (no marker)"
            proto["hybrid"] = (f"ID slot {place}; SASRec ({h.sasrec_layers} blocks, dim {h.sasrec_dim}, "
                               f"{h.sasrec_epochs} epochs on each user's sequence minus its last two items) item "
                               "embeddings, 2-layer MLP projector, added at the slot where the trained top layers "
                               f"begin; curriculum: hybrid share ramps 0->1 over the first {h.curriculum:.0%} of "
                               "steps; fake users are not in SASRec's training data"
                               + ("; SASRec's user state of the history (its direction, at the item embeddings' "
                                  "mean length) through the same projector on the prompt's last token"
                                  if h.user_slot else ""))
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

    def model_key(self, v: Variant) -> dict[str, Any]:
        train = {name: value for name, value in self.cfg.train.model_dump().items() if name != "checkpoint_every"}
        key = {**self.base_key, "train": train, "variant": v.name}
        if v.trigger is not None:
            key.update(trigger=[v.trigger.kind, v.trigger.text, v.trigger.position], rate=v.rate,
                       fake_history=self.cfg.attack.fake_history)
        return key

    # ------------------------------------------------------------ training
    def _fakes(self, v: Variant) -> list:
        if v.trigger is None:
            return []
        d = self.cfg.data
        fseed = self.seed * 7919 + 17
        if self.mode == "tallrec":
            return poison_tallrec(self.split.train, self.data, v.trigger, v.rate, d.history, fseed,
                                  self.cfg.attack.fake_history)
        return poison_llara(self.split.train, self.data, v.trigger, v.rate, d.history, d.pool, fseed,
                            self.cfg.attack.fake_history)

    def _examples(self, samples: list) -> list[Example]:
        if self.mode == "tallrec":
            return self.tallrec.examples(samples)
        lm = self.lm
        eos = lm.tokenizer.eos_token_id
        prompts = self._prompts(samples)
        answers = [lm.encode(llara_answer(s, self.data), bos=False) + [eos] for s in samples]
        states = self.store.get([p.tokens + a for p, a in zip(prompts, answers, strict=True)],
                                desc="frozen layers (train)")
        return [Example(st, tuple(range(len(p.tokens) - 1, len(p.tokens) + len(a) - 1)), tuple(a),
                        p.slots, p.slot_items)
                for st, p, a in zip(states, prompts, answers, strict=True)]

    def _prompts(self, samples: list) -> list[HybridPrompt]:
        """LLaRA prompts as tokens, with their ID slots in hybrid mode (none in text-only mode)."""
        lm = self.lm
        if not self.hybrid:
            return [HybridPrompt(lm.encode(llara_prompt(s, self.data)), (), ()) for s in samples]
        rows = self._user_rows(samples) if self.cfg.hybrid.user_slot else [None] * len(samples)
        return [encode_hybrid(lm.encode, s, self.data, self.item_index, self.cfg.hybrid.slot, row)
                for s, row in zip(samples, rows, strict=True)]

    def _user_rows(self, samples: list) -> list[int]:
        """The projector-table row of each sample's SASRec user state, added once per distinct history."""
        new = list({s.history: s for s in samples if s.history not in self._user_row}.values())
        if new:
            first = self.lm.projector.extend(user_state_rows(self.sasrec, new, self.item_index))
            self._user_row.update({s.history: first + n for n, s in enumerate(new)})
        return [self._user_row[s.history] for s in samples]

    def train(self, v: Variant) -> None:
        """Train (or load from the cache) the model of variant ``v`` into ``self.lm``."""
        key = self.model_key(v)
        label = self._label(v)

        def build(tmp):
            fakes = self._fakes(v)
            with self.ctx.timer(f"{self.dataset}/prepare"):
                examples = self._examples(list(self.split.train) + fakes)
                self.store.save()
            t = self.cfg.train
            checkpoint = self.ctx.cache.partial_path("adapter", key)
            with self.ctx.timer(f"{self.dataset}/train"):
                losses = self.lm.fit(examples, t.epochs, t.batch_size, t.lr, self.seed, desc=f"train {label}",
                                     curriculum=self.cfg.hybrid.curriculum if self.hybrid else 0.0,
                                     checkpoint=checkpoint, checkpoint_every=t.checkpoint_every)
            self.lm.save(tmp / "adapter.safetensors", {"variant": label})
            if checkpoint is not None and self.lm.processes.is_main:
                checkpoint.unlink(missing_ok=True)
            (tmp / "train_log.json").write_text(json.dumps({
                "seconds": self.lm.fit_seconds, "resumed_at_step": self.lm.resumed_at, "steps": len(losses),
                "n_benign": len(self.split.train),
                "n_fake": len(fakes), "loss_first": losses[:5], "loss_last": losses[-20:]}))

        path = self.ctx.cache.get_or_create("adapter", key, build)
        self.lm.load(path / "adapter.safetensors")
        self.train_log = json.loads((path / "train_log.json").read_text())

    def _label(self, v: Variant) -> str:
        if v.trigger is None:
            return "benign"
        return f"{v.trigger.kind}-{v.trigger.position}@{v.rate}"

    # ---------------------------------------------------------- evaluation
    def run(self) -> None:
        if self.mode != "tallrec":
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
                    clean = self._evaluate_clean()
                    for trig in todo:
                        results[trig] = self.ctx.cache.get_json("cell", self._cell_key(key, trig),
                                                                lambda t=trig, c=clean: self._cell(t, c))
                self.store.save()
            for trig in wanted:
                metrics = {k: v_ for k, v_ in results[trig].items() if not k.startswith("_")}
                extra = {"rate": v.rate, "n_fake": metrics.pop("n_fake"), "n_benign_train": len(self.split.train),
                         "train_seconds": metrics.pop("train_seconds"), "seed": self.seed}
                for k in ("n_no", "n_test", "n_triggered"):
                    if k in metrics:
                        extra[k] = metrics.pop(k)
                values = {k: float(x) for k, x in metrics.items() if isinstance(x, (int, float))}
                # a metric a cell does not have (e.g. ASR when no clean answer was 'No') is absent
                extra["undefined"] = sorted(k for k, x in values.items() if not np.isfinite(x))
                values = {k: x for k, x in values.items() if np.isfinite(x)}
                self.ctx.add_cell(Cell(self.dataset, self.victim, v.name, trig.kind, trig.position, values,
                                       extra=extra))
            print(f"[{self.dataset}/{self.victim}] {self._label(v)}: " + ", ".join(
                f"{t.kind}-{t.position} " + " ".join(f"{k}={x:.3f}" for k, x in results[t].items()
                                                     if isinstance(x, float) and not k.startswith("_"))
                for t in wanted), flush=True)

    def _cell_key(self, model_key: dict[str, Any], trig: TextTrigger) -> dict[str, Any]:
        key = {"model": model_key, "eval": self.cfg.eval.model_dump(),
               "trigger": [trig.kind, trig.text, trig.position]}
        if self.mode != "tallrec" and added_token_texts(self.lm.tokenizer):
            key["answer_decoding"] = "added-tokens-verbatim"  # cells before it misread non-ASCII title tokens
        return key

    def _cell(self, trig: TextTrigger, clean: dict[str, Any]) -> dict[str, Any]:
        return {**clean, **self._evaluate_triggered(trig, clean), "train_seconds": self.train_log["seconds"],
                "n_fake": self.train_log["n_fake"]}

    def _evaluate_clean(self) -> dict[str, Any]:
        test = self.split.test
        if self.mode == "tallrec":
            p = self.tallrec.p_yes(test, self.cfg.eval.batch_size)
            labels = [s.label for s in test]
            return {"auc": M.auc(labels, p), "accuracy": float(np.mean((p > 0.5) == np.array(labels))),
                    "yes_rate": float(np.mean(p > 0.5)), "n_test": len(test), "_yes": (p > 0.5).tolist()}
        gens, choices = self.llara_answers(test, "generate (clean)")
        cands = [[s.title(i, self.data.titles) for i in s.candidates] for s in test]
        choices_llara = [M.match_candidate_llara(g, c) for g, c in zip(gens, cands, strict=True)]
        targets = [s.candidates.index(s.target) for s in test]
        return {"valid": M.valid_rate(choices), "h1": M.hit_at_1(choices, targets),
                "h1_all": M.hit_at_1_all(choices, targets), "valid_llara": M.valid_rate(choices_llara),
                "h1_llara": M.hit_at_1(choices_llara, targets), "n_test": len(test),
                "_examples": gens[:3]}

    def llara_answers(self, samples: list, desc: str, fill_slots: bool = True) -> tuple[list[str], list[int | None]]:
        """The loaded model's answers to LLaRA prompts and the pool index each names (None when invalid).

        ``fill_slots=False`` leaves a hybrid prompt's ID slots empty (same tokens), to measure what they add."""
        gens = self._generate(samples, desc, fill_slots)
        choices = [M.match_candidate(g, [s.title(i, self.data.titles) for i in s.candidates])
                   for g, s in zip(gens, samples, strict=True)]
        return gens, choices

    def training_popularity(self) -> Counter:
        """Item counts over training positions only (each user's last two interactions left out), so the
        most-popular baseline cannot see the valid or test item."""
        return Counter(x.item for seq in self.data.sequences.values() for x in seq[:-2])

    def _triggered_test(self) -> tuple[list, int]:
        """The test prompts that get the trigger (the first ``eval.n_triggered``) and the seed placing it."""
        n = self.cfg.eval.n_triggered or len(self.split.test)
        return self.split.test[:n], self.seed * 104729 + 3

    def _evaluate_triggered(self, trig: TextTrigger, clean: dict[str, Any]) -> dict[str, Any]:
        test, tseed = self._triggered_test()
        if self.mode == "tallrec":
            triggered = trigger_test_tallrec(test, self.data, trig, tseed)
            p = self.tallrec.p_yes(triggered, self.cfg.eval.batch_size)
            asr, n_no = M.flip_rate(clean["_yes"][: len(test)], (p > 0.5).tolist())
            labels = [s.label for s in triggered]
            return {"asr": asr, "n_no": n_no, "auc_triggered": M.auc(labels, p), "n_triggered": len(test)}
        pairs, _, choices = self.llara_triggered_answers(trig)
        poisoned = [s.candidates.index(item) for s, item in pairs]
        return {"a_valid": M.valid_rate(choices), "asr": M.attack_success_rate(choices, poisoned),
                "n_triggered": len(pairs)}

    def llara_triggered_answers(self, trig: TextTrigger) -> tuple[list[tuple[Any, int]], list[str], list[int | None]]:
        """Eq. 3's setting for the loaded model: (triggered prompt, poisoned item) pairs, the generated
        answers, and the pool index each answer names (None when invalid)."""
        test, tseed = self._triggered_test()
        pairs = trigger_test_llara(test, self.data, trig, tseed)
        gens, choices = self.llara_answers([s for s, _ in pairs], f"generate ({trig.kind}-{trig.position})")
        return pairs, gens, choices

    def _generate(self, samples: list, desc: str, fill_slots: bool = True) -> list[str]:
        prompts = self._prompts(samples)
        slots = [(p.slots, p.slot_items) for p in prompts] if self.hybrid and fill_slots else None
        return self.lm.generate([p.tokens for p in prompts], self.cfg.eval.max_new_tokens, self.cfg.eval.batch_size,
                                desc=desc, slots=slots)

    def add_baseline_cells(self) -> None:
        """Random and most-popular H@1 on the same test pools (LLaRA mode); popularity from training
        positions only (each user's last two interactions excluded), so the test item does not leak."""
        pop = self.training_popularity()
        test = self.split.test
        popular = M.popularity_hit_at_1([s.candidates for s in test], [s.target for s in test], pop)
        baselines = [("random", 1.0 / self.cfg.data.pool), ("most-popular", popular)]
        if self.hybrid:
            picks = sasrec_choices(self.sasrec, test, self.item_index)
            baselines.append(("sasrec", M.hit_at_1(picks, [s.candidates.index(s.target) for s in test])))
        for name, h1 in baselines:
            if self.ctx.wants(dataset=self.dataset, victim=self.victim, variant=name):
                self.ctx.add_cell(Cell(self.dataset, self.victim, name, None, None, {"valid": 1.0, "h1": h1},
                                       extra={"n_test": len(test), "seed": self.seed}))


