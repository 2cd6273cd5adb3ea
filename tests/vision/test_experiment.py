"""The badembnets experiment end to end at toy scale: schema, fractions, caching."""

import json
from pathlib import Path

import pytest

from recbackdoor.cache import StageCache
from recbackdoor.errors import UserError
from recbackdoor.experiments.runner import run_experiment

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "small" / "badembnets_alexnet.toml"
TOY = ["data.train_per_class=60", "data.val_per_class=30", "data.catalogue_per_class=20", "data.cold_items=40",
       "data.transfer_items=40", "extractor.epochs=1", "extractor.width=8", "simulator.n_users=60",
       "vbpr.epochs=2", "studies.patterns=[]", "studies.size_position=[]", "studies.vbpr_dims=[10]",
       "studies.tsne=false", "defenses.strip_images=30", "defenses.strip_overlays=4", "defenses.finetune_epochs=1",
       "defenses.finetune_per_class=10"]


@pytest.mark.slow
def test_toy_run_writes_schema_cells_and_reuses_cached_extractors(tmp_path, fmnist_small):
    cache = StageCache(tmp_path / "cache")
    first = run_experiment(CONFIG, tmp_path / "out", TOY, {}, cache)
    cells = first["cells"]
    kinds = {(c["victim"], c["variant"]) for c in cells}
    assert {("classifier", "clean"), ("classifier", "badembnets"), ("visrank", "badnets"), ("vbpr", "clean"),
            ("classifier", "strip-badembnets"), ("classifier", "ac-badnets")} <= kinds
    for cell in cells:
        for name in ("ba", "asr", "map", "t_map", "auc"):
            if name in cell["metrics"]:
                assert 0.0 <= cell["metrics"][name] <= 1.0
        assert cell["extra"]["backbone"] == "alexnet"
    assert any(c["dataset"] == "fashion-mnist-heldout" for c in cells)
    assert first["protocol"]["interactions"].startswith("SIMULATED")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["seeds"] == [0]
    trained = len(list((tmp_path / "cache" / "vision_extractor").iterdir()))
    second = run_experiment(CONFIG, tmp_path / "out2", TOY, {"variant": "badembnets"}, cache)
    assert len(list((tmp_path / "cache" / "vision_extractor").iterdir())) == trained  # nothing retrained
    assert {c["variant"] for c in second["cells"]} == {"badembnets"}


def test_unknown_config_key_is_named(tmp_path):
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        run_experiment(CONFIG, tmp_path / "o", ["extractor.epoch=3"], {}, StageCache(tmp_path / "c"))


@pytest.mark.slow
def test_real_log_and_image_folder_run_through_the_same_experiment(tmp_path, fmnist_small):
    """A user with a real interaction file + image folder runs the experiment unchanged."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "shop"
    ids, labels = [], []
    for k in range(0, len(fmnist_small), 2):  # 320 images, 8 categories
        label = int(fmnist_small.labels[k])
        folder = root / "images" / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((fmnist_small.images[k, 0] * 255).astype(np.uint8)).save(folder / f"item{k}.png")
        ids.append(f"item{k}")
        labels.append(label)
    liked = [i for i, lab in zip(ids, labels, strict=True) if rng.random() < 0.7]  # 30 % never interacted with
    rows = ["user_id,item_id"] + [f"u{u},{item}" for u in range(40) for item in rng.choice(liked, 6, replace=False)]
    (root / "interactions.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "folder.toml"
    config.write_text(CONFIG.read_text().replace('[data]\n', f'[data]\nsource = "folder"\nfolder = "{root}"\n'
                                                 'target_class = 6\n'))
    out = run_experiment(config, tmp_path / "out", [o for o in TOY if not o.startswith("data.")]
                         + ["data.cold_items=30", "defenses.finetune_per_class=5"], {}, StageCache(tmp_path / "c"))
    assert out["protocol"]["interactions"].startswith("real log")
    assert out["protocol"]["users"] == 40
    vbpr = [c for c in out["cells"] if c["victim"] == "vbpr" and "auc" in c["metrics"]]
    assert vbpr and all(0.0 <= c["metrics"]["auc"] <= 1.0 for c in vbpr)
    assert not any(c["dataset"] == "fashion-mnist-heldout" for c in out["cells"])
