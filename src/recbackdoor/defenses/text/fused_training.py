"""Building a fused scanner (``fused_scanner``) around a trained student: train the Unicode channel, measure each
channel's benign tail on one held-out Netflix set, set the threshold on another."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from recbackdoor.defenses.text.calibration import calibrate_threshold
from recbackdoor.defenses.text.fused_scanner import STUDENT_RECORD, FusedScorer, TailCalibration, channel_scores
from recbackdoor.defenses.text.pscanner import netflix_fingerprint, validation_sets
from recbackdoor.defenses.text.scanner_data import netflix_split
from recbackdoor.defenses.text.student import StudentScorer
from recbackdoor.defenses.text.unicode_channel import ChannelConfig, seeded_benign, train_channel
from recbackdoor.errors import UserError
from recbackdoor.separation import auroc


def build_fused(student_folder: Path, config: ChannelConfig, out: Path, target_fpr: float = 0.01,
                split_seed: int = 0, command: str = "") -> dict:
    """Write a fused scanner into ``out`` (student files copied from ``student_folder``); returns its record.

    The tails come from Netflix's calibration titles and the threshold from its validation titles — two sets
    no channel trained on, so the false-positive rate the threshold promises is measured, not fitted."""
    from recbackdoor.triggers.text_sampler import InitialTriggerSampler, lm_token_pool
    from recbackdoor.victims.text.backbones import SMOLLM2, load_backbone

    started = time.time()
    student = StudentScorer.load(student_folder)
    student_record = student_record_path(student_folder)
    student_meta = json.loads(student_record.read_text(encoding="utf-8"))
    sampler = InitialTriggerSampler(lm_token_pool(load_backbone(SMOLLM2).tokenizer))
    split = netflix_split(split_seed)
    channel, training = train_channel(config, split.train, sampler)
    tail_titles = seeded_benign(split.calibration, "fused:tail", config.augmentation)
    student_tail, channel_tail = channel_scores(student, channel, tail_titles)
    fused = FusedScorer(student, channel, TailCalibration(student_tail), TailCalibration(channel_tail))
    threshold_titles = seeded_benign(split.validation, "fused:threshold", config.augmentation)
    threshold = calibrate_threshold(fused.score(threshold_titles), target_fpr)
    val = validation_sets(split.validation, sampler, [], 1000, config.seed + 99, config.augmentation)
    scores = {k: fused.score(v) for k, v in val.items()}
    record = {
        "kind": "fused", "threshold": threshold, "target_fpr": target_fpr,
        "tail_titles": len(tail_titles), "threshold_titles": len(threshold_titles),
        "channel": config.model_dump(), "channel_training": training,
        "student": {k: student_meta.get(k) for k in ("threshold", "command", "train_seconds", "config")},
        "command": command, "netflix_sha256": netflix_fingerprint(),
        "val_auroc_initial": auroc(scores["benign"], scores["initial"]),
        "build_seconds": time.time() - started,
    }
    out.mkdir(parents=True, exist_ok=True)
    if student_record != out / STUDENT_RECORD:
        shutil.copyfile(student_record, out / STUDENT_RECORD)  # byte for byte: 'default-v1' keys stay the same
    fused.save(out, record)
    return record


def student_record_path(folder: Path) -> Path:
    """The student's own scanner.json: kept as student.json inside a fused scanner."""
    if (folder / STUDENT_RECORD).is_file():
        return folder / STUDENT_RECORD
    record = folder / "scanner.json"
    if json.loads(record.read_text(encoding="utf-8")).get("kind") != "student":
        raise UserError(f"{record}: not a student scanner, and no {STUDENT_RECORD} beside it")
    return record
