"""LLaRA hybrid prompts: SASRec, slot encoding, the ID projector and its injection in training and generation."""

import pytest
import torch

from recbackdoor.data.prompts import LlaraSample
from recbackdoor.data.sequences import Interaction, SequenceData
from recbackdoor.errors import UserError
from recbackdoor.victims.text.hybrid import SLOT_MARKER, IdProjector, ItemIndex, encode_hybrid, sasrec_choices
from recbackdoor.victims.text.sasrec import SASRec, SasrecSettings, left_pad, load_sasrec, save_sasrec, train_sasrec
from recbackdoor.victims.text.split_lm import Example, SplitLM


def _toy_data() -> SequenceData:
    titles = {10 * i: f"Movie {i}" for i in range(1, 9)}
    seqs = {u: tuple(Interaction(10 * (1 + (u + k) % 8)) for k in range(8)) for u in range(6)}
    return SequenceData("toy", titles, seqs, "file", "movie")


def test_sasrec_learns_a_deterministic_successor_rule():
    # item i is always followed by i + 1 (cyclically over 8 items)
    seqs = [[1 + (s + k) % 8 for k in range(12)] for s in range(40)]
    model, losses = train_sasrec(seqs, 8, SasrecSettings(dim=16, layers=1, heads=1, max_len=12, dropout=0.0,
                                                         epochs=60, batch_size=16, lr=1e-2), seed=0)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        scores = model.scores(left_pad([[3, 4, 5], [7, 8]], 12))
    assert scores[0, 1:].argmax().item() + 1 == 6
    assert scores[1, 1:].argmax().item() + 1 == 1


def test_sasrec_inference_path_has_no_nan_on_left_padding():
    model, _ = train_sasrec([[1, 2, 3]], 3, SasrecSettings(dim=8, layers=1, heads=1, max_len=10, epochs=1), 0)
    with torch.no_grad():  # torch's fused inference path, where a key-padding mask produced NaN
        scores = model.scores(left_pad([[1], [1, 2, 3]], 10))
    assert torch.isfinite(scores).all()


def test_sasrec_round_trip_and_corrupt_file(tmp_path):
    model, _ = train_sasrec([[1, 2, 3, 4]] * 4, 4, SasrecSettings(dim=8, layers=1, heads=1, max_len=6, epochs=2), 0)
    save_sasrec(model, tmp_path / "s.safetensors")
    again = load_sasrec(tmp_path / "s.safetensors")
    x = left_pad([[1, 2]], 6)
    with torch.no_grad():
        assert torch.allclose(model.scores(x), again.scores(x))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(UserError, match="bad.safetensors"):
        load_sasrec(tmp_path / "bad.safetensors")


def _toy_sasrec(data: SequenceData, index: ItemIndex) -> SASRec:
    seqs = [index([x.item for x in s]) for s in data.sequences.values()] * 10
    model, _ = train_sasrec(seqs, 8, SasrecSettings(dim=16, layers=1, heads=1, max_len=8, dropout=0.0, epochs=60,
                                                    batch_size=8, lr=1e-2), seed=0)
    return model


def _toy_prompt_parts(tiny) -> tuple[SequenceData, ItemIndex, SplitLM, LlaraSample]:
    """The toy catalogue, its item index, a tiny LM to tokenise with, and one sample of 2 history + 3 pool items."""
    data = _toy_data()
    return data, ItemIndex(data), SplitLM(tiny, train_layers=1, method="full", autocast=False), \
        LlaraSample(0, (20, 30), (40, 70, 10), 40)


def test_sasrec_choice_is_the_pool_position_of_the_best_scored_item():
    data = _toy_data()
    index = ItemIndex(data)
    model = _toy_sasrec(data, index)
    sample = LlaraSample(0, (20, 30, 40), (80, 50, 10), 50)  # after 40 comes 50
    assert sasrec_choices(model, [sample], index) == [1]


def test_hybrid_prompt_slots_sit_on_the_marker_after_each_title(tiny):
    data, index, lm, sample = _toy_prompt_parts(tiny)
    prompt = encode_hybrid(lm.encode, sample, data, index)
    assert prompt.slot_items == tuple(index([20, 30, 40, 70, 10]))
    marker = lm.encode(SLOT_MARKER, bos=False)
    for pos in prompt.slots:
        assert prompt.tokens[pos - len(marker) + 1: pos + 1] == marker
    # the text before each slot ends with the title it belongs to
    before = tiny.tokenizer.decode(prompt.tokens[: prompt.slots[2] - len(marker) + 1])
    assert before.rstrip().endswith("Movie 4")

    poisoned = sample.with_title(70, "Movie [ID] 7")
    with pytest.raises(UserError, match="slot marker"):
        encode_hybrid(lm.encode, poisoned, data, index)


def test_title_slots_sit_on_each_titles_last_token_without_a_marker(tiny):
    data, index, lm, sample = _toy_prompt_parts(tiny)
    prompt = encode_hybrid(lm.encode, sample, data, index, slot="title")
    marked = encode_hybrid(lm.encode, sample, data, index)
    marker = lm.encode(SLOT_MARKER, bos=False)
    assert prompt.slot_items == marked.slot_items
    # the same prompt with every marker taken out, and each slot moved back onto its title
    assert len(prompt.tokens) == len(marked.tokens) - len(marker) * len(marked.slots)
    assert [p + (n + 1) * len(marker) for n, p in enumerate(prompt.slots)] == list(marked.slots)
    for n, pos in enumerate(prompt.slots):
        title = data.titles[[20, 30, 40, 70, 10][n]]
        assert tiny.tokenizer.decode(prompt.tokens[: pos + 1]).rstrip().endswith(title)
    with pytest.raises(UserError, match="hybrid slot 'middle'"):
        encode_hybrid(lm.encode, sample, data, index, slot="middle")


def test_projector_table_is_not_saved_with_the_adapter():
    """The item table is SASRec's (a cached stage of its own); an adapter file carries only the trained MLP."""
    projector = IdProjector(torch.randn(5, 8), hidden=12)
    assert "table" not in projector.state_dict()
    assert set(projector.state_dict()) == {"proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias"}


def test_untrained_projector_leaves_the_model_unchanged_and_trained_one_changes_it(tiny, tmp_path):
    lm = SplitLM(tiny, train_layers=1, method="lora", lora_r=4, lora_alpha=8, autocast=False)
    ids = lm.encode("Movie 1 [ID], Movie 2 [ID] Answer:")
    states = lm.bottom_states([ids])
    before = lm.next_token_logits(states)
    lm.attach_projector(torch.randn(5, 8))
    assert torch.allclose(lm._top_hidden(states, [((3,), (2,))])[0], lm._top_hidden(states)[0])
    target = tiny.tokenizer(" Yes", add_special_tokens=False)["input_ids"][0]
    # the only way to tell the two examples apart is the item in their slot
    other = tiny.tokenizer(" No", add_special_tokens=False)["input_ids"][0]
    last = states[0].shape[0] - 1
    examples = [Example(states[0], (last,), (target,), (3,), (1,)), Example(states[0], (last,), (other,), (3,), (4,))]
    lm.fit(examples * 4, epochs=30, batch_size=2, lr=1e-2, seed=0)
    hidden_1 = lm._top_hidden(states, [((3,), (1,))])[0][0, last]
    hidden_4 = lm._top_hidden(states, [((3,), (4,))])[0][0, last]
    logits = lm._logits(torch.stack([hidden_1, hidden_4]))
    assert logits[0, target] > logits[0, other] and logits[1, other] > logits[1, target]
    assert any(k.startswith("projector.") for k in lm.trainable_state())
    lm.save(tmp_path / "h.safetensors", {"variant": "hybrid"})
    lm.reset(seed=3)
    assert torch.allclose(lm.next_token_logits(states), before, atol=1e-5)
    lm.load(tmp_path / "h.safetensors")
    again = lm._logits(lm._top_hidden(states, [((3,), (1,))])[0][0, last])
    assert torch.allclose(again, logits[0], atol=1e-4)


def test_generation_injects_slots_at_the_right_place_under_left_padding(tiny):
    lm = SplitLM(tiny, train_layers=1, method="full", autocast=False)
    lm.attach_projector(torch.randn(4, 8))
    with torch.no_grad():
        for p in lm.projector.parameters():
            p.normal_(0, 2.0)
    short = lm.encode("Movie 1 [ID] Answer:")
    long = lm.encode("Movie 2, Movie 3, Movie 4, Movie 5 [ID] Answer:")
    slot_short = (len(lm.encode("Movie 1 [ID]")) - 1,)
    slot_long = (len(lm.encode("Movie 2, Movie 3, Movie 4, Movie 5 [ID]")) - 1,)
    alone = lm.generate([short], 6, slots=[(slot_short, (2,))])
    batched = lm.generate([short, long], 6, slots=[(slot_short, (2,)), (slot_long, (3,))])
    assert batched[0] == alone[0]
    # and the split forward with the same injection predicts the same first token
    states = lm.bottom_states([short])
    with_slot = lm.next_token_logits(states, slots=[(slot_short, (2,))])
    first = with_slot.argmax().item()
    assert tiny.tokenizer.decode([first]) == alone[0][: len(tiny.tokenizer.decode([first]))]
    # the slot content reaches the prediction
    assert not torch.allclose(with_slot, lm.next_token_logits(states, slots=[(slot_short, (3,))]))


@pytest.mark.slow
def test_llara_hybrid_run_writes_every_cell_with_stated_denominators(tmp_path, session_cache, data_root):
    """Plumbing of the hybrid LLaRA mode end to end on a few real MovieLens prompts (tiny scratch LM)."""
    from recbackdoor.experiments.badrec_experiment import BadRecConfig, run_badrec
    from recbackdoor.experiments.context import RunContext

    cfg = BadRecConfig.model_validate({
        "experiment": "badrec", "mode": "llara-hybrid", "datasets": ["ml100k"],
        "data": {"n_train": 24, "n_test": 6, "history": 2, "pool": 4},
        "model": {"backbone": "scratch-gpt2-tiny", "train_layers": 2, "method": "full", "autocast": False},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
        "attack": {"triggers": ["word"], "positions": ["end"], "rates": [0.2]},
        "hybrid": {"sasrec_epochs": 1, "sasrec_dim": 16},
        "eval": {"max_new_tokens": 8},
    })
    ctx = RunContext(out_dir=tmp_path, cache=session_cache)
    run_badrec(cfg, ctx)
    cells = {c.variant: c for c in ctx.cells}
    assert set(cells) == {"random", "most-popular", "sasrec", "benign", "badrec"}
    assert all(c.victim == "llara-hybrid" for c in cells.values())
    assert cells["random"].metrics["h1"] == 0.25
    poisoned = cells["badrec"]
    assert poisoned.extra["n_fake"] == 6 and poisoned.extra["n_triggered"] == 6
    assert {"valid", "h1_all", "a_valid", "asr"} <= set(poisoned.metrics) | set(poisoned.extra["undefined"])
    assert "hybrid" in ctx.protocol["ml100k/llara-hybrid"]
