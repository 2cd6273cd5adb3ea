"""Several processes (one per GPU under accelerate / torchrun) must train and generate exactly as one does.

Run here with two CPU processes over gloo, so the multi-GPU path is tested without a GPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recbackdoor.victims.text.split_lm import SplitLM

sys.path.insert(0, str(Path(__file__).parent))
from data_parallel_worker import train_and_generate  # noqa: E402


@pytest.mark.slow
def test_two_processes_train_and_generate_like_one(tiny, session_cache, tmp_path):
    lm = SplitLM(tiny, train_layers=1, method="lora", lora_r=4, lora_alpha=8, autocast=False)
    state, losses, gens = train_and_generate(lm)

    worker = Path(__file__).with_name("data_parallel_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", str(worker), str(session_cache.root), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["world"] == 2
    assert run["gens"] == gens
    assert run["losses"] == pytest.approx(losses, abs=1e-5)
    shared = load_file(str(tmp_path / "state.safetensors"))
    assert set(shared) == set(state)
    for key, value in state.items():
        assert torch.allclose(shared[key], value, atol=1e-5), key
    assert any(not torch.allclose(v, lm._initial[k]) for k, v in state.items())  # it did train


def test_nothing_frozen_uses_token_ids_and_matches_the_full_model(tiny):
    """With every layer trained the "states" are the token ids and the split forward is the model's."""
    layers = len(tiny.model.transformer.h)
    lm = SplitLM(tiny, train_layers=layers, method="full", autocast=False)
    ids = lm.encode("Toy Story (1995) Answer:")
    states = lm.bottom_states([ids])
    assert states[0].dtype == torch.long and states[0].tolist() == ids
    with torch.no_grad():
        full = lm.model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(lm.next_token_logits(states)[0], full, atol=1e-4)


CONFIG = """
experiment = "badrec"
name = "dp_check"
mode = "llara-hybrid"
datasets = ["ml100k"]
[data]
n_train = 24
n_test = 6
history = 2
pool = 4
[model]
backbone = "scratch-gpt2-tiny"
train_layers = 2
method = "full"
autocast = false
device = "cpu"
[train]
epochs = 1
batch_size = 8
lr = 1e-3
[attack]
triggers = ["word"]
positions = ["end"]
rates = [0.2]
[hybrid]
sasrec_epochs = 1
sasrec_dim = 16
[eval]
max_new_tokens = 8
"""


@pytest.mark.slow
def test_a_two_process_run_writes_the_one_process_results_once(tiny, session_cache, tmp_path):
    """The whole runner under torchrun: same cells as one process, one published copy of each stage."""
    import shutil

    config = tmp_path / "dp.toml"
    config.write_text(CONFIG)
    runs = {}
    torchrun = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519"]
    for name, launcher in (("one", []), ("two", torchrun)):
        cache = tmp_path / f"cache-{name}"
        shutil.copytree(session_cache.root / "backbone", cache / "backbone")  # skip re-pre-training
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RECBACKDOOR_CACHE": str(cache)}
        cmd = [sys.executable, *launcher, "-m", "recbackdoor.cli", "run", str(config), "--out", str(tmp_path / name)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())["cells"]
        assert not list(cache.rglob(".tmp-*")), "a process left an unpublished stage behind"
        assert len(list((cache / "adapter").iterdir())) == 2  # benign + one poisoned model

    def metrics(cells):
        return {(c["variant"], c["trigger"]): c["metrics"] for c in cells}

    one, two = metrics(runs["one"]), metrics(runs["two"])
    assert one.keys() == two.keys()
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-9), key


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_asking_for_a_gpu_without_one_is_one_clear_error():
    from recbackdoor.errors import UserError
    from recbackdoor.processes import Processes

    with pytest.raises(UserError, match="sees no GPU"):
        Processes("cuda")
