"""The command line parses the way its help says: repeatable KEY=VALUE flags that never eat CONFIG, a real
``report`` subcommand, exit codes in every subcommand's help, and a training bar that moves every step.

Parsing tests use ``recbackdoor.cli._parser()`` directly; no experiment is run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recbackdoor.cli import _parser, main


def _run(*argv: str):
    return _parser().parse_args(["run", *argv])


def test_set_before_config_does_not_swallow_the_config():
    args = _run("--set", "a=1", "CONFIG.toml")
    assert args.config == Path("CONFIG.toml")
    assert args.overrides == ["a=1"]


def test_only_is_repeatable_after_the_config():
    args = _run("CONFIG.toml", "--only", "dataset=ml100k", "--only", "trigger=char")
    assert args.config == Path("CONFIG.toml")
    assert args.only == ["dataset=ml100k", "trigger=char"]


def test_set_is_repeatable():
    args = _run("--set", "a=1", "--set", "b=2", "CONFIG.toml")
    assert args.overrides == ["a=1", "b=2"]
    assert args.config == Path("CONFIG.toml")


def test_several_values_after_one_flag_still_work():
    args = _run("CONFIG.toml", "--only", "dataset=lastfm", "trigger=char", "position=end",
                "--set", "train.epochs=5", "attack.rates=[0.3]")
    assert args.only == ["dataset=lastfm", "trigger=char", "position=end"]
    assert args.overrides == ["train.epochs=5", "attack.rates=[0.3]"]


def test_several_values_then_the_config_keep_the_config():
    args = _run("--set", "a=1", "b.c=2", "CONFIG.toml", "--only", "variant=badrec")
    assert (args.overrides, args.config, args.only) == (["a=1", "b.c=2"], Path("CONFIG.toml"), ["variant=badrec"])


def test_equals_form_of_the_flag_continues_too():
    args = _run("--set=a=1", "b=2", "CONFIG.toml")
    assert (args.overrides, args.config) == (["a=1", "b=2"], Path("CONFIG.toml"))


def test_an_existing_file_after_a_flag_is_taken_as_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("x=1.toml").write_text("")  # looks like KEY=VALUE, but it is a file on disk
    args = _run("--set", "a=1", "x=1.toml")
    assert (args.overrides, args.config) == (["a=1"], Path("x=1.toml"))


def test_flags_default_to_empty_lists_and_do_not_share_them():
    first, second = _run("A.toml"), _run("B.toml", "--set", "a=1")
    assert first.overrides == [] and first.only == []
    assert second.overrides == ["a=1"]


def test_run_without_a_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run("--set", "a=1")
    assert exit_info.value.code == 2
    assert "CONFIG" in capsys.readouterr().err


def test_report_takes_files_and_folders_and_needs_out():
    args = _parser().parse_args(["report", "docs/results", "one/results.json", "--out", "r.html"])
    assert args.results == [Path("docs/results"), Path("one/results.json")]
    assert args.out == Path("r.html")
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", "docs/results"])


def _help(*argv: str) -> str:
    parser = _parser()
    if not argv:
        return parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[argv[0]].format_help()


@pytest.mark.parametrize("command", ["run", "report", "scan", "audit-extractor", "train-scanner", "eval-scanner",
                                     "calibrate-scanner", "tables"])
def test_every_subcommand_documents_its_exit_codes(command):
    text = _help(command)
    codes = text[text.index("exit codes"):]  # ValueError when the section is missing
    assert re.search(r"\b0\s+(success|pass)\b", codes), codes
    assert re.search(r"\b2\s+bad\b", codes), codes  # bad input: the code every command shares


def test_run_help_names_all_three_exit_codes():
    text = _help("run")
    for code in ("0", "2", "130"):
        assert re.search(rf"^\s*{code}\s", text, re.MULTILINE), code


def test_report_appears_in_the_top_level_help():
    assert re.search(r"^\s+report\s+render results", _help(), re.MULTILINE)


def test_report_with_a_missing_path_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
    assert not out.exists()


def test_training_bar_shows_every_step_count(capsys):
    """The text victims' training bar redraws its count after each step, not only every 15 s."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from recbackdoor.victims.text.backbones import Backbone
    from recbackdoor.victims.text.split_lm import Example, SplitLM

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    tokenizer = type("Tok", (), {"pad_token_id": 0, "bos_token_id": None})()
    lm = SplitLM(Backbone(model, tokenizer, "tiny-test"), train_layers=1, method="full", autocast=False)
    examples = [Example(torch.tensor([1, 2, 3]), (2,), (4,)), Example(torch.tensor([5, 6]), (1,), (7,))]
    lm.fit(examples, epochs=3, batch_size=1, lr=1e-3, seed=0, desc="bar-test")
    err = capsys.readouterr().err
    counts = {int(m) for m in re.findall(r"bar-test:.*?\| *(\d+)/6", err)}
    assert counts >= set(range(1, 7)), err[-500:]
    assert "loss=" in err
