"""Token ids back to text, with a tokenizer's added (non-special) tokens kept as written.

Why: the from-scratch ``titles`` tokenizers add one token per catalogue title on top of a byte-level BPE.
``tokenizers`` passes an added token's content through the ByteLevel decoder like any other piece, and
that decoder reads each character as a stand-in for one byte, so a title with a non-ASCII letter comes
back broken ("Björk" -> "Bj\\ufffdrk"). The answer then matches no pool title and is scored invalid.
Decoding the ordinary pieces in runs and writing each added token's content as-is gives the title back.
"""

from __future__ import annotations

from collections.abc import Sequence


def added_token_texts(tokenizer) -> dict[int, str]:
    """Id -> content of the tokenizer's added tokens that are not special (empty for pretrained LMs' usual ones)."""
    return {i: t.content for i, t in tokenizer.added_tokens_decoder.items() if not t.special}


def decode_answer(tokenizer, ids: Sequence[int], added: dict[int, str] | None = None) -> str:
    """``tokenizer.decode(ids, skip_special_tokens=True)``, except that added tokens come back verbatim."""
    ids = [int(i) for i in ids]
    added = added_token_texts(tokenizer) if added is None else added
    if not any(i in added for i in ids):
        return tokenizer.decode(ids, skip_special_tokens=True)
    parts: list[str] = []
    run: list[int] = []
    for i in ids:
        if i in added:
            if run:
                parts.append(tokenizer.decode(run, skip_special_tokens=True))
                run = []
            parts.append(added[i])
        else:
            run.append(i)
    if run:
        parts.append(tokenizer.decode(run, skip_special_tokens=True))
    return "".join(parts)
