"""The default scanner, version 2: the student and the Unicode channel, each judged against its own benign tail.

A title's score in each channel becomes a p-value against that channel's scores on held-out benign titles (how
many benign titles score at least as high); the poison score is 1 − the smaller p-value. So a title is flagged
when either channel finds it stranger than nearly all benign titles — the student for words and phrases, the
channel for characters — and one threshold, set on a second benign set, holds the false-positive budget for the
pair. Version 1 (the student alone) stays loadable as ``default-v1``: the defense tables made with it keep
their cache keys and can be re-run as they were.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from recbackdoor.defenses.text.student import StudentScorer
from recbackdoor.defenses.text.unicode_channel import UnicodeChannelNet, channel_features
from recbackdoor.errors import UserError

CHANNEL_WEIGHTS = "unicode_channel.safetensors"
STUDENT_RECORD = "student.json"  # the student's own scanner.json, kept beside the fused one


class TailCalibration:
    """A continuous, strictly decreasing p-value from benign scores: the share of them at or above x, interpolated
    linearly between distinct benign scores, rising to 1 at a score of 0 and falling to 0 at a score of 1 beyond
    them (so titles outside every benign one still keep their order, which AUROC and the review queue need)."""

    def __init__(self, benign_scores: Sequence[float]) -> None:
        scores = np.sort(np.asarray(benign_scores, dtype=np.float64))
        if scores.size == 0 or not np.isfinite(scores).all():
            raise ValueError("a tail calibration needs at least one benign score, all finite")
        self.scores = scores
        values, first = np.unique(scores, return_index=True)
        n = len(scores)
        p = (n - first) / (n + 1)  # share of benign scores >= each distinct value
        if values[0] > 0:  # below every benign score: up to 1 at 0, so low scores keep their order too
            values, p = np.concatenate([[0.0], values]), np.concatenate([[1.0], p])
        self._values, self._p = values, p

    def p_value(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        top, p_top = self._values[-1], self._p[-1]
        inside = np.interp(x, self._values, self._p, left=1.0)
        above = p_top * np.clip(1.0 - x, 0.0, None) / max(1.0 - top, 1e-12)
        return np.where(x > top, np.minimum(above, p_top), inside)


@torch.no_grad()
def channel_scores(student: StudentScorer, channel: UnicodeChannelNet, titles: Sequence[str],
                   batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(student probability, channel probability) per title; one featurisation feeds both."""
    out_student = np.empty(len(titles), dtype=np.float32)
    out_channel = np.empty(len(titles), dtype=np.float32)
    order = sorted(range(len(titles)), key=lambda i: len(titles[i]))  # batches of similar length pad less
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = [titles[i] for i in chunk]
        features = student.featurize(batch)
        out_student[chunk] = torch.sigmoid(student.net(**features)).numpy()
        out_channel[chunk] = channel.probability(channel_features(batch, features["evidence"].numpy()))
    return out_student, out_channel


class FusedScorer:
    """What ``PoisonScanner`` calls for a ``fused`` scanner."""

    def __init__(self, student: StudentScorer, channel: UnicodeChannelNet, student_tail: TailCalibration,
                 channel_tail: TailCalibration) -> None:
        self.student = student
        self.channel = channel.eval()
        self.student_tail = student_tail
        self.channel_tail = channel_tail

    def score(self, titles: Sequence[str], batch_size: int = 512) -> np.ndarray:
        student, channel = channel_scores(self.student, self.channel, titles, batch_size)
        return self.fuse(student, channel)

    def fuse(self, student: np.ndarray, channel: np.ndarray) -> np.ndarray:
        p = np.minimum(self.student_tail.p_value(student), self.channel_tail.p_value(channel))
        return (1.0 - p).astype(np.float32)

    def save(self, folder: Path, record: dict) -> None:
        """Student files, channel weights with both benign tails, and ``scanner.json`` (``record``)."""
        from safetensors.torch import save_file

        self.student.save(folder)
        state = {k: v.contiguous() for k, v in self.channel.state_dict().items()}
        state["tail.student"] = torch.from_numpy(self.student_tail.scores)
        state["tail.channel"] = torch.from_numpy(self.channel_tail.scores)
        save_file(state, str(folder / CHANNEL_WEIGHTS), metadata={"hidden": str(self.channel.hidden)})
        (folder / "scanner.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> FusedScorer:
        from safetensors import SafetensorError, safe_open

        student = StudentScorer.load(folder)
        try:
            with safe_open(str(folder / CHANNEL_WEIGHTS), framework="pt") as f:
                hidden = int(f.metadata()["hidden"])
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        except (OSError, SafetensorError, KeyError, ValueError, TypeError) as exc:
            raise UserError(f"{folder / CHANNEL_WEIGHTS}: cannot load the Unicode channel "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        student_tail = TailCalibration(state.pop("tail.student").numpy())
        channel_tail = TailCalibration(state.pop("tail.channel").numpy())
        channel = UnicodeChannelNet(hidden)
        channel.load_state_dict(state)
        return cls(student, channel, student_tail, channel_tail)
