"""A saved scanner re-thresholded on titles of the user's own domain.

Why: the shipped threshold is set on held-out Netflix movie titles, so its 1 % false-positive rate
holds for catalogues that look like them (MovieLens 1.6 %, LastFM 1.1 %) and not for others: on
Steam's game names ('3DMark API Overhead feature test') it flags 7.5 %. A team that has a list of
titles it trusts — last year's vetted catalogue, titles written in-house — can move the threshold to
the false-positive rate it wants *on its own titles*. The model itself is unchanged; only
``threshold`` is rewritten, and the record of where it came from is kept in ``scanner.json``.

The titles must be ones the team trusts: calibrating on a catalogue that may already carry a trigger
lets the trigger's titles set the threshold (with ``fpr`` above their share, the threshold can land
just above them).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recbackdoor.data.files import sha256
from recbackdoor.defenses.text.calibration import calibrate_threshold
from recbackdoor.defenses.text.catalogue_io import open_catalogue
from recbackdoor.defenses.text.scanner import DEFAULT_V1, PoisonScanner, scanner_folder
from recbackdoor.errors import UserError

MIN_TITLES = 200  # below this a 1 % quantile rests on one or two titles


def threshold_for(scanner: PoisonScanner, titles: Iterable[str], fpr: float, batch_size: int = 2048,
                  progress: bool = False) -> tuple[float, int]:
    """The threshold that flags at most ``fpr`` of these distinct non-blank titles, and how many there were.

    Distinct titles: a catalogue that lists one title many times (editions, regions) would otherwise weigh
    it many times in the quantile."""
    distinct = [t for t in dict.fromkeys(titles) if t.strip()]
    if len(distinct) < MIN_TITLES:
        raise UserError(f"calibration needs at least {MIN_TITLES} distinct titles, got {len(distinct)}")
    scores = []
    with tqdm(total=len(distinct), unit="title", disable=not progress, desc="scoring", dynamic_ncols=True) as bar:
        for first in range(0, len(distinct), batch_size):
            scores.append(scanner.score(distinct[first:first + batch_size]))
            bar.update(len(scores[-1]))
    return calibrate_threshold(np.concatenate(scores), fpr), len(distinct)


def recalibrate(model: str | Path, input_path: Path, column: str, out: Path, fpr: float = 0.01,
                batch_size: int = 2048, progress: bool = True) -> dict:
    """Write ``out``: a copy of the saved scanner ``model`` whose threshold flags ``fpr`` of the distinct titles
    in ``input_path``'s ``column``. Returns the record added to ``scanner.json``. Nothing is left at ``out`` on
    failure (the copy is built in a hidden folder beside it and renamed into place)."""
    if not 0 < fpr < 0.5:
        raise UserError(f"--fpr must be in (0, 0.5), got {fpr}")
    if out.exists() or out.is_symlink():
        raise UserError(f"{out}: already exists; give a new --out folder")
    if not out.parent.is_dir():
        raise UserError(f"{out}: parent folder {out.parent} does not exist")
    scanner = PoisonScanner.load(model)
    titles: list[str] = []
    with open_catalogue(input_path, column) as catalogue:  # bad rows and cells: one line naming file, row, field
        for batch in catalogue.batches(batch_size):
            titles.extend(batch.titles)
    start = time.perf_counter()
    threshold, distinct = threshold_for(scanner, titles, fpr, batch_size, progress)
    record = {"previous_threshold": scanner.threshold, "target_fpr": fpr, "titles": distinct, "rows": len(titles),
              "input": str(input_path), "input_sha256": sha256(input_path), "column": column,
              "seconds": round(time.perf_counter() - start, 2),
              "command": f"recbackdoor calibrate-scanner --model {model} --input {input_path} --column {column} "
                         f"--fpr {fpr} --out {out}"}
    source = scanner_folder(model)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
        if str(model) == DEFAULT_V1:  # the shipped student alone: its own record becomes the scanner's
            from recbackdoor.defenses.text.fused_scanner import CHANNEL_WEIGHTS, STUDENT_RECORD

            (tmp / STUDENT_RECORD).replace(tmp / "scanner.json")
            (tmp / CHANNEL_WEIGHTS).unlink()
        meta = json.loads((tmp / "scanner.json").read_text(encoding="utf-8"))
        meta["threshold"] = threshold
        meta["recalibrations"] = [*meta.get("recalibrations", []), record]
        (tmp / "scanner.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**record, "threshold": threshold}
