import numpy as np
import pytest

from recbackdoor.metrics import vision as mv
from recbackdoor.separation import auroc, two_cluster_ari
from recbackdoor.victims.vision.visrank import rank_database


def test_ba_and_asr_denominators():
    assert mv.benign_accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
    # ASR ignores images whose true class is already the target (denominator: 3 images)
    assert mv.attack_success_rate(np.array([7, 7, 1, 7]), np.array([0, 1, 1, 7]), 7) == pytest.approx(2 / 3)


def test_average_precision_hand_made():
    assert mv.average_precision(np.array([1, 0, 1, 0])) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert mv.average_precision(np.array([0, 0])) == 0.0


def test_map_and_targeted_map_on_points():
    db = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    db_y = np.array([0, 0, 1, 1])
    q = np.array([[0.05, 0.0], [5.05, 5.0]])
    order = rank_database(q, db)
    assert order.tolist() == [[0, 1, 2, 3], [2, 3, 1, 0]]
    assert mv.mean_average_precision(order, np.array([0, 1]), db_y) == 1.0
    # a query lying in class 1's region, relabelled to target 1 -> perfect t-MAP; to target 0 -> poor
    assert mv.targeted_map(order[1:], db_y, target=1) == 1.0
    assert mv.targeted_map(order[1:], db_y, target=0) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_ari_separated_vs_blended(rng):
    target = rng.normal(0, 1, (100, 4))
    far = rng.normal(10, 1, (100, 4))
    blended = rng.normal(0, 1, (100, 4))
    assert two_cluster_ari(target, far) > 0.95
    assert abs(two_cluster_ari(target, blended)) < 0.1


def test_leave_one_out_auc_hand_made():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
    seen = np.array([[True, False, False, True], [False, True, False, False]])
    # user 0: test item 0 beats unseen items 1 and 2 -> 1.0; user 1: test item 2 beats item 0 only of {0, 3} -> 0.5
    assert mv.leave_one_out_auc(scores, np.array([0, 2]), seen | np.array([[0, 0, 0, 0], [0, 0, 1, 0]], bool)) \
        == pytest.approx(0.75)


def test_prediction_shift_and_hit_rate():
    before = np.array([[1.0, 2.0], [3.0, 4.0]])
    after = before + np.array([[1.0, 3.0], [1.0, 3.0]])
    assert mv.prediction_shift(before, after) == pytest.approx(2.0)
    nth = np.array([2.5, 6.0])
    assert mv.hit_rate_at_n(before, nth) == pytest.approx(0.0)
    assert mv.hit_rate_at_n(after, nth) == pytest.approx(0.5)  # (1/2 + 1/2)/2 ... item-wise mean
    assert mv.delta_hit_rate(before, after, nth) == pytest.approx(0.5)


def test_auroc_orders_scores():
    assert auroc(np.array([0.1, 0.2]), np.array([0.8, 0.9])) == 1.0
    assert auroc(np.array([0.8, 0.9]), np.array([0.1, 0.2])) == 0.0


def test_pool_threshold_excludes_the_item_itself():
    pool = np.array([[5.0, 4.0, 3.0, 1.0]])
    bar = mv.pool_thresholds(pool, n=2)
    # items 0 and 1 are in the top-2: their bar is the 3rd best (3.0); others face the 2nd best (4.0)
    assert bar.tolist() == [[3.0, 3.0, 4.0, 4.0]]
    assert mv.hit_rate_at_n(pool, bar) == 0.5
    # item 3 restamped to 4.5 now enters the top-2; item 0 dropped to 0 leaves it
    after = np.array([[0.0, 4.0, 3.0, 4.5]])
    assert mv.delta_hit_rate(pool, after, bar) == pytest.approx(0.0)


def test_knn_mixing_and_centroid_ratio(rng):
    target = rng.normal(0, 1, (100, 3))
    mixed = rng.normal(0, 1, (100, 3))
    apart = rng.normal(0, 1, (100, 3)) + np.array([20.0, 0, 0])
    assert 0.35 < mv.knn_mixing(target, mixed) < 0.65
    assert mv.knn_mixing(target, apart) == 0.0
    assert 0.8 < mv.centroid_ratio(target, mixed) < 1.25
    assert mv.centroid_ratio(target, apart) > 5
