import numpy as np

from recbackdoor.data.interactions import SimulatorSettings, leave_one_out, simulate
from recbackdoor.metrics.vision import leave_one_out_auc
from recbackdoor.victims.vision.vbpr import VBPRSettings, fit_vbpr


def _auc(feats, labels, seed=0):
    inter = simulate(labels, 3, SimulatorSettings(n_users=200, mean_interactions=12, seed=seed))
    loo = leave_one_out(inter, seed)
    model, hist = fit_vbpr(inter.n_users, inter.n_items, loo.train_users, loo.train_items, feats,
                           VBPRSettings(epochs=25, seed=seed))
    scores = model.score_matrix(np.arange(inter.n_users), feats, np.arange(inter.n_items))
    return leave_one_out_auc(scores, loo.test_items, loo.seen), hist


def test_vbpr_learns_and_category_features_help():
    labels = np.repeat(np.arange(4), 60)
    rng = np.random.default_rng(0)
    informative = np.eye(4)[labels] + 0.05 * rng.normal(size=(240, 4))
    noise = rng.normal(size=(240, 4))
    auc_good, hist = _auc(informative.astype(np.float32), labels)
    auc_noise, _ = _auc(noise.astype(np.float32), labels)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert auc_good > 0.75
    assert auc_good > auc_noise
