"""The runner's markdown tables: one row per variant/position, and per rate where a variant has several."""

from recbackdoor.report.tables import markdown_tables


def _cell(variant: str, rate: float | None, asr: float) -> dict:
    extra = {} if rate is None else {"rate": rate}
    return {"dataset": "ml100k", "victim": "llara", "variant": variant, "trigger": "word", "position": "end",
            "metrics": {"asr": asr}, "extra": extra}


def test_each_rate_of_a_variant_gets_its_own_row():
    text = markdown_tables([_cell("benign", 0.0, 0.0), _cell("badrec", 0.01, 0.25), _cell("badrec", 0.05, 0.75)])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "method" not in line]
    assert rows == ["| benign-end | 0.0000 |", "| badrec-end@0.01 | 0.2500 |", "| badrec-end@0.05 | 0.7500 |"]


def test_a_single_rate_is_not_written_into_the_row_name():
    text = markdown_tables([_cell("benign", 0.0, 0.0), _cell("badrec", 0.05, 0.75)])
    assert "| badrec-end | 0.7500 |" in text and "@" not in text
