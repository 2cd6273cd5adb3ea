"""Layered config, one-line errors, --only, the results schema."""

import json
from pathlib import Path

import pytest

from recbackdoor.cli import main
from recbackdoor.errors import UserError
from recbackdoor.experiments.config import load_config, parse_override, read_toml
from recbackdoor.experiments.registry import config_model


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_then_file_then_overrides(tmp_path):
    path = _write(tmp_path, 'experiment = "badrec"\n[train]\nepochs = 5\n')
    cfg = load_config(path, ["train.lr=0.01", "data.pool=10"], config_model)
    assert cfg.train.epochs == 5  # file beats default
    assert cfg.train.lr == 0.01 and cfg.data.pool == 10  # command line beats file
    assert cfg.train.batch_size == 8  # default kept


def test_unknown_key_names_key_and_nearest(tmp_path):
    path = _write(tmp_path, 'experiment = "badrec"\n[train]\nepohcs = 5\n')
    with pytest.raises(UserError) as err:
        load_config(path, [], config_model)
    assert "train.epohcs" in str(err.value) and "'epochs'" in str(err.value)


def test_unknown_experiment_and_bad_types(tmp_path):
    with pytest.raises(UserError, match="did you mean 'badrec'"):
        load_config(_write(tmp_path, 'experiment = "badrc"\n'), [], config_model)
    with pytest.raises(UserError, match="train.epochs"):
        load_config(_write(tmp_path, 'experiment = "badrec"\n[train]\nepochs = "many"\n'), [], config_model)


def test_override_literals():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("x=true") == (["x"], True)
    assert parse_override("t=['word']") == (["t"], ["word"])
    assert parse_override("s=hello") == (["s"], "hello")


def test_cli_prints_one_error_line_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path, 'experiment = "badrec"\nmodes = "tallrec"\n')
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown config key 'modes'" in err and "'mode'" in err
    assert not out.exists()


def test_cli_missing_data_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECBACKDOOR_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("RECBACKDOOR_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path, 'experiment = "badrec"\ndatasets = ["lastfm"]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "user_artists.dat" in err and "grouplens" in err


def test_cli_rejects_bad_only_key(tmp_path, capsys):
    path = _write(tmp_path, 'experiment = "badrec"\n')
    assert main(["run", str(path), "--only", "datset=ml100k"]) == 2
    assert "unknown key 'datset'" in capsys.readouterr().err


def test_results_cell_schema():
    from recbackdoor.experiments.results import Cell, mean_over_seeds

    a = Cell("ml100k", "tallrec", "badrec", "word", "end", {"auc": 0.7, "asr": 0.9})
    b = Cell("ml100k", "tallrec", "badrec", "word", "end", {"auc": 0.8, "asr": 1.0})
    merged = mean_over_seeds([a, b]).to_json()
    assert merged["metrics"] == pytest.approx({"auc": 0.75, "asr": 0.95})
    assert merged["metrics_std"] == pytest.approx({"auc": 0.05, "asr": 0.05})
    assert merged["extra"]["per_seed"] == {"asr": [0.9, 1.0], "auc": [0.7, 0.8]}
    json.dumps(merged)
    with pytest.raises(ValueError):
        Cell("d", "v", "x", None, None, {"asr": float("nan")}).to_json()


@pytest.mark.parametrize("path", sorted(p for p in (Path(__file__).parents[1] / "configs").rglob("*.toml")
                                         if p.parent.name != "scanner"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_validates(path):
    import recbackdoor.experiments.badembnets_experiment  # noqa: F401  (registers its experiment)
    import recbackdoor.experiments.badrec_experiment  # noqa: F401

    cfg = load_config(path, [], config_model)
    raw = read_toml(path)
    assert type(cfg) is config_model(raw["experiment"])
    assert cfg.name == raw["name"]  # tables.md is titled by it; the default ("experiment") names no run
    _file_values_kept(raw, cfg.model_dump(mode="json"))


def _file_values_kept(raw: dict, validated: dict, where: str = "") -> None:
    """Every value the file sets reaches the validated config unchanged (nothing dropped or coerced away)."""
    for key, value in raw.items():
        assert key in validated, f"{where}{key}"
        if isinstance(value, dict):
            _file_values_kept(value, validated[key], f"{where}{key}.")
        elif value != "auto":  # "auto" is resolved when the config is read (model.autocast)
            assert validated[key] == value, f"{where}{key}: file {value!r}, config {validated[key]!r}"


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs" / "scanner").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_scanner_config_validates(path):
    from recbackdoor.defenses.text.train_command import load_train_config

    config = load_train_config(path)
    assert config.pscanner.rounds >= 1 and config.student.steps >= 1


def test_scanner_config_typo_is_one_clear_error(tmp_path):
    from recbackdoor.defenses.text.train_command import load_train_config
    from recbackdoor.errors import UserError

    path = tmp_path / "bad.toml"
    path.write_text("[pscanner]\nround = 3\n")
    with pytest.raises(UserError, match="pscanner.round"):
        load_train_config(path)


def test_model_cache_key_leaves_run_time_settings_out(tmp_path):
    """Threads and device do not change the trained model, so a cached adapter serves any of their values."""
    from recbackdoor.experiments.badrec_engine import _model_key

    path = _write(tmp_path, 'experiment = "badrec"\n[model]\nthreads = 2\nautocast = false\n')  # not per machine
    one = _model_key(load_config(path, [], config_model).model)
    other = _model_key(load_config(path, ["model.threads=8", "model.device=cpu"], config_model).model)
    assert one == other and "threads" not in one and "device" not in one
