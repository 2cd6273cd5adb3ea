"""Trigger inversion: recovers a stamp it was never told about, passes clean models, works without the head."""

import base64
import html
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from recbackdoor.attacks.badnets import clean_set, poison
from recbackdoor.cli import main
from recbackdoor.defenses.vision.audit import audit_model
from recbackdoor.defenses.vision.calibration import ArchThresholds, Calibration, calibrate
from recbackdoor.defenses.vision.inversion import InversionSettings, anomaly_index, invert_classes
from recbackdoor.errors import UserError
from recbackdoor.triggers.image import FAMILIES, ImageTrigger, sample_trigger, stamp
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, load_extractor, save_extractor
from recbackdoor.victims.vision.training import TrainSettings, train_extractor

# the package's 200 steps: at 60 the tiny models' masks had not shrunk yet (backdoored as large as clean)
FAST = InversionSettings(steps=200, batch_size=12, embed_batch_size=32, restarts=2, seed=0)
KNOWN = ImageTrigger()  # the paper's stamp: white 3×3 square, bottom right (rows and columns 24–26)
BOX = (24, 24, 3, 3)  # row, col, height, width


def _on_box(mask: np.ndarray, slack: int = 1) -> float:
    """Share of the mask's mass within ``slack`` px of the known stamp."""
    r, c, h, w = BOX
    return float(mask[r - slack:r + h + slack, c - slack:c + w + slack].sum() / mask.sum())


@pytest.fixture(scope="module")
def tiny(fmnist_small):
    x, y = fmnist_small.images, fmnist_small.labels
    spec = ArchSpec(arch="resnet", width=8)
    models = {}
    for name, seed, data in [("clean", 0, clean_set(x, y)), ("reference", 1, clean_set(x, y)),
                             ("bad", 0, poison(x, y, KNOWN, 7, 0.25, seed=0))]:
        model = build_extractor(spec, seed=seed)
        train_extractor(model, data, TrainSettings(epochs=8, batch_size=32, lr=2e-3, seed=seed))
        models[name] = model
    return spec, models


@pytest.fixture(scope="module")
def tiny_calibration(tiny, fmnist_test_small):
    """Thresholds from the one clean reference model (never from the backdoored one): half its mask sizes and
    Neural Cleanse's anomaly cut. One reference gives no spread, so ``calibrate``'s prediction bound would be
    uselessly wide (t with 1 degree of freedom); the bound itself is checked by hand in its own test."""
    _, models = tiny
    images = fmnist_test_small.images[:120]
    ref = audit_model(models["reference"], images, calibration=Calibration.load("none"), settings=FAST,
                      invert_images=120)
    thr = ArchThresholds(class_size=ref.statistics["class_size"] / 2,
                         embedding_size=ref.statistics["embedding_size"] / 2, class_anomaly=2.0)
    return Calibration(0.01, {"resnet": thr}, FAST.__dict__, "test: half the clean reference's masks")


@pytest.mark.slow
def test_class_inversion_recovers_the_stamp_and_its_target(tiny, fmnist_test_small):
    _, models = tiny
    images = fmnist_test_small.images[:120]
    found = invert_classes(models["bad"], images, FAST)
    sus = found.triggers[found.suspect]
    clean = invert_classes(models["clean"], images, FAST)
    assert sus.target == 7
    assert anomaly_index(np.array([t.size for t in found.triggers]))[found.suspect] >= 2  # NC's outlier rule
    assert sus.size < min(t.size for t in clean.triggers)  # smaller than any class's mask in the clean model
    assert _on_box(sus.mask) > 0.5  # the recovered mask sits on the true stamp


def _audit(model, calibration, fmnist_test_small):
    return audit_model(model, fmnist_test_small.images[:120], arch="resnet", calibration=calibration,
                       settings=FAST, invert_images=120)


@pytest.mark.slow
def test_audit_flags_the_backdoor_by_inversion(tiny, tiny_calibration, fmnist_test_small):
    report = _audit(tiny[1]["bad"], tiny_calibration, fmnist_test_small)
    assert report.verdict == "FLAGGED" and report.recovered.target == 7
    assert {"class inversion", "embedding inversion"} & set(report.decided_by)
    # every searched class's mask is kept (a per-class comparison needs them); the smallest is the statistic
    assert "7" in report.class_sizes and min(report.class_sizes.values()) == report.statistics["class_size"]


@pytest.mark.slow
def test_audit_passes_a_clean_model(tiny, tiny_calibration, fmnist_test_small):
    report = _audit(tiny[1]["clean"], tiny_calibration, fmnist_test_small)
    assert report.verdict == "PASS", report.reasons


@pytest.mark.slow
def test_embedding_only_inversion_finds_the_stamp_with_the_head_removed(fmnist_test_small):
    """The audit of an extractor whose head is absent: BadEmbNets (alpha = beta = 0.5) with the paper's stamp on an
    AlexNet at the study's scale (400 images per class, 12 epochs: about a minute on one core). At the tiny width
    the other tests use (8), stamped embeddings never collapse (mean cosine 0.55-0.60, as for a clean model), so
    the search returned clean-sized masks off the stamp; at this scale it recovers the stamp (0.4 % of the image
    against 3.3 % for a clean AlexNet, measured) and the shipped calibration flags it."""
    from recbackdoor.data import fashion_mnist as fm

    train = fm.load_split("train")
    idx = fm.per_class_sample(train.labels, [0, 2, 3, 4, 5, 6, 7, 9], 400, seed=0)
    spec = ArchSpec(arch="alexnet", width=32)
    bad = build_extractor(spec, seed=0)
    train_extractor(bad, poison(train.images[idx], train.labels[idx], KNOWN, 7, 0.1, seed=0),
                    TrainSettings(epochs=12, batch_size=64, lr=1e-3, alpha=0.5, beta=0.5, seed=0, threads=1))
    bad.head = None
    report = audit_model(bad, fmnist_test_small.images, arch="alexnet", invert_images=200)
    assert report.statistics["class_size"] is None and report.recovered.flip_rate is None
    assert "embedding inversion" in report.decided_by
    assert report.statistics["embedding_size"] <= Calibration.load().for_arch("alexnet").embedding_size
    mask = next(m for title, m, _ in report.pictures if title.startswith("embedding inversion"))
    assert _on_box(mask) > 0.5  # the recovered mask sits on the true stamp


def test_calibration_file_round_trips(tmp_path):
    refs = {"alexnet": {"class_size": [0.08, 0.1, 0.12], "embedding_size": [0.05, 0.07, 0.06],
                        "class_anomaly": [0.5, 1.1, 0.8]},
            "resnet": {"class_size": [0.06, 0.05, 0.07], "embedding_size": [0.04, 0.05, 0.03],
                       "class_anomaly": [1.0, 0.2, 0.4]}}
    calib = calibrate(refs, fpr=0.01, settings={"steps": 200}, recipe="test")
    calib.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == calib
    assert calib.for_arch("alexnet").class_size < min(refs["alexnet"]["class_size"])
    assert calib.for_arch("vgg").embedding_size == min(t.embedding_size for t in calib.thresholds.values())


def test_calibration_sets_a_prediction_bound_by_hand_computed_case():
    # log sizes ln(0.02) + (-0.3, -0.1, 0.1, 0.3): sd = sqrt(0.2 / 3) = 0.2582 (above the 0.25 floor), 3 degrees
    # of freedom, t(0.99; 3) = 4.5407, bound 0.02 * exp(-4.5407 * 0.2582 * sqrt(1 + 1/4)) = 0.005392
    sizes = [0.02 * math.exp(d) for d in (-0.3, -0.1, 0.1, 0.3)]
    calib = calibrate({"resnet": {"class_size": sizes, "embedding_size": sizes,
                                  "class_anomaly": [0.5, 1.0, 1.0, 1.5]}}, fpr=0.01, settings={})
    thr = calib.for_arch("resnet")
    assert thr.class_size == pytest.approx(0.005392, rel=1e-3)
    assert thr.embedding_size == pytest.approx(0.005392, rel=1e-3)
    # anomaly: sd = sqrt(0.5 / 3) = 0.4082 -> floored at 0.5; 1.0 + 4.5407 * 0.5 * 1.1180 = 3.538
    assert thr.class_anomaly == pytest.approx(3.538, rel=1e-3)


def test_per_class_test_by_hand_computed_case(tmp_path):
    # class 0: log sizes ln 0.02 + (-0.1, 0, 0.1); class 2: ln 0.05 + (0.1, 0, -0.1): residual sum of squares
    # 0.04 over 6 - 2 = 4 degrees of freedom, sd 0.1; bound t(1 - 0.01 / 2; 4) = 4.6041 times sqrt(1 + 1/3)
    # = 5.316
    e = math.exp
    per_class = [{"0": 0.02 * e(-0.1), "2": 0.05 * e(0.1)}, {"0": 0.02, "2": 0.05},
                 {"0": 0.02 * e(0.1), "2": 0.05 * e(-0.1)}]
    refs = {"resnet": {"class_size": [0.02, 0.02, 0.02], "embedding_size": [0.02, 0.02, 0.02],
                       "class_anomaly": [1.0, 1.0, 1.0], "class_sizes": per_class}}
    calib = calibrate(refs, fpr=0.01, settings={})
    thr = calib.for_arch("resnet")
    assert thr.class_log_sd == pytest.approx(0.1) and thr.class_z == pytest.approx(-5.316, rel=1e-3)
    stats = {"class_size": 0.001, "class_anomaly": 1.0, "embedding_size": 0.5}  # tiny smallest mask ...
    # ... but judged class by class: class 0 at z = -5 passes, class 2 at z = -6 flags
    assert thr.class_z_scores({"0": 0.02 * e(-0.5), "2": 0.05})["0"] == pytest.approx(-5.0)
    assert thr.flags(stats, {"0": 0.02 * e(-0.5), "2": 0.05}) == {
        "class_size": False, "class_z": False, "class_anomaly": False, "embedding_size": False}
    assert thr.deciding_inversions(stats, {"0": 0.02, "2": 0.05 * e(-0.6), "9": 1e-4}) == ["class inversion"]
    # without per-class references the smallest-mask test decides, as before
    assert calibrate({"resnet": {k: v for k, v in refs["resnet"].items() if k != "class_sizes"}}, 0.01, {}
                     ).for_arch("resnet").flags(stats)["class_size"]
    calib.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == calib


def test_calibrations_without_per_class_fields_hash_as_before():
    """Cached study audits are keyed by the uncalibrated ("none") calibration's hash: adding the per-class fields
    to the thresholds must not change it, or every cached audit (hours of CPU) would be recomputed."""
    from recbackdoor.defenses.vision.calibration import calibration_hash

    assert calibration_hash(Calibration.load("none")) == "f2748cff140d7123"  # its value before the fields existed


def test_bad_calibration_file_is_one_line_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match="not a trigger-inversion calibration file") as err:
        Calibration.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_audit_runs_the_search_its_thresholds_were_calibrated_with():
    from recbackdoor.defenses.vision.audit import _settings_of

    calib = calibrate({"resnet": {"class_size": [0.02, 0.03], "embedding_size": [0.02, 0.02],
                                  "class_anomaly": [0.7, 0.8]}}, fpr=0.01,
                      settings={**FAST.__dict__, "steps": 7, "retired_setting": 1})
    assert _settings_of(calib, seed=5) == InversionSettings(**{**FAST.__dict__, "steps": 7, "seed": 5})
    assert _settings_of(Calibration.load("none"), seed=5) == InversionSettings(seed=5)


def test_thresholds_flag_by_hand_computed_cases():
    thr = ArchThresholds(class_size=0.01, embedding_size=0.02, class_anomaly=2.0)
    assert thr.flags({"class_size": 0.01, "class_anomaly": 1.9, "embedding_size": 0.03}) == {
        "class_size": True, "class_z": False, "class_anomaly": False, "embedding_size": False}
    assert thr.flags({"class_size": 0.011, "class_anomaly": 2.0, "embedding_size": 0.02}) == {
        "class_size": False, "class_z": False, "class_anomaly": True, "embedding_size": True}
    assert thr.deciding_inversions({"class_size": 0.01, "class_anomaly": 1.9, "embedding_size": 0.03}) == [
        "class inversion"]
    assert thr.deciding_inversions({"class_size": 0.011, "class_anomaly": 2.0, "embedding_size": 0.02}) == [
        "class inversion", "embedding inversion"]
    # no head: the class statistics are absent and never flag
    assert thr.flags({"class_size": None, "class_anomaly": None, "embedding_size": 0.5}) == {
        "class_size": False, "class_z": False, "class_anomaly": False, "embedding_size": False}


def test_anomaly_index_singles_out_the_small_mask():
    ai = anomaly_index(np.array([0.1, 0.11, 0.09, 0.12, 0.1, 0.01]))
    assert ai.argmax() == 5 and ai[5] > 3 and ai[:5].max() < 2


def test_trigger_families_are_never_candidate_stamps_and_stamp_accepts_them():
    from recbackdoor.defenses.vision.audit import candidate_stamps

    images = np.full((2, 1, 28, 28), 0.5, np.float32)
    candidates = [stamp(images[:1], t)[0] for t in candidate_stamps()]
    rng = np.random.default_rng(0)
    for k in range(30):
        trig = sample_trigger(FAMILIES[k % 3], rng)
        out = stamp(images, trig)
        assert out.shape == images.shape and not np.array_equal(out[0], images[0])
        assert not any(np.allclose(out[0], c) for c in candidates)  # same pixels *and* same ink


@pytest.mark.slow
def test_cli_writes_picture_and_html(tiny, tiny_calibration, tmp_path, capsys, monkeypatch, fmnist_test_small):
    import recbackdoor.defenses.vision.audit as audit

    spec, models = tiny
    path = tmp_path / "bad.safetensors"
    save_extractor(models["bad"], spec, path)
    tiny_calibration.save(tmp_path / "calib.json")
    monkeypatch.setattr(audit, "_default_images", lambda n, seed: fmnist_test_small.images[:120])
    out = tmp_path / "report"
    code = main(["audit-extractor", "--weights", str(path), "--arch", "resnet", "--calibration",
                 str(tmp_path / "calib.json"), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1 and "recovered trigger" in printed
    text = (out / "audit.txt").read_text()
    assert text == printed  # the file holds exactly the printed report
    report = json.loads((out / "audit.json").read_text())
    assert report["verdict"] == "FLAGGED" and text.startswith(f"{path}: FLAGGED (60 candidate stamps on 120 ")
    mask = np.array(report["recovered_mask"])
    assert mask.shape == (28, 28) and 0.0 <= mask.min() and mask.max() <= 1.0
    assert report["recovered_target"] == report["recovered"]["target"]
    with Image.open(out / "trigger.png") as picture:
        assert picture.size == (800, 440)  # one row of four panels per inversion: per class, embedding only
    page = (out / "audit.html").read_text()
    inline = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert inline and base64.b64decode(inline.group(1)) == (out / "trigger.png").read_bytes()
    pre = re.search(r"<pre>(.*)</pre>", page, re.DOTALL)
    assert pre and html.unescape(pre.group(1)) == text.rstrip("\n")
    assert load_extractor(path)[1] == spec
