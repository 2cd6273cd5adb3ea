"""``recbackdoor report``: one self-contained page from results.json files, checked in headless Chromium.

The browser test loads a page built from three committed results files and checks what a reader would
see: no console errors, the paper-vs-ours tables with a known paper number and a known mean ± std of
ours, and every inline image decoded.  Run as a script, this module also takes the full-page screenshot
``docs/report_screenshot.png`` of the report built from ``docs/results`` with the same browser setup:

    python tests/test_report_html.py docs/report_screenshot.png
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from recbackdoor.cli import main
from recbackdoor.errors import UserError
from recbackdoor.report.html import build, write_report
from recbackdoor.report.paper import paper_numbers
from recbackdoor.report.results_io import command_line, load_runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
FIXTURE = [RESULTS / "badembnets_alexnet" / "results.json", RESULTS / "badembnets_alexnet_seeds" / "results.json",
           RESULTS / "asr_vs_pr_llara_scratch_ml100k" / "results.json"]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _cell(**fields) -> dict:
    base = {"dataset": "ml100k", "victim": "llara", "variant": "badrec", "trigger": "word", "position": "end"}
    return {**base, **fields}


def _write(path: Path, cells: list[dict], **top) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, **top}), encoding="utf-8")
    return path


# ------------------------------------------------------------------ input errors: one line, exit 2, no file
def test_invalid_json_is_one_line_exit_2_and_no_output(tmp_path, capsys):
    bad = tmp_path / "run" / "results.json"
    bad.parent.mkdir()
    bad.write_text('{"cells": [', encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not valid JSON" in err and str(bad) in err
    assert not out.exists() and not list(tmp_path.glob(".report.html*"))


def test_a_failed_build_leaves_an_existing_report_untouched(tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old page", encoding="utf-8")
    with pytest.raises(UserError, match="no such file"):
        write_report([tmp_path / "absent"], out)
    assert out.read_text(encoding="utf-8") == "old page"


def test_a_folder_without_results_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no results.json"):
        load_runs([tmp_path])


def test_a_cell_without_metrics_names_the_cell(tmp_path):
    path = _write(tmp_path / "results.json", [_cell(metrics={"asr": 0.5}), _cell()])
    with pytest.raises(UserError, match=r"cells\[1\]\.metrics"):
        load_runs([path])


def test_a_non_numeric_metric_names_the_metric(tmp_path):
    path = _write(tmp_path / "results.json", [_cell(metrics={"asr": "high"})])
    with pytest.raises(UserError, match=r"cells\[0\]\.metrics\.asr"):
        load_runs([path])


# ------------------------------------------------------------------ content
def test_paper_numbers_name_their_table_and_have_values():
    data = paper_numbers()
    ids = {t["id"] for t in data["tables"]}
    assert {"badrec-table1", "badrec-table2", "badrec-table4", "badrec-table5", "badembnets-table2-3"} <= ids
    for table in data["tables"]:
        assert table["rows"], table["id"]
        for row in table["rows"]:
            assert row["table"].startswith("Table") and row["values"], row["label"]
            assert set(row["values"]) <= set(table["columns"]), row["label"]


def test_table1_lastfm_char_end_asr_is_the_papers():
    table = next(t for t in paper_numbers()["tables"] if t["id"] == "badrec-table1")
    row = next(r for r in table["rows"] if r["label"] == "LastFM · char · BadRec-End")
    assert row["values"]["asr"] == 0.9918 and row["line"] == 63


def test_command_line_is_rebuilt_from_config_file_overrides_and_only(tmp_path):
    path = _write(tmp_path / "results.json", [_cell(metrics={"asr": 1.0})], config_file="configs/x.toml",
                  overrides=["train.epochs=5", "attack.rates=[0.3]"], only={"trigger": "word"})
    run = load_runs([path])[0]
    assert command_line(run) == ("recbackdoor run configs/x.toml --set train.epochs=5 --set 'attack.rates=[0.3]' "
                                 "--only trigger=word")


def test_scanner_defense_cost_and_tsne_cells_get_their_plots(tmp_path):
    scanner = [{"dataset": d, "victim": None, "variant": "p-scanner", "trigger": None, "position": None,
                "metrics": {"fpr": 0.02, "titles": 50}} for d in ("ml100k", "steam")]
    scanner += [{"dataset": d, "victim": None, "variant": "p-scanner", "trigger": t, "position": p,
                 "metrics": {"auroc": 0.9, "tpr": 0.8, "fpr": 0.02, "titles": 50}}
                for d in ("ml100k", "steam") for t in ("char", "word") for p in ("end", "random")]
    _write(tmp_path / "scanner_eval" / "results.json", scanner, config={"model": "default", "variant": "p-scanner"})
    cost = [_cell(variant=v, metrics={"asr": 0.1, "queries_per_request": q, "seconds_per_request": 0.5})
            for v, q in (("rd", 1.0), ("strip", 9.0))]
    _write(tmp_path / "defenses" / "results.json", cost)
    tsne = [_cell(dataset="fashion-mnist", victim="classifier", variant="badembnets", metrics={"ari": 0.01},
                  extra={"tsne": {"x": [0, 1, 2], "y": [1, 0, 2], "group": ["target", "poisoned", "other"]}})]
    _write(tmp_path / "vision" / "results.json", tsne)
    report = build([tmp_path])
    titles = {figure.title for figure, _ in report.figures}
    assert "Defense cost" in titles and "t-SNE of extractor features" in titles
    assert any(t.startswith("Scanner detection per trigger") for t in titles)
    scanner_run = next(r for r in report.runs if r.name == "scanner_eval")
    assert scanner_run.command.startswith("recbackdoor eval-scanner --model default")


def test_multi_seed_cells_show_mean_and_std():
    report = build([FIXTURE[1]])
    rows = [row for table in report.runs[0].tables for row in table.rows]
    assert any(re.fullmatch(r"0\.\d{4} ± 0\.\d{4}", value) for row in rows for value in row)


@pytest.mark.slow
def test_the_committed_results_build_in_under_a_minute(tmp_path):
    started = time.process_time()  # CPU seconds: on a shared machine wall time measures the neighbours too
    assert main(["report", str(RESULTS), "--out", str(tmp_path / "report.html")]) == 0
    assert time.process_time() - started < 60
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<img" in html and "http://" not in html.replace("http://www.w3.org", "")
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?:", html)  # nothing fetched from a network


# ------------------------------------------------------------------ the page in a real browser
def _chrome():
    """Headless Debian Chromium driven by its own chromedriver; skips where they are not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium/chromedriver not installed (apt-get install -y chromium chromium-driver; "
                    "scripts/setup.sh does this where apt-get is available)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    return _driver(webdriver, Service)


def _driver(webdriver, service_class, width: int = 1280):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=service_class(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", *map(str, FIXTURE), "--out", str(out)]) == 0
    driver = _chrome()
    try:
        driver.get(out.as_uri())
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_page_has_no_console_errors(page):
    severe = [entry for entry in page.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == []


def test_page_shows_paper_tables_with_paper_and_our_numbers(page):
    from selenium.webdriver.common.by import By

    assert page.find_element(By.ID, "paper-vs-ours").find_element(By.TAG_NAME, "h2").text == "Paper vs ours"
    table = page.find_element(By.ID, "paper-badembnets-table2-3")
    text = table.get_attribute("textContent")
    assert "BadEmbNets Tables 2 and 3" in text
    assert "0.8564" in text  # the paper's AlexNet clean-model BA on Amazon Men (85.64 %)
    assert "0.8587 ± 0.0076" in text  # ours: AlexNet clean BA over three seeds


def test_every_image_decodes(page):
    sizes = page.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 3  # ASR vs PR, fine-tuning curves, VBPR factor length
    assert all(complete and width > 0 for complete, width in sizes), sizes


# ------------------------------------------------------------------ the screenshot for docs/
def screenshot(out_png: Path) -> None:
    """Full-page PNG (256-colour palette, to keep the file small) of the report built from docs/results."""
    import base64
    import io
    import os
    import tempfile

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.chdir(ROOT)  # the page names its inputs as given: relative, as a user would type them
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "report.html"
        write_report([RESULTS.relative_to(ROOT)], page_path)
        driver = _driver(webdriver, Service)
        try:
            driver.get(page_path.as_uri())
            width, height = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        finally:
            driver.quit()
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out_png, optimize=True)
    print(f"wrote {out_png} ({image.width} x {image.height})")


if __name__ == "__main__":
    if not shutil.which(str(CHROMIUM)):
        sys.exit("chromium is not installed: apt-get install -y chromium chromium-driver")
    screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "report_screenshot.png")
