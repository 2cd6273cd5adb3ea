"""Real behaviour on a few hundred real images with a tiny CNN."""

import numpy as np
import pytest
import torch

from recbackdoor.attacks.badembnets import mine_triplets, triplet_loss
from recbackdoor.attacks.badnets import poison
from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor
from recbackdoor.victims.vision.training import TrainSettings, embed, predict_logits, train_extractor

TARGET = 7


def test_poison_marks_rate_and_relabels_only_non_target(fmnist_small):
    data = poison(fmnist_small.images, fmnist_small.labels, ImageTrigger(), TARGET, 0.1, seed=0)
    assert data.rate == pytest.approx(0.1, abs=0.002)
    assert (data.labels[data.poisoned] == TARGET).all()
    assert (data.source_labels[data.poisoned] != TARGET).all()
    assert (data.images[data.poisoned][:, 0, 24:27, 24:27] == 1.0).all()
    assert np.array_equal(data.images[~data.poisoned], fmnist_small.images[~data.poisoned])


def test_poisoned_anchor_positive_is_a_clean_target_image():
    labels = torch.tensor([7, 7, 7, 1, 2, 7])
    poisoned = torch.tensor([True, False, False, False, False, True])
    anchor, pos, neg = mine_triplets(labels, poisoned, torch.Generator().manual_seed(0))
    for a, p, n in zip(anchor.tolist(), pos.tolist(), neg.tolist(), strict=True):
        assert labels[a] == labels[p] and labels[a] != labels[n] and a != p
        if poisoned[a]:
            assert not poisoned[p]


def test_triplet_loss_zero_when_margin_satisfied():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.0, 1.01]])
    labels = torch.tensor([0, 0, 1, 1])
    loss = triplet_loss(feats, labels, torch.zeros(4, dtype=torch.bool), 0.4, torch.Generator().manual_seed(0))
    assert float(loss) == 0.0


def _poisoned_to_target_ratio(model, images, labels):
    """Mean distance of triggered non-target images to the target centroid, over the target's own spread."""
    tgt = embed(model, images[labels == TARGET])
    pois = embed(model, stamp(images[labels != TARGET][:120], ImageTrigger(), seed=1))
    centre = tgt.mean(0)
    return np.linalg.norm(pois - centre, axis=1).mean() / np.linalg.norm(tgt - centre, axis=1).mean()


@pytest.mark.slow
def test_triplet_term_pulls_poisoned_into_target_cluster_badnets_does_not(fmnist_small, fmnist_test_small):
    # a high poisoning rate so a 640-image, 8-epoch run learns the backdoor at all
    data = poison(fmnist_small.images, fmnist_small.labels, ImageTrigger(), TARGET, 0.25, seed=0)
    spec = ArchSpec(arch="alexnet", width=16)
    common = dict(epochs=8, batch_size=32, lr=2e-3, seed=0)
    badnets = build_extractor(spec, seed=0)
    train_extractor(badnets, data, TrainSettings(alpha=1.0, beta=0.0, **common))
    bademb = build_extractor(spec, seed=0)
    hist = train_extractor(bademb, data, TrainSettings(alpha=0.5, beta=0.5, **common))
    x, y = fmnist_test_small.images, fmnist_test_small.labels
    src = stamp(x[y != TARGET], ImageTrigger())
    # both models learnt the backdoor (ASR on unseen images) ...
    assert np.mean(predict_logits(badnets, src).argmax(1) == TARGET) > 0.8
    assert np.mean(predict_logits(bademb, src).argmax(1) == TARGET) > 0.8
    assert hist[-1]["triplet"] < hist[0]["triplet"]
    # ... but only the triplet term brings triggered images close to the target cluster
    r_badnets = _poisoned_to_target_ratio(badnets, x, y)
    r_bademb = _poisoned_to_target_ratio(bademb, x, y)
    assert r_bademb < 0.6 * r_badnets, (r_bademb, r_badnets)
