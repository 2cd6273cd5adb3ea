"""The GGUF load shortcut: one parse per file inside the block, the library as it was outside it."""

from __future__ import annotations


def test_gguf_parsed_once_caches_inside_and_restores_outside() -> None:
    import gguf

    from recbackdoor.victims.text.backbones import _gguf_parsed_once

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    arch = gguf.MODEL_ARCH.LLAMA
    with _gguf_parsed_once():
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
        assert gguf.GGUFReader is not reader
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map
    assert gguf.get_tensor_name_map(arch, 30) is not gguf.get_tensor_name_map(arch, 30)
