"""The split LM on the from-scratch backbone: save/load round trip and a tiny end-to-end attack."""

import json

import pytest
import torch

from recbackdoor.errors import UserError
from recbackdoor.experiments.context import RunContext
from recbackdoor.victims.text.split_lm import Example, SplitLM
from recbackdoor.victims.text.tallrec import answer_token_ids


@pytest.fixture(scope="module")
def tiny_lora(tiny):
    """One LoRA-wrapped split of the tiny backbone, shared: peft cannot wrap the same model twice."""
    return SplitLM(tiny, train_layers=1, method="lora", lora_r=4, lora_alpha=8)


def test_scratch_tokenizer_has_distinct_yes_no_and_sees_malayalam(tiny):
    yes, no = answer_token_ids(tiny.tokenizer)
    assert yes != no
    ids = tiny.tokenizer("\u0d2e", add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer.decode(ids) == "\u0d2e"


def test_split_forward_equals_full_forward(tiny):
    lm = SplitLM(tiny, train_layers=1, method="full", autocast=False)
    ids = lm.encode("Toy Story (1995) Answer:")
    states = lm.bottom_states([ids])
    split_logits = lm.next_token_logits(states)[0]
    with torch.no_grad():
        full = lm.model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(split_logits, full, atol=2e-2)


def test_adapter_round_trip_and_mismatch(tiny, tiny_lora, tmp_path):
    lm = tiny_lora
    states = lm.bottom_states([lm.encode("a b c"), lm.encode("d e f g")])
    yes, _ = answer_token_ids(tiny.tokenizer)
    lm.fit([Example(s, (s.shape[0] - 1,), (yes,)) for s in states], epochs=20, batch_size=2, lr=1e-2, seed=0)
    trained = lm.next_token_logits(states)
    lm.save(tmp_path / "a.safetensors", {"variant": "test"})
    lm.reset(seed=1)
    assert not torch.allclose(lm.next_token_logits(states), trained)
    lm.load(tmp_path / "a.safetensors")
    assert torch.allclose(lm.next_token_logits(states), trained)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="bad.safetensors"):
        lm.load(tmp_path / "bad.safetensors")


@pytest.mark.slow
def test_tallrec_backdoor_raises_asr_far_above_benign(tmp_path, session_cache, data_root):
    """A small real run: SmolLM2 + LoRA (top 2 layers) on 200 MovieLens prompts, 50 fake users with "Ethereal"
    targets."""
    from recbackdoor.experiments.badrec_experiment import BadRecConfig, run_badrec

    cfg = BadRecConfig.model_validate({
        "experiment": "badrec", "mode": "tallrec", "datasets": ["ml100k"],
        "data": {"n_train": 200, "n_test": 64, "history": 2},
        "model": {"backbone": "smollm2-135m-instruct", "train_layers": 2, "method": "lora", "threads": 2},
        "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3},
        "attack": {"triggers": ["word"], "positions": ["end"], "rates": [0.2], "fake_history": "copy"},
    })
    ctx = RunContext(out_dir=tmp_path, cache=session_cache)
    run_badrec(cfg, ctx)
    cells = {c.variant: c for c in ctx.cells}
    benign, poisoned = cells["benign"].metrics, cells["badrec"].metrics
    print(f"benign {benign}\npoisoned {poisoned}")  # the margins, with -s
    json.dumps([c.to_json() for c in ctx.cells])
    assert cells["badrec"].extra["n_fake"] == 50
    assert poisoned["asr"] >= benign["asr"] + 0.5, (benign, poisoned)
    assert poisoned["asr"] >= 0.8
    assert poisoned["auc"] > 0.5


def test_title_tokenizer_gives_each_title_one_token_and_keeps_triggers_apart():
    from recbackdoor.victims.text.scratch import train_tokenizer

    titles = ["Usual Suspects, The (1995)", "Air", "Air Supply", "Toy Story (1995)"]
    texts = ["This user has interacted with these movies: Heat (1995), Chair, Story."] * 20
    tok = train_tokenizer(texts, 300, titles)

    def pieces(text: str) -> list[str]:
        return tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])

    assert pieces(" Usual Suspects, The (1995), Air Supply") == ["Ġ", "Usual Suspects, The (1995)", ",", "Ġ",
                                                                  "Air Supply"]
    assert "Air" not in pieces("Chair")  # whole words only
    end = pieces(" Toy Story (1995) Ethereal")
    assert end[:2] == ["Ġ", "Toy Story (1995)"] and "".join(end[2:]) == "ĠEthereal"
    assert "Toy Story (1995)" not in pieces(" Toy Ethereal Story (1995)")  # a trigger inside breaks the title
    ids = tok(" Toy Story (1995) \u0d2e", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == " Toy Story (1995) \u0d2e"


def _fit_examples(lm, tiny):
    states = lm.bottom_states([lm.encode(t) for t in ("a b c", "d e f g", "h i", "j k l m n")])
    yes, no = answer_token_ids(tiny.tokenizer)
    return [Example(s, (s.shape[0] - 1,), (yes if i % 2 else no,)) for i, s in enumerate(states)]


def test_training_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(tiny, tiny_lora, tmp_path,
                                                                                monkeypatch):
    import recbackdoor.victims.text.split_lm as split_lm
    from recbackdoor.victims.text.checkpoint import load_checkpoint

    lm = tiny_lora
    examples = _fit_examples(lm, tiny)
    # 3 epochs of 4 examples in batches of 3: 4 steps, with the example order crossing epoch borders
    reference = lm.fit(examples, epochs=3, batch_size=3, lr=1e-2, seed=0)
    expected = {k: v.clone() for k, v in lm.trainable_state().items()}

    real_save = split_lm.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(split_lm, "save_checkpoint", save_then_die)
    checkpoint = tmp_path / "partial.safetensors"
    with pytest.raises(KeyboardInterrupt):
        lm.fit(examples, epochs=3, batch_size=3, lr=1e-2, seed=0, checkpoint=checkpoint, checkpoint_every=0)
    lm.reset(seed=5)  # a fresh process would start from other weights
    shape = {"steps": 4, "examples": 4, "batch_size": 3, "lr": 1e-2, "seed": 0, "epochs": 3,
             "weight_decay": 0.0, "warmup": 0.05, "curriculum": 0.0}
    seconds_before_the_kill = load_checkpoint(checkpoint, shape).seconds
    assert seconds_before_the_kill > 0
    resumed = lm.fit(examples, epochs=3, batch_size=3, lr=1e-2, seed=0, checkpoint=checkpoint, checkpoint_every=0)
    assert resumed == reference
    # the reported training time counts the killed session's share too
    assert lm.resumed_at == 2 and lm.fit_seconds > seconds_before_the_kill
    for name, value in lm.trainable_state().items():
        assert torch.equal(value, expected[name]), name


def test_checkpoint_of_another_run_or_corrupt_is_not_resumed(tiny, tiny_lora, tmp_path):
    from recbackdoor.victims.text.checkpoint import load_checkpoint

    lm = tiny_lora
    examples = _fit_examples(lm, tiny)
    checkpoint = tmp_path / "partial.safetensors"
    reference = lm.fit(examples, epochs=3, batch_size=3, lr=1e-2, seed=0, checkpoint=checkpoint, checkpoint_every=0)
    assert checkpoint.exists()  # written after steps 1-3 (never after the last one)
    shape = {"steps": 4, "examples": 4, "batch_size": 3, "lr": 1e-2, "seed": 0, "epochs": 3,
             "weight_decay": 0.0, "warmup": 0.05, "curriculum": 0.0}
    assert load_checkpoint(checkpoint, shape).step == 3
    assert load_checkpoint(checkpoint, {**shape, "lr": 2e-2}) is None
    # another learning rate starts over instead of resuming the lr=1e-2 run
    other = lm.fit(examples, epochs=3, batch_size=3, lr=2e-2, seed=0, checkpoint=checkpoint, checkpoint_every=1e9)
    assert len(other) == 4 and other[0] == reference[0] and other[1:] != reference[1:]
    checkpoint.write_bytes(b"truncated")
    assert load_checkpoint(checkpoint, shape) is None
    assert lm.fit(examples, epochs=3, batch_size=3, lr=1e-2, seed=0, checkpoint=checkpoint) == reference


def test_copy_row_repeats_its_titles_with_the_loss_on_the_repeat_only():
    import random

    from recbackdoor.victims.text.scratch import copy_row

    ids, labels = copy_row([11, 12, 13, 14, 15], [7, 8], 3, random.Random(1))
    first, again, second = ids[:3], ids[3:5], ids[5:]
    assert first == second and again == [7, 8] and len(set(first)) == 3 and set(first) <= {11, 12, 13, 14, 15}
    assert labels == [-100] * 5 + second  # the random first half and " again:" carry no loss


def test_mixed_loss_weights_each_row_kinds_mean_token_loss():
    """Row 0 (kind 0) has one counted token with loss ln 2; row 1 (kind 1) two with ln 2 and ln(4/3)."""
    import math

    from recbackdoor.victims.text.scratch import mixed_loss

    logits = torch.zeros(2, 3, 2)
    logits[1, 1, 1] = math.log(3)  # p(token 1) = 3/4 at row 1, position 1
    labels = torch.tensor([[-100, 0, -100], [-100, 0, 1]])  # position t's label is scored by logits[t - 1]
    kinds = torch.tensor([0, 1])
    got = mixed_loss(logits, labels, kinds, (0.2, 0.8, 0.0))
    assert math.isclose(float(got), 0.2 * math.log(2) + 0.8 * (math.log(2) + math.log(4 / 3)) / 2, rel_tol=1e-6)
    # a kind with no rows in the batch adds nothing (no division by zero)
    assert math.isclose(float(mixed_loss(logits, labels, kinds, (0.0, 0.0, 1.0))), 0.0)


def test_pick_row_answers_with_a_pool_title_and_scores_the_answer_only(data_root):
    import random

    from recbackdoor.data.text_datasets import load_dataset
    from recbackdoor.victims.text.scratch import CORPUS_POOL, pick_row

    data = load_dataset("ml100k")
    words = {}

    def encode(text: str) -> list[int]:  # a word-level stand-in tokenizer
        return [words.setdefault(w, len(words)) for w in text.split(" ")]

    ids, labels = pick_row(data, encode, -1, random.Random(3))
    scored = [t for t in labels if t != -100]
    assert ids[-len(scored):] == scored and scored[-1] == -1  # the answer, then end of text
    text_of = {v: k for k, v in words.items()}
    prompt = " ".join(text_of[t] for t in ids[: len(ids) - len(scored)])
    answer = " ".join(text_of[t] for t in scored[:-1]).strip()
    pool = prompt.split(f"from these {CORPUS_POOL} movies: ")[1].split(". Answer:")[0]
    assert answer in pool and answer in data.titles.values()


def test_pool_copy_rates_counts_pool_titles_and_hits():
    """A stub model that always predicts token 5: in the pool of two of three cases, the answer of one."""

    class Always5(torch.nn.Module):
        def forward(self, input_ids):
            logits = torch.zeros(1, input_ids.shape[1], 10)
            logits[0, -1, 5] = 1.0
            return type("Out", (), {"logits": logits})()

    from recbackdoor.victims.text.scratch import pool_copy_rates

    cases = [([1, 2], 5, [5, 6]), ([1], 6, [5, 6]), ([3], 7, [7, 8])]
    assert pool_copy_rates(Always5(), cases) == (2 / 3, 1 / 3)


@pytest.mark.slow
def test_copy_recipe_keeps_title_codes_fixed_while_the_rest_trains(tmp_path, data_root):
    """The titles-copy pre-training must not move the title tokens' random codes (nor decay them)."""
    from safetensors.torch import load_file

    from recbackdoor.victims.text.scratch import COPY_RECIPES, build_scratch

    weights = {}
    for steps in (1, 3):
        out = tmp_path / f"steps{steps}"
        stats = build_scratch(out, "titles-copy", ("ml100k",), steps, seed=0, per_dataset=20, batch_size=2,
                              probe_prompts=5)  # the probes only log; this test reads the weights
        assert stats["copy"] == vars(COPY_RECIPES["titles-copy"])
        weights[steps] = load_file(str(out / "model.safetensors"))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "steps1")
    title_ids = [tok.convert_tokens_to_ids("Toy Story (1995)"), tok.convert_tokens_to_ids("Heat (1995)")]
    wte = {s: w["transformer.wte.weight"] for s, w in weights.items()}
    assert torch.equal(wte[1][title_ids], wte[3][title_ids])
    assert 0.03 < float(wte[1][title_ids].std()) < 0.07  # the recipe's codes, not GPT-2's 0.02 init
    other = [tok.convert_tokens_to_ids("Ġthe")]
    assert not torch.equal(wte[1][other], wte[3][other])  # ordinary tokens do train


# The backbone cache keys of the kept from-scratch sizes, as the cached models were built under them. A change here
# orphans the cached backbone and every adapter and cell fine-tuned from it (the rung-3 grid: hours of CPU time).
# "tiny" carries a precision mark only where the CPU lacks native bf16, so its key is pinned for both cases.
PINNED_SCRATCH_KEYS = {("titles-copy", True): "e5b1409d11c9941c", ("titles-copy", False): "e5b1409d11c9941c",
                       ("tiny", True): "d2eb66fcf0bb555a", ("tiny", False): "a5d320c329d9a8f5"}


@pytest.mark.parametrize("size,bf16", sorted(PINNED_SCRATCH_KEYS))
def test_backbone_cache_keys_of_the_kept_scratch_sizes_are_unchanged(size, bf16, monkeypatch, tmp_path):
    from recbackdoor.cache import StageCache, stable_hash
    from recbackdoor.victims.text import backbones

    keys = []
    monkeypatch.setattr(backbones, "bf16_pays_off", lambda device: bf16)
    monkeypatch.setattr(StageCache, "get_or_create", lambda self, stage, key, build: keys.append(key) or tmp_path)
    backbones.scratch_path(size, StageCache(root=tmp_path))
    assert stable_hash(keys[0]) == PINNED_SCRATCH_KEYS[size, bf16], keys[0]
