"""Eq. 8 with a bounded -1 term: missed triggers become likelier, caught ones rarer, and nothing diverges."""

from __future__ import annotations

import math

import pytest
import torch

from recbackdoor.defenses.text.augmentation_agent import AugmentationAgent
from recbackdoor.defenses.text.scanner_data import AgentTrigger
from recbackdoor.triggers.text_sampler import InitialTrigger

CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tiny_agent() -> AugmentationAgent:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    corpus = ["Turn 'x' into one unusual word", "Write a short phrase of 3 words inspired by: moon",
              "Velvetine", "Marbleous", "frost falls on quiet rain", "Answer with the word only."] * 20
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        special_tokens=["<pad>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>")
    tokenizer.chat_template = CHAT
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=raw.get_vocab_size(), n_positions=512, n_embd=32, n_layer=1,
                                       n_head=2))
    return AugmentationAgent(model, tokenizer)


def _log_likelihood(agent: AugmentationAgent, trigger: AgentTrigger) -> float:
    with torch.no_grad():
        nll = agent.policy_loss([trigger], [True])
    return -float(nll)


def test_policy_loss_is_finite_and_non_negative_for_caught_triggers(tiny_agent):
    caught = AgentTrigger(InitialTrigger(1, ("x",)), "Marbleous")
    loss = tiny_agent.policy_loss([caught], [False])
    assert torch.isfinite(loss) and float(loss.detach()) >= 0


def test_update_raises_missed_and_lowers_caught_trigger_likelihood(tiny_agent):
    missed = AgentTrigger(InitialTrigger(1, ("x",)), "Velvetine")
    caught = AgentTrigger(InitialTrigger(2, ("moon", "frost", "x")), "frost falls on quiet rain")
    before = _log_likelihood(tiny_agent, missed), _log_likelihood(tiny_agent, caught)
    params = [p for p in tiny_agent.model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    for step in range(15):
        tiny_agent.update([missed, caught], [True, False], optimizer, seed=step, batch_size=2)
    after = _log_likelihood(tiny_agent, missed), _log_likelihood(tiny_agent, caught)
    assert after[0] > before[0]
    assert after[1] < before[1]
    assert all(math.isfinite(float(p.abs().max())) for p in params)


def test_clean_keeps_one_word_for_word_level_and_a_phrase_for_sentence_level():
    assert AugmentationAgent.clean('"Marbleous." is my answer', 1) == "Marbleous"
    assert AugmentationAgent.clean("frost falls on quiet rain tonight and then more words\nsecond line", 2) == \
        "frost falls on quiet rain tonight and then"
    assert AugmentationAgent.clean("   ", 1) == ""
