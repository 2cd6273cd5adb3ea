"""`recbackdoor tables`: paper-shaped Markdown from committed results alone, and the merged ASR-vs-PR plot."""

import json
from pathlib import Path

from recbackdoor.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _results(rate: float, asr: float) -> dict:
    cell = {"dataset": "ml100k", "victim": "llara", "variant": "badrec", "trigger": "word", "position": "end",
            "metrics": {"asr": asr}, "extra": {"rate": rate}}
    benign = {**cell, "variant": "benign", "metrics": {"asr": 0.02}, "extra": {"rate": 0.0}}
    return {"config": {"name": "probe"}, "cells": [cell, benign]}


def test_plot_from_several_results_files(tmp_path, capsys):
    paths = []
    for rate, asr in ((0.1, 0.31), (0.3, 0.74)):
        path = tmp_path / f"r{rate}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(_results(rate, asr)))
        paths.append(str(path))
    assert main(["tables", *paths, "--asr-plot", str(tmp_path / "asr.png"), "--title", "rung 2"]) == 0
    assert (tmp_path / "asr.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "asr.png" in out and "0.740" in out  # the second run's ASR is in its table


def test_plot_needs_a_png(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results(0.1, 0.3)))
    assert main(["tables", str(path), "--asr-plot", str(tmp_path / "asr.pdf")]) == 2
    assert "--asr-plot must name a .png" in capsys.readouterr().err
    assert not (tmp_path / "asr.pdf").exists()


def test_committed_runs_of_every_kind(capsys):
    runs = ["badembnets_alexnet", "badembnets_resnet", "scanner_default", "scanner_p-scanner",
            "defense_tallrec_ml100k_quick", "rung1_tallrec_ml100k"]
    assert main(["tables", *(str(RESULTS / r) for r in runs)]) == 0
    out = capsys.readouterr().out
    assert "Table 2/3" in out and "| resnet |" in out and "| alexnet |" in out  # both backbones in one table
    assert "p-scanner" in out.lower()  # the second scanner beside the first
    assert "P-Scanner (train-time)" in out  # the defense table
    assert "## rung1_tallrec_ml100k" in out


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["tables", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
