"""audit-extractor: safe loading, one-line errors, and a verdict that separates clean from backdoored."""

import pytest

from recbackdoor.attacks.badnets import clean_set, poison
from recbackdoor.cli import main
from recbackdoor.defenses.vision.audit import audit_model
from recbackdoor.triggers.image import ImageTrigger
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, save_extractor
from recbackdoor.victims.vision.training import TrainSettings, train_extractor


@pytest.fixture(scope="module")
def tiny_models(fmnist_small):
    x, y = fmnist_small.images, fmnist_small.labels
    spec = ArchSpec(arch="alexnet", width=16)
    settings = TrainSettings(epochs=8, batch_size=32, lr=2e-3, seed=0)
    clean = build_extractor(spec, seed=0)
    train_extractor(clean, clean_set(x, y), settings)
    bad = build_extractor(spec, seed=0)
    train_extractor(bad, poison(x, y, ImageTrigger(), 7, 0.25, seed=0), settings)
    return spec, clean, bad


@pytest.mark.slow
def test_audit_passes_clean_and_flags_badnets(tiny_models, fmnist_test_small):
    _, clean, bad = tiny_models
    images = fmnist_test_small.images[:200]
    clean_report = audit_model(clean, images, invert=False)  # the stamp search alone
    bad_report = audit_model(bad, images, invert=False)
    assert clean_report.verdict == "PASS", clean_report.reasons
    assert bad_report.verdict == "FLAGGED"
    assert "white square 3px @br" in bad_report.reasons[0] and "class 7" in bad_report.reasons[0]


@pytest.mark.slow
def test_cli_flags_a_backdoored_file_with_exit_1(tiny_models, tmp_path, capsys, monkeypatch):
    import recbackdoor.defenses.vision.audit as audit

    spec, _, bad = tiny_models
    path = tmp_path / "bad.safetensors"
    save_extractor(bad, spec, path)
    monkeypatch.setattr(audit, "_default_images", lambda n, seed: _test_images(seed))
    assert main(["audit-extractor", "--weights", str(path), "--arch", "alexnet", "--no-inversion"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: FLAGGED (60 candidate stamps on 150 clean images)"  # 3 × 2 × 5 × 2; 15 per class
    assert lines[1] == "  decided by: stamp search"  # --no-inversion: nothing else may decide
    assert lines[2].startswith("  evidence: white square 3px @br sends ") and lines[2].endswith(" to class 7")


def _test_images(seed):
    from recbackdoor.data import fashion_mnist as fm

    test = fm.load_split("test")
    return test.images[fm.per_class_sample(test.labels, list(range(10)), 15, seed)]


@pytest.mark.parametrize("content, message", [
    (b"\x80\x04\x95 this is a pickle, not safetensors", "not a readable safetensors file"),
    (b"", "not a readable safetensors file"),
])
def test_cli_bad_file_is_one_line_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    assert main(["audit-extractor", "--weights", str(path), "--arch", "alexnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"recbackdoor: error: {path}: {message} (")


def test_cli_wrong_arch_shapes_exit_2(tmp_path, capsys):
    spec = ArchSpec(arch="alexnet", width=8)
    path = tmp_path / "m.safetensors"
    save_extractor(build_extractor(spec), spec, path)
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-100])
    assert main(["audit-extractor", "--weights", str(tmp_path / "cut.safetensors"), "--arch", "alexnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"recbackdoor: error: {tmp_path / 'cut.safetensors'}: not a readable "
                                              "safetensors file (")
    assert main(["audit-extractor", "--weights", str(path), "--arch", "resnet"]) == 2
    assert capsys.readouterr().err.strip() == (f"recbackdoor: error: {path}: --arch 'resnet' but the file header "
                                               "says 'alexnet'")
