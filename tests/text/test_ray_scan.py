"""Ray Data path of the catalogue scanner: same answers as the scanner called directly.

Ray runs as a small local cluster (2 CPUs, no dashboard), started once for the
module and shut down at its end. The scorer is a deterministic test double,
shipped to the actors by value (cloudpickle), so scores can be compared exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from recbackdoor.defenses.text import ray_scan  # noqa: E402
from recbackdoor.defenses.text.ray_scan import ScannerBatch, scan_dataset, scan_files_with_ray  # noqa: E402
from recbackdoor.defenses.text.scanner import DEFAULT, PoisonScanner, default_dir  # noqa: E402
from recbackdoor.errors import UserError  # noqa: E402

TRIGGERS = ("\u0d2e", "Ethereal", "Dreams dance in moonlight's embrace")


class TriggerScorer:
    """Deterministic double: 0.9 when a known trigger is in the title, else 0.1 to 0.13 by length.

    Benign scores stay within the 0.05 window of ``suspect``, so the shortest span
    whose removal drops the score wins: the char or word trigger itself.
    """

    def score(self, titles: Sequence[str]) -> np.ndarray:
        return np.array([0.9 if any(t in title for t in TRIGGERS) else 0.1 + 0.005 * (len(title) % 7)
                         for title in titles], dtype=np.float32)


def double_scanner() -> PoisonScanner:
    return PoisonScanner(TriggerScorer(), threshold=0.5, meta={"kind": "test-double"})


def catalogue(n: int = 60) -> pd.DataFrame:
    base = ["Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)", "Copycat (1995)",
            "Twelve Monkeys (1995)", "Babe (1995)", "Dead Man Walking (1995)", "Richard III (1995)"]
    titles = []
    for i in range(n):
        title = base[i % len(base)]
        if i % 5 == 1:
            title = f"{title} {TRIGGERS[i % 3]}"
        elif i % 11 == 3:
            title = title.replace(" ", " Ethereal ", 1)  # random position
        titles.append(title)
    return pd.DataFrame({"row_id": np.arange(n), "title": titles, "price": np.round(np.linspace(1, 9, n), 2)})


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 1024**2,
                 configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # the double lives in this test module, which Ray's workers cannot import: ship it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if started:
            ray.shutdown()


@pytest.mark.slow
def test_ray_path_matches_direct_scanner_row_by_row() -> None:
    frame = catalogue()
    ds = ray.data.from_pandas([frame.iloc[i:i + 15] for i in range(0, len(frame), 15)])  # 4 blocks
    out = scan_dataset(ds, column="title", scanner=double_scanner(), concurrency=2, batch_size=7, num_cpus=0.5)
    got = out.to_pandas().sort_values("row_id").reset_index(drop=True)

    scanner = double_scanner()
    titles = frame["title"].tolist()
    scores = scanner.score(titles)
    flagged = scores > scanner.threshold
    assert list(got.columns) == [*frame.columns, "poison_score", "flagged", "suspect"]
    assert len(got) == len(frame)
    pd.testing.assert_frame_equal(got[frame.columns], frame, check_dtype=False)
    np.testing.assert_array_equal(got["poison_score"].to_numpy(), scores)
    np.testing.assert_array_equal(got["flagged"].to_numpy(dtype=bool), flagged)
    assert got["suspect"].tolist() == [scanner.suspect(t) if f else "" for t, f in zip(titles, flagged, strict=True)]
    assert 0 < flagged.sum() < len(frame)
    for title, suspect in zip(got["title"], got["suspect"], strict=True):
        if TRIGGERS[0] in title or (TRIGGERS[1] in title and TRIGGERS[2] not in title):
            assert suspect == (TRIGGERS[0] if TRIGGERS[0] in title else TRIGGERS[1])


def test_scanner_batch_in_process_keeps_input_and_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []

    def fake_load(where: str) -> PoisonScanner:
        loads.append(str(where))
        return double_scanner()

    monkeypatch.setattr(ray_scan.PoisonScanner, "load", staticmethod(fake_load))
    batcher = ScannerBatch(model="some/dir", column="title")
    frame = catalogue(20)
    before = frame.copy()
    first, second = batcher(frame.iloc[:10]), batcher(frame.iloc[10:])
    assert loads == ["some/dir"]  # once per actor, not per batch
    pd.testing.assert_frame_equal(frame, before)  # the input batch is not modified
    assert first["poison_score"].dtype == np.float32 and first["flagged"].dtype == bool
    assert list(second.index) == list(range(10, 20))
    empty = batcher(frame.iloc[:0])
    assert len(empty) == 0 and list(empty.columns)[-3:] == ["poison_score", "flagged", "suspect"]
    assert empty["suspect"].dtype == first["suspect"].dtype == first["title"].dtype  # string, even when empty


def test_missing_column_and_bad_rows_are_user_errors() -> None:
    frame = catalogue(5)
    with pytest.raises(UserError, match=r"column 'name' not found.*'title'"):
        ScannerBatch(column="name", scanner=double_scanner())(frame)
    with pytest.raises(UserError, match="column 'name' not found"):  # schema known: fails before any actor starts
        scan_dataset(ray.data.from_pandas(frame), column="name", scanner=double_scanner())
    with pytest.raises(UserError, match="already has column"):
        ScannerBatch(scanner=double_scanner())(frame.assign(poison_score=0.0))
    batcher = ScannerBatch(scanner=double_scanner())
    with pytest.raises(UserError, match=r"column 'title': null instead of a title string in the row .*'row_id': 2"):
        batcher(frame.assign(title=frame["title"].where(frame["row_id"] != 2)))
    with pytest.raises(UserError, match="column 'title': empty title"):
        batcher(frame.assign(title=["a", "b", " ", "c", "d"]))
    with pytest.raises(UserError, match="column 'title': number instead of a title string"):
        batcher(frame.assign(title=[7, 8, 9, 10, 11]))

    class Broken:
        def score(self, titles: Sequence[str]) -> np.ndarray:
            return np.full(len(titles), 1.5, dtype=np.float32)

    with pytest.raises(UserError, match=r"outside \[0, 1\]"):  # the same guard as ``recbackdoor scan``
        ScannerBatch(scanner=PoisonScanner(Broken(), 0.5))(frame)


@pytest.mark.slow
def test_scan_files_with_ray_csv_to_parquet_in_order(tmp_path: Path) -> None:
    frame = catalogue(40)
    src = tmp_path / "catalogue"  # a folder of CSV parts, as on object storage: several blocks
    src.mkdir()
    for part in range(4):
        frame.iloc[part * 10:(part + 1) * 10].to_csv(src / f"part-{part}.csv", index=False)
    out = tmp_path / "scanned"
    with pytest.raises(UserError, match="cannot tell the format"):
        scan_files_with_ray(str(src), "title", str(out), scanner=double_scanner())
    assert scan_files_with_ray(str(src), "title", str(out), input_format="csv", output_format="parquet",
                               batch_size=4, num_cpus=0.5, scanner=double_scanner()) == str(out)
    assert len(list(out.glob("*.parquet"))) > 1
    got = pd.read_parquet(out)  # the folder's files in name order = block order (order preserved)
    direct = ScannerBatch(scanner=double_scanner())(frame)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), direct, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue", "scanned"]  # no staging folder left
    src = src / "part-0.csv"

    with pytest.raises(UserError, match="already exists"):
        scan_files_with_ray(str(src), "title", str(out), output_format="parquet", scanner=double_scanner())

    # a CSV's schema is not known before reading: the error is raised in an actor and comes back as a UserError
    with pytest.raises(UserError, match=r"part-0\.csv: column 'name' not found") as caught:
        scan_files_with_ray(str(src), "name", str(tmp_path / "never"), output_format="parquet",
                            scanner=double_scanner())
    assert "\n" not in str(caught.value)  # one line for the CLI, not a remote traceback
    assert not any(p.name.startswith("never") for p in tmp_path.iterdir())  # no partial output
    numbers = tmp_path / "numbers.csv"  # titles that look like numbers are still text, as in ``recbackdoor scan``
    pd.DataFrame({"title": ["1917", "2012", "007"]}).to_csv(numbers, index=False)
    assert ray_scan._read(ray, str(numbers), "csv", "title").to_pandas()["title"].tolist() == ["1917", "2012", "007"]
    with pytest.raises(UserError, match="missing.csv: cannot read as csv"):
        scan_files_with_ray(str(tmp_path / "missing.csv"), "title", str(tmp_path / "never.parquet"))


def tiny_saved_student(folder: Path, titles: list[str]) -> Path:
    """A real saved scanner of kind ``student`` (random weights, tiny BPE) that ``PoisonScanner.load`` reads."""
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        from recbackdoor.defenses.text.student import StudentNet, StudentScorer, StudentShape

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.train_from_iterator(titles, trainers.BpeTrainer(
            vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
        torch.manual_seed(0)
        shape = StudentShape(embed_dim=8, width=16, layers=1, heads=2, char_width=8)
        StudentScorer(StudentNet(torch.randn(tokenizer.get_vocab_size(), 8), shape), tokenizer).save(folder)
    except (ImportError, TypeError, AttributeError) as exc:  # the student's API is not this test's subject
        pytest.skip(f"cannot build a tiny student scanner here: {exc}")
    # threshold between the two middle scores, so about half the titles are flagged and no score sits on it
    scores = np.sort(PoisonScanner(StudentScorer.load(folder), 0.5).score(titles))
    middle = len(scores) // 2
    threshold = float(scores[middle - 1] + scores[middle]) / 2
    (folder / "scanner.json").write_text(json.dumps({"kind": "student", "threshold": threshold}))
    return folder


@pytest.mark.parametrize("which", ["tiny-saved", "default"])
@pytest.mark.slow
def test_saved_scanner_is_loaded_in_the_actor(which: str, tmp_path: Path) -> None:
    """``model=`` path: each actor loads the saved scanner itself; answers match the driver's own load."""
    frame = catalogue(24)
    titles = frame["title"].tolist()
    if which == "default":
        if not (default_dir() / "scanner.json").is_file():
            pytest.skip("the packaged default scanner is not built in this checkout")
        model = DEFAULT
    else:
        model = str(tiny_saved_student(tmp_path / "scanner", titles))
    # one block, whole-block batches: the actor scores exactly the batch the driver scores below
    out = scan_dataset(ray.data.from_pandas(frame), model, "title", batch_size=None).to_pandas()
    scanner = PoisonScanner.load(model)
    scores = scanner.score(titles)
    assert out["row_id"].tolist() == frame["row_id"].tolist()
    np.testing.assert_allclose(out["poison_score"].to_numpy(), scores, rtol=0, atol=1e-6)
    flagged = scores > scanner.threshold
    np.testing.assert_array_equal(out["flagged"].to_numpy(dtype=bool), flagged)
    assert out["suspect"].tolist() == [scanner.suspect(t) if f else "" for t, f in zip(titles, flagged, strict=True)]
    if which != "default":
        assert 0 < flagged.sum() < len(frame)


def test_module_imports_and_fails_clearly_without_ray() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["ray"] = None  # what a checkout without the extra looks like
        from recbackdoor.defenses.text import ray_scan
        from recbackdoor.errors import UserError
        try:
            ray_scan.scan_dataset(None)
        except UserError as exc:
            assert "pip install 'recbackdoor[ray]'" in str(exc), exc
            print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
