"""The ASR-vs-PR plot merges results files made by separate runs."""

import json

import pytest

from recbackdoor.report.text_plots import main


def _results(rate: float, asr: float) -> dict:
    cell = {"dataset": "ml100k", "victim": "llara", "variant": "badrec", "trigger": "word", "position": "end",
            "metrics": {"asr": asr}, "extra": {"rate": rate}}
    benign = {**cell, "variant": "benign", "metrics": {"asr": 0.02}, "extra": {"rate": 0.0}}
    return {"config": {"name": "probe"}, "cells": [cell, benign]}


def test_plot_from_several_results_files(tmp_path, capsys):
    paths = []
    for rate, asr in ((0.1, 0.31), (0.3, 0.74)):
        path = tmp_path / f"r{rate}.json"
        path.write_text(json.dumps(_results(rate, asr)))
        paths.append(str(path))
    main([*paths, str(tmp_path / "asr.png"), "--title", "rung 2"])
    assert (tmp_path / "asr.png").stat().st_size > 1000
    assert "asr.png" in capsys.readouterr().out


def test_plot_needs_an_output_png(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_results(0.1, 0.3)))
    with pytest.raises(SystemExit):
        main([str(path)])
