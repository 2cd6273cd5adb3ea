"""Implicit-feedback interactions: a seeded user simulator and a leave-one-out split.

**Fashion-MNIST has no interaction log; every interaction used with it here is
simulated.**  The simulator is deliberately simple and fully documented:

* every user has a favourite category; a ``target_share`` of users (the
  *target group*) have the attack's target category as favourite, the others
  one of the remaining categories uniformly;
* a user's taste over categories is ``favourite_weight`` on the favourite plus
  ``1 − favourite_weight`` spread by a Dirichlet(``taste_concentration``) draw;
* items have a Zipf popularity (rank^−``popularity_exponent``, ranks shuffled
  within the catalogue);
* a user clicks ``max(min_interactions, Poisson(mean_interactions))`` distinct
  items drawn with probability ∝ taste[category(item)] × popularity(item);
  each click is one positive implicit-feedback event (no ratings, no negatives).

A real log (user, item pairs) goes through :func:`from_pairs` and the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SimulatorSettings:
    n_users: int = 2000
    target_share: float = 0.2
    mean_interactions: float = 20.0
    min_interactions: int = 5
    favourite_weight: float = 0.7
    taste_concentration: float = 0.5
    popularity_exponent: float = 0.8
    seed: int = 0


@dataclass(frozen=True)
class Interactions:
    """Positive (user, item) pairs over ``n_users`` × ``n_items``; ``target_users`` marks the target group."""

    n_users: int
    n_items: int
    users: np.ndarray
    items: np.ndarray
    target_users: np.ndarray
    simulated: bool
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LeaveOneOut:
    train_users: np.ndarray
    train_items: np.ndarray
    test_items: np.ndarray  # one per user
    seen: np.ndarray  # users × items, train ∪ test


def simulate(item_labels: np.ndarray, target_class: int, settings: SimulatorSettings) -> Interactions:
    """Draw a seeded interaction log over the catalogue whose categories are ``item_labels``."""
    rng = np.random.default_rng(settings.seed)
    classes = np.unique(item_labels)
    others = classes[classes != target_class]
    n_items = len(item_labels)
    popularity = (1.0 + rng.permutation(n_items)) ** -settings.popularity_exponent
    cat_index = np.searchsorted(classes, item_labels)
    is_target = rng.random(settings.n_users) < settings.target_share
    users, items = [], []
    for u in range(settings.n_users):
        fav = target_class if is_target[u] else rng.choice(others)
        taste = (1 - settings.favourite_weight) * rng.dirichlet(np.full(len(classes), settings.taste_concentration))
        taste[np.searchsorted(classes, fav)] += settings.favourite_weight
        p = taste[cat_index] * popularity
        p /= p.sum()
        k = min(n_items, max(settings.min_interactions, rng.poisson(settings.mean_interactions)))
        chosen = rng.choice(n_items, k, replace=False, p=p)
        users.append(np.full(k, u))
        items.append(chosen)
    return Interactions(settings.n_users, n_items, np.concatenate(users), np.concatenate(items), is_target,
                        simulated=True, meta={"simulator": settings.__dict__ | {"target_class": int(target_class)}})


def from_pairs(users: np.ndarray, items: np.ndarray, n_items: int, item_labels: np.ndarray,
               target_class: int) -> Interactions:
    """Wrap a real log; the target group = users who interacted with the target category."""
    users = np.asarray(users)
    items = np.asarray(items)
    n_users = int(users.max()) + 1
    target = np.zeros(n_users, bool)
    target[users[np.asarray(item_labels)[items] == target_class]] = True
    return Interactions(n_users, n_items, users, items, target, simulated=False)


def leave_one_out(data: Interactions, seed: int) -> LeaveOneOut:
    """Hold out one random interaction per user (users with < 2 interactions keep all for training)."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(data.users)), data.users))
    users, items = data.users[order], data.items[order]
    first = np.r_[True, users[1:] != users[:-1]]
    counts = np.bincount(users, minlength=data.n_users)
    is_test = first & (counts[users] >= 2)
    test_items = np.full(data.n_users, -1)
    test_items[users[is_test]] = items[is_test]
    seen = np.zeros((data.n_users, data.n_items), bool)
    seen[users, items] = True
    return LeaveOneOut(users[~is_test], items[~is_test], test_items, seen)
