"""The scanner side of a defense study: its scanners, their catalogue look-ups, the recurrence and label-test spans
and the training-data filter — everything P-Scanner's rows need, apart from running requests (``defense_engine``)."""

from __future__ import annotations

from typing import Any

from recbackdoor.defenses.text.contract import Request, TallrecRequest
from recbackdoor.defenses.text.label_test import LABEL_TEST_SETTINGS, training_spans
from recbackdoor.defenses.text.pscanner_defense import FlagLookup
from recbackdoor.defenses.text.recurrence import RECURRENCE_SETTINGS, FlagsWithRecurrence, catalogue_flagger
from recbackdoor.defenses.text.requests import sample_titles
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.experiments.badrec_engine import SampleFilter, Variant

SCANNER_VARIANTS = {"p-scanner": "scanner", "p-scanner-wo-ft": "scanner_wo_ft", "p-scanner-wo-ta": "scanner_wo_ta",
                    "p-scanner-recurrence": "scanner", "p-scanner-label": "scanner"}
# the training-data filters: name -> which spans' carriers go besides the flagged titles: none, the recurring spans
# of the training catalogue (recurrence.py), or the spans whose titles are always the answer (label_test.py)
TRAIN_TIME = {"p-scanner-train-time": "scanner", "p-scanner-recurrence-train-time": "recurrence",
              "p-scanner-label-train-time": "label"}


def request_titles(request: Request) -> tuple[str, ...]:
    if isinstance(request, TallrecRequest):
        return (request.target,)
    return request.pool


class ScannerParts:
    """Mixed into ``DefenseStudy``, which provides ``d`` (the defense section), ``data``, ``engine`` and the
    request sets ``clean``, ``calibration`` and ``_all_triggered``."""

    def scanner(self, variant: str) -> PoisonScanner:
        where = getattr(self.d, SCANNER_VARIANTS[variant])
        return self._scanners(where)

    def _scanners(self, where: str) -> PoisonScanner:
        cache = self.__dict__.setdefault("_scanner_cache", {})
        if where not in cache:
            cache[where] = PoisonScanner.load(where)
        return cache[where]

    def scanner_key(self, variant: str) -> dict[str, Any]:
        scanner = self.scanner(variant)
        return {"meta": scanner.meta, "threshold": scanner.threshold}

    def recurring_spans(self, v: Variant) -> list[str]:
        """The spans the recurrence test finds in variant ``v``'s training catalogue (every title its benign and
        fake samples show): the attacker's items are in the catalogue that is scanned as items enter it."""
        memo = self.__dict__.setdefault("_recurring", {})
        if v not in memo:
            samples = list(self.engine.split.train) + self.engine._fakes(v)
            titles = [t for s in samples for t in sample_titles(s, self.data)]
            memo[v] = catalogue_flagger(self.scanner("p-scanner"), titles).spans
        return memo[v]

    def label_spans(self, v: Variant) -> list[str]:
        """The spans the label test finds in variant ``v``'s training data (benign and fake samples): the
        recommender's owner holds them."""
        memo = self.__dict__.setdefault("_label_spans", {})
        if v not in memo:
            memo[v] = training_spans(list(self.engine.split.train) + self.engine._fakes(v), self.data)
        return memo[v]

    def lookup(self, variant: str) -> FlagLookup:
        """Flags of every title of every request of this study, scanned once: a catalogue is scanned when items
        enter it, so a request costs a look-up."""
        cache = self.__dict__.setdefault("_lookups", {})
        if variant not in cache:
            requests = self.clean + self.calibration + self._all_triggered
            titles = [t for r in requests for t in request_titles(r)]
            cache[variant] = FlagLookup.precompute(self.scanner(variant), titles)
        return cache[variant]

    def training_filter(self, kind: str = "scanner") -> SampleFilter:
        """Drop every training sample that shows a flagged title; with ``kind`` "recurrence", also those showing a
        title that carries a recurring span of the training catalogue (the samples' own titles); with "label",
        those showing a title that carries a span the label test finds in the samples themselves."""
        if kind not in ("scanner", "recurrence", "label"):
            raise ValueError(f"training filter {kind!r}: expected scanner, recurrence or label")
        scanner = self.scanner("p-scanner")

        def keep(samples: list) -> list:
            titles = [t for s in samples for t in sample_titles(s, self.data)]
            if kind == "recurrence":  # one scoring pass gives both the flags and the spans
                flagger = catalogue_flagger(scanner, titles)
            else:
                flagger = FlagLookup.precompute(scanner, titles, keep_scanner=False)
                if kind == "label":
                    flagger = FlagsWithRecurrence(flagger, training_spans(samples, self.data))
            return [s for s in samples if not flagger.flag(sample_titles(s, self.data)).any()]

        key = self.scanner_key("p-scanner")
        if kind == "recurrence":
            return SampleFilter("p-scanner-recurrence", {**key, "recurrence": RECURRENCE_SETTINGS}, keep)
        if kind == "label":
            return SampleFilter("p-scanner-label", {**key, "label_test": LABEL_TEST_SETTINGS}, keep)
        return SampleFilter("p-scanner", key, keep)
