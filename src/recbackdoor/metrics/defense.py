"""Defense metrics: the paper's Score from attacked and defended rates, its standard error, and cost.

Score = (max(0, ΔASR) − max(0, ΔU) + 1) / 2 (P-Scanner paper, §5.1), where
ΔASR = ASR of the undefended poisoned model − ASR with the defense (triggered
requests), and ΔU = utility of the undefended poisoned model − utility with
the defense on clean requests: U = H@1 for LLaRA (k = 1, over valid answers
as LLaRA counts it), U = AUC for TALLRec. The reference is the *poisoned*
model without defense (the BadRec row of Table 2), not the benign model; all
144 Score cells of the paper's Tables 2, 4 and 5 (and the 18 of Table 3)
recompute from their own H@1 and ASR columns this way to within 1e-4
(tests/text/test_defenses_score.py checks Table 2's 48).
Score is 0.5 for a defense that does nothing, 1 for one that stops every
attack at no cost, 0 for one that only costs; a defense that *raises* ASR or
H@1 is not rewarded for it (the clips at 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from recbackdoor.metrics.text import defense_score


def score(asr_attacked: float, asr_defended: float, utility_attacked: float, utility_defended: float) -> float:
    """The paper's Score from the four rates (U = H@1 for LLaRA, AUC for TALLRec)."""
    return defense_score(asr_attacked - asr_defended, utility_attacked - utility_defended)


def proportion_difference_se(p1: float, n1: int, p2: float, n2: int) -> float:
    """Standard error of p1 − p2 for two proportions from independent samples (Wald): sqrt(p(1−p)/n summed).

    Defended and undefended runs usually score the *same* prompts; then this overstates the error (the
    pairing cancels shared prompt difficulty) — use ``metrics.text.paired_bootstrap_interval`` on per-prompt
    outcomes for a tighter interval.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"both sample sizes must be positive, got {n1} and {n2}")
    for p in (p1, p2):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a proportion must be in [0, 1], got {p}")
    return math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)


def score_se(asr_attacked: float, n_asr_attacked: int, asr_defended: float, n_asr_defended: int,
             h1_attacked: float, n_h1_attacked: int, h1_defended: float, n_h1_defended: int) -> float:
    """Approximate standard error of Score (LLaRA), treating the four rates as independent proportions.

    Score is half a difference of two differences, so away from the clips its SE is
    ½ · sqrt(SE(ΔASR)² + SE(ΔH@1)²); ``n_h1_*`` are the H@1 denominators (valid answers). Near a clip
    (a Δ close to 0) this is an upper bound. AUC has no such closed form here: bootstrap it.
    """
    se_asr = proportion_difference_se(asr_attacked, n_asr_attacked, asr_defended, n_asr_defended)
    se_h1 = proportion_difference_se(h1_attacked, n_h1_attacked, h1_defended, n_h1_defended)
    return 0.5 * math.sqrt(se_asr ** 2 + se_h1 ** 2)


def cost_metrics(queries: Sequence[int], seconds: Sequence[float]) -> dict[str, float]:
    """The two cost metrics every defense cell carries: mean recommender queries and wall seconds per request."""
    if len(queries) != len(seconds) or not queries:
        raise ValueError(f"need equal, non-zero numbers of per-request queries and seconds, got {len(queries)} "
                         f"and {len(seconds)}")
    return {"queries_per_request": sum(queries) / len(queries), "seconds_per_request": sum(seconds) / len(seconds)}
