"""The catalogue scanner users call: load a saved scanner, score, flag, explain, purify.

A saved scanner is a folder with ``scanner.json`` (kind, threshold, target
FPR, training command and data hash) and its weights in safetensors.  Three
kinds exist: ``student`` (the fast network, ``defenses/text/student.py``),
``fused`` (a student and the Unicode channel, ``fused_scanner.py``) and ``llm``
(P-Scanner's LoRA-tuned SmolLM2, ``llm_scanner.py``).  ``"default"`` names the
fused scanner shipped inside the package, ``"default-v1"`` its student alone
(the default until 2026-12-02, which the first defense tables used).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from recbackdoor.errors import UserError

DEFAULT = "default"
DEFAULT_V1 = "default-v1"
MAX_SPAN_WORDS = 6


class TitleScorer(Protocol):
    def score(self, titles: Sequence[str]) -> np.ndarray: ...


def default_dir() -> Path:
    return Path(str(resources.files("recbackdoor.defenses.text") / "default_scanner"))


def scanner_folder(where: str | Path) -> Path:
    """The folder a ``--model`` value names: the package's for 'default' and 'default-v1', else the path."""
    return default_dir() if str(where) in (DEFAULT, DEFAULT_V1) else Path(where)


class PoisonScanner:
    """A scorer with its calibrated threshold; every method takes plain title strings."""

    def __init__(self, scorer: TitleScorer, threshold: float, meta: dict | None = None) -> None:
        self.scorer = scorer
        self.threshold = float(threshold)
        self.meta = meta or {}

    @classmethod
    def load(cls, where: str | Path) -> PoisonScanner:
        folder = scanner_folder(where)
        # 'default-v1': the shipped student alone, with its own threshold (the scanner of the first defense tables)
        meta_path = folder / ("student.json" if str(where) == DEFAULT_V1 else "scanner.json")
        if not meta_path.is_file():
            raise UserError(f"{folder}: not a saved scanner (no scanner.json); train one with "
                            "'recbackdoor train-scanner --out DIR' or use --model default")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{meta_path}: not valid JSON ({exc})") from None
        kind = meta.get("kind")
        if kind == "student":
            from recbackdoor.defenses.text.student import StudentScorer

            scorer: TitleScorer = StudentScorer.load(folder)
        elif kind == "fused":
            from recbackdoor.defenses.text.fused_scanner import FusedScorer

            scorer = FusedScorer.load(folder)
        elif kind == "llm":
            from recbackdoor.defenses.text.llm_scanner import load_llm_scanner

            adapter = meta.get("adapter", "adapter")  # null: the untuned LM ("w/o FT")
            scorer = load_llm_scanner(folder / adapter if adapter else None)
        else:
            raise UserError(f"{meta_path}: field 'kind' is {kind!r}; expected 'student', 'fused' or 'llm'")
        if "threshold" not in meta:
            raise UserError(f"{meta_path}: field 'threshold' is missing")
        return cls(scorer, meta["threshold"], meta)

    def score(self, titles: Sequence[str]) -> np.ndarray:
        """Poison score in [0, 1] per title (higher: more likely to carry an inserted trigger)."""
        if not titles:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.scorer.score(list(titles)), dtype=np.float32)

    def flag(self, titles: Sequence[str]) -> np.ndarray:
        return self.score(titles) > self.threshold

    def suspect(self, title: str) -> str:
        """The span whose removal lowers the score most: the inserted character, word or phrase."""
        return self.suspects([title])[0]

    def suspects(self, titles: Sequence[str]) -> list[str]:
        """``suspect`` for many titles, the removal candidates of all of them scored together, shortest first.

        Candidates are every run of up to six whole words, and every single
        non-ASCII or invisible character (a glued-on trigger is not a word).
        The span is the fewest words (then characters) whose removal clears
        the title; failing that, the shortest span within 0.05 of the largest drop.
        Because the fewest words win, candidates are scored one word count at a time (characters count as one
        word) and a title stops as soon as one clears it: a one-word or one-character trigger costs a title's
        single-word candidates, not all of its ≈ 30 (the scan's explanations took as long as its scoring).
        The chosen span is the one scoring every candidate would give (``test_staged_suspects_equal_exhaustive``).
        """
        per_title = [_removal_candidates(t) for t in titles]
        scores = [np.full(len(c), np.nan, dtype=np.float32) for c in per_title]
        open_titles = set(range(len(titles)))
        for words in range(1, MAX_SPAN_WORDS + 1):
            todo = [(t, i) for t in sorted(open_titles) for i, (_, span) in enumerate(per_title[t])
                    if _word_count(span) == words]
            if todo:
                got = self.score([per_title[t][i][0] for t, i in todo])
                for (t, i), value in zip(todo, got, strict=True):
                    scores[t][i] = value
            open_titles = {t for t in open_titles if not (scores[t] <= self.threshold).any()}
        return [self._pick_span(title, candidates, chunk)
                for title, candidates, chunk in zip(titles, per_title, scores, strict=True)]

    def _pick_span(self, title: str, candidates: list[tuple[str, str]], scores: np.ndarray) -> str:
        """``scores`` may hold NaN for candidates longer than a clearing one: they can never be chosen."""
        if not candidates:
            return title
        clearing = [i for i, s in enumerate(scores) if s <= self.threshold]
        if clearing:
            chosen = min(clearing, key=lambda i: (_word_count(candidates[i][1]), len(candidates[i][1]), i))
            return candidates[chosen][1]
        best = float(np.nanmin(scores))
        near = [i for i, s in enumerate(scores) if s <= best + 0.05]
        return min((candidates[i][1] for i in near), key=len)

    def purify(self, pool: Sequence[str]) -> list[str]:
        """Eq. 9: the candidate pool without the flagged titles, in order; no recommender is called."""
        flags = self.flag(pool)
        return [title for title, flagged in zip(pool, flags, strict=True) if not flagged]


def _word_count(span: str) -> int:
    return len(span.split(" "))


def _removal_candidates(title: str) -> list[tuple[str, str]]:
    """(title without the span, span) for every word run up to MAX_SPAN_WORDS and every non-ASCII character."""
    words = title.split(" ")
    candidates: list[tuple[str, str]] = []
    for length in range(1, min(MAX_SPAN_WORDS, len(words)) + 1):
        for start in range(len(words) - length + 1):
            rest = words[:start] + words[start + length:]
            candidates.append((" ".join(rest), " ".join(words[start:start + length])))
    for i, char in enumerate(title):
        if ord(char) > 0x7F and len(title) > 1:
            candidates.append((title[:i] + title[i + 1:], char))
    return [(rest, span) for rest, span in candidates if rest.strip()]
