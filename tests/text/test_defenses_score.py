"""The paper's Score, checked by hand and against the paper's own Table 2."""

from __future__ import annotations

import pytest

from recbackdoor.metrics.defense import cost_metrics, proportion_difference_se, score, score_se

# Table 2 (char-level trigger, LLaRA): the BadRec row (undefended poisoned model) is the reference, as
# (H@1, ASR) for BadRec-End and BadRec-Random; "MLLM" in the extracted text is ML1M.
BADREC = {"LastFM": (0.5041, 0.9918, 0.5000, 1.0000), "ML1M": (0.4737, 0.9570, 0.4632, 1.0000),
          "STEAM": (0.4390, 0.9949, 0.4287, 0.9949)}
# (dataset, defense, End H@1, End ASR, End Score, Random H@1, Random ASR, Random Score)
TABLE2 = [
    ("LastFM", "RD", 0.1261, 0.7521, 0.4308, 0.1250, 0.7797, 0.4227),
    ("LastFM", "LLMSI", 0.5207, 0.9918, 0.5000, 0.5372, 1.0000, 0.5000),
    ("LastFM", "ONION", 0.4463, 0.9098, 0.5121, 0.4333, 0.8017, 0.5658),
    ("LastFM", "STRIP", 0.4545, 0.4590, 0.7416, 0.5289, 0.5785, 0.7107),
    ("LastFM", "RPD", 0.3770, 0.9667, 0.4490, 0.3554, 0.7563, 0.5495),
    ("LastFM", "CoS", 0.4167, 1.0000, 0.4563, 0.4876, 0.9915, 0.4981),
    ("LastFM", "Paraphraser", 0.3009, 0.0450, 0.8718, 0.2843, 0.1038, 0.8403),
    ("LastFM", "P-Scanner", 0.4098, 0.0000, 0.9488, 0.4426, 0.0000, 0.9713),
    ("ML1M", "RD", 0.1591, 0.7416, 0.4504, 0.1461, 0.8478, 0.4175),
    ("ML1M", "LLMSI", 0.4947, 0.9468, 0.5051, 0.4737, 0.9895, 0.5053),
    ("ML1M", "ONION", 0.4632, 0.9255, 0.5105, 0.4526, 0.9789, 0.5053),
    ("ML1M", "STRIP", 0.4737, 0.8511, 0.5530, 0.4316, 0.6316, 0.6684),
    ("ML1M", "RPD", 0.4526, 0.9684, 0.4895, 0.4632, 1.0000, 0.5000),
    ("ML1M", "CoS", 0.4421, 1.0000, 0.4842, 0.4316, 0.9785, 0.4950),
    ("ML1M", "Paraphraser", 0.2706, 0.0225, 0.8657, 0.3370, 0.0556, 0.9091),
    ("ML1M", "P-Scanner", 0.4211, 0.0000, 0.9522, 0.4211, 0.0000, 0.9789),
    ("STEAM", "RD", 0.2566, 0.8271, 0.4927, 0.2511, 0.8503, 0.4835),
    ("STEAM", "LLMSI", 0.4443, 0.9949, 0.5000, 0.4320, 0.9940, 0.5004),
    ("STEAM", "ONION", 0.3249, 0.7386, 0.5711, 0.3305, 0.6419, 0.6274),
    ("STEAM", "STRIP", 0.4417, 0.7843, 0.6053, 0.4129, 0.5305, 0.7243),
    ("STEAM", "RPD", 0.3598, 0.8201, 0.5478, 0.4037, 0.8973, 0.5363),
    ("STEAM", "CoS", 0.4598, 0.9966, 0.5000, 0.4417, 0.9924, 0.5013),
    ("STEAM", "Paraphraser", 0.3336, 0.0542, 0.9176, 0.3215, 0.0446, 0.9215),
    ("STEAM", "P-Scanner", 0.4183, 0.0000, 0.9871, 0.3981, 0.0008, 0.9817),
]


def test_score_by_hand() -> None:
    assert score(0.9, 0.1, 0.5, 0.4) == pytest.approx((0.8 - 0.1 + 1) / 2)
    assert score(1.0, 0.0, 0.5, 0.5) == 1.0  # stops every attack at no cost
    assert score(0.9, 0.9, 0.5, 0.5) == 0.5  # does nothing
    assert score(1.0, 1.0, 0.5, 0.0) == 0.25


def test_negative_deltas_are_clipped_at_zero() -> None:
    assert score(0.5, 0.8, 0.4, 0.4) == 0.5  # the defense raised ASR: no reward, no extra penalty
    assert score(0.9, 0.1, 0.4, 0.6) == pytest.approx((0.8 + 1) / 2)  # it raised H@1: not rewarded
    assert score(0.5, 0.8, 0.4, 0.6) == 0.5


@pytest.mark.parametrize("row", TABLE2, ids=lambda r: f"{r[0]}-{r[1]}")
def test_papers_table2_scores_reproduce_from_its_own_columns(row) -> None:
    dataset, _, h1_end, asr_end, score_end, h1_rand, asr_rand, score_rand = row
    ref_h1_end, ref_asr_end, ref_h1_rand, ref_asr_rand = BADREC[dataset]
    assert score(ref_asr_end, asr_end, ref_h1_end, h1_end) == pytest.approx(score_end, abs=1e-4)
    assert score(ref_asr_rand, asr_rand, ref_h1_rand, h1_rand) == pytest.approx(score_rand, abs=1e-4)


def test_standard_error_of_a_difference_of_two_proportions() -> None:
    assert proportion_difference_se(0.5, 100, 0.5, 100) == pytest.approx((0.25 / 100 * 2) ** 0.5)
    assert proportion_difference_se(1.0, 10, 0.0, 10) == 0.0
    assert score_se(0.5, 100, 0.5, 100, 0.5, 100, 0.5, 100) == pytest.approx(0.5 * (4 * 0.25 / 100) ** 0.5)
    with pytest.raises(ValueError):
        proportion_difference_se(0.5, 0, 0.5, 10)


def test_cost_metrics_are_means_per_request() -> None:
    assert cost_metrics([1, 3], [0.5, 1.5]) == {"queries_per_request": 2.0, "seconds_per_request": 1.0}
