"""The defense tables: the paper's row order, End / Random columns, Score ± SE, the cost table, the plots."""

from __future__ import annotations

from recbackdoor.report.defense_tables import defense_tables, is_defense_run, save_defense_figures


def _cell(variant, position, asr, auc, score=None, se=None, queries=1.0, seconds=0.3, undefined=()):
    metrics = {"asr": asr, "auc": auc, "queries_per_request": queries, "seconds_per_request": seconds,
               "recommender_seconds_per_request": queries * 0.3,
               "overhead_seconds_per_request": seconds - 0.3 * queries}
    if score is not None:
        metrics["score"] = score
    extra = {"n_clean": 150, "n_triggered": 100, "false_alarms": 0.01, "detections": 0.9,
             "undefined": list(undefined)}
    if se is not None:
        extra["score_se"] = se
    if variant == "badrec":
        extra["n_attackable"] = 27
    return {"dataset": "ml100k", "victim": "tallrec", "variant": variant, "trigger": "char", "position": position,
            "metrics": metrics, "extra": extra}


CELLS = [_cell("p-scanner", "end", 0.0, 0.71, 0.992, 0.006, queries=0.59, seconds=0.197),
         _cell("badrec", "end", 1.0, 0.726), _cell("badrec", "random", 0.9, 0.72),
         _cell("strip", "end", 0.0, 0.726, 1.0, 0.0, queries=10.6, seconds=3.53),
         _cell("benign", "end", 0.083, 0.696)]


def test_rows_follow_the_papers_order_with_end_and_random_columns() -> None:
    text = defense_tables(CELLS)
    assert is_defense_run(CELLS) and not is_defense_run([_cell("badrec", "end", 1.0, 0.7)])
    rows = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.startswith("| ")]
    assert rows[:5] == ["defense", "Benign", "BadRec", "STRIP", "P-Scanner"]
    assert "| End AUC | End ASR | End Score | Random AUC | Random ASR | Random Score |" in text
    assert "| P-Scanner | 0.710 | 0.000 | 0.992 ± 0.006 |  |  |  |" in text
    assert "over the 27 the undefended poisoned model answers No" in text


def test_cost_table_reports_queries_and_the_defenses_own_time() -> None:
    cost = defense_tables(CELLS).split("### Cost per request")[1]
    assert "| STRIP | 10.60 | 3.180 | 0.3500 | 3.530 | 0.010 | 0.900 |" in cost
    assert "| P-Scanner | 0.59 | 0.177 | 0.0200 | 0.197 |" in cost


def test_an_undefined_rate_shows_as_n_a_not_as_a_number() -> None:
    cell = _cell("rd", "end", 0.5, 0.7, 0.6)
    del cell["metrics"]["asr"]
    cell["extra"]["undefined"] = ["asr"]
    assert "| RD | 0.700 | n/a | 0.600 |" in defense_tables([cell])


def test_figures_are_written_whole(tmp_path) -> None:
    names = save_defense_figures(CELLS, tmp_path)
    assert names == ["defense_tallrec_ml100k.png", "defense_cost.png"]
    assert all((tmp_path / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary file left behind


def test_summary_puts_every_cell_in_one_table_and_counts_the_scanners_target() -> None:
    from recbackdoor.report.defense_tables import summary_tables

    def at(cell, trigger, position):
        return {**cell, "trigger": trigger, "position": position}

    cells = [at(_cell("p-scanner", "end", 0.0, 0.71, 0.992), "char", "end"),
             at(_cell("strip", "end", 0.0, 0.72, 0.995), "char", "end"),
             at(_cell("p-scanner", "end", 0.25, 0.70, 0.90), "word", "random"),
             at(_cell("strip", "end", 0.40, 0.70, 0.60), "word", "random"),
             at(_cell("p-scanner-wo-ft", "end", 0.9, 0.70, 0.55), "word", "random"),
             at(_cell("badrec", "end", 1.0, 0.73), "char", "end")]
    del cells[1]["metrics"]["asr"]  # an undefined rate reads as a dash, never as a crash
    text = summary_tables(cells)
    assert "| defense | char-end | word-random |" in text
    assert "| P-Scanner | 0.000 / 0.992 | 0.250 / 0.900 |" in text
    assert "| STRIP | — / 0.995 | 0.400 / 0.600 |" in text
    assert "- P-Scanner: ASR ≤ 0.05 and Score ≥ 0.95: 1 / 2 (missed: word-random)" in text
    assert "best Score of the eight defenses (ties count): 1 / 2 (missed: char-end)" in text
    assert "P-Scanner w/o FT: mean Score 0.550 against the full scanner's 0.946" in text
    # no SEs given: behind by 0.003 is still behind
    assert "behind the best by less than one SE of the difference: 1 / 2 (missed: char-end)" in text
    cells[1]["extra"] = {"score_se": 0.003}
    cells[0]["extra"] = {"score_se": 0.002}  # gap 0.003 <= sqrt(0.003² + 0.002²) = 0.0036: not resolvably behind
    assert "behind the best by less than one SE of the difference: 2 / 2" in summary_tables(cells)


def test_summary_reads_llara_cells_and_a_trigger_of_the_users_own() -> None:
    from recbackdoor.report.defense_tables import summary_tables

    cell = {"dataset": "ml100k", "victim": "llara", "variant": "p-scanner", "trigger": "emoji", "position": "end",
            "metrics": {"asr": 0.1, "h1": 0.3, "score": 0.9}, "extra": {}}
    badrec = {**cell, "variant": "badrec", "metrics": {"asr": 0.9, "h1": 0.31}}
    text = summary_tables([cell, badrec])
    assert "| defense | emoji-end |" in text and "| P-Scanner | 0.100 / 0.900 |" in text
    assert "Poisoned model's H@1: emoji-end 0.310." in text
