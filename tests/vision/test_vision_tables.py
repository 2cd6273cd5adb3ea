"""The paper-shaped vision tables read what the runner wrote, including several seeds' spread."""

from recbackdoor.experiments.results import Cell, mean_over_seeds
from recbackdoor.report.vision_tables import tables


def _run(seeds: list[int], cells: list[Cell]) -> dict:
    return {"seeds": seeds, "config": {"trigger": {"pattern": "square", "size": 3, "position": "br"},
                                       "vbpr": {"k_visual": 20}},
            "cells": [c.to_json() for c in cells]}


def _cell(variant: str, ba: float) -> Cell:
    return Cell("fashion-mnist", "classifier", variant, "square", "br", {"ba": ba, "asr": 0.99, "ari": 0.01})


def test_seed_spread_lists_every_seed_and_the_mean():
    merged = mean_over_seeds([_cell("badnets", 0.86), _cell("badnets", 0.88)])
    text = tables({"resnet": _run([0, 1], [merged])})
    row = next(line for line in text.splitlines() if "| badnets | ba |" in line)
    assert "0.8700 ± 0.0100" in row and "0.8600, 0.8800" in row
    assert "| 87.00 |" in text  # Table 2/3 shows the mean, in %


def test_one_seed_has_no_spread_section():
    assert "Seed spread" not in tables({"resnet": _run([0], [_cell("clean", 0.88)])})
