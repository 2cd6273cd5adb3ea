"""Reading a generated answer back to the pool title it names.

Why this is the victim's job, not the metrics': a generative recommender's
recommendation *is* the pool item its text names, so turning text into a pool
index finishes the victim's decoding (``decoding.py`` turns token ids into
that text). Metrics then only count indexes, and a defense that shows the
recommender a rewritten pool (``defenses/text/pool_view.py``) reads answers by
the same rule the BadRec cells do, without reaching past its pipeline stage.
"""

from __future__ import annotations

from collections.abc import Sequence


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().split())


def match_candidate(generated: str, candidates: Sequence[str]) -> int | None:
    """Index of the candidate the generated text names, or None when invalid.

    Exact match (after strip / lower-case) wins.  Otherwise LLaRA's rule: the
    answer is valid when exactly one candidate occurs in the text — except that
    a candidate contained in a longer matched candidate (``Heat`` inside
    ``Heat and Dust``) does not count, so the longest title is preferred.
    """
    gen = _norm(generated.strip().split("\n")[0])  # leading newlines first: untrained LMs often start with one
    cands = [_norm(c) for c in candidates]
    for index, cand in enumerate(cands):
        if gen == cand:
            return index
    hits = [i for i, c in enumerate(cands) if c and c in gen]
    hits = [i for i in hits if not any(i != j and cands[i] in cands[j] for j in hits)]
    return hits[0] if len(hits) == 1 else None


def match_candidate_llara(generated: str, candidates: Sequence[str]) -> int | None:
    """LLaRA's original rule, verbatim: exactly one candidate is a substring of the text."""
    gen = generated.strip().lower()
    hits = [i for i, c in enumerate(candidates) if c.strip().lower() in gen]
    return hits[0] if len(hits) == 1 else None
