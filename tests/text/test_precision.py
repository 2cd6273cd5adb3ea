"""The bf16 check: which CPUs do bf16 natively, and the run's one-line note where they do not."""

from __future__ import annotations

import pytest

from recbackdoor.victims.text import precision

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma f16c\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(ZEN3 + "\nprocessor\t: 1\nflags\t\t: something_else\n")
    assert precision.cpu_flags(info) == {"fpu", "sse", "sse2", "avx", "avx2", "fma", "f16c"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(("text", "expected"), [(ZEN3, False), (SAPPHIRE, True),
                                                ("flags\t: avx512f avx512_bf16\n", True)])
def test_native_bf16_from_the_flags(tmp_path, text, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(text)
    assert precision.native_bf16("cpu", precision.cpu_flags(info)) is expected


def test_native_bf16_is_unknown_without_flags():
    assert precision.native_bf16("cpu", set()) is None
    assert precision.native_bf16("meta", {"avx512_bf16"}) is None


def test_the_note_is_said_once_and_only_without_native_bf16(monkeypatch, capsys):
    monkeypatch.setattr(precision, "_warned", False)
    assert not precision.note_precision(True, "cpu", {"avx512_bf16"})
    assert not precision.note_precision(False, "cpu", {"amx_bf16"})
    assert not precision.note_precision(True, "cpu", set())
    assert capsys.readouterr().err == ""
    assert precision.note_precision(True, "cpu", {"avx2"})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "emulated" in err and "model.autocast" in err
    assert not precision.note_precision(True, "cpu", {"avx2"})
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(precision, "_warned", False)
    assert precision.note_precision(False, "cpu", {"avx2"})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fp32" in err and "model.autocast = true" in err


@pytest.mark.parametrize("native", [True, False, None])
def test_auto_autocast_resolves_to_what_the_machine_does_well(monkeypatch, native):
    from recbackdoor.experiments import badrec_experiment
    from recbackdoor.experiments.badrec_experiment import ModelSection

    monkeypatch.setattr(precision, "native_bf16", lambda device, flags=None: native)
    monkeypatch.setattr(badrec_experiment, "bf16_pays_off", precision.bf16_pays_off)
    expected = native is not False  # unknown hardware keeps bf16, the precision every committed cell ran in
    assert ModelSection().autocast is expected
    assert ModelSection.model_validate({"autocast": "auto", "device": "cpu"}).autocast is expected
    assert ModelSection(autocast=True).autocast is True and ModelSection(autocast=False).autocast is False
    assert ModelSection().model_dump()["autocast"] is expected  # the cache key holds the resolved precision


@pytest.mark.parametrize("native", [True, False])
def test_plain_scratch_backbones_pretrain_in_fp32_only_where_bf16_is_emulated(monkeypatch, tmp_path, native):
    """Where bf16 is native the key is the one every cached plain backbone has; fp32 gets a key of its own.
    A copy recipe names its own precision, so its key never changes with the machine."""
    from recbackdoor.cache import StageCache
    from recbackdoor.victims.text import backbones, scratch

    monkeypatch.setattr(backbones, "bf16_pays_off", lambda device="auto": native)
    built = {}
    monkeypatch.setattr(scratch, "build_scratch", lambda *a, **kw: built.update(kw) or {})

    def create(self, stage, key, build):
        build(tmp_path)
        return key

    monkeypatch.setattr(StageCache, "get_or_create", create)
    key = backbones.scratch_path("tiny", StageCache(root=tmp_path))
    assert ("precision" in key) is (not native) and built["bf16"] is native
    key = backbones.scratch_path("titles-copy", StageCache(root=tmp_path))
    assert "precision" not in key
