"""Answers of a title-token model decode back to the catalogue titles, non-ASCII letters included."""

from recbackdoor.victims.text.answers import match_candidate
from recbackdoor.victims.text.decoding import added_token_texts, decode_answer
from recbackdoor.victims.text.scratch import train_tokenizer

TITLES = ["Björk", "Beyoncé", "Misérables, Les (1995)", "Toy Story (1995)"]


def _tokenizer():
    texts = ["This user has listened to these artists: Heat, Chair, Story, Ethereal."] * 20
    return train_tokenizer(texts, 300, TITLES)


def test_title_tokens_come_back_verbatim_and_match_their_pool_title():
    tok = _tokenizer()
    for title in TITLES:
        ids = tok(" " + title + " Ethereal", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        text = decode_answer(tok, ids)
        assert text == " " + title + " Ethereal"
        assert match_candidate(text, ["Heat", title + " Ethereal"]) == 1


def test_plain_text_decodes_as_the_tokenizer_does():
    tok = _tokenizer()
    ids = tok(" Heat, Chair and Story", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert not any(i in added_token_texts(tok) for i in ids)
    assert decode_answer(tok, ids) == tok.decode(ids, skip_special_tokens=True) == " Heat, Chair and Story"


def test_special_tokens_are_not_treated_as_titles():
    tok = _tokenizer()
    assert tok.eos_token_id not in added_token_texts(tok)
    assert set(added_token_texts(tok).values()) == set(TITLES)
