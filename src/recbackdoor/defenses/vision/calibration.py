"""Thresholds of the trigger-inversion tests, set on *clean* extractors only.

For every architecture the calibration holds the statistics that the audit's
inversion produced on clean reference extractors (several seeds), and the
thresholds derived from them:

* ``class_size`` / ``embedding_size`` — a mask fraction *below* the threshold is
  suspicious.  Fit: log-normal — mean of log sizes per architecture, standard
  deviation pooled over architectures (floored at ``MIN_LOG_SD``, few references).
* ``class_anomaly`` — Neural Cleanse's anomaly index *above* the threshold is
  suspicious: max(2, upper bound) over clean references (2 is Neural Cleanse's own cut).
* ``class_z`` (calibration v4, when the references kept every class's mask) — each
  class's mask against clean extractors' masks *for the same class*; it replaces
  ``class_size`` (the smallest mask over classes), which a backdoor whose target is
  a naturally easy class hides behind (see ``_per_class``).

Each bound is a one-sided *prediction* bound for a fresh clean extractor,
mean ∓ t·sd·√(1 + 1/n), t the Student quantile of ``1 − fpr`` at the pooled
degrees of freedom: the references only estimate the mean and spread, and the
plain normal quantile (used up to run 3) put the bound too close to the clean
extractors when they were few — three of 20 fresh clean extractors fell below it
at a nominal 1 %.  ``fpr`` is the false-positive rate each test is set for (per
test, per extractor, under the fitted distribution).  An architecture absent from the
file gets the strictest of the known thresholds (least likely to flag).  The
file ships with the package (``inversion_calibration.json``); the command that
wrote it is in its ``recipe`` field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

from recbackdoor.cache import stable_hash
from recbackdoor.errors import UserError

DEFAULT_PATH = Path(__file__).with_name("inversion_calibration.json")
MIN_LOG_SD = 0.25
MIN_CLASS_LOG_SD = 0.05
SIZE_STATS = ("class_size", "embedding_size")
HIGH_STATS = ("class_anomaly",)


@dataclass(frozen=True)
class ArchThresholds:
    class_size: float
    embedding_size: float
    class_anomaly: float
    references: dict[str, list[float]] = field(default_factory=dict)
    # the per-class test (calibration v4): clean references' mean log mask size per class, their pooled standard
    # deviation, and the z threshold; absent (older files, unknown architectures): the smallest-mask test instead
    class_log_means: dict[str, float] = field(default_factory=dict)
    class_log_sd: float = 0.0
    class_z: float = 0.0
    class_references: list[dict[str, float]] = field(default_factory=list)

    @property
    def per_class(self) -> bool:
        return bool(self.class_log_means) and self.class_log_sd > 0

    def class_z_scores(self, class_sizes: dict[str, float] | None) -> dict[str, float]:
        """How far each class's mask lies below what clean extractors need *for that class*, in pooled standard
        deviations of log size: a backdoor target that is also a naturally easy class (small clean masks) no
        longer hides behind the minimum over classes. Classes the references never searched are left out."""
        if not self.per_class or not class_sizes:
            return {}
        return {c: (float(np.log(max(size, 1e-6))) - self.class_log_means[c]) / self.class_log_sd
                for c, size in class_sizes.items() if c in self.class_log_means}

    def lowest_class_z(self, class_sizes: dict[str, float] | None) -> tuple[str, float] | None:
        """The class furthest below its clean masks and its z (None without per-class references or sizes)."""
        z = self.class_z_scores(class_sizes)
        return min(z.items(), key=lambda item: item[1]) if z else None

    def flags(self, statistics: dict, class_sizes: dict[str, float] | None = None) -> dict[str, bool]:
        """Which inversion statistics cross their threshold: the audit's whole decision rule for the inversions,
        kept here so that a study can re-judge cached statistics under a new calibration without re-running them.
        A statistic that is absent (no head: no class inversion) never flags. With per-class references the
        smallest-mask test gives way to the per-class one (the same comparison made class by class)."""

        def below(name: str, thr: float) -> bool:
            return statistics.get(name) is not None and statistics[name] <= thr

        lowest = self.lowest_class_z(class_sizes)
        return {"class_size": not self.per_class and below("class_size", self.class_size),
                "class_z": lowest is not None and lowest[1] <= self.class_z,
                "class_anomaly": statistics.get("class_anomaly") is not None
                and statistics["class_anomaly"] >= self.class_anomaly,
                "embedding_size": below("embedding_size", self.embedding_size)}

    def deciding_inversions(self, statistics: dict, class_sizes: dict[str, float] | None = None) -> list[str]:
        """The inversion tests that flag, by name as the report gives them: the class inversion flags on any of
        its statistics, the embedding inversion on its mask size."""
        flags = self.flags(statistics, class_sizes)
        return ((["class inversion"] if flags["class_size"] or flags["class_z"] or flags["class_anomaly"] else [])
                + (["embedding inversion"] if flags["embedding_size"] else []))


@dataclass(frozen=True)
class Calibration:
    fpr: float
    thresholds: dict[str, ArchThresholds]
    settings: dict
    recipe: str = ""

    def for_arch(self, arch: str | None) -> ArchThresholds:
        if arch in self.thresholds:
            return self.thresholds[arch]
        known = list(self.thresholds.values())
        if not known:
            raise UserError("trigger-inversion calibration holds no architecture")
        return ArchThresholds(min(t.class_size for t in known), min(t.embedding_size for t in known),
                              max(t.class_anomaly for t in known))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> Calibration:
        """Read a calibration file (default: the shipped one); a bad file is one UserError line."""
        path = Path(path) if path is not None else DEFAULT_PATH
        if str(path) == "none":  # calibration runs: no thresholds yet, every inversion test passes
            return cls(0.0, {"*": ArchThresholds(0.0, 0.0, float("inf"))}, {}, "uncalibrated")
        try:
            raw = json.loads(path.read_text())
            return cls(float(raw["fpr"]), {a: ArchThresholds(**t) for a, t in raw["thresholds"].items()},
                       dict(raw.get("settings", {})), str(raw.get("recipe", "")))
        except FileNotFoundError:
            raise UserError(f"{path}: calibration file not found") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a trigger-inversion calibration file ({exc})") from None


PER_CLASS_FIELDS = ("class_log_means", "class_log_sd", "class_z", "class_references")


def calibration_hash(calibration: Calibration) -> str:
    """A stable hash of the calibration; the per-class fields enter it only when set, so a calibration without them
    hashes as it did before they existed (cached audits keyed by it stay valid)."""
    raw = asdict(calibration)
    defaults = ArchThresholds(0.0, 0.0, 0.0)
    for thresholds in raw["thresholds"].values():
        for name in PER_CLASS_FIELDS:
            if thresholds[name] == getattr(defaults, name):
                del thresholds[name]
    return stable_hash(raw)


def calibrate(references: dict[str, dict[str, list]], fpr: float, settings: dict,
              recipe: str = "") -> Calibration:
    """Thresholds from clean references: ``{arch: {statistic: [value per clean extractor]}}``, and optionally
    ``"class_sizes": [{class id: mask size} per clean extractor]`` for the per-class test."""
    resid: dict[str, list[float]] = {s: [] for s in SIZE_STATS + HIGH_STATS}
    for refs in references.values():
        for s in SIZE_STATS:
            v = np.log(np.maximum(refs[s], 1e-6))
            resid[s] += list(v - v.mean())
        for s in HIGH_STATS:
            v = np.asarray(refs[s], float)
            resid[s] += list(v - v.mean())

    dof = max(len(resid["class_size"]) - len(references), 1)
    t = float(student_t.ppf(1.0 - fpr, dof))

    def sd(s: str, floor: float) -> float:
        return max(float(np.sqrt((np.asarray(resid[s]) ** 2).sum() / dof)), floor)

    out = {}
    for arch, refs in references.items():
        spread = t * np.sqrt(1.0 + 1.0 / len(refs["class_size"]))
        sizes = {s: float(np.exp(np.log(np.maximum(refs[s], 1e-6)).mean() - spread * sd(s, MIN_LOG_SD)))
                 for s in SIZE_STATS}
        anomaly = max(2.0, float(np.mean(refs["class_anomaly"]) + spread * sd("class_anomaly", 0.5)))
        out[arch] = ArchThresholds(sizes["class_size"], sizes["embedding_size"], anomaly,
                                   {k: [float(x) for x in v] for k, v in refs.items() if k in SIZE_STATS + HIGH_STATS},
                                   **_per_class(refs.get("class_sizes", []), fpr))
    return Calibration(fpr, out, settings, recipe)


def _per_class(class_sizes: list[dict[str, float]], fpr: float) -> dict:
    """The per-class test from clean references' per-class mask sizes (one dict per reference extractor).

    Mean log size per class, standard deviation pooled over classes and references (floored at
    ``MIN_CLASS_LOG_SD`` only against a degenerate fit: with tens of degrees of freedom the estimate is sound), and
    a one-sided prediction bound on z at ``fpr / K`` per class (Bonferroni over the K classes, since the
    audit takes the lowest): z ≤ −t(1 − fpr / K; dof)·√(1 + 1/n). Needs ≥ 3 references."""
    if len(class_sizes) < 3:
        return {}
    classes = sorted(set.intersection(*(set(c) for c in class_sizes)), key=lambda c: (len(c), c))
    logs = np.log(np.maximum([[ref[c] for c in classes] for ref in class_sizes], 1e-6))
    means = logs.mean(axis=0)
    dof = logs.size - len(classes)
    sd = max(float(np.sqrt(((logs - means) ** 2).sum() / dof)), MIN_CLASS_LOG_SD)
    bound = float(student_t.ppf(1.0 - fpr / len(classes), dof)) * np.sqrt(1.0 + 1.0 / len(class_sizes))
    return {"class_log_means": {c: float(m) for c, m in zip(classes, means, strict=True)}, "class_log_sd": sd,
            "class_z": -bound, "class_references": [{c: float(ref[c]) for c in classes} for ref in class_sizes]}
