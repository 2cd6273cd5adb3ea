"""Fixtures of the text tests: the tiny from-scratch backbone, defined once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny(session_cache, data_root):
    """The tiny from-scratch GPT-2 (``scratch-gpt2-tiny``): built once per session into the session's stage
    cache, loaded fresh per module, because LoRA wrapping and full fine-tuning change a model in place."""
    from recbackdoor.victims.text.backbones import load_backbone

    return load_backbone("scratch-gpt2-tiny", session_cache)
