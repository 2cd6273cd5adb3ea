"""Defenses against BadRec on one dataset: the rows of the paper's Tables 2–6 and Fig. 5–7.

Per poisoned model (one per trigger × position) the same requests are
answered undefended (the BadRec row) and through every defense; the benign
model's undefended answers give the Benign row, and a model trained on
scanner-cleaned data gives the train-time row. Requests come from the test
split: the first ``n_clean`` are the clean requests (utility: H@1 or AUC), the
first ``n_triggered`` of those carry the trigger (ASR), and the next
``n_calibration`` are clean requests a defender would hold back to set
thresholds. Per-request outcomes are cached per (model, defense), so a table
is re-assembled, and a cell re-run with ``--only``, without recomputing the rest.

Victims come from the BadRec experiment's stage cache (same keys), so models
trained by ``recbackdoor run`` of the matching badrec config are reused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from recbackdoor.attacks.badrec import trigger_test_llara, trigger_test_tallrec
from recbackdoor.defenses.text.batched import BatchedCalls, BatchedRecommender, run_batched
from recbackdoor.defenses.text.calibration import calibrate_threshold
from recbackdoor.defenses.text.contract import DefenseResult, Request
from recbackdoor.defenses.text.defense_registry import make_defense
from recbackdoor.defenses.text.label_test import LABEL_TEST_SETTINGS
from recbackdoor.defenses.text.recurrence import RECURRENCE_SETTINGS, FlagsWithRecurrence
from recbackdoor.defenses.text.requests import llara_request, tallrec_request
from recbackdoor.experiments.badrec_engine import BadRecEngine, SampleFilter, Variant
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.defense_scanners import SCANNER_VARIANTS, TRAIN_TIME, ScannerParts, request_titles
from recbackdoor.experiments.results import Cell
from recbackdoor.metrics.defense_cell import llara_cell, request_cost, tallrec_cell
from recbackdoor.triggers.text import TextTrigger
from recbackdoor.victims.text.serving import batch_calls, cold_query_seconds

FORMAT = 1  # bump when what a cached defense cell means changes
# the P-Scanner rows that also flag titles carrying spans found in the poisoned training data: the row's name ->
# (its test's name in the cell key, the test's settings, how the spans are found)
SPAN_ROWS = {"p-scanner-recurrence": ("recurrence", RECURRENCE_SETTINGS, ScannerParts.recurring_spans),
             "p-scanner-label": ("label_test", LABEL_TEST_SETTINGS, ScannerParts.label_spans)}


def outcomes(results: Sequence[DefenseResult]) -> dict[str, list]:
    """What the cache keeps of each request: the answer, what was flagged, what it cost."""
    return {"answer": [r.answer if isinstance(r.answer, float) else None for r in results],
            "choice": [r.choice for r in results], "flagged": [bool(r.flagged) for r in results],
            "queries": [r.queries for r in results], "seconds": [r.seconds for r in results],
            "recommender_seconds": [r.recommender_seconds for r in results],
            "score": [r.score for r in results]}


class DefenseStudy(ScannerParts):
    def __init__(self, cfg: Any, ctx: RunContext, dataset: str, seed: int) -> None:
        self.cfg, self.ctx, self.dataset, self.seed = cfg, ctx, dataset, seed
        self.d = cfg.defense
        self.engine = BadRecEngine(cfg, ctx, dataset, seed)
        self.data = self.engine.data
        self.mode = "tallrec" if cfg.mode == "tallrec" else "llara"
        test = self.engine.split.test
        need = self.d.n_clean + self.d.n_calibration
        if len(test) < need:
            raise ValueError(f"{dataset}: {len(test)} test prompts, but n_clean + n_calibration = {need}; raise "
                             "data.n_test or lower them")
        self.clean_samples = test[: self.d.n_clean]
        self.calibration_samples = test[self.d.n_clean: need]
        self.clean = [self._request(s) for s in self.clean_samples]
        self.calibration = [self._request(s) for s in self.calibration_samples]
        self.request_key = {"format": FORMAT, "n_clean": self.d.n_clean, "n_triggered": self.d.n_triggered,
                            "n_calibration": self.d.n_calibration,
                            "requests": hashlib.sha256(repr(self.clean + self.calibration).encode()).hexdigest()}

    # ------------------------------------------------------------------ requests
    def _request(self, sample: Any, poisoned_item: int | None = None) -> Request:
        if self.mode == "tallrec":
            return tallrec_request(sample, self.data, poisoned=poisoned_item is not None)
        return llara_request(sample, self.data, poisoned_item)

    def triggered(self, trigger: TextTrigger) -> list[Request]:
        """The first ``n_triggered`` clean requests with the trigger placed by the attack's rule (BadRec's seed)."""
        base = list(self.clean_samples[: self.d.n_triggered])
        tseed = self.engine.triggered_test()[1]
        if self.mode == "tallrec":
            return [self._request(s, s.target) for s in trigger_test_tallrec(base, self.data, trigger, tseed)]
        return [self._request(s, item) for s, item in trigger_test_llara(base, self.data, trigger, tseed)]

    # ------------------------------------------------------------------ helper models (loaded on first use)
    @cached_property
    def instruct_lm(self):
        from recbackdoor.defenses.text.helper_lm import load_instruct_lm

        return load_instruct_lm(self.ctx.cache, self.d.helper_batch_size)

    @cached_property
    def paraphraser(self):
        from recbackdoor.defenses.text.helper_lm import LMParaphraser

        return LMParaphraser(self.instruct_lm)

    @cached_property
    def scrutineer(self):
        from recbackdoor.defenses.text.helper_lm import LMScrutineer

        return LMScrutineer(self.instruct_lm)

    @cached_property
    def onion(self):
        from recbackdoor.defenses.text.helper_lm import OnionSuspicion
        from recbackdoor.defenses.text.onion import Onion

        return OnionSuspicion(Onion(self.instruct_lm.model, self.instruct_lm.tokenizer))

    # ------------------------------------------------------------------ running requests
    def recommender(self) -> BatchedRecommender:
        """The loaded model (``engine.train`` put it in) behind batched calls; a fresh memo per model."""
        _ = self.engine.lm
        return BatchedRecommender(**batch_calls(self.engine.recommender))

    def answer(self, defense_name: str | None, requests: Sequence[Request], rec: BatchedRecommender,
               parts: dict[str, Any] | None = None) -> list[DefenseResult]:
        helpers: list[BatchedCalls] = []
        defense = None
        if defense_name is not None:
            parts = parts or {}
            defense = make_defense(defense_name, **parts)
            for part in parts.values():
                if isinstance(part, BatchedCalls):
                    helpers.append(part)
                stores = getattr(part, "stores", None)
                if callable(stores):
                    helpers.extend(stores())
        return run_batched(defense, requests, rec, helpers, desc=defense_name or "undefended")

    @cached_property
    def budget(self) -> float:
        """The false-alarm budget thresholds are calibrated to: P-Scanner's own false-alarm rate on the held-out
        clean requests (share of requests with a flagged item), unless the config names one."""
        if self.d.budget is not None:
            return self.d.budget
        if not self.calibration:
            raise ValueError("ONION and RPD calibrate their thresholds on held-out clean requests: set "
                             "defense.n_calibration > 0 or defense.budget")
        lookup = self.lookup("p-scanner")
        return float(np.mean([bool(lookup.flag(request_titles(request)).any()) for request in self.calibration]))

    def parts(self, name: str, rec: Callable[[], BatchedRecommender], v: Variant | None = None
              ) -> tuple[dict[str, Any], Callable[[], tuple[dict[str, Any], dict[str, Any]]]]:
        """What the cache key of defense ``name`` needs, and a function building its constructor arguments
        (and the thresholds it calibrated, for the cell) — called only when the cell is not cached."""
        d, seed = self.d, self.seed
        helper = {"helper": "smollm2-135m-instruct", "prompts": "helper_lm v1"}
        if name == "rd":
            return {"chars": d.rd_chars}, lambda: ({"chars": d.rd_chars, "seed": seed}, {})
        if name == "llmsi":
            return {}, lambda: ({}, {})
        if name == "onion":
            def onion() -> tuple[dict, dict]:
                threshold = self.onion_threshold(self.budget)
                return ({"suspicion": self.onion, "threshold": threshold, "remove_items": d.onion_remove_items},
                        {"threshold": threshold})
            return {"remove_items": d.onion_remove_items, "budget": self.budget}, onion
        if name == "strip":
            catalogue = sorted(set(self.data.titles.values()))
            return ({"runs": d.strip_runs, "threshold": d.strip_threshold, "share": d.strip_share},
                    lambda: ({"catalogue": catalogue, "runs": d.strip_runs, "threshold": d.strip_threshold,
                              "share": d.strip_share, "seed": seed}, {}))
        if name == "rpd":
            def rpd() -> tuple[dict, dict]:
                threshold = self.rpd_threshold(rec, self.budget) if self.mode == "tallrec" else 0.5
                return ({"paraphrase": self.paraphraser, "threshold": threshold, "scope": d.rpd_scope},
                        {"threshold": threshold})
            return {"scope": d.rpd_scope, "budget": self.budget, **helper}, rpd
        if name == "cos":
            return helper, lambda: ({"scrutineer": self.scrutineer}, {})
        if name == "paraphraser":
            return helper, lambda: ({"paraphrase": self.paraphraser}, {})
        if name in SPAN_ROWS:
            test, settings, find_spans = SPAN_ROWS[name]
            if v is None:
                raise ValueError(f"{name} needs the poisoned variant whose training data its {test} test reads")
            spans = find_spans(self, v)
            return ({"scanner": self.scanner_key(name), test: settings, "spans": spans},
                    lambda: ({"scanner": FlagsWithRecurrence(self.lookup("p-scanner"), spans)}, {"spans": spans}))
        if name in SCANNER_VARIANTS:
            return {"scanner": self.scanner_key(name)}, lambda: ({"scanner": self.lookup(name)}, {})
        raise ValueError(f"defense {name!r} has no parts here")

    def onion_threshold(self, budget: float) -> float:
        """ONION's threshold at the budget: the largest word suspicion per held-out clean request."""
        titles = [list(request_titles(r)) for r in self.calibration]
        for title in {t for ts in titles for t in ts}:
            self.onion.pending[title] = None
        self.onion.flush()
        scores = [max((s for t in ts for _, s in self.onion.values[t]), default=0.0) for ts in titles]
        return calibrate_threshold(scores, budget)

    def rpd_threshold(self, rec: Callable[[], BatchedRecommender], budget: float) -> float:
        """RPD's threshold (TALLRec: the P(Yes) drop a paraphrase causes) at the budget, on held-out requests."""
        results = self.answer("rpd", self.calibration, rec(), {"paraphrase": self.paraphraser, "threshold": 2.0})
        return calibrate_threshold([r.score for r in results], budget)

    # ------------------------------------------------------------------ the study
    def run(self) -> None:
        variants = self.engine.variants()
        benign = [v for v in variants if v.trigger is None]
        poisoned = [v for v in variants if v.trigger is not None]
        self._all_triggered = [r for v in poisoned for r in self.triggered(v.trigger)]
        if benign and self.d.benign and self.ctx.wants(dataset=self.dataset, victim=self.cfg.mode, variant="benign"):
            self.run_benign(benign[0], [v.trigger for v in poisoned])
            self._save_states()
        for v in poisoned:
            self.run_poisoned(v)
            self._save_states()

    def _save_states(self) -> None:
        """Persist the frozen-layer states of this model's prompts: the next model (and a resumed run) reuses
        every one its requests share (clean requests and their perturbed, edited and paraphrased versions)."""
        if self.engine._lm is not None:
            self.engine.store.save()

    def _cached(self, model_key: dict, name: str, extra_key: dict, compute: Callable[[], dict] | None) -> dict | None:
        """A cached cell, computed by ``compute`` when missing (``compute=None``: None when missing)."""
        key = {"model": model_key, "requests": self.request_key, "defense": name, "settings": extra_key}
        if compute is None:
            return self.ctx.cache.cached_json("defense_cell", key)
        return self.ctx.cache.get_json("defense_cell", key, compute)

    def benign_asr_on(self, t: TextTrigger, attackable: list[bool]) -> float | None:
        """TALLRec: the benign model's Yes rate on the requests a poisoned row's ASR counts (its base rate on the
        same denominator), when the benign model's answers are cached."""
        benign = [v for v in self.engine.variants() if v.trigger is None]
        if self.mode != "tallrec" or not benign or not any(attackable):
            return None
        got = self._cached(self.engine.model_key(benign[0]), "undefended", {"set": t.cache_label}, None)
        if got is None:
            return None
        yes = np.asarray(got["answer"]) > 0.5
        return float(yes[np.asarray(attackable)].mean())

    def _undefended(self, model_key: dict, requests_by_label: dict[str, list[Request]],
                    rec: Callable[[], BatchedRecommender]) -> dict[str, dict]:
        out = {}
        for label, requests in requests_by_label.items():
            out[label] = self._cached(model_key, "undefended", {"set": label},
                                      lambda r=requests: outcomes(self.answer(None, r, rec())))
        return out

    def run_benign(self, v: Variant, triggers: list[TextTrigger]) -> None:
        key = self.engine.model_key(v)
        sets = {"clean": self.clean, **{t.cache_label: self.triggered(t) for t in triggers}}
        loaded: list[BatchedRecommender] = []
        got = self._undefended(key, sets, lambda: self._load(v, loaded))
        self._q = self.query_seconds(key, lambda: self._load(v, loaded))
        for t in triggers:
            if self.ctx.wants(dataset=self.dataset, victim=self.cfg.mode, variant="benign", trigger=t.kind,
                              position=t.position):
                label = t.cache_label
                self._add(v.name, t, got["clean"], got[label], None, None, sets[label])

    def _load(self, v: Variant, loaded: list, sample_filter: SampleFilter | None = None) -> BatchedRecommender:
        """Train or load the model once per variant, on first need (a fully cached table loads nothing)."""
        if not loaded:
            self.engine.train(v, sample_filter)
            loaded.append(self.recommender())
        return loaded[0]

    def query_seconds(self, model_key: dict, load: Callable[[], BatchedRecommender]) -> float:
        """What one recommender query of this model costs from scratch (``serving.cold_query_seconds`` on the
        first 16 clean requests), cached with the model's cells."""
        def measure() -> dict:
            load()
            if self.mode == "tallrec":
                keys = [(r.liked, r.disliked, r.target, None) for r in self.clean[:16]]
            else:
                keys = [(r.history, r.pool, None) for r in self.clean[:16]]
            return {"seconds": cold_query_seconds(self.engine.recommender, keys), "n": len(keys)}

        return self._cached(model_key, "query-seconds", {}, measure)["seconds"]

    def run_poisoned(self, v: Variant) -> None:
        t = v.trigger
        wanted = [n for n in ["badrec", *self.d.names]
                  if self.ctx.wants(dataset=self.dataset, victim=self.cfg.mode, variant=n, trigger=t.kind,
                                    position=t.position)]
        if not wanted:
            return
        key = self.engine.model_key(v)
        triggered = self.triggered(t)
        loaded: list[BatchedRecommender] = []
        base = self._undefended(key, {"clean": self.clean, "triggered": triggered}, lambda: self._load(v, loaded))
        self._q = self.query_seconds(key, lambda: self._load(v, loaded))
        if "badrec" in wanted:
            self._add("badrec", t, base["clean"], base["triggered"], None, None, triggered)
        for name in self.d.names:
            if name not in wanted:
                continue
            started = time.perf_counter()
            if name in TRAIN_TIME:
                got = self.train_time(v, triggered, TRAIN_TIME[name])
                extra = {"filter": got["filter"]}
                base_rate = self.benign_asr_on(t, self._attackable(base["clean"])) if self.mode == "tallrec" else None
                if base_rate is not None:
                    extra["benign_asr_same_requests"] = base_rate
            else:
                part_key, build = self.parts(name, lambda: self._load(v, loaded), v)

                def compute(build=build, name=name) -> dict:
                    rec = self._load(v, loaded)
                    parts, calibrated = build()
                    return {"clean": outcomes(self.answer(name, self.clean, rec, parts)),
                            "triggered": outcomes(self.answer(name, triggered, rec, parts)),
                            "calibrated": calibrated}

                got = self._cached(key, name, part_key, compute)
                extra = dict(got.get("calibrated", {}))
                if "budget" in part_key:
                    extra["budget"] = part_key["budget"]
            self._add(name, t, got["clean"], got["triggered"], base["clean"], base["triggered"], triggered, extra)
            print(f"[{self.dataset}/{self.cfg.mode}] {t.kind}-{t.position} {name}: "
                  f"{time.perf_counter() - started:.0f} s", flush=True)

    def train_time(self, v: Variant, triggered: list[Request], kind: str = "scanner") -> dict:
        """The model trained on data the scanner cleaned, answering requests undefended; ``kind`` names what else
        the filter drops (``ScannerParts.training_filter``)."""
        sample_filter = self.training_filter(kind)
        key = self.engine.model_key(v, sample_filter)  # shared by every trigger whose cleaned data are the same
        loaded: list[BatchedRecommender] = []
        label = v.trigger.cache_label
        got = self._undefended(key, {"clean": self.clean, label: triggered},
                               lambda: self._load(v, loaded, sample_filter))
        _, dropped = self.engine.filtered_training(v, sample_filter)
        return {"clean": got["clean"], "triggered": got[label], "filter": dropped}

    # ------------------------------------------------------------------ cells
    def _add(self, variant: str, t: TextTrigger, clean: dict, triggered: dict, base_clean: dict | None,
             base_triggered: dict | None, triggered_requests: list[Request], extra: dict | None = None) -> None:
        metrics, se = self.metrics(clean, triggered, base_clean, base_triggered, triggered_requests)
        metrics.update(request_cost(clean, triggered, self._q))
        info = {"n_clean": len(clean["queries"]), "n_triggered": len(triggered["queries"]), "seed": self.seed,
                "query_seconds": self._q,
                "false_alarms": float(np.mean(clean["flagged"])),
                "detections": float(np.mean(triggered["flagged"])), **(extra or {})}
        if self.mode == "tallrec":  # ASR's denominator: triggered requests whose clean twin the model refuses
            info["n_attackable"] = int(sum(self._attackable(base_clean if base_clean is not None else clean)))
        if se is not None and np.isfinite(se):
            info["score_se"] = se
        # a rate with an empty denominator (no attackable request) is absent, and named (results schema)
        info["undefined"] = sorted(k for k, x in metrics.items() if not np.isfinite(x))
        metrics = {k: x for k, x in metrics.items() if np.isfinite(x)}
        self.ctx.add_cell(Cell(self.dataset, self.cfg.mode, variant, t.kind, t.position, metrics, extra=info))

    def metrics(self, clean: dict, triggered: dict, base_clean: dict | None, base_triggered: dict | None,
                triggered_requests: list[Request]) -> tuple[dict[str, float], float | None]:
        """Rates and (for a defense, against the undefended poisoned model) Score and its SE."""
        if self.mode == "tallrec":
            attackable = self._attackable(base_clean if base_clean is not None else clean)
            return tallrec_cell([r.label for r in self.clean], attackable, clean, triggered, base_clean,
                                base_triggered, self.seed)
        return llara_cell([r.truth for r in self.clean], [r.poisoned for r in triggered_requests], clean, triggered,
                          base_clean, base_triggered, self.seed)

    def _attackable(self, clean: dict) -> list[bool]:
        """TALLRec: triggered request j counts toward ASR when the undefended model says No to its clean twin."""
        return [p <= 0.5 for p in clean["answer"][: self.d.n_triggered]]

